"""Epoch times of the Fashion-MNIST classification and autoencoder, and the convergence criterion.

Runs the experiments in this process (``Experiment.run``, one BLAS thread
recommended: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``) and prints their
training times (``epoch_seconds`` of the results, evaluations excluded):

(a) classification 784-1000-10, all six models, batches of 100:
    ``--samples-batch`` samples (default 6000) after the first batch, scaled to
    an epoch of 60000; split into simulated DI (its circuits and update), the
    other five models and the stability checks;
(b) the same online (batch 1, the paper's protocol): ``--samples-online``
    samples (default 600) after the first, scaled; ratio to (a);
(c) autoencoder 784-500-250-30-250-500-784, batches of 100: ``--ae-batches``
    batches (default 4) after the first, of simulated DI (uniform init) alone,
    in seconds per batch and scaled to an epoch; the eight closed-form models
    together, scaled to an epoch;
(d) the convergence criterion (``stop_tol``): DI a=0.01 alone, batches of 100,
    ``--criterion-samples`` samples (default 60000, one epoch) with all 1000
    Euler steps per settle (the baseline), with ``stop_tol=1e-4`` and with
    ``stop_tol=1e-6`` and at most 5000 steps: mean steps per settle, DI time
    and its ratio to the baseline, the test error at the end and the largest
    test-error difference to the baseline over the evaluations (every 1000
    samples);
(e) the convergence criterion in the autoencoder, whose R-Init circuits have
    slow modes: NDI and DI (uniform init) for ``--ae-batches`` batches with all
    1000 steps and with ``stop_tol=1e-3`` and at most 5000 steps: mean steps per
    settle and DI's training error beside NDI's at the end.

A short warm-up run first compiles and loads what the runs share; (a)-(c)
time the samples after a run's first batch (the difference of two runs), so
what a run pays once is left out. Note
``uptime``: on a shared machine the times scale with the load.

Run: ``python benchmarks/epoch_speed.py [--dataset fashion-mnist] [--samples-batch 6000]
[--samples-online 600] [--ae-batches 4] [--criterion-samples 60000] [--skip a,b,c,d,e]``
"""

import argparse
import os
import time

from dinv.errors import InputError
from dinv.experiments.registry import get_experiment, make_config
from dinv.experiments.settle_stats import describe

EPOCH = 60000
CLOSED_FORM_AE = ("BP uniform", "FA uniform", "PBP uniform", "NDI uniform", "BP orthogonal",
                  "FA orthogonal", "PBP orthogonal", "NDI orthogonal")
CRITERIA = (("1000 steps (baseline)", {}),
            ("stop_tol=1e-4", {"stop_tol": 1e-4}),
            ("stop_tol=1e-6, at most 5000 steps", {"stop_tol": 1e-6, "steps": 5000}))


def train(name, dataset, **overrides):
    """One run of ``name`` in this process (one epoch of the given samples); its results."""
    try:
        experiment = get_experiment(name)
        config = make_config(experiment,
                             overrides={"dataset": dataset, "epochs": 1, **overrides})
        results = experiment.run(config, progress=False)
    except InputError as exc:
        raise SystemExit(f"epoch_speed: {exc}") from None
    if results.get("interrupted"):
        raise SystemExit("interrupted")
    return results


def seconds(results):
    """Training seconds of the run's one epoch, by part (circuit, closed_form, stability)."""
    [epoch] = results["epoch_seconds"]
    return epoch


def per_sample(name, dataset, first, samples, **overrides):
    """Training seconds per sample, by part, of samples ``first`` .. ``first + samples``.

    The difference of a run of ``first`` samples and one of ``first + samples``:
    what a run pays once (building its circuits, the first Brian2 run of their
    code objects) is in both and cancels.
    """
    short, long = (seconds(train(name, dataset, train_samples=n, eval_every=n, **overrides))
                   for n in (first, first + samples))
    return {key: (long[key] - short[key]) / samples for key in long}


def classification(dataset, samples, batch_size):
    """(a)/(b): seconds per epoch of 60000 samples, by part, from ``samples`` samples."""
    part = per_sample("mnist", dataset, batch_size, samples, batch_size=batch_size)
    return {key: value * EPOCH for key, value in part.items()}


def autoencoder(dataset, batches):
    """(c): DI seconds per batch of 100, and the eight closed-form models' seconds per epoch."""
    di = per_sample("autoencoder", dataset, 100, 100 * batches, models=["DI uniform"])
    closed = per_sample("autoencoder", dataset, 100, 100 * batches,
                        models=list(CLOSED_FORM_AE))
    return 100 * sum(di.values()), EPOCH * sum(closed.values())


