"""``dinv sweep``: the command line of `dinv.experiments.sweep`.

Exit status as for ``dinv run``: 0 every cell done; 2 an error in the input
(one ``dinv: error:`` line, before any work), or at least one cell failed
(the others are done; each failed cell's ``error.json`` says why); 1 a bug of
dinv (its traceback); 130 / 143 stopped by SIGINT / SIGTERM (the tables hold
the cells done; the same command continues the sweep).
"""

import shlex
import sys
import traceback
from pathlib import Path

from dinv.analysis.sweeps import SUMMARY_FIGURE, TABLE
from dinv.errors import InputError
from dinv.experiments.cluster import ClusterOptions, SlurmOptions, slurm_job_script
from dinv.experiments.interrupts import StopNow, StopRequests, exit_status
from dinv.experiments.results import WriteError
from dinv.experiments.sweep import (
    SweepSpec,
    format_summary,
    make_cells,
    parse_grid_item,
    plan_groups,
    read_sweep_file,
    run_sweep,
)


def _parse_value(text):
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def spec_from_args(args):
    """The `SweepSpec` and output folder of a ``dinv sweep`` command line (with its
    ``--file``, whose entries the command line's override or extend)."""
    from_file = read_sweep_file(args.file) if args.file is not None else {
        "experiment": None, "quick": None, "out": None, "grid": {}, "set": {}}
    name = args.name or from_file["experiment"]
    if name is None:
        raise InputError("name the experiment to sweep: dinv sweep EXPERIMENT --grid ... "
                         "(or experiment = \"...\" in --file)")
    if args.name and from_file["experiment"] and args.name != from_file["experiment"]:
        raise InputError(f"the command line sweeps {args.name}, the sweep file "
                         f"{from_file['experiment']}; drop one")
    grid = dict(from_file["grid"])
    for item in args.grid:
        key, values = parse_grid_item(item)
        if key in grid:
            raise InputError(f"--grid {key} is given twice; list all its values in one "
                             f"--grid {key}=V1,V2,...")
        grid[key] = values
    overrides = dict(from_file["set"])
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = _parse_value(value)
    if args.models is not None:
        overrides["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
        if not overrides["models"]:
            raise InputError(f"--models names no models ({args.models!r})")
    quick = args.quick if args.quick is not None else bool(from_file["quick"])
    out = args.out or (Path(from_file["out"]) if from_file["out"] else None)
    return SweepSpec(name, grid, overrides, quick), out


def cluster_from_args(args):
    """The `ClusterOptions` of a ``dinv sweep`` command line."""
    for flag, value, minimum in (("--workers", args.workers, 1), ("--retries", args.retries, 0),
                                 ("--cores", args.cores, 1), ("--jobs", args.jobs, 1)):
        if value is not None and value < minimum:
            raise InputError(f"{flag} must be at least {minimum}, got {value}")
    slurm_only = [flag for flag, value, default in (
        ("--queue", args.queue, None), ("--account", args.account, None),
        ("--cores", args.cores, 1), ("--memory", args.memory, "4GB"),
        ("--walltime", args.walltime, "01:00:00"), ("--jobs", args.jobs, 1),
        ("--directive", args.directive, []), ("--prologue", args.prologue, []),
        ("--dry-run", args.dry_run, False)) if value != default]
    if not args.slurm and slurm_only:
        raise InputError(f"{', '.join(slurm_only)} applies to --slurm only")
    chosen = [flag for flag, on in (("--slurm", args.slurm),
                                    ("--scheduler", args.scheduler is not None),
                                    ("--workers", args.workers is not None)) if on]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)} choose different clusters; give one")
    slurm = None
    if args.slurm:
        slurm = SlurmOptions(queue=args.queue, account=args.account, cores=args.cores,
                             memory=args.memory, walltime=args.walltime, jobs=args.jobs,
                             directives=tuple(args.directive), prologue=tuple(args.prologue),
                             log_directory=(str(args.out / "slurm-logs")
                                            if args.out and not args.dry_run else None))
    return ClusterOptions(workers=args.workers, scheduler=args.scheduler, slurm=slurm,
                          retries=args.retries, brian_cache=args.brian_cache)


def _dry_run(spec, cluster):
    cells = make_cells(spec)
    tasks = plan_groups(spec, cells, cluster.expected_workers())
    print(f"# dinv sweep {spec.name}: {len(cells)} cells in {len(tasks)} tasks; --slurm "
          f"would submit {cluster.slurm.jobs} job(s) of this script (dry run: nothing "
          "submitted)")
    print(slurm_job_script(cluster.slurm))
    return 0


def sweep_main(args):
    """Run ``dinv sweep`` as parsed in ``args``; returns the exit status."""
    with StopRequests() as stop:
        try:
            spec, out = spec_from_args(args)
            cluster = cluster_from_args(args)
            if cluster.slurm is not None and args.dry_run:
                return _dry_run(spec, cluster)
            if out is None:
                raise InputError("--out DIR is required: the sweep's folder (rerun into it "
                                 "to continue)")
            outcome = run_sweep(spec, out, cluster, progress=not args.no_progress, stop=stop,
                                command=" ".join(shlex.quote(a) for a in sys.argv))
            return _report(spec, outcome, stop)
        except StopNow as exc:
            print(f"dinv: second {exc}: stopped at once; the cells done are kept, rerun the "
                  "same command to continue", file=sys.stderr)
            return exit_status(exc.signum)
        except (InputError, WriteError, OSError) as exc:
            print(f"dinv: error: {exc}", file=sys.stderr)
            return 2
        except Exception:  # noqa: BLE001 - a bug of dinv
            traceback.print_exc()
            print("dinv: internal error (the traceback above); please report it to the "
                  "dynamic-inversion developers with the command line", file=sys.stderr)
            return 1


def _report(spec, outcome, stop):
    out = outcome.folder
    print(f"wrote {out / (TABLE + '.parquet')}, {out / (TABLE + '.csv')} and "
          f"{out / SUMMARY_FIGURE}")
    for line in format_summary(outcome, list(spec.grid)):
        print(line)
    if outcome.interrupted is not None:
        print(f"dinv: interrupted by {outcome.interrupted}: {outcome.counts['done']} of "
              f"{len(outcome.cells)} cells done; continue with the same command (finished "
              "cells are skipped)", file=sys.stderr)
        return exit_status(stop.requested)
    if outcome.errors:
        first_id, first = next(iter(outcome.errors.items()))
        print(f"dinv: error: {len(outcome.errors)} of {len(outcome.cells)} cells failed "
              f"(each cell's error.json says why), e.g. {first_id}: {first}; a rerun tries "
              "them again", file=sys.stderr)
        return 2
    if stop.requested is not None:
        return exit_status(stop.requested)
    return 0
