"""Speed of settling one layer: Brian2 circuit vs a plain numpy Euler loop.

Both integrate the same equations (Eqs. 5 and 8, semi-implicit Euler: the
controller first, then the system with the new control signal) for the same
number of steps, in this process, on the same inputs. Prints seconds per 1000
steps and the ratio Brian2 / numpy (the target is at most 1.2 at batch 100).

Run: ``python benchmarks/settle_speed.py [--repeats 5] [--steps 1000]``
"""

import argparse
import time

import numpy as np

from circuits import LayerCircuit

SHAPES = ((10, 1000), (250, 500))  # (d_l, d_{l-1}): 1000 <- 10 and 500 <- 250
BATCHES = (1, 100)


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

            def brian():
                result["brian"] = circuit.settle(
                    W, B, delta, alpha, steps=args.steps, on_unsettled="ignore").delta[0]

            def plain():
                result["numpy"] = numpy_settle(W, B, delta, alpha, args.steps, dt)

            t_brian = best_time(brian, args.repeats) * 1000 / args.steps
            t_numpy = best_time(plain, args.repeats) * 1000 / args.steps
            diff = np.abs(result["brian"] - result["numpy"]).max()
            print(f"{d_in:>5d} <- {d_out:<4d} {batch:>6d} {t_brian:>14.4f} {t_numpy:>13.4f} "
                  f"{t_brian / t_numpy:>6.2f} {diff:>10.2g}")


if __name__ == "__main__":
    main()
