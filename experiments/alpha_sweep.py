"""Accuracy of the inversion against the leak alpha (Suppl. Fig. 1).

For a contracting, an expanding and a square layer, the settled error of the
circuit, ``B (W B - alpha I)^-1 delta`` (Eq. 10), is compared with the
pseudoinverse solution ``W^+ delta`` that Eq. (12) predicts as alpha -> 0
(B = -W^T, "Tr-Init"). Both the closed form (NDI) and the Brian2 circuit are
measured; every alpha of a layer is one of n circuits settled in one run.
"""

import numpy as np

from dinv.analysis.metrics import vector_angle
from dinv.circuits import settle_layer
from dinv.errors import InputError
from dinv.experiments.interrupts import stop_requested
from dinv.experiments.models_spec import circuit_options
from dinv.experiments.progress import Progress
from dinv.experiments.settings import CIRCUIT_DEFAULTS, CIRCUIT_DESCRIPTIONS
from dinv.experiments.settle_stats import SettleStats
from dinv.models.rules import ndi
from dinv.validation import check_count, finite_array

DEFAULTS = {
    "seed": 0,
    "layers": {"contracting": [10, 20], "expanding": [20, 10], "square": [15, 15]},
    "alphas": np.logspace(-4, 0, 13).tolist(),
    "samples": 64,
    **CIRCUIT_DEFAULTS,
    "weight_scale": 1.0,
}
QUICK = {"alphas": np.logspace(-3, 0, 4).tolist(), "samples": 16}

DESCRIPTIONS = {
    **{k: v for k, v in CIRCUIT_DESCRIPTIONS.items() if k != "models"},
    "layers": "layer types: name -> [d_l, d_(l-1)] (output width, input width)",
    "alphas": "the leaks alpha (dimensionless) to settle every layer type at",
    "samples": "errors delta_l per layer type, settled together",
    "weight_scale": "W ~ N(0, weight_scale^2 / d_(l-1))",
}
"""One line per setting (``dinv run alpha-sweep --help``)."""

UNITS = {
    "alphas": "dimensionless",
    "angle": "degrees",
    "relative_error": "dimensionless",
    "circuit_residual": "dimensionless",
    "median_angle": "degrees",
    "median_relative_error": "dimensionless",
    "wall_seconds": "s",
}
"""Unit of every quantity of results.json (recorded in it as ``units``)."""


def _accuracy(settled, reference):
    """Mean angle (degrees) and mean relative error of rows against the reference."""
    angle = vector_angle(settled, reference)
    error = np.linalg.norm(settled - reference, axis=-1) / np.linalg.norm(reference, axis=-1)
    return float(np.mean(angle)), float(np.mean(error))


def run(config, progress=True, stop=None):
    """Settle every layer type at every alpha; compare with W^+ delta.

    ``stop`` (`StopRequests` or None) is looked at before each layer type's
    settle; on a request the results hold the layer types done and
    ``interrupted``.

    Returns
    -------
    dict
        ``alphas`` and, per layer type, ``angle`` and ``relative_error`` of
        the closed form (``ndi``) and of the circuit (``circuit``), each one
        value per alpha, plus the circuit's residual (how far from settled)
        and, per alpha, whether it settled (``circuit_settled``: residual at
        most ``settle_tol``) and whether it ended unsettled because it is
        unstable (``circuit_unstable``); ``settling``: per layer type, the
        counts over the alphas (`dinv.experiments.settle_stats`).
    """
    alphas, layers = _checked(config)
    rng = np.random.default_rng(config["seed"])
    options = circuit_options(config)
    stats = SettleStats(options.settle_tol)
    results = {"alphas": alphas, "layers": {}}
    with Progress(total=len(layers), desc="alpha sweep", unit="layer type",
                  disable=not progress) as bar:
        for done, (name, (d_out, d_in)) in enumerate(layers.items()):
            if stop_requested(stop):
                results["interrupted"] = stop.report(done, len(layers), "layer types")
                break
            W = config["weight_scale"] * rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)
            B = -W.T
            delta = rng.standard_normal((config["samples"], d_out))
            reference = delta @ np.linalg.pinv(W).T
            n = alphas.size
            stack_W, stack_B = np.repeat(W[None], n, 0), np.repeat(B[None], n, 0)
            stack_delta = np.repeat(delta[None], n, 0)
            closed = ndi(stack_W, stack_B, stack_delta, alphas)
            settled = settle_layer(stack_W, stack_B, stack_delta, alphas, options,
                                   return_result=True)
            for residual, unstable in zip(settled.residual, settled.unstable):
                stats.add(name, residual, unstable)
            rows: dict[str, list[tuple[float, float]]] = {"ndi": [], "circuit": []}
            for k in range(n):
                rows["ndi"].append(_accuracy(closed[k], reference))
                rows["circuit"].append(_accuracy(settled.delta[k], reference))
            results["layers"][name] = {
                "shape": [d_out, d_in],
                "angle": {key: [a for a, _ in value] for key, value in rows.items()},
                "relative_error": {key: [e for _, e in value] for key, value in rows.items()},
                "circuit_residual": settled.residual,
                "circuit_settled": settled.residual <= options.settle_tol,
                "circuit_unstable": settled.unstable,
            }
            bar.update(1)
    results["settling"] = stats.summary()
    return results


def _checked(config):
    """The leaks and the layer shapes of ``config``, checked."""
    alphas = config["alphas"]
    if isinstance(alphas, list) and not alphas:
        raise InputError("alphas must list at least one leak, e.g. [0.001, 0.01, 0.1]")
    alphas = finite_array("alphas", alphas, (1,))
    if np.any(alphas < 0):
        raise InputError(f"alpha must be >= 0 (a negative leak makes the controller "
                         f"unstable), got {alphas.tolist()}")
    layers = config["layers"]
    if not layers:
        raise InputError('layers must name at least one layer shape, e.g. {"square": [15, 15]}')
    checked = {}
    for name, shape in layers.items():
        if not isinstance(shape, list) or len(shape) != 2:
            raise InputError(f"layers: {name!r} must be a list [d_l, d_(l-1)] of two widths, "
                             f"got {shape!r}")
        checked[name] = [check_count(f"layers: the widths of {name!r}", w) for w in shape]
    check_count("samples", config["samples"])
    scale = config["weight_scale"]
    if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
        raise InputError(f"weight_scale must be a positive number, got "
                         f"{config['weight_scale']!r}")
    return alphas, checked


def figure(results):
    """Suppl. Fig. 1: accuracy of the inversion against alpha, per layer type."""
    from dinv.analysis.figures import alpha_sweep_figure

    return alpha_sweep_figure(results["alphas"], results["layers"])
