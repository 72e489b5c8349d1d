"""Is dynamic inversion second-order learning? Angles to Gauss-Newton over training.

The paper (Sec. 4.3 and 6.3) leaves open whether DI, which inverts the
forward weights, is a layer-wise Gauss-Newton method (Botev et al. 2017), and
whether inverting *targets*, or a direct-feedback controller feeding every
hidden layer (Meulemans et al. 2020, 2021), would be closer to one. This
study trains every rule on four cases and, at regular steps, measures each
rule's update of every layer against backpropagation, the Gauss-Newton target
(GNT), the damped Gauss-Newton update of all weights (GN) and of each layer
alone (LGN), and the share of its hidden errors that cannot move the output
(`dinv.analysis.second_order`).

Cases (``case_settings``; each a student-teacher regression, the teacher a
random network of the student's shape, inputs x ~ N(0, I)):

- ``linear-square``: a 4-4-4-4 linear network with orthogonal weights, at
  alpha 1e-8 and damping 1e-10, where NDI and DI must lie along the GNT
  (a known answer);
- ``toy-tp``: 4-4-4-2, tanh hidden layers and a linear output, the toy of
  Meulemans et al. (2020), alpha 0.001 and damping 0.1;
- ``toy-dfc``: 15-10-10-5, tanh hidden layers, linear output, 5,000
  training and 1,000 test samples, batches of 128, GN damping 0.1 and
  alpha 0.0015: the toy of Deep Feedback Control (Meulemans et al. 2021);
- ``nonlinear-regression``: the paper's 30-20-10-10 tanh network (Fig. 3g),
  online, teacher and student U(-0.01, 0.01), hidden errors clipped at 1,
  alpha 0.01 and damping 1e-8 (with these weights J_l J_l^T is of order 1e-6).

Rules (``models``): BP, FA, PBP, NDI, DI, SLDI, NDI-T and DI-T (inversion of
targets), NDFC and DFC (direct feedback control), all from the same initial
network, their feedback initialised by transposition (Tr-Init: B = -W^T;
DFC: Q_l = J_l^T at the origin), and GN, the damped Gauss-Newton optimiser
(theta -= gn_lr (G + lambda I)^-1 g), the reference curve. Every model
trains on the same batches; the backward rules take ``lr`` times the batch
mean of their Eq. (2) updates.

Results: ``angles``, one record per case, rule, layer and measured step, with
the training loss and the damping used; ``medians``, the median of each
measure over the measured steps; the final training and test losses, the
settling of the simulated circuits and the re-stabilisations.
"""

import warnings
import zlib
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from dinv.analysis.second_order import (
    MEASURES,
    GaussNewton,
    Linearisation,
    gauss_newton_update,
    second_order_measures,
    weight_updates,
)
from dinv.errors import InputError
from dinv.experiments import models_spec
from dinv.experiments.interrupts import StopRequests, stop_requested
from dinv.experiments.models_spec import ModelSpec, own_settings
from dinv.experiments.progress import Progress
from dinv.experiments.settings import (
    CIRCUIT_DEFAULTS,
    CIRCUIT_DESCRIPTIONS,
    RINIT_DESCRIPTION,
)
from dinv.experiments.settle_stats import SettleStats
from dinv.models.initialisation import (
    init_direct_feedback,
    init_feedback,
    init_loop_feedback,
    init_weights,
)
from dinv.models.network import FeedforwardNetwork
from dinv.models.stabilise import (
    StabilisationError,
    direct_settings,
    repair_feedback,
    unstable_feedback,
)
from dinv.models.training import UpdateConfig, train_step
from dinv.theory import direct_abscissa, jacobian_abscissa, loop_abscissa
from dinv.validation import check_count

MODELS = ("BP", "FA", "PBP", "NDI", "DI", "SLDI", "NDI-T", "DI-T", "NDFC", "DFC", "GN")
"""The models of the study, by name (``models``)."""

