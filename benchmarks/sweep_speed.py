"""Throughput of a 10-seed sweep of the linear regression, against single runs and the release.

Times, in this process, the full protocol of ``dinv run linear-regression``
(or ``--quick``) for seeds 0 .. N-1, with the paper's models of Fig. 3a-f
(``RATE_MODELS``: BP, FA, PBP, NDI and DI at alpha 0.01 and 0.001, R-Init;
the release has no spiking models; ``--models all`` adds them, which do not
stack):

(a) single runs, as N ``dinv run`` would do them (``Experiment.run`` with the
    default companion process; ``--sequential K`` times only the first K and
    scales to N, saying so);
(b) the sweep as ``dinv sweep linear-regression --grid seed=0:N`` runs it
    (`run_sweep` on an embedded LocalCluster: the regressions take two cores
    per task, one worker stacking the seeds, every update settling the DI
    circuits of all of them in one Brian2 run, and a companion process for
    their closed-form side; ``--workers 2``: two one-core workers, each
    stacking half of the seeds), ``--sweeps K`` times, each in a new
    temporary folder;
(c) with ``--stacked``: `run_stacked` of the N seeds in this process.

It prints the wall time of one single run, the ratios (a)/(b) (and (a)/(c)),
and against the authors' numba release (``--release-seconds`` per seed, 18.7 s
on this machine class; the target is a 10-seed sweep in at most a
fifth of ten release runs), then the breakdown of one single run with
everything in this process (``parallel=False``): Brian2 settles, closed-form
models and curves, full-data error evaluation, R-Init and re-stabilisation.
Note ``uptime``: on a shared machine the wall times scale with the load.

Run: ``python benchmarks/sweep_speed.py [--seeds 10] [--sequential 2] [--quick]
[--workers 2] [--sweeps 3] [--stacked] [--no-breakdown] [--models all]``
"""

import argparse
import os
import tempfile
import time

from dinv.experiments import regression
from dinv.experiments.cluster import ClusterOptions
from dinv.experiments.linear_regression import RATE_MODELS
from dinv.experiments.registry import get_experiment, make_config
from dinv.experiments.stacking import run_stacked
from dinv.experiments.sweep import SweepSpec, run_sweep

NAME = "linear-regression"
LABELS = ("Brian2 settles (DI circuits)", "re-stabilisation (checks and repairs)",
          "R-Init (initial stable feedback)",
          "closed-form side (BP/FA/PBP/NDI, curves, errors)",
          "  of which: full-data error evaluation", "  of which: curves")


def model_names(choice):
    """The models of every run: the paper's rate models, or None (all) for 'all'."""
    return None if choice == "all" else [spec.name for spec in RATE_MODELS]


def configs(seeds, quick, **overrides):
    experiment = get_experiment(NAME)
    return [make_config(experiment, quick=quick, overrides={"seed": s, **overrides})
            for s in seeds]


def sequential(cfgs):
    """Seconds per run of ``Experiment.run`` for each config, one after the other."""
    experiment = get_experiment(NAME)
    times = []
    for config in cfgs:
        start = time.perf_counter()
        experiment.run(config, progress=False)
        times.append(time.perf_counter() - start)
    return times


def stacked(cfgs):
    start = time.perf_counter()
    run_stacked(NAME, cfgs, progress=False)
    return time.perf_counter() - start


def swept(seeds, quick, models, workers):
    """Wall time of the sweep over ``seeds`` as ``dinv sweep`` runs it (a new folder)."""
    overrides = {} if models is None else {"models": models}
    spec = SweepSpec(NAME, grid={"seed": list(seeds)}, overrides=overrides, quick=quick)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        outcome = run_sweep(spec, os.path.join(folder, "sweep"),
                            ClusterOptions(workers=workers), progress=False,
                            command="benchmarks/sweep_speed.py")
        seconds = time.perf_counter() - start
    if outcome.counts["done"] != len(seeds):
        raise RuntimeError(f"the sweep did not finish every cell: {outcome.counts}, "
                           f"errors {outcome.errors}")
    return seconds


class Timers:
    """Seconds spent in a few functions, by label (wrapping module attributes)."""

    def __init__(self):
        self.seconds, self._undo = {}, []

    def wrap(self, module, attribute, label):
        original = getattr(module, attribute)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start

        setattr(module, attribute, timed)
        self._undo.append((module, attribute, original))

    def restore(self):
        for module, attribute, original in reversed(self._undo):
            setattr(module, attribute, original)