def criterion(dataset, samples):
    """(d): per criterion, mean steps, DI seconds, last test error, test errors."""
    rows = []
    for label, overrides in CRITERIA:
        results = train("mnist", dataset, batch_size=100, train_samples=samples,
                        models=["DI a=0.01"], **overrides)
        errors = [h["test_error"]["DI a=0.01"] for h in results["history"]]
        rows.append((label, results["settle_steps"], sum(seconds(results).values()), errors,
                     describe(results["settling"]["DI a=0.01"])))
    return rows


def criterion_autoencoder(dataset, batches):
    """(e): per criterion, mean steps per settle and the DI-NDI training-error gap at the end."""
    rows = []
    for label, overrides in (("1000 steps (baseline)", {}),
                             ("stop_tol=1e-3, at most 5000 steps",
                              {"stop_tol": 1e-3, "steps": 5000})):
        samples = 100 * batches
        results = train("autoencoder", dataset, models=["NDI uniform", "DI uniform"],
                        train_samples=samples, eval_every=samples, **overrides)
        last = results["history"][-1]["train_error"]
        rows.append((label, results["settle_steps"], last["DI uniform"], last["NDI uniform"],
                     describe(results["settling"]["DI uniform"])))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--samples-batch", type=int, default=6000)
    parser.add_argument("--samples-online", type=int, default=600)
    parser.add_argument("--ae-batches", type=int, default=4)
    parser.add_argument("--criterion-samples", type=int, default=EPOCH)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: a,b,c,d,e")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"load: {os.getloadavg()[0]:.2f}; BLAS threads: "
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    start = time.perf_counter()
    train("mnist", args.dataset, batch_size=100, train_samples=200, eval_every=200)
    print(f"warm-up: {time.perf_counter() - start:.1f} s")

    if "a" not in skip or "b" not in skip:
        batch = classification(args.dataset, args.samples_batch, 100)
        total = sum(batch.values())
        print(f"(a) classification, batches of 100, six models ({args.samples_batch} samples "
              f"after the first batch, scaled to {EPOCH}): {total:.0f} s per epoch; "
              f"DI {batch['circuit']:.0f} s, "
              f"other five {batch['closed_form']:.0f} s, stability checks "
              f"{batch['stability']:.1f} s")
    if "b" not in skip:
        online = classification(args.dataset, args.samples_online, 1)
        total_online = sum(online.values())
        print(f"(b) classification, online ({args.samples_online} samples after the "
              f"first, scaled): "
              f"{total_online / 60:.1f} min per epoch ({total_online / total:.1f}x (a)); "
              f"DI {1e3 * online['circuit'] / EPOCH:.1f} ms per sample, other five "
              f"{1e3 * online['closed_form'] / EPOCH:.1f} ms, stability checks "
              f"{1e3 * online['stability'] / EPOCH:.2f} ms")
    if "c" not in skip:
        per_batch, closed = autoencoder(args.dataset, args.ae_batches)
        print(f"(c) autoencoder, batches of 100 ({args.ae_batches} batches after the "
              f"first): simulated DI "
              f"{per_batch:.1f} s per batch, i.e. {per_batch * EPOCH / 100 / 60:.0f} min per "
              f"epoch; the eight closed-form models together {closed / 60:.1f} min per epoch")
    if "e" not in skip:
        print(f"(e) convergence criterion in the autoencoder, NDI and DI uniform, "
              f"{args.ae_batches} batches of 100:")
        for label, steps, di, ndi, settled in criterion_autoencoder(args.dataset,
                                                                    args.ae_batches):
            print(f"    {label:<34} {steps:6.0f} steps per settle; training error DI "
                  f"{di:.3f}, NDI {ndi:.3f}: DI - NDI = {di - ndi:+.3f}; DI {settled}")
    if "d" not in skip:
        rows = criterion(args.dataset, args.criterion_samples)
        _, _, base_seconds, base_errors, _ = rows[0]
        print(f"(d) convergence criterion, DI a=0.01 alone, batches of 100, "
              f"{args.criterion_samples} samples:")
        for label, steps, took, errors, settled in rows:
            gap = max(abs(a - b) for a, b in zip(errors, base_errors))
            print(f"    {label:<34} {steps:6.0f} steps per settle, DI {took:5.0f} s "
                  f"({base_seconds / took:.1f}x faster than the baseline), test error "
                  f"{errors[-1]:.2f} %, largest difference to the baseline over "
                  f"{len(errors)} evaluations {gap:.2f} points; {settled}")


if __name__ == "__main__":
    main()
