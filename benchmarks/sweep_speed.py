"""Throughput of a seed sweep of the linear regression: alone, stacked, and where time goes.

Times, in this process, the full protocol of ``dinv run linear-regression``
(or ``--quick``) for seeds 0 .. N-1:

(a) sequential single runs, as N ``dinv run`` would do them (``Experiment.run``;
    ``--sequential K`` times only the first K and scales to N, saying so);
(b) ``run_stacked`` of the N seeds: one process, every update of all runs'
    DI circuits settled in one Brian2 run;
(c) with ``--processes 2``: two processes, each stacking half of the seeds.

It prints the wall time of one single run, the ratios (a)/(b) and (a)/(c), and
against the authors' numba release (``--release-seconds`` per seed, 18.7 s on
this machine class; the issue's target is a 10-seed sweep in at most a fifth of
ten release runs), then the breakdown of one single run with everything in
this process (``parallel=False``): Brian2 settles, closed-form models and
curves, full-data error evaluation, R-Init and re-stabilisation. Note
``uptime``: on a shared machine the wall times scale with the load.

Run: ``python benchmarks/sweep_speed.py [--seeds 10] [--sequential 10] [--quick]
[--processes 2] [--no-breakdown]``
"""

import argparse
import multiprocessing
import os
import time

from dinv.experiments import regression
from dinv.experiments.registry import get_experiment, make_config
from dinv.experiments.stacking import run_stacked

NAME = "linear-regression"
LABELS = ("Brian2 settles (DI circuits)", "re-stabilisation (checks and repairs)",
          "R-Init (initial stable feedback)",
          "closed-form side (BP/FA/PBP/NDI, curves, errors)",
          "  of which: full-data error evaluation", "  of which: curves")


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


def _stacked_child(cfgs, queue):
    queue.put(stacked(cfgs))


def in_processes(cfgs, count):
    """Wall time of ``count`` forked processes, each stacking its share of ``cfgs``."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    shares = [cfgs[k::count] for k in range(count)]
    start = time.perf_counter()
    workers = [context.Process(target=_stacked_child, args=(share, queue)) for share in shares]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


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


def breakdown(quick, seed=0):
    """Where one single run's time goes, everything in this process."""
    from dinv.experiments import models_spec
    from dinv.models import training
    timers = Timers()
    places = ((training, "settle_chains"), (regression, "_restabilise"),
              (models_spec, "stable_random_feedback"), (regression.ClosedFormSide, "step"),
              (regression.ClosedFormSide, "_errors"), (regression.CurveRecorder, "record"))
    for (module, attribute), label in zip(places, LABELS):
        timers.wrap(module, attribute, label)
    (config,) = configs([seed], quick, parallel=False)
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
    parser.add_argument("--sequential", type=int, default=None,
                        help="single runs to time (default: all seeds; fewer are scaled up)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--processes", type=int, default=0,
                        help="also time this many processes of stacked runs (e.g. 2)")
    parser.add_argument("--release-seconds", type=float, default=18.7,
                        help="wall time of one run of the authors' release on this machine")
    parser.add_argument("--no-breakdown", action="store_true")
    args = parser.parse_args(argv)
    print(f"load before: {os.getloadavg()}")
    seeds = list(range(args.seeds))
    cfgs = configs(seeds, args.quick)
    get_experiment(NAME).run(configs([0], True, iterations=3)[0], progress=False)  # compile
    count = args.seeds if args.sequential is None else min(args.sequential, args.seeds)
    single = sequential(cfgs[:count])
    sequential_total = sum(single) * args.seeds / count
    note = "" if count == args.seeds else f" (timed {count}, scaled to {args.seeds})"
    together = stacked(cfgs)
    release = args.release_seconds * args.seeds
    print(f"protocol: {NAME}{' --quick' if args.quick else ''}, seeds 0..{args.seeds - 1}")
    print(f"(a) sequential single runs : {sequential_total:7.1f} s{note}; one run "
          f"{sum(single) / count:.1f} s (runs: {', '.join(f'{t:.1f}' for t in single)})")
    print(f"(b) run_stacked, 1 process : {together:7.1f} s  -> (a)/(b) = "
          f"{sequential_total / together:.2f}x, {together / args.seeds:.1f} s per run")
    if args.processes > 1:
        split = in_processes(cfgs, args.processes)
        print(f"(c) {args.processes} processes stacked    : {split:7.1f} s  -> (a)/(c) = "
              f"{sequential_total / split:.2f}x")
    if not args.quick:
        best = together if args.processes < 2 else min(together, split)
        print(f"authors' release: {args.release_seconds:.1f} s per run, {release:.0f} s for "
              f"{args.seeds}; target 1/5: {release / 5:.0f} s; best sweep here {best:.0f} s "
              f"= {best / release:.2f} of the release ({release / best:.2f}x faster); single "
              f"run {sum(single) / count / args.release_seconds:.2f}x the release's time")
    if not args.no_breakdown:
        breakdown(args.quick)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