def breakdown(quick, extra, seed=0):
    """Where one single run's time goes, everything in this process."""
    from dinv.experiments import models_spec
    from dinv.models import training
    timers = Timers()
    places = ((training, "settle_chains"), (regression, "_restabilise"),
              (models_spec, "stable_random_feedback"), (regression.ClosedFormSide, "step"),
              (regression.ClosedFormSide, "_errors"), (regression.CurveRecorder, "record"))
    for (module, attribute), label in zip(places, LABELS):
        timers.wrap(module, attribute, label)
    (config,) = configs([seed], quick, parallel=False, **extra)
    start = time.perf_counter()
    try:
        get_experiment(NAME).run(config, progress=False)
    finally:
        timers.restore()
    total = time.perf_counter() - start
    print(f"\nbreakdown of one run (seed {seed}, parallel=false: everything in one process), "
          f"{total:.1f} s")
    accounted = 0.0
    for label in LABELS:
        seconds = timers.seconds.get(label, 0.0)
        if not label.startswith("  "):
            accounted += seconds
        print(f"  {label:55s} {seconds:7.2f} s  {100 * seconds / total:5.1f} %")
    print(f"  {'rest (forward passes, updates, settle statistics, ...)':55s} "
          f"{total - accounted:7.2f} s  {100 * (total - accounted) / total:5.1f} %")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sequential", type=int, default=2,
                        help="single runs to time (fewer than --seeds are scaled up)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=None,
                        help="sweep workers, one core per cell (default: as dinv sweep: "
                             "the regressions pair their tasks, one worker per two cores)")
    parser.add_argument("--sweeps", type=int, default=1,
                        help="time the sweep this often (each in a new folder)")
    parser.add_argument("--stacked", action="store_true",
                        help="also time run_stacked of all seeds in this process")
    parser.add_argument("--models", choices=("paper", "all"), default="paper",
                        help="the paper's models of Fig. 3a-f (default) or all")
    parser.add_argument("--release-seconds", type=float, default=18.7,
                        help="wall time of one run of the authors' release on this machine")
    parser.add_argument("--no-breakdown", action="store_true")
    args = parser.parse_args(argv)
    print(f"load before: {os.getloadavg()}, {os.cpu_count()} cores")
    models = model_names(args.models)
    extra = {} if models is None else {"models": models}
    seeds = list(range(args.seeds))
    cfgs = configs(seeds, args.quick, **extra)
    get_experiment(NAME).run(configs([0], True, iterations=3, **extra)[0],
                             progress=False)  # compile (Brian2's Cython cache)
    count = min(args.sequential, args.seeds)
    single = sequential(cfgs[:count])
    sequential_total = sum(single) * args.seeds / count
    note = "" if count == args.seeds else f" (timed {count}, scaled to {args.seeds})"
    sweeps = [swept(seeds, args.quick, models, args.workers) for _ in range(args.sweeps)]
    sweep = min(sweeps)
    release = args.release_seconds * args.seeds
    print(f"protocol: {NAME}{' --quick' if args.quick else ''}, seeds 0..{args.seeds - 1}, "
          f"models: {'all' if models is None else ', '.join(models)}")
    print(f"(a) sequential single runs : {sequential_total:7.1f} s{note}; one run "
          f"{sum(single) / count:.1f} s (runs: {', '.join(f'{t:.1f}' for t in single)})")
    layout = (f"{args.workers} workers, one core per cell" if args.workers
              else "as dinv sweep lays it out")
    print(f"(b) dinv sweep ({layout}): {sweep:7.1f} s (best of "
          f"{', '.join(f'{t:.1f}' for t in sweeps)})  -> (a)/(b) = "
          f"{sequential_total / sweep:.2f}x, {sweep / args.seeds:.2f} s per run; slowest "
          f"{max(sweeps):.1f} s = {max(sweeps) / (args.release_seconds * args.seeds):.2f} of "
          f"the release")
    if args.stacked:
        together = stacked(cfgs)
        print(f"(c) run_stacked, 1 process : {together:7.1f} s  -> (a)/(c) = "
              f"{sequential_total / together:.2f}x")
    if not args.quick:
        print(f"authors' release: {args.release_seconds:.1f} s per run, {release:.0f} s for "
              f"{args.seeds}; target 1/5: {release / 5:.0f} s; the sweep here {sweep:.0f} s "
              f"= {sweep / release:.2f} of the release ({release / sweep:.2f}x faster); single "
              f"run {sum(single) / count / args.release_seconds:.2f}x the release's time")
    if not args.no_breakdown:
        breakdown(args.quick, extra)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
