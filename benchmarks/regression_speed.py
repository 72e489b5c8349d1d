"""The regressions' wall time against the compiled reference trainer and the authors' release.

For each regression, in paired rounds (A B C, A B C, ... one after the other on
the same machine), each a fresh process timed from its start to its end:

* ``dinv``: ``dinv run NAME --out TMP --no-progress`` (the README's command;
  linear-regression: the paper's nine models), writing results.json and the
  figure;
* ``reference``: ``python benchmarks/reference_trainer.py NAME``, the same
  protocol in numpy with numba Euler loops, in one process;
* ``release``: the authors' unchanged script (``linear_regression.py`` or
  ``nonlinear_regression.py`` from ``--release DIR``, copied to a temporary
  folder and run there with ``MPLBACKEND=Agg``), when ``--release`` is given.

Printed per regression: the median of each, and the ratios dinv / reference and
dinv / release (the goals against the release: linear at most 1, 0.5 as a
stretch; nonlinear at most 0.2), with the load average before and after. The
release runs ten models (it has a second FA) where dinv runs nine, and thirteen
where dinv runs twelve; its nonlinear script applies g' twice (a defect the
package does not copy), which costs it nothing measurable.

Run::

    python benchmarks/regression_speed.py --release /tmp/release            # ~25 min idle
    python benchmarks/regression_speed.py --quick                            # ~2 min

``--quick``: one round, the linear regression and a 1000-sample nonlinear
regression, without the release (whose protocol cannot be shortened unchanged).
``--release-threads 1`` runs the release with one BLAS thread: on a machine whose
cores are busy its default threads wait on each other (its data-set error after
every update is a BLAS product), and it ran ten times slower (120 s against 11 s
at load 3); on an idle machine leave it out.
``--regressions linear-regression`` picks one. Needs numba (``pip install -e
".[benchmarks]"``). Results go to ``benchmarks/results/regression_speed.json``.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RELEASE_SCRIPTS = {"linear-regression": "linear_regression.py",
                   "nonlinear-regression": "nonlinear_regression.py"}
GOALS = {"linear-regression": 1.0, "nonlinear-regression": 0.2}
BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _dinv():
    found = shutil.which("dinv")
    return found or str(Path(sys.executable).with_name("dinv"))


def timed(command, cwd=None, env=None):
    """Wall seconds of ``command`` run to its end (its output kept for errors)."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{result.stderr[-2000:]}")
    return seconds


def commands(name, samples, release, work, release_threads=None):
    """The competitors of one regression: label -> (command, cwd, env)."""
    extra = [] if samples is None else ["--set", f"samples={samples}"]
    found = {"dinv": ([_dinv(), "run", name, "--out", str(work / "dinv"), "--overwrite",
                       "--no-progress", *extra], None, None),
             "reference": ([sys.executable, str(HERE / "reference_trainer.py"), name,
                            "--output", str(work / "reference.json"),
                            *([] if samples is None else ["--samples", str(samples)])],
                           None, None)}
    if release is not None and samples is None:
        folder = work / "release"
        folder.mkdir(exist_ok=True)
        for script in Path(release).glob("*.py"):
            shutil.copy(script, folder)
        env = {**os.environ, "MPLBACKEND": "Agg"}
        if release_threads:
            env.update({key: str(release_threads) for key in BLAS_THREADS})
        found["release"] = ([sys.executable, RELEASE_SCRIPTS[name]], folder, env)
    return found


def measure(name, rounds, samples, release, release_threads=None):
    """Paired rounds of one regression: label -> list of seconds."""
    work = Path(tempfile.mkdtemp(prefix="dinv_regression_speed_"))
    competitors = commands(name, samples, release, work, release_threads)
    times = {label: [] for label in competitors}
    for round_ in range(rounds):
        for label, (command, cwd, env) in competitors.items():
            times[label].append(timed(command, cwd, env))
            print(f"  {name} round {round_ + 1}: {label} {times[label][-1]:.1f} s "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
    agreement = same_numbers(work / "dinv" / "results.json", work / "reference.json")
    shutil.rmtree(work, ignore_errors=True)
    return times, agreement


def same_numbers(results, reference):
    """The largest relative difference of the models' final error ratios between the dinv
    run and the reference trainer (the same protocol: a check that both did the same)."""
    ours = json.loads(results.read_text())["final"]
    theirs = json.loads(reference.read_text())["error_ratio"]
    return max(abs(ours[m]["error_ratio"] - value) / abs(value) for m, value in theirs.items())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", type=Path,
                        help="folder of the authors' scripts (linear_regression.py, "
                             "nonlinear_regression.py, sim_tools.py)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="paired rounds (default 3 for linear, 1 for nonlinear)")
    parser.add_argument("--regressions", nargs="+", choices=sorted(RELEASE_SCRIPTS),
                        default=sorted(RELEASE_SCRIPTS))
    parser.add_argument("--release-threads", type=int, default=None,
                        help="run the release with this many BLAS threads (default: the "
                             "machine's; on a busy machine its two threads slow it down "
                             "many times over)")
    parser.add_argument("--quick", action="store_true",
                        help="one round; nonlinear on 1000 samples; no release")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "regression_speed.json")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, load average {' '.join(f'{v:.2f}' for v in load)}"
          f", {os.cpu_count()} cores", flush=True)
    records = {}
    for name in args.regressions:
        nonlinear = name == "nonlinear-regression"
        rounds = args.rounds or (1 if args.quick or nonlinear else 3)
        samples = 1000 if (args.quick and nonlinear) else None
        release = None if args.quick else args.release
        times, agreement = measure(name, rounds, samples, release, args.release_threads)
        records[name] = {"times": times, "samples": samples, "rounds": rounds,
                         "largest_relative_difference_of_final_errors": agreement}
        print(f"  {name}: final error ratios of dinv and the reference trainer differ by at "
              f"most {agreement:.1e} (relative)", flush=True)
    print(f"\n{'regression':22s} {'dinv s':>8s} {'reference s':>12s} {'release s':>10s} "
          f"{'dinv/reference':>15s} {'dinv/release':>13s}  (medians)")
    for name, record in records.items():
        median = {label: statistics.median(values) for label, values in record["times"].items()}
        record["median"] = median
        label = name + ("" if record["samples"] is None else f" ({record['samples']} samples)")
        release = median.get("release")
        ratio = "-" if release is None else f"{median['dinv'] / release:.2f}"
        goal = "" if release is None else f"  (goal <= {GOALS[name]:g})"
        print(f"{label:22s} {median['dinv']:8.1f} {median['reference']:12.1f} "
              f"{'-' if release is None else f'{release:.1f}':>10s} "
              f"{median['dinv'] / median['reference']:15.2f} {ratio:>13s}{goal}")
    after = os.getloadavg()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in after)}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"),
                                       "load_average": [list(load), list(after)],
                                       "nproc": os.cpu_count(), "regressions": records},
                                      indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
