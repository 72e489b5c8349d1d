"""A compiled reference trainer of the two regressions, to time the package against.

The same protocol as ``dinv run linear-regression`` (the paper's nine models)
and ``dinv run nonlinear-regression`` (twelve models), written directly in
numpy with the circuits integrated in numba loops, as the authors' release
does it, and run in one process:

* the data, the initial weights and the feedback matrices are the package's
  (`dinv.experiments.linear_regression.prepare` and the models' learners), so
  both trainers start from the same numbers;
* online, one update per sample after the first, in the same order; per
  update and model the forward pass, the output error delta_L = y - t, the
  hidden errors of the model's rule (BP W^T, FA B, PBP W^+, NDI Eq. 10, each
  times g'(a); DI: the sequential chain of layer pairs, each pair settled from
  rest by 1000 semi-implicit Euler steps of dt = 0.5 (the controller first,
  the system from the new control signal), the settled system times g'(a),
  relayed as the next pair's target (Eq. 17); SLDI: the single loop of Eq. 14,
  1000 steps, its settled hidden states), the hidden errors clipped to
  ``clip_hidden``, the Eq. (2) updates of weights and biases;
* after every update the summed squared error over the whole data set of
  every model (float64; the nonlinear regression in float32 like the
  package's ``error_dtype``), and for the inversion models (NDI, DI, SLDI)
  the curves of the figures: the Jacobian's spectral abscissa per layer pair
  (or loop), the angle of each B to -W^T, of each hidden error to NDI's and
  (linear) to PBP's;
* the DI and SLDI feedback re-stabilised whenever a circuit's abscissa turns
  positive, with the package's repair (`dinv.models.stabilise.repair_feedback`)
  and its options.

Written for this benchmark from the equations (the paper's and
``shared/PROTOCOLS.md``), not from the release. BLAS runs on one thread.

Run: ``python benchmarks/reference_trainer.py linear-regression`` (or
``nonlinear-regression``; ``--samples N`` for a shorter run); it prints its
time and each model's final error ratio (final / initial data-set error), which
match the package's (``benchmarks/regression_speed.py`` compares them).
Needs numba (``pip install -e ".[benchmarks]"``).
"""

import argparse
import json
import time
from pathlib import Path

import numba
import numpy as np
from threadpoolctl import threadpool_limits

STEPS = 1000
DT = 0.5


@numba.njit(cache=True)
def _feed(M, source, out):
    """out = M source, summed in the order of the source's entries."""
    for i in range(M.shape[0]):
        acc = 0.0
        for j in range(M.shape[1]):
            acc += M[i, j] * source[j]
        out[i] = acc


@numba.njit(cache=True)
def settle_pair(W, B, target, alpha, dt, steps):
    """The settled system of one layer pair (Eqs. 5 and 8, tau_c = tau_s), from rest:
    u += dt (-alpha u + W x - target), then x += dt (-x + B u)."""
    d_out, d_in = W.shape
    x, u = np.zeros(d_in), np.zeros(d_out)
    drive_u, drive_x = np.empty(d_out), np.empty(d_in)
    for _ in range(steps):
        _feed(W, x, drive_u)
        for i in range(d_out):
            u[i] += dt * (-alpha * u[i] + drive_u[i] - target[i])
        _feed(B, u, drive_x)
        for i in range(d_in):
            x[i] += dt * (-x[i] + drive_x[i])
    return x


@numba.njit(cache=True)
def settle_loop(W2, W3, B, target, alpha, dt, steps):
    """The settled hidden states of the single loop (Fig. 2C, Eq. 14) of a 3-layer tanh
    network, from rest: u += dt (-alpha u + W3 tanh(h2) - target); then, from the old
    hidden states and the new u, h1 += dt (-h1 + B u), h2 += dt (-h2 + W2 tanh(h1))."""
    d1, d2, d3 = W2.shape[1], W2.shape[0], W3.shape[0]
    h1, h2, u = np.zeros(d1), np.zeros(d2), np.zeros(d3)
    drive_u, drive_1, drive_2 = np.empty(d3), np.empty(d1), np.empty(d2)
    for _ in range(steps):
        _feed(W3, np.tanh(h2), drive_u)
        for i in range(d3):
            u[i] += dt * (-alpha * u[i] + drive_u[i] - target[i])
        _feed(B, u, drive_1)
        _feed(W2, np.tanh(h1), drive_2)
        for i in range(d1):
            h1[i] += dt * (-h1[i] + drive_1[i])
        for i in range(d2):
            h2[i] += dt * (-h2[i] + drive_2[i])
    return h1, h2


def _angle(a, b):
    """Angle between two arrays (flattened), in degrees."""
    a, b = np.ravel(a), np.ravel(b)
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    if denominator == 0:
        return np.nan
    return float(np.degrees(np.arccos(np.clip(a @ b / denominator, -1.0, 1.0))))


