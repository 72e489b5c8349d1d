"""The ``dinv`` command: list and run the paper's experiments.

Usage::

    dinv list
    dinv run linear-regression --out results/linear [--quick] [--seed N]
             [--models BP,DI a=0.01] [--set key=value ...] [--fixed-norm]
    dinv run mnist --dataset fashion-mnist --batch-size 100 --out results/fashion
    dinv run mnist --resume results/fashion      # continue after a crash
"""

import argparse
import json
import sys
import time
from pathlib import Path

from dinv.circuits import POPULATION_MODELS
from dinv.errors import CircuitDivergedError, InputError
from dinv.models.rules import RULES
from dinv.models.stabilise import StabilisationError
from dinv.experiments.registry import EXPERIMENTS, get_experiment, make_config
from dinv.experiments.results import run_record, save_figure, write_json
from dinv.experiments.settle_stats import describe, shortfall_warnings
from dinv.experiments.supervised import CHECKPOINT, read_checkpoint


def _parse_value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_parser():
    """The argument parser of ``dinv`` (one sub-command per action)."""
    parser = argparse.ArgumentParser(prog="dinv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments")
    run = sub.add_parser("run", help="run an experiment and write results.json and a figure")
    run.add_argument("name", help="experiment name (see `dinv list`)")
    run.add_argument("--out", type=Path, help="output folder (default: results/NAME)")
    run.add_argument("--quick", action="store_true", help="reduced protocol for a smoke run")
    run.add_argument("--seed", type=int, help="random seed (same seed, same numbers)")
    run.add_argument("--models", help="comma-separated subset of the experiment's models")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a setting (value parsed as JSON), repeatable")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--resume", type=Path, metavar="DIR",
                     help="continue the run whose checkpoint is in DIR, with its settings")
    flags = {}
    for experiment in EXPERIMENTS.values():
        for option in experiment.options:
            if option.flag in flags:
                continue
            flags[option.flag] = option
            if option.type is None:
                run.add_argument(option.flag, dest=option.key, action="store_true",
                                 default=None, help=f"{experiment.name}: {option.help}")
            else:
                run.add_argument(option.flag, dest=option.key, type=option.type,
                                 help=f"{experiment.name}: {option.help}")
    return parser


def run_command(args):
    """Run one experiment as asked on the command line; return the output folder."""
    experiment = get_experiment(args.name)
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
    if args.models:
        overrides["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.resume is not None:
        return _resume(experiment, args, overrides)
    config = make_config(experiment, args.quick, overrides)
    out = args.out or Path("results") / experiment.name
    _make_folder(out)
    extra = {}
    if experiment.checkpoints:
        _refuse_unfinished(out)
        extra = {"folder": out, "resume": None}
    start = time.perf_counter()
    results = experiment.run(config, progress=not args.no_progress, **extra)
    return _finish(experiment, config, results, out, time.perf_counter() - start)


def _make_folder(out):
    try:  # fail now, not after the run, if the results cannot be written
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder {out}: {exc.strerror}; "
                         "choose another --out") from None


def _refuse_unfinished(out):
    """A new run must not overwrite the checkpoint of an unfinished one."""
    if not (out / CHECKPOINT).exists():
        return
    meta, _ = read_checkpoint(out)
    if meta["state"]["epoch"] < meta["config"]["epochs"]:
        raise InputError(f"{out} holds the checkpoint of an unfinished run; continue it with "
                         f"--resume {out}, or choose another --out")


def _resume(experiment, args, overrides):
    """Continue the checkpointed run in ``args.resume`` with its own settings."""
    if not experiment.checkpoints:
        raise InputError(f"{experiment.name} does not write checkpoints; --resume applies to "
                         f"{', '.join(n for n, e in EXPERIMENTS.items() if e.checkpoints)}")
    if overrides or args.quick:
        raise InputError("--resume continues with the saved settings; drop "
                         f"{', '.join(['--quick'] * bool(args.quick) + sorted(overrides))}")
    out = args.resume
    if args.out is not None and args.out.resolve() != out.resolve():
        raise InputError("--resume writes into the run's own folder; drop --out")
    meta, arrays = read_checkpoint(out)
    if meta["experiment"] != experiment.name:
        raise InputError(f"{out} holds a checkpoint of {meta['experiment']!r}, "
                         f"not of {experiment.name!r}")
    config = meta["config"]
    start = time.perf_counter()
    results = experiment.run(config, progress=not args.no_progress, folder=out,
                             resume=(meta["state"], arrays))
    return _finish(experiment, config, results, out, time.perf_counter() - start)


def _finish(experiment, config, results, out, seconds):
    record = run_record(experiment.name, config, results, seconds)
    write_json(out / "results.json", record)
    figure = experiment.figure(record)
    save_figure(figure, out / "figure.png")
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
    """Entry point of the ``dinv`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        print_catalogue()
        return 0
    try:
        out, record = run_command(args)
    except (InputError, CircuitDivergedError, StabilisationError, OSError,
            FloatingPointError) as exc:
        print(f"dinv: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'results.json'} and {out / 'figure.png'} "
          f"({record['wall_seconds']:.1f} s)")
    settling = record.get("settling") or {}
    finals = record.get("final", {})
    for name, final in finals.items():
        values = ", ".join(f"{key.replace('_', ' ')} {value:.4g}"
                           for key, value in final.items())
        if name in settling:
            values += f"; {describe(settling[name])}"
        print(f"  {name:18s} {values}")
    for name, entry in settling.items():
        if name not in finals:
            print(f"  {name:18s} {describe(entry)}")
    for line in shortfall_warnings(settling):
        print(f"dinv: warning: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