RULES = {"BP": "bp", "FA": "fa", "PBP": "pbp", "NDI": "ndi", "DI": "di", "SLDI": "sldi",
         "NDI-T": "ndi-targets", "DI-T": "di-targets", "NDFC": "ndfc", "DFC": "dfc",
         "GN": "gn"}
"""Each model's rule (``gn``: the Gauss-Newton optimiser, not a backward rule)."""

CASES = {
    "linear-square": {
        "sizes": [4, 4, 4, 4], "hidden": "linear", "init": "orthogonal", "teacher": "orthogonal",
        "init_scale": 1.0, "samples": 1000, "test_samples": 200, "batch": 32, "steps": 200,
        "measure_every": 10, "lr": 0.05, "gn_lr": 0.03, "alpha": 1e-8, "damping": 1e-10,
        "clip_hidden": None,
    },
    "toy-tp": {
        "sizes": [4, 4, 4, 2], "hidden": "tanh", "init": "scaled", "teacher": "scaled",
        "init_scale": 1.0, "samples": 1000, "test_samples": 200, "batch": 32, "steps": 200,
        "measure_every": 10, "lr": 0.05, "gn_lr": 0.1, "alpha": 0.001, "damping": 0.1,
        "clip_hidden": None,
    },
    "toy-dfc": {
        "sizes": [15, 10, 10, 5], "hidden": "tanh", "init": "scaled", "teacher": "scaled",
        "init_scale": 1.0, "samples": 5000, "test_samples": 1000, "batch": 128, "steps": 200,
        "measure_every": 10, "lr": 0.05, "gn_lr": 0.1, "alpha": 0.0015, "damping": 0.1,
        "clip_hidden": None,
    },
    "nonlinear-regression": {
        "sizes": [30, 20, 10, 10], "hidden": "tanh", "init": "uniform", "teacher": "uniform",
        "init_scale": 0.01, "samples": 2000, "test_samples": 500, "batch": 1, "steps": 2000,
        "measure_every": 100, "lr": 0.01, "gn_lr": 0.01, "alpha": 0.01, "damping": 1e-8,
        "clip_hidden": 1.0,
    },
}
"""Each case's protocol (``case_settings`` overrides any of them)."""

CASE_KEYS = tuple(CASES["toy-tp"])

DEFAULTS = {
    "seed": 0,
    "cases": list(CASES),
    "case_settings": {},
    "models": None,
    **CIRCUIT_DEFAULTS,
    **models_spec.DIRECT_SETTINGS,
    "restabilise": True,
    "rinit": {"target": -0.01, "lr": 0.5, "max_iters": 2000, "min_iters": 0,
              "solver": "eigen"},
}
QUICK = {"cases": ["linear-square", "toy-tp", "toy-dfc"],
         "case_settings": {name: {"steps": 21} for name in
                           ("linear-square", "toy-tp", "toy-dfc")}}

DESCRIPTIONS = {
    **CIRCUIT_DESCRIPTIONS,
    "models": "the models to run, by name (null: all): " + ", ".join(MODELS),
    "cases": "the cases to run: " + ", ".join(CASES),
    "case_settings": "overrides of the cases' protocols: case -> {setting: value} (settings: "
                     + ", ".join(CASE_KEYS) + ")",
    **models_spec.DIRECT_DESCRIPTIONS,
    "restabilise": "re-stabilise the inversion models' feedback whenever a circuit turns "
                   "unstable",
    "rinit": RINIT_DESCRIPTION,
}
"""One line per setting (``dinv run second-order --help``)."""

UNITS = {
    "to_bp_deg": "degrees",
    "to_gnt_deg": "degrees",
    "to_gn_deg": "degrees",
    "to_lgn_deg": "degrees",
    "null_share": "dimensionless",
    "loss": "dimensionless",
    "train_loss": "dimensionless",
    "test_loss": "dimensionless",
    "damping": "dimensionless",
    "step": "updates",
    "gn_residual": "dimensionless",
    "wall_seconds": "s",
}
"""Unit of every quantity of results.json (recorded in it as ``units``): losses are the
mean over samples of 1/2 |y - t|^2."""

