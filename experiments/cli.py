"""The ``dinv`` command: list and run the paper's experiments.

Usage::

    dinv list
    dinv run linear-regression --out results/linear [--quick] [--seed N]
             [--models BP,DI a=0.01] [--set key=value ...] [--fixed-norm]
    dinv run linear-regression --help            # its settings: type, default, meaning
    dinv run mnist --dataset fashion-mnist --batch-size 100 --out results/fashion
    dinv run mnist --resume results/fashion      # continue after a crash or a signal
    dinv run linear-regression --out results/linear --overwrite   # replace a finished run
    dinv show results/linear                     # the summary of a finished or stopped run
"""

import argparse
import json
import os
import shlex
import sys
import time
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path

from dinv.circuits import POPULATION_MODELS
from dinv.errors import CircuitDivergedError, InputError
from dinv.experiments.folders import OutputFolder
from dinv.experiments.interrupts import StopNow, StopRequests, exit_status
from dinv.experiments.registry import EXPERIMENTS, get_experiment, make_config
from dinv.experiments.results import (
    FIGURE,
    RESULTS,
    WriteError,
    run_record,
    save_figure,
    write_json,
)
from dinv.experiments.settle_stats import shortfall_warnings
from dinv.experiments.summary import header_line, show, summary_lines
from dinv.experiments.supervised import CHECKPOINT, read_checkpoint
from dinv.models.rules import RULES
from dinv.models.stabilise import StabilisationError

DESCRIPTION = ("dinv: list, run and show the experiments of dynamic inversion "
               "(Podlaski & Machens, NeurIPS 2020).")


def _parse_value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


NULLABLE_TYPES = {"models": "list", "iterations": "int", "data_dir": "str",
                  "train_samples": "int", "stop_tol": "float"}
"""The kind of value of the settings whose default is null (none given)."""


def _kind(key, value):
    """The type shown for a setting in ``dinv run NAME --help``."""
    if value is None:
        return f"{NULLABLE_TYPES.get(key, 'any')} or null"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list",
            dict: "dict"}.get(type(value), type(value).__name__)


def _shown(value, width=60):
    text = json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def settings_help(experiment):
    """The lines of ``dinv run NAME --help`` that list the experiment's settings: every
    key of its defaults with type, default (and --quick value) and meaning."""
    lines = [f"settings of {experiment.name} (change with --set KEY=VALUE, the value in JSON;",
             "[--quick: ...]: the value of the reduced protocol):"]
    for key, default in experiment.defaults.items():
        quick = (f"  [--quick: {_shown(experiment.quick[key], 40)}]"
                 if key in experiment.quick else "")
        lines.append(f"  {key} : {_kind(key, default)} = {_shown(default)}{quick}")
        lines.append(f"      {experiment.descriptions.get(key, '(no description)')}")
    return lines


class _RunHelp(argparse.Action):
    """``-h`` of ``dinv run``: after an experiment's name, that experiment's flags and
    settings; without one, the flags of every experiment."""

    def __init__(self, option_strings, dest, help=None, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help=help or "show this help (after NAME: that experiment's "
                                      "settings)")

    def __call__(self, parser, namespace, values, option_string=None):
        name = getattr(namespace, "name", None)
        if name in EXPERIMENTS:
            experiment = EXPERIMENTS[name]
            own = argparse.ArgumentParser(
                prog=f"dinv run {name}", add_help=False,
                formatter_class=argparse.RawDescriptionHelpFormatter,
                description=f"{experiment.paper}.",
                epilog="\n".join(settings_help(experiment)))
            _add_run_arguments(own, [experiment], with_name=False)
            own.print_help()
        else:
            parser.print_help()
        parser.exit()