def _ndi(W, B, delta, alpha):
    """Eq. (10): B (W B - alpha I)^-1 delta (contracting or square layers)."""
    return B @ np.linalg.solve(W @ B - alpha * np.eye(W.shape[0]), delta)


def _clip(delta, limit):
    norm = np.linalg.norm(delta)
    return delta * (limit / norm) if norm > limit else delta


class Model:
    """One model's state: weights, biases, feedback, rule (copies of the package's)."""

    def __init__(self, learner):
        self.name = learner.name
        self.rule = learner.rule.name
        net = learner.net
        self.W = [w.copy() for w in net.weights]
        self.b = None if net.biases is None else [b.copy() for b in net.biases]
        self.tanh = [g.name == "tanh" for g in net.nonlinearities]
        self.B = [np.array(f, dtype=float) for f in learner.feedback]
        self.alpha = learner.layer_alpha(0) if learner.rule.leak_count(net.depth) else 0.0
        self.learner = learner  # for the repair of its feedback (the package's)

    def forward(self, x):
        """Pre-activations a_l and activities h_l (h_0 = x)."""
        a, h = [], [x]
        for l, W in enumerate(self.W):
            z = W @ h[-1] + (0.0 if self.b is None else self.b[l])
            a.append(z)
            h.append(np.tanh(z) if self.tanh[l] else z)
        return a, h

    def slope(self, a, l):
        return 1.0 - np.tanh(a[l]) ** 2 if self.tanh[l] else 1.0

    def hidden(self, a, delta):
        """delta_1 .. delta_{L-1} of the model's rule from the output error ``delta``."""
        L = len(self.W)
        if self.rule == "sldi":
            h1, h2 = settle_loop(self.W[1], self.W[2], self.B[0], delta, self.alpha, DT, STEPS)
            return [h1, h2]
        deltas = [None] * (L - 1)
        for l in range(L - 1, 0, -1):  # weight layer l sends delta_{l+1} down to delta_l
            W, B = self.W[l], self.B[l - 1] if self.B else None
            if self.rule == "bp":
                out = W.T @ delta
            elif self.rule == "fa":
                out = B @ delta
            elif self.rule == "pbp":
                out = np.linalg.lstsq(W, delta, rcond=None)[0]
            elif self.rule == "ndi":
                out = _ndi(W, B, delta, self.alpha)
            else:  # di: the sequential chain, the settled system relayed with its gain
                out = settle_pair(W, B, delta, self.alpha, DT, STEPS)
            delta = out * self.slope(a, l - 1)
            deltas[l - 1] = delta
        return deltas

    def update(self, h, deltas, lr):
        for l, delta in enumerate(deltas):
            self.W[l] -= lr * np.outer(delta, h[l])
            if self.b is not None:
                self.b[l] -= lr * delta

    def angles(self, deltas, delta_out, a):
        """Angles of each B to -W^T, of the hidden errors to NDI's and (layer pairs) to
        PBP's, per pair from the output down (the loop: its B to -(W_3 W_2)^T)."""
        if self.rule == "sldi":
            return [_angle(self.B[0], -(self.W[2] @ self.W[1]).T)], [], []
        angle_b, angle_ndi, angle_pbp = [], [], []
        delta = delta_out
        for l in range(len(self.W) - 1, 0, -1):
            W, B = self.W[l], self.B[l - 1]
            angle_b.append(_angle(B, -W.T))
            slope = self.slope(a, l - 1)
            angle_ndi.append(_angle(deltas[l - 1], _ndi(W, B, delta, self.alpha) * slope))
            angle_pbp.append(_angle(deltas[l - 1],
                                    np.linalg.lstsq(W, delta, rcond=None)[0] * slope))
            delta = deltas[l - 1]
        return angle_b, angle_ndi, angle_pbp


def abscissae(models):
    """Spectral abscissa of every layer pair (one batched call per pair) and loop of the
    inversion models ``models``: per model, a list."""
    from dinv.models.stabilise import pair_abscissa
    from dinv.theory import loop_abscissa

    found = {m.name: [] for m in models}
    pairs = [m for m in models if m.rule != "sldi"]
    for l in range(len(pairs[0].W) - 1, 0, -1) if pairs else ():
        values = pair_abscissa(np.stack([m.W[l] for m in pairs]),
                               np.stack([m.B[l - 1] for m in pairs]),
                               np.array([m.alpha for m in pairs]))
        for m, value in zip(pairs, values):
            found[m.name].append(float(value))
    loops = [m for m in models if m.rule == "sldi"]
    if loops:
        values = np.atleast_1d(loop_abscissa([np.stack([m.W[l] for m in loops])
                                              for l in range(1, len(loops[0].W))],
                                             np.stack([m.B[0] for m in loops]),
                                             np.array([m.alpha for m in loops])))
        for m, value in zip(loops, values):
            found[m.name].append(float(value))
    return found