INITS = ("orthogonal", "scaled", "uniform")
"""Weight inits of the cases: orthogonal; U(+-init_scale sqrt(3 / d_(l-1))), variance
init_scale^2 / d_(l-1); U(-init_scale, init_scale)."""


def case_protocol(config: dict, name: str) -> dict:
    """The settings of case ``name``: `CASES` with ``config['case_settings']`` over them,
    checked."""
    if name not in CASES:
        raise InputError(f"unknown case {name!r}; cases: {', '.join(CASES)}")
    own = (config.get("case_settings") or {}).get(name, {})
    unknown = sorted(set(own) - set(CASE_KEYS))
    if unknown:
        raise InputError(f"case_settings of {name!r}: no settings {unknown}; settings: "
                         f"{', '.join(CASE_KEYS)}")
    case = {**CASES[name], **own}
    for key in ("samples", "test_samples", "batch", "steps", "measure_every"):
        case[key] = check_count(f"case_settings {name!r}: {key}", case[key])
    sizes = case["sizes"]
    if not isinstance(sizes, list) or len(sizes) < 3:
        raise InputError(f"case_settings {name!r}: sizes must list d_0 .. d_L with at least "
                         f"one hidden layer, got {sizes!r}")
    case["sizes"] = [check_count(f"case_settings {name!r}: sizes", d) for d in sizes]
    for key in ("lr", "gn_lr", "init_scale"):
        if not (isinstance(case[key], (int, float)) and case[key] > 0):
            raise InputError(f"case_settings {name!r}: {key} must be a positive number, "
                             f"got {case[key]!r}")
    for key in ("alpha", "damping"):
        if not (isinstance(case[key], (int, float)) and case[key] >= 0):
            raise InputError(f"case_settings {name!r}: {key} must be a number >= 0, "
                             f"got {case[key]!r}")
    for key in ("init", "teacher"):
        if case[key] not in INITS:
            raise InputError(f"case_settings {name!r}: {key} must be one of {INITS}, "
                             f"got {case[key]!r}")
    if case["batch"] > case["samples"]:
        raise InputError(f"case_settings {name!r}: batch ({case['batch']}) exceeds the "
                         f"training samples ({case['samples']})")
    return case


def _network(sizes, hidden, init, scale, rng):
    """A network of the case's shape: tanh or linear hidden layers, a linear output; biases
    U(-scale, scale) with the uniform init (the paper's), zero with the others."""
    weights = []
    for d_in, d_out in pairwise(sizes):
        if init == "scaled":
            weights.append(rng.uniform(-1.0, 1.0, (d_out, d_in)) * scale * np.sqrt(3.0 / d_in))
        else:
            weights.append(init_weights((d_out, d_in), init, rng, scale))
    biases = [rng.uniform(-scale, scale, d) if init == "uniform" else np.zeros(d)
              for d in sizes[1:]]
    return FeedforwardNetwork(weights, biases, [hidden] * (len(sizes) - 2) + ["linear"])


def _specs(alpha):
    """The backward models of the study at the case's leak (GN is not a backward rule)."""
    return {
        "BP": ModelSpec("BP", "bp"),
        "FA": ModelSpec("FA", "fa", feedback="random"),
        "PBP": ModelSpec("PBP", "pbp"),
        "NDI": ModelSpec("NDI", "ndi", alpha, "transpose"),
        "DI": ModelSpec("DI", "di", alpha, "transpose"),
        "SLDI": ModelSpec("SLDI", "sldi", alpha, "transpose"),
        "NDI-T": ModelSpec("NDI-T", "ndi-targets", alpha, "transpose"),
        "DI-T": ModelSpec("DI-T", "di-targets", alpha, "transpose"),
        "NDFC": ModelSpec("NDFC", "ndfc", alpha, "transpose"),
        "DFC": ModelSpec("DFC", "dfc", alpha, "transpose"),
    }