def build_parser():
    """The argument parser of ``dinv`` (one sub-command per action)."""
    parser = argparse.ArgumentParser(prog="dinv", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments")
    run = sub.add_parser("run", add_help=False,
                         help="run an experiment and write results.json and a figure "
                              "(dinv run NAME --help: its settings)")
    _add_run_arguments(run, EXPERIMENTS.values())
    show_parser = sub.add_parser("show", help="print the summary of a finished or "
                                              "interrupted run (or of a sweep folder)")
    show_parser.add_argument("folder", type=Path, metavar="DIR",
                             help="the --out folder of a dinv run or dinv sweep")
    _add_sweep_parser(sub)
    return parser


def _add_run_arguments(run, experiments, with_name=True):
    """The flags of ``dinv run``; the experiment-specific ones of ``experiments``."""
    run.add_argument("-h", "--help", action=_RunHelp,
                     help=None if with_name else "show this help and exit")
    if with_name:
        run.add_argument("name", help="experiment name (see dinv list)")
    run.add_argument("--out", type=Path, help="output folder (default: results/NAME)")
    run.add_argument("--quick", action="store_true", help="reduced protocol for a smoke run")
    run.add_argument("--seed", type=int, help="random seed (same seed, same numbers)")
    run.add_argument("--models", help="comma-separated subset of the experiment's models")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a setting (value parsed as JSON), repeatable")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--resume", type=Path, metavar="DIR",
                     help="continue the run whose checkpoint is in DIR, with its settings")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the files of an earlier run in the output folder")
    if any(experiment.checkpoints for experiment in experiments):
        run.add_argument("--keep-checkpoints", action="store_true",
                         help="with --quick: keep checkpoint.npz after the run finishes "
                              "(deleted by default; full runs always keep it)")
    flags = {}
    for experiment in experiments:
        for option in experiment.options:
            if option.flag in flags:
                continue
            flags[option.flag] = option
            label = f"{experiment.name}: " if len(experiments) > 1 else ""
            if option.type is None:
                run.add_argument(option.flag, dest=option.key, action="store_true",
                                 default=None, help=f"{label}{option.help}")
            else:
                run.add_argument(option.flag, dest=option.key, type=option.type,
                                 help=f"{label}{option.help}")


def _add_sweep_parser(sub):
    sweep = sub.add_parser(
        "sweep", help="run a grid of an experiment's settings on Dask (user guide: Sweeps)")
    sweep.add_argument("name", nargs="?", help="experiment name (or 'experiment' in --file)")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="a setting and its values (JSON each), or KEY=a:b for the "
                            "integers a..b-1; repeatable: the cells are the product")
    sweep.add_argument("--file", type=Path, metavar="SWEEP.toml",
                       help="read experiment, quick, out, [grid] and [set] from a TOML file")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="a setting every cell shares (value parsed as JSON), repeatable")
    sweep.add_argument("--models", help="comma-separated subset of the experiment's models")
    sweep.add_argument("--quick", action="store_true", default=None,
                       help="start every cell from the reduced protocol")
    sweep.add_argument("--out", type=Path, help="the sweep's folder (required here or in "
                                                "--file); rerun into it to continue")
    sweep.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    where = sweep.add_argument_group("where the cells run (default: a LocalCluster, one "
                                     "single-threaded worker process per core; the "
                                     "regressions: one per two cores, each with a "
                                     "companion process)")
    where.add_argument("--workers", type=int,
                       help="LocalCluster: worker processes, one core per cell")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="use a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    where.add_argument("--retries", type=int, default=2,
                       help="tries again of a cell whose task raised or whose worker died "
                            "(default 2)")
    where.add_argument("--brian-cache", metavar="DIR",
                       help="Brian2's Cython cache on the workers; {worker} and {tmp} are "
                            "filled in (default: Brian2's own; SLURM: {tmp}/dinv-brian-cache)")
    slurm = sweep.add_argument_group("SLURM (dask-jobqueue)")
    slurm.add_argument("--slurm", action="store_true", help="submit SLURM jobs as workers")
    slurm.add_argument("--dry-run", action="store_true",
                       help="with --slurm: print the job script, submit nothing")
    slurm.add_argument("--queue", help="partition (#SBATCH -p)")
    slurm.add_argument("--account", help="account (#SBATCH -A)")
    slurm.add_argument("--cores", type=int, default=1,
                       help="CPUs per job: as many single-threaded workers (default 1)")
    slurm.add_argument("--memory", default="4GB", help="memory per job (default 4GB)")
    slurm.add_argument("--walltime", default="01:00:00",
                       help="time limit per job, HH:MM:SS (default 01:00:00)")
    slurm.add_argument("--jobs", type=int, default=1, help="jobs to submit (default 1)")
    slurm.add_argument("--directive", action="append", default=[], metavar="'--OPTION=VALUE'",
                       help="an extra #SBATCH line, e.g. '--qos=short'; repeatable")
    slurm.add_argument("--prologue", action="append", default=[], metavar="'COMMAND'",
                       help="a shell line run before the worker, e.g. 'module load "
                            "python'; repeatable")


