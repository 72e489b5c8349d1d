"""Speed of the DI backward pass: Brian2 circuits vs a plain numpy Euler loop.

Both integrate the same equations (Eqs. 5 and 8, semi-implicit Euler: the
controller first, then the system with the new control signal) for the same
number of steps, in this process, on the same inputs. Two tables:

* one layer pair, the shapes of the classifier (1000 <- 10, Fig. 4a) and of
  an autoencoder layer (500 <- 250), at batch 1 and 100: seconds per 1000
  steps and the ratio Brian2 / numpy;
* the whole backward pass of the autoencoder 784-500-250-30-250-500-784
  (Fig. 4b): five layer pairs settled one after the other (1000 steps each,
  leaks 0.01 and 0.1 for the last pair), at batch 100.

The target is a ratio of at most 1.2 at the experiments' batch sizes.

Run: ``python benchmarks/settle_speed.py [--repeats 5] [--steps 1000]``
"""

import argparse
import time

import numpy as np

from dinv.circuits import LayerCircuit
from dinv.circuits.chains import settle_chain

SHAPES = ((10, 1000), (250, 500))  # (d_l, d_{l-1}): 1000 <- 10 and 500 <- 250
BATCHES = (1, 100)
AUTOENCODER = (784, 500, 250, 30, 250, 500, 784)
AUTOENCODER_ALPHA = (0.01, 0.01, 0.01, 0.01, 0.1)


def numpy_settle(W, B, delta, alpha, steps, dt):
    """Reference: the circuit's equations as an in-place numpy Euler loop."""
    x = np.zeros((delta.shape[0], W.shape[1]))
    u = np.zeros_like(delta)
    readout = np.empty_like(u)
    feedback = np.empty_like(x)
    W_t, B_t = W.T.copy(), B.T.copy()
    for _ in range(steps):
        np.matmul(x, W_t, out=readout)
        readout -= delta
        readout -= alpha * u
        u += dt * readout
        np.matmul(u, B_t, out=feedback)
        feedback -= x
        x += dt * feedback
    return x


def numpy_chain(weights, feedback, delta, alphas, gains, steps, dt):
    """Reference: a sequential chain, one numpy Euler loop per layer pair."""
    deltas = [None] * len(gains)
    for l in range(len(weights) - 1, 0, -1):
        delta = numpy_settle(weights[l], feedback[l - 1], delta, alphas[l - 1], steps,
                             dt) * gains[l - 1]
        deltas[l - 1] = delta
    return deltas


def best_time(fn, repeats):
    """Fastest of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    """Time every shape and batch size and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    alpha, dt = 0.01, 0.5
    print(f"{'layer':>12s} {'batch':>6s} {'brian2 s/1000':>14s} {'numpy s/1000':>13s} "
          f"{'ratio':>6s} {'max |diff|':>10s}")
    for d_out, d_in in SHAPES:
        W = rng.standard_normal((d_out, d_in)) / np.sqrt(d_in) * 0.5
        B = -W.T
        for batch in BATCHES:
            delta = rng.standard_normal((batch, d_out))
            circuit = LayerCircuit(d_out, d_in, batch=batch, dt=dt)
            circuit.settle(W, B, delta, alpha, steps=10, on_unsettled="ignore")  # warm up
            result = {}

            def brian(circuit=circuit, W=W, B=B, delta=delta, result=result):
                result["brian"] = circuit.settle(
                    W, B, delta, alpha, steps=args.steps, on_unsettled="ignore").delta[0]

            def plain(W=W, B=B, delta=delta, result=result):
                result["numpy"] = numpy_settle(W, B, delta, alpha, args.steps, dt)

            t_brian = best_time(brian, args.repeats) * 1000 / args.steps
            t_numpy = best_time(plain, args.repeats) * 1000 / args.steps
            diff = np.abs(result["brian"] - result["numpy"]).max()
            print(f"{d_in:>5d} <- {d_out:<4d} {batch:>6d} {t_brian:>14.4f} {t_numpy:>13.4f} "
                  f"{t_brian / t_numpy:>6.2f} {diff:>10.2g}")
    chain_table(rng, args.repeats, args.steps, alpha, dt)


def chain_table(rng, repeats, steps, alpha, dt, batch=100):
    """Time the autoencoder's whole backward pass (five sequential layer pairs)."""
    widths = AUTOENCODER
    weights = [rng.uniform(-0.01, 0.01, (widths[l + 1], widths[l]))
               for l in range(len(widths) - 1)]
    feedback = [-W.T for W in weights[1:]]
    delta = rng.standard_normal((batch, widths[-1]))
    gains = [rng.uniform(0.5, 1.0, (batch, w)) for w in widths[1:-1]]
    alphas = np.array(AUTOENCODER_ALPHA)
    stacked = ([W[None] for W in weights], [B[None] for B in feedback], delta[None],
               alphas[None], [g[None] for g in gains])
    options = {"steps": steps, "dt": dt, "on_unsettled": "ignore"}
    settle_chain(*stacked, **{**options, "steps": 10})  # build and compile once
    result = {}

    def brian():
        result["brian"] = settle_chain(*stacked, **options).deltas

    def plain():
        result["numpy"] = numpy_chain(weights, feedback, delta, alphas, gains, steps, dt)

    t_brian = best_time(brian, repeats)
    t_numpy = best_time(plain, repeats)
    diff = max(np.abs(a[0] - b).max() for a, b in zip(result["brian"], result["numpy"]))
    print(f"\nautoencoder backward pass {'-'.join(map(str, widths))}, batch {batch}, "
          f"{len(gains)} layer pairs x {steps} steps")
    print(f"{'brian2 s':>10s} {'numpy s':>9s} {'ratio':>6s} {'max |diff|':>10s}")
    print(f"{t_brian:>10.3f} {t_numpy:>9.3f} {t_brian / t_numpy:>6.2f} {diff:>10.2g}")


if __name__ == "__main__":
    main()