def _models(config):
    """The study's models that ``config['models']`` names (all when None), in their order."""
    names = config.get("models")
    if names is None:
        return list(MODELS)
    if not isinstance(names, list) or not names:
        raise InputError(f"models must be a non-empty list of model names, got {names!r}")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise InputError(f"unknown model(s) {', '.join(unknown)}; this experiment has "
                         f"{', '.join(MODELS)}")
    return [n for n in MODELS if n in names]


def _linearisation(weights, biases, forward, net):
    """The `Linearisation` of a network with these (pre-update) parameters on a batch."""
    slopes = [g.derivative(a) for g, a in zip(net.nonlinearities[:-1], forward.a[:-1])]
    return Linearisation(weights, forward.h[:-1], slopes, None, biases is not None)


def _loss(net, X, Y):
    """Mean over samples of 1/2 |y - t|^2."""
    return float(0.5 * np.mean(np.sum((net.forward(X).output - Y) ** 2, axis=1)))


@dataclass
class _Case:
    """The data, learners and Gauss-Newton optimiser of one case."""

    name: str
    protocol: dict
    X: np.ndarray
    Y: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    learners: list
    gn: object
    update: UpdateConfig
    rng: np.random.Generator


def _prepare(config, name, models):
    """Case ``name``: its data (a random teacher of the student's shape), the learners
    of ``models`` from one initial network, the GN optimiser's copy and the update;
    with the options of the re-stabilisations."""
    protocol = case_protocol(config, name)
    rng = np.random.default_rng([int(config["seed"]), zlib.crc32(name.encode())])
    sizes, hidden = protocol["sizes"], protocol["hidden"]
    teacher = _network(sizes, hidden, protocol["teacher"], protocol["init_scale"], rng)
    X = rng.standard_normal((protocol["samples"], sizes[0]))
    X_test = rng.standard_normal((protocol["test_samples"], sizes[0]))
    Y, Y_test = teacher.forward(X).output, teacher.forward(X_test).output
    base = _network(sizes, hidden, protocol["init"], protocol["init_scale"], rng)
    circuit = models_spec.circuit_options(config)
    rinit = models_spec.rinit_options(config, circuit, base.depth)
    specs = _specs(protocol["alpha"])
    learners = []
    for model in models:
        if model == "GN":
            continue
        rule, own = own_settings(config, specs[model])
        learners.append(specs[model].learner(base, config["seed"], rinit, {}, own, rule=rule))
    gn = base.copy() if "GN" in models else None
    update = UpdateConfig(lr=protocol["lr"] / protocol["batch"],
                          clip_hidden=protocol["clip_hidden"], circuit=circuit)
    return _Case(name, protocol, X, Y, X_test, Y_test, learners, gn, update, rng), rinit


def run(config: dict, progress: bool = True, stop: StopRequests | None = None) -> dict:
    """Train every model on every case and measure its updates against Gauss-Newton.

    ``stop`` (`StopRequests` or None) is looked at before every update; on a
    request the results hold the measurements made and ``interrupted``.

    Returns
    -------
    dict
        ``angles`` (records: case, rule, layer, step, loss, the five measures,
        damping), ``medians`` (per case, rule and layer, over the measured
        steps), ``cases`` (per case: its protocol, the models and their rules,
        the final training and test losses, the Gauss-Newton solves),
        ``settling`` (per case and circuit model) and ``restabilised``.
    """
    models = _models(config)
    names = config["cases"]
    if not isinstance(names, list) or not names:
        raise InputError(f"cases must be a non-empty list of case names, got {names!r}")
    prepared = [_prepare(config, name, models) for name in names]
    total = sum(case.protocol["steps"] for case, _ in prepared)
    results: dict[str, Any] = {"angles": [], "cases": {}, "settling": {}, "restabilised": []}
    done = 0
    with Progress(total=total, desc="second order", unit="update",
                  disable=not progress) as bar:
        for case, rinit in prepared:
            finished = _train_case(config, case, rinit, models, results, bar, stop)
            done += finished
            if finished < case.protocol["steps"]:
                assert stop is not None  # only a stop request ends a case early
                results["interrupted"] = stop.report(done, total, "updates")
                break
    results["medians"] = medians(results["angles"])
    return results