def _overrides(experiment, args):
    """The settings the command line changes (checked for their kind by `make_config`)."""
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = _parse_value(value)
    for option in experiment.options:
        value = getattr(args, option.key, None)
        if value is not None:
            overrides[option.key] = value
    own = {option.flag for option in experiment.options}
    for other in EXPERIMENTS.values():
        for option in other.options:
            if option.flag not in own and getattr(args, option.key, None) is not None:
                raise InputError(f"{option.flag} does not apply to {experiment.name}")
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.models is not None:
        overrides["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
        if not overrides["models"]:
            raise InputError(f"--models names no models ({args.models!r}); give "
                             "comma-separated names, e.g. --models \"BP,DI a=0.01\"")
    return overrides


def _check_run_settings(config):
    """What every experiment needs of the model list (`make_config` checks the seed)."""
    if config.get("models") == []:
        raise InputError("models names no models; leave it out to run them all")


def run_command(args, stop=None):
    """Run one experiment as asked on the command line.

    Everything on the command line is checked, the output folder created
    (or found), checked and locked before any work; ``stop`` (a
    `StopRequests`) is handed to the experiment.

    Returns
    -------
    tuple
        ``(out, record)``: the output folder and what results.json holds.
    """
    experiment = get_experiment(args.name)
    overrides = _overrides(experiment, args)
    if args.resume is not None:
        return _resume(experiment, args, overrides, stop)
    config = make_config(experiment, args.quick, overrides)
    _check_run_settings(config)
    out = args.out or Path("results") / experiment.name
    with OutputFolder(out) as folder:
        if args.overwrite:
            folder.remove_run_files()
        else:
            _refuse_earlier_run(out, experiment)
        extra = {"folder": out, "resume": None} if experiment.checkpoints else {}
        start = time.perf_counter()
        with _write_errors(experiment, out):
            results = experiment.run(config, progress=not args.no_progress, stop=stop, **extra)
            finished = _finish(experiment, config, results, out, time.perf_counter() - start)
        _drop_quick_checkpoint(experiment, config, finished[1], out, args)
        return finished


def _finished_results(out):
    """Whether ``out/results.json`` is the record of a finished run (one that cannot be
    read counts as finished: it is not ours to delete)."""
    path = out / RESULTS
    if not path.exists():
        return False
    try:
        return not json.loads(path.read_text()).get("interrupted", False)
    except (OSError, ValueError, AttributeError):
        return True


def _refuse_earlier_run(out, experiment):
    """A new run must not overwrite the results or the checkpoint of an earlier one."""
    if (out / CHECKPOINT).exists():
        meta, _ = read_checkpoint(out)
        if meta["state"]["epoch"] < meta["config"]["epochs"]:
            raise InputError(f"{out} holds the checkpoint of an unfinished run; continue it "
                             f"with --resume {out}, start over with --overwrite, or choose "
                             "another --out")
        if not _finished_results(out):
            raise InputError(f"{out} holds the checkpoint of a finished run without its "
                             f"results; write them with --resume {out}, start over with "
                             "--overwrite, or choose another --out")
    if (out / RESULTS).exists():
        what = "a finished" if _finished_results(out) else "an interrupted"
        raise InputError(f"{out} holds the results of {what} run ({RESULTS}); replace them "
                         "with --overwrite, or choose another --out")


def _resume(experiment, args, overrides, stop):
    """Continue the checkpointed run in ``args.resume`` with its own settings."""
    if not experiment.checkpoints:
        raise InputError(f"{experiment.name} does not write checkpoints; --resume applies to "
                         f"{', '.join(n for n, e in EXPERIMENTS.items() if e.checkpoints)}")
    if overrides or args.quick:
        raise InputError("--resume continues with the saved settings; drop "
                         f"{', '.join(['--quick'] * bool(args.quick) + sorted(overrides))}")
    if args.overwrite:
        raise InputError("--resume continues a run, --overwrite starts one afresh; drop one")
    out = args.resume
    if args.out is not None and args.out.resolve() != out.resolve():
        raise InputError("--resume writes into the run's own folder; drop --out")
    if not (out / CHECKPOINT).is_file():
        if _finished_results(out):  # e.g. a --quick run, which drops its checkpoint
            raise InputError(f"the run in {out} has finished ({RESULTS}); there is nothing "
                             "to resume")
        raise InputError(f"no checkpoint to resume from: {out / CHECKPOINT} does not exist")
    with OutputFolder(out, create=False):
        meta, arrays = read_checkpoint(out)
        if meta["experiment"] != experiment.name:
            raise InputError(f"{out} holds a checkpoint of {meta['experiment']!r}, "
                             f"not of {experiment.name!r}")
        config = meta["config"]
        if meta["state"]["epoch"] >= config["epochs"] and _finished_results(out):
            raise InputError(f"the run in {out} has finished ({RESULTS}); there is nothing "
                             "to resume")
        start = time.perf_counter()
        with _write_errors(experiment, out):
            results = experiment.run(config, progress=not args.no_progress, folder=out,
                                     resume=(meta["state"], arrays), stop=stop)
            finished = _finish(experiment, config, results, out, time.perf_counter() - start)
        _drop_quick_checkpoint(experiment, config, finished[1], out, args)
        return finished


def _drop_quick_checkpoint(experiment, config, record, out, args):
    """A --quick run that finished deletes its checkpoint (megabytes nobody resumes)
    unless --keep-checkpoints; an interrupted one keeps it, to be resumed."""
    if (experiment.checkpoints and config.get("quick") and record["interruption"] is None
            and not getattr(args, "keep_checkpoints", False)):
        (out / CHECKPOINT).unlink(missing_ok=True)


@contextmanager
def _write_errors(experiment, out):
    """A file that could not be written (a full disk): say what is intact and what next."""
    try:
        yield
    except WriteError as exc:
        if experiment.checkpoints and (out / CHECKPOINT).exists():
            raise WriteError(f"{exc}; the last checkpoint {out / CHECKPOINT} is intact: "
                             f"make room, then continue with --resume {out}") from exc
        raise


def _finish(experiment, config, results, out, seconds):
    """Write results.json and the figure (marked if the run was interrupted)."""
    interruption = results.pop("interrupted", None)
    record = run_record(experiment.name, config, results, seconds, interruption,
                        experiment.units)
    write_json(out / RESULTS, record)
    with warnings.catch_warnings():
        if interruption is not None:  # panels of work not done stay empty
            warnings.filterwarnings("ignore", "No artists with labels", UserWarning)
        figure = experiment.figure(record)
    if interruption is not None:
        figure.suptitle(f"INTERRUPTED ({interruption['signal']}) after {interruption['done']} "
                        f"of {interruption['total']} {interruption['unit']}: partial results",
                        color="tab:red", fontsize=11)
    save_figure(figure, out / FIGURE)
    for name, extra in experiment.extra_figures(record).items():
        save_figure(extra, out / name)
    return out, record


def print_catalogue():
    """Print what ``dinv list`` shows: experiments, backward rules, population models."""
    print("experiments (dinv run NAME):")
    for experiment in EXPERIMENTS.values():
        print(f"  {experiment.name:22s} {experiment.paper}")
    print("backward rules (models' rule):")
    for rule in RULES.values():
        print(f"  {rule.name:22s} {rule.title}")
    print("population models (--set system=NAME, --set controller=NAME):")
    for name, model in POPULATION_MODELS.items():
        print(f"  {name:22s} {model.kind}: {model.description}")


def main(argv=None):
    """Entry point of the ``dinv`` console script; returns the exit status.

    0: done; 2: an error, in one line (``dinv: error: ...``); 1: a bug of
    dinv (its traceback); 128 + the signal number (130 SIGINT, 143 SIGTERM):
    stopped by a signal, see `dinv.experiments.interrupts`.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            print_catalogue()
            return 0
        if args.command == "show":
            try:
                lines = show(args.folder)
            except (InputError, OSError) as exc:
                print(f"dinv: error: {exc}", file=sys.stderr)
                return 2
            print("\n".join(lines))
            return 0
    except BrokenPipeError:  # the reader stopped reading (e.g. `dinv show DIR | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if args.command == "sweep":
        from dinv.experiments.sweep_cli import sweep_main

        return sweep_main(args)
    with StopRequests() as stop:
        try:
            out, record = run_command(args, stop)
            return _report(args, out, record, stop)
        except StopNow as exc:
            print(f"dinv: second {exc}: stopped at once, without writing results"
                  f"{_checkpoint_note(args)}", file=sys.stderr)
            return exit_status(exc.signum)
        except (InputError, CircuitDivergedError, StabilisationError, OSError,
                FloatingPointError) as exc:
            print(f"dinv: error: {exc}", file=sys.stderr)
            return 2
        except Exception:  # noqa: BLE001 - a bug of dinv, not of Brian2 (its excepthook)
            traceback.print_exc()
            print("dinv: internal error (the traceback above); please report it to the "
                  "dynamic-inversion developers with the command line", file=sys.stderr)
            return 1


def _print_summary(record):
    """The experiment's summary table (`dinv.experiments.summary`), then a warning line
    per model whose settles fell short too often."""
    for line in summary_lines(record):
        print(line)
    for line in shortfall_warnings(record.get("settling") or {}, _more_time(record)):
        print(f"dinv: warning: {line}", file=sys.stderr)


def _more_time(record):
    """Per circuit model whose settles get more time from another setting than steps:
    the spiking study's (duration) and the regressions' spiking DI models (spiking_steps)."""
    settling = record.get("settling") or {}
    if record.get("experiment") == "spiking-inversion":
        return dict.fromkeys(settling, "simulate longer (--set duration=T, in units of tau)")
    return {name: f"run more steps (a larger {entry['population']} value of the setting "
                  f"spiking_steps, now {entry['steps']})"
            for name, entry in (record.get("spiking") or {}).items()}


def _checkpoint_note(args):
    """Where a stopped run's last checkpoint is, if it has one."""
    folder = args.resume or args.out or Path("results") / args.name
    if (folder / CHECKPOINT).exists():
        return (f"; the last checkpoint {folder / CHECKPOINT} is intact: continue with "
                f"dinv run {args.name} --resume {shlex.quote(str(folder))}")
    return ""


def _report(args, out, record, stop):
    """Print what the run wrote; the exit status."""
    interruption = record["interruption"]
    if interruption is None:
        print(f"wrote {out / RESULTS} and {out / FIGURE} ({record['wall_seconds']:.1f} s)")
        print(header_line(record))
        _print_summary(record)
        if stop.requested is None:
            return 0
        print(f"dinv: {stop.signal_name} arrived as the run was ending; its results are "
              "complete", file=sys.stderr)
        return exit_status(stop.requested)
    print(header_line(record))
    _print_summary(record)
    where = shlex.quote(str(out))
    if get_experiment(args.name).checkpoints:
        advice = (f"wrote {out / CHECKPOINT} and partial results; continue with: "
                  f"dinv run {args.name} --resume {where}")
    else:
        advice = (f"wrote partial results to {out / RESULTS}; {args.name} has no "
                  f"checkpoints: a rerun starts over (into {where} with --overwrite)")
    print(f"dinv: interrupted by {interruption['signal']} after {interruption['done']} of "
          f"{interruption['total']} {interruption['unit']}; {advice}", file=sys.stderr)
    return exit_status(stop.requested)


if __name__ == "__main__":
    sys.exit(main())
