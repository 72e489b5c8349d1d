"""Why batches of the classification use square-root learning-rate scaling: print the numbers.

Usage::

    python docs/scripts/batch_learning_rate.py WORK_DIR [--samples N] [--dataset NAME]

Runs the classification (``dinv run mnist --batch-size 100``, the models NDI
a=0, NDI a=0.01 and simulated DI a=0.01) on the first ``N`` training samples
(default 12000), evaluated every 1000 samples, four times: with the summed
updates at the online rate (``lr_scaling=none``) and at the rate divided by
sqrt(100) (``sqrt``, the default), each with one and with two BLAS threads,
i.e. with two different roundings of the same matrix products. Each run is a
subprocess writing into ``WORK_DIR``. It then prints, per scaling and model:
the largest test-error difference between the two thread counts over the
evaluations (a smooth training gives the same numbers with either), the
largest rise of the test error from one evaluation to the next (with one thread;
training that is stable only lowers it, up to noise), the largest
difference between DI and NDI of the same alpha, DI's settling, and the samples
at which the feedback had to be re-stabilised.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

MODELS = ("NDI a=0", "NDI a=0.01", "DI a=0.01")
SCALINGS = ("none", "sqrt")
THREADS = (1, 2)


def run(work, scaling, threads, samples, dataset):
    """One classification run in a subprocess with ``threads`` BLAS threads; its record."""
    out = Path(work) / f"{scaling}-threads{threads}"
    if not (out / "results.json").is_file():
        env = {**os.environ, **{key: str(threads) for key in
                                ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
        command = [sys.executable, "-m", "dinv.experiments.cli", "run", "mnist",
                   "--dataset", dataset, "--batch-size", "100", "--epochs", "1",
                   "--models", ",".join(MODELS), "--no-progress", "--out", str(out),
                   "--set", f"train_samples={samples}", "--set", "eval_every=1000",
                   "--set", f'lr_scaling="{scaling}"']
        print("$", " ".join(command[1:]), f"  # {threads} BLAS thread(s)", flush=True)
        if subprocess.run(command, env=env, check=False).returncode:
            raise SystemExit(f"{out}: the run failed (its error is above)")
    record = json.loads((out / "results.json").read_text())
    if record["interrupted"]:
        raise SystemExit(f"{out}: the run was interrupted; delete the folder and run again")
    return record


def errors(record, model):
    """The model's test error (%) at every evaluation."""
    return [h["test_error"][model] for h in record["history"]]


def report(records):
    """Lines per scaling: thread-count difference, jumps, DI-NDI gap, re-stabilisations."""
    lines = []
    for scaling in SCALINGS:
        one, two = records[scaling, 1], records[scaling, 2]
        samples = one["history"][-1]["samples"]
        lines.append(f"lr_scaling={scaling} ({len(one['history'])} evaluations up to "
                     f"{samples} samples):")
        for model in MODELS:
            a, b = errors(one, model), errors(two, model)
            threads = max(abs(x - y) for x, y in zip(a, b))
            rise = max(0.0, *(later - earlier for earlier, later in itertools.pairwise(a)))
            lines.append(f"  {model:<11} 1 vs 2 BLAS threads: largest difference "
                         f"{threads:.2f} points; largest rise between evaluations "
                         f"{rise:.2f} points; last {a[-1]:.2f} / {b[-1]:.2f} %")
        gap = max(abs(x - y) for x, y in zip(errors(one, "DI a=0.01"),
                                             errors(one, "NDI a=0.01")))
        lines.append(f"  DI a=0.01 against NDI a=0.01 (1 thread): largest difference "
                     f"{gap:.2f} points")
        settling = one.get("settling", {}).get("DI a=0.01")
        if settling:
            lines.append(f"  DI a=0.01 settles (1 thread): {settling['unsettled']} of "
                         f"{settling['settles']} unsettled (worst residual "
                         f"{settling['worst_residual']:.2g}, tolerance {settling['tolerance']:g})")
        events = sorted((e["iteration"], e["model"]) for e in one["restabilised"])
        first = ", ".join(f"{m} after {n} samples" for n, m in events[:3]) or "none"
        lines.append(f"  feedback re-stabilisations (1 thread): {len(events)}; "
                     f"first: {first}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="folder for the four runs (reused if there)")
    parser.add_argument("--samples", type=int, default=12000,
                        help="training samples of each run")
    parser.add_argument("--dataset", default="fashion-mnist", help="mnist, fashion-mnist, digits")
    args = parser.parse_args(argv)
    records = {(s, t): run(args.work, s, t, args.samples, args.dataset)
               for s in SCALINGS for t in THREADS}
    print("\n".join(report(records)))


if __name__ == "__main__":
    main()