def _train_case(config, case, rinit, models, results, bar, stop):
    """Train one case, appending its records to ``results``; returns the updates done."""
    protocol, learners = case.protocol, case.learners
    stats = SettleStats(case.update.circuit.settle_tol)
    names = [lrn.name for lrn in learners]
    inverting = [lrn for lrn in learners if lrn.rule.inverts]
    batch, steps = protocol["batch"], protocol["steps"]
    order = case.rng.permutation(case.X.shape[0])
    position = 0
    gn_solves: list[GaussNewton] = []
    unsolved = {lrn.name: 0 for lrn in learners if lrn.rule.chainwise is not None}
    for step in range(steps):
        if stop_requested(stop):
            _case_results(case, models, names, stats, gn_solves, unsolved, step, results)
            return step
        if position + batch > order.size:
            order, position = case.rng.permutation(case.X.shape[0]), 0
        rows = order[position:position + batch]
        position += batch
        x, t = case.X[rows], case.Y[rows]
        measured = step % protocol["measure_every"] == 0 or step == steps - 1
        before = [([W.copy() for W in lrn.net.weights],
                   None if lrn.net.biases is None else [b.copy() for b in lrn.net.biases],
                   _loss(lrn.net, case.X, case.Y) if measured else None)
                  for lrn in learners]
        with warnings.catch_warnings():  # counted in the results instead
            warnings.filterwarnings("ignore", "(ndi-targets|ndfc): Newton", RuntimeWarning)
            trained = train_step(learners, x, t, case.update)
        stats.add_step(names, trained)
        for k, count in trained.unsolved.items():
            unsolved[names[k]] += count
        if measured:
            for k, learner in enumerate(learners):
                weights, biases, loss = before[k]
                lin = _linearisation(weights, biases, trained.forward[k], learner.net)
                errors = trained.deltas[k]
                measures = second_order_measures(lin, errors[-1], weight_updates(lin, errors),
                                                 protocol["damping"], errors, learner.slope)
                _records(results, case.name, learner.name, step, loss, measures,
                         protocol["damping"])
        if case.gn is not None:
            gn_solves.append(_gn_update(case, x, t, step, measured, results))
        if config["restabilise"] and inverting:
            results["restabilised"] += [{**event, "model": f"{case.name} {event['model']}"}
                                        for event in _restabilise(inverting, step, rinit)]
        bar.update(1)
    _case_results(case, models, names, stats, gn_solves, unsolved, steps, results)
    return steps


def _restabilise(learners, step, rinit):
    """Re-stabilise the feedback of the circuits that turned unstable (`repair_feedback`);
    where the descent falls short, the feedback restarts from its transposition at the
    current weights (Tr-Init, always stable), and the event says so."""
    events = []
    for k, layer, before in unstable_feedback(learners, rinit.get("controllers")):
        learner = learners[k]
        try:
            events.append(repair_feedback(learner, layer, before, step, **rinit))
        except StabilisationError:
            weights = learner.net.weights
            if layer == "loop":
                learner.feedback[0] = init_loop_feedback(weights, "transpose", None)
            elif layer == "direct":
                learner.feedback = init_direct_feedback(weights, "transpose", None)
            else:
                learner.feedback[layer] = init_feedback(weights[layer + 1], "transpose", None)
            events.append({"model": learner.name, "iteration": step,
                           "layer": layer if isinstance(layer, str) else layer + 1,
                           "before": before, "after": _abscissa(learner, layer),
                           "method": "transpose (descent fell short)"})
    return events


def _abscissa(learner, layer):
    """The spectral abscissa of a learner's layer pair (index), loop or direct control."""
    W, alpha = learner.net.weights, learner.layer_alpha(0 if isinstance(layer, str) else layer)
    if layer == "loop":
        return float(loop_abscissa(W[1:], learner.feedback[0], alpha))
    if layer == "direct":
        return float(direct_abscissa(W[1:], learner.feedback, alpha, *direct_settings(learner)))
    return float(jacobian_abscissa(W[layer + 1], learner.feedback[layer], alpha))