def data_set_errors(models, X, Y, dtype):
    """Summed squared error of every model over the data set, in ``dtype`` (sums in
    float64): linear networks without biases as one product X M^T per model (M = W_L ..
    W_1), all models in one matrix product; others layer by layer, the first layer of
    all models in one product."""
    if all(m.b is None and not any(m.tanh) for m in models):
        products = []
        for m in models:
            M = m.W[0]
            for W in m.W[1:]:
                M = W @ M
            products.append(M.T)
        out = X @ np.concatenate(products, axis=1).astype(dtype, copy=False)
        residual = out.reshape(len(X), len(models), -1)
        residual -= Y[:, None, :]
        return np.einsum("nkd,nkd->k", residual, residual, dtype=np.float64)
    first = np.concatenate([m.W[0].T for m in models], axis=1).astype(dtype, copy=False)
    pre = X @ first
    errors = np.empty(len(models))
    width = models[0].W[0].shape[0]
    for k, model in enumerate(models):
        h = pre[:, k * width:(k + 1) * width]
        for l in range(len(model.W)):
            if l:
                h = h @ model.W[l].T.astype(dtype, copy=False)
            if model.b is not None:
                h = h + model.b[l].astype(dtype, copy=False)
            if model.tanh[l]:
                h = np.tanh(h)
        errors[k] = float(np.sum((h - Y) ** 2, dtype=np.float64))
    return errors


def setup(name, samples=None, seed=0):
    """The package's data, sample order, models and protocol settings of a regression."""
    from dinv.experiments.registry import get_experiment, make_config
    from dinv.experiments.regression import RegressionCell

    experiment = get_experiment(name)
    overrides = {"seed": seed, **({"samples": samples} if samples else {})}
    config = make_config(experiment, False, overrides)
    prepared = experiment.protocol.prepare(config)
    specs = [spec for spec in prepared[1] if spec.population is None]
    cell = RegressionCell(config, specs, *prepared[2:])
    models = [Model(learner) for learner in cell.learners]
    return config, cell, models


def train(name, samples=None, seed=0):
    """Train every model of the regression ``name``; returns (seconds, results)."""
    start = time.perf_counter()
    config, cell, models = setup(name, samples, seed)
    dtype = np.float32 if config["error_dtype"] == "float32" else np.float64
    X, Y, order = cell.X.astype(dtype), cell.Y.astype(dtype), cell.order
    errors = np.empty((len(models), order.size + 1))
    errors[:, 0] = data_set_errors(models, X, Y, dtype)
    inverting = [m for m in models if m.rule in ("ndi", "di", "sldi")]
    circuits = [m for m in models if m.rule in ("di", "sldi")]
    curves = {m.name: [] for m in inverting}
    events = 0
    for it, sample in enumerate(order):
        x, t = cell.X[sample], cell.Y[sample]
        steps = []
        for model in models:  # every model's errors, from the weights before the update
            a, h = model.forward(x)
            delta_out = h[-1] - t
            deltas = [_clip(d, config["clip_hidden"]) for d in model.hidden(a, delta_out)]
            if model.name in curves:
                curves[model.name].append(model.angles(deltas, delta_out, a))
            steps.append((h, deltas + [delta_out]))
        if inverting:
            for name, values in abscissae(inverting).items():
                curves[name][-1] += (values,)
        for model, (h, deltas) in zip(models, steps):
            model.update(h, deltas, config["lr"])
        if circuits and config["restabilise"]:
            events += _restabilise(circuits, it, cell.repair)
        errors[:, it + 1] = data_set_errors(models, X, Y, dtype)
    seconds = time.perf_counter() - start
    ratios = {m.name: float(errors[k, -1] / errors[k, 0]) for k, m in enumerate(models)}
    return seconds, {"error_ratio": ratios, "restabilised": events, "updates": int(order.size)}


def _restabilise(models, it, options):
    """Repair the feedback of the models whose circuit turned unstable: one batched
    check (`dinv.models.stabilise.unstable_feedback`) and the package's repair, on the
    models' learners, whose weights are set to the models' first."""
    from dinv.models.stabilise import repair_feedback, unstable_feedback

    for model in models:
        for l, W in enumerate(model.W):
            model.learner.net.weights[l][...] = W
    found = unstable_feedback([m.learner for m in models], options.get("controllers"))
    for k, layer, before in found:
        learner = models[k].learner
        repair_feedback(learner, layer, before, it, **options)
        models[k].B = [np.array(f, dtype=float) for f in learner.feedback]
    return len(found)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=("linear-regression", "nonlinear-regression"))
    parser.add_argument("--samples", type=int, help="a shorter data set (default: the protocol's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    with threadpool_limits(limits=1):
        seconds, results = train(args.name, args.samples, args.seed)
    if args.output is not None:
        args.output.write_text(json.dumps({"seconds": seconds, **results}, indent=1))
    print(f"reference trainer, {args.name}: {seconds:.2f} s, {results['updates']} updates, "
          f"{results['restabilised']} re-stabilisations")
    for model, ratio in results["error_ratio"].items():
        print(f"  {model:22s} error ratio {ratio:.4g}")


if __name__ == "__main__":
    main()