def _gn_update(case, x, t, step, measured, results):
    """One step of the Gauss-Newton optimiser (theta -= gn_lr (G + lambda I)^-1 g, G and
    g means over the batch), measured like the rules' updates; returns its solve."""
    net, damping = case.gn, case.protocol["damping"]
    loss = _loss(net, case.X, case.Y) if measured else None
    forward = net.forward(x)
    delta = net.output_delta(forward, t)
    lin = _linearisation([W.copy() for W in net.weights], net.biases, forward, net)
    joint = gauss_newton_update(lin, delta, damping, "joint")
    if measured:
        measures = second_order_measures(lin, delta, [W for W, _ in joint.updates], damping,
                                         joint=joint)
        _records(results, case.name, "GN", step, loss, measures, damping)
    for l, (dW, db) in enumerate(joint.updates):
        net.weights[l] -= case.protocol["gn_lr"] * dW
        if db is not None:
            net.biases[l] -= case.protocol["gn_lr"] * db
    return joint


def _records(results, case, model, step, loss, measures, damping):
    """Append one `angles` record per layer of ``measures`` to ``results``."""
    for layer, values in enumerate(measures, start=1):
        results["angles"].append({"case": case, "rule": model, "layer": layer, "step": step,
                                  "loss": loss, **values, "damping": damping})


def _case_results(case, models, names, stats, gn_solves, unsolved, steps, results):
    """The case's entry of ``results['cases']`` and its settling."""
    nets = {lrn.name: lrn.net for lrn in case.learners}
    if case.gn is not None:
        nets["GN"] = case.gn
    results["cases"][case.name] = {
        **{key: case.protocol[key] for key in CASE_KEYS},
        "models": [m for m in models if m in nets],
        "rules": {m: RULES[m] for m in models if m in nets},
        "final": {m: {"train_loss": _loss(net, case.X, case.Y),
                      "test_loss": _loss(net, case.X_test, case.Y_test)}
                  for m, net in nets.items()},
        "gn_method": gn_solves[-1].method if gn_solves else None,
        "gn_residual": max((s.residual for s in gn_solves), default=None),
        "unsolved": {name: {"samples": count, "of": steps * case.protocol["batch"]}
                     for name, count in unsolved.items()},
    }
    for name, entry in stats.summary().items():
        results["settling"][f"{case.name} {name}"] = entry


def medians(records: list[dict]) -> list[dict]:
    """Per case, rule and layer: the median of every measure over the measured steps.

    Parameters
    ----------
    records : list of dict
        The ``angles`` records.

    Returns
    -------
    list of dict
        ``case``, ``rule``, ``layer`` and the `MEASURES` (NaN-free medians; None
        where a measure has no value, e.g. the null share of GN).
    """
    groups: dict[tuple[str, str, int], list[dict]] = {}
    for record in records:
        groups.setdefault((record["case"], record["rule"], record["layer"]), []).append(record)
    out = []
    for (case, rule, layer), group in groups.items():
        entry = {"case": case, "rule": rule, "layer": layer}
        for key in MEASURES:
            values = np.array([np.nan if r[key] is None else r[key] for r in group], dtype=float)
            entry[key] = float(np.nanmedian(values)) if np.any(np.isfinite(values)) else None
        out.append(entry)
    return out


def figure(results: dict) -> object:
    """The angles of every rule's update to BP, GNT, GN and LGN over training, per case
    and layer."""
    from dinv.analysis.figures import second_order_figure

    return second_order_figure(results["angles"])


def null_share_figure(results: dict) -> object:
    """The share of every rule's hidden errors in the output's null space over training."""
    from dinv.analysis.figures import null_share_figure as draw

    return draw(results["angles"])


FIGURES = {"null_share.png": null_share_figure}
"""Figures beside figure.png (file name -> function of the results)."""
