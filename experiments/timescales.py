"""Timescales: how the speed of control decides convergence (Sec. 3.2, 6.2).

The paper predicts that control must be slower than the system it controls
(the reduced dynamics of Eq. 13 assume it). This study settles

- one layer pair over a grid of controller/system time-constant ratios, and
- a deep sequential and repeat-layer chain over per-layer hierarchies
  (controllers slower up the hierarchy, uniform, or faster up),

and the layer pair at tau_controller = tau_system under PID controllers
(Eq. 7, `dinv.circuits.pid_controller`) over a grid of proportional and
derivative gains, records the traces, and measures, from the simulated
states alone: the
convergence time (the first time after which the error to the closed-form
steady state stays below ``tolerance``), the overshoot (largest excess of
|delta(t)| over |delta*|), the decay rate of the error, and, from the
Jacobian, the decay rate the linear theory predicts (for the PID grid also
the spectral radius of the Euler step, `dinv.theory.pid_step_radius`).
"""

from typing import Any

import numpy as np
from brian2 import ms

from dinv.circuits import (
    CONTROLLER,
    CircuitDivergedError,
    InputError,
    NotSettledError,
    pid_controller,
    settle_layer,
)
from dinv.circuits.chains import settle_chain
from dinv.experiments.interrupts import stop_requested
from dinv.experiments.models_spec import circuit_options
from dinv.experiments.progress import Progress
from dinv.experiments.settings import CIRCUIT_DESCRIPTIONS
from dinv.experiments.settle_stats import SettleStats
from dinv.models.rules import ndi
from dinv.theory import circuit_jacobian, pid_abscissa, pid_step_radius
from dinv.validation import check_count

DEFAULTS = {
    "seed": 0,
    "pair": [10, 20],
    "alpha": 0.1,
    "ratios": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
    "widths": [8, 16, 12, 8, 4],
    "hierarchy_factor": 2.0,
    "steps": 6000,
    "dt": 0.5,
    # Population models of every circuit, by registered name (`dinv list`).
    "system": "rate-system",
    "controller": "rate-controller",
    # Gains of controller=pid-controller in the ratio and chain studies (Eq. 7): K_p,
    # K_d (units of tau_controller); scalars here (gain matrices: dinv.circuits.pid_controller).
    "pid_kp": 0.0,
    "pid_kd": 0.0,
    # A settle whose final residual exceeds settle_tol fell short: counted in
    # results.json ('ignore'), warned about ('warn') or an error ('raise').
    "on_unsettled": "ignore",
    "settle_tol": 1e-3,
    "tolerance": 0.01,
    "record_every": 2,
    "weight_scale": 1.0,
    # PID part (layer pair, tau_controller = tau_system): a grid of gains K_p, K_d
    # (units of tau_controller); tau_d / tau_controller of the derivative filters (here
    # and for controller=pid-controller).
    "pid_grid_kp": [-0.25, 0.0, 0.5, 1.0, 2.0, 4.0],
    "pid_grid_kd": [0.0, 0.25, 0.5, 1.0],
    "pid_filter_ratio": 1.0,
    # A finer scan of the gains by the Euler step's spectral radius alone
    # ([first, last, count] of K_p and of K_d); its best pair is simulated too.
    "pid_scan_kp": [-2.0, 4.0, 121],
    "pid_scan_kd": [-1.0, 2.0, 61],
}
QUICK = {"ratios": [0.5, 1.0, 4.0], "steps": 3000, "pid_grid_kp": [0.0, 1.0],
         "pid_grid_kd": [0.0, 0.5],
         "pid_scan_kp": [-2.0, 4.0, 13], "pid_scan_kd": [-1.0, 2.0, 7]}

DESCRIPTIONS = {
    **{k: v for k, v in CIRCUIT_DESCRIPTIONS.items() if k not in ("models", "pid_filter_ratio")},
    "pair": "widths [d_l, d_(l-1)] of the layer pair",
    "alpha": "leak alpha of every circuit",
    "ratios": "tau_controller / tau_system of the layer-pair study",
    "widths": "layer widths of the deep chains, input first",
    "hierarchy_factor": "per-layer factor of the controllers' time constants in the chains",
    "tolerance": "relative error to the steady state that counts as converged",
    "record_every": "record the traces every this many Euler steps",
    "weight_scale": "W ~ N(0, weight_scale^2 / d_(l-1))",
    "pid_grid_kp": "PID study: the proportional gains K_p simulated",
    "pid_grid_kd": "PID study: the derivative gains K_d simulated (units of tau_controller)",
    "pid_filter_ratio": "tau_d / tau_controller of the PID controllers' derivative filters",
    "pid_scan_kp": "PID scan by the Euler step's spectral radius: [first, last, count] of K_p",
    "pid_scan_kd": "PID scan by the Euler step's spectral radius: [first, last, count] of K_d",
}
"""One line per setting (``dinv run timescales --help``)."""

UNITS = {
    "ratio": "dimensionless",
    "tau_controller_over_system": "dimensionless",
    "time": "tau_system",
    "rate": "1/tau_system",
    "predicted_rate": "1/tau_system",
    "integral_rate": "1/tau_system",
    "abscissa": "1/tau_system",
    "overshoot": "dimensionless",
    "final_error": "dimensionless",
    "final_error_all_layers": "dimensionless",
    "residual": "dimensionless",
    "trace_t": "tau_system",
    "trace_error": "dimensionless",
    "step_radius": "dimensionless",
    "speedup": "dimensionless",
    "rate_speedup": "dimensionless",
    "stable_fraction": "dimensionless",
    "kp": "dimensionless",
    "kd": "tau_controller",
    "filter_ratio": "dimensionless",
    "wall_seconds": "s",
}
"""Unit of every quantity of results.json (recorded in it as ``units``): times in units of
tau_system (10 ms), errors relative to the closed-form steady state."""

TAU_SYSTEM = 10 * ms

ARCHITECTURES = ("sequential", "repeat")
"""Chain architectures of the chain study."""

HIERARCHIES = ("slower up the hierarchy", "uniform", "faster up the hierarchy")
"""Per-layer time-constant hierarchies of the chain study (controllers' tau grows by
``hierarchy_factor`` per layer, stays, or shrinks)."""


def trace_metrics(t, states, target, tolerance):
    """Convergence time, overshoot and decay rate of one trace.

    Parameters
    ----------
    t : ndarray, shape (records,)
        Times (units of tau_system).
    states : ndarray, shape (records, ...)
        The settling state at each time.
    target : ndarray
        Closed-form steady state.
    tolerance : float
        Relative error that counts as converged.

    Returns
    -------
    dict
        ``time`` (NaN if never within tolerance until the end), ``overshoot``
        (max |x(t)| / |x*| - 1, at least 0), ``rate`` (decay rate of the
        relative error, fitted on its log between 1e-2 and 1e-9; NaN if the
        trace never gets there) and the final relative error.
    """
    axes = tuple(range(1, states.ndim))
    scale = np.sqrt(np.sum(target ** 2))
    error = np.sqrt(np.sum((states - target) ** 2, axis=axes)) / scale
    outside = np.flatnonzero(error > tolerance)
    if outside.size == 0:
        time = float(t[0])
    elif outside[-1] + 1 < t.size:
        time = float(t[outside[-1] + 1])
    else:
        time = float("nan")
    size = np.sqrt(np.sum(states ** 2, axis=axes)) / scale
    fit = (error < 1e-2) & (error > 1e-9)
    if np.count_nonzero(fit) >= 5:
        rate = float(-np.polyfit(t[fit], np.log(error[fit]), 1)[0])
    else:
        rate = float("nan")
    return {"time": time, "overshoot": float(max(0.0, size.max() - 1.0)), "rate": rate,
            "final_error": float(error[-1])}


def run(config, progress=True, stop=None):
    """Settle the layer pair over the ratio grid and the chains over hierarchies.

    ``stop`` (`StopRequests` or None) is looked at before every settle; on a
    request the results hold the settles done and ``interrupted``.

    Returns
    -------
    dict
        ``pair``: per ratio tau_controller/tau_system the measured metrics,
        the Jacobian's predicted rate and abscissa (stability); ``chains``:
        per architecture and hierarchy, metrics of delta_1 and the taus used.
        Every case that ran to its end has its ``residual``, ``settled``
        (residual at most ``settle_tol``) and ``unstable`` (ended unsettled
        because the circuit is unstable); ``settling`` counts them for the
        layer pair and the chains (`dinv.experiments.settle_stats`; diverged
        cases are recorded as such, not counted).
    """
    ratios = config["ratios"]
    if not isinstance(ratios, list) or not ratios:
        raise InputError(f"ratios must list at least one tau_controller / tau_system, "
                         f"e.g. [0.5, 1, 4]; got {ratios!r}")
    values = list(ratios) + [config["hierarchy_factor"], config["weight_scale"]]
    if not all(isinstance(r, (int, float)) and not isinstance(r, bool) and np.isfinite(r)
               and r > 0 for r in values):
        raise InputError("ratios, hierarchy_factor and weight_scale must be positive numbers "
                         f"(ratios: tau_controller / tau_system), got {ratios}, "
                         f"{config['hierarchy_factor']} and {config['weight_scale']}")
    if not 0 < config["tolerance"] < 1:
        raise InputError(f"tolerance must lie in (0, 1), got {config['tolerance']}")
    for key, least in (("pair", 2), ("widths", 3)):
        widths = config[key]
        if not isinstance(widths, list) or len(widths) < least or (key == "pair"
                                                                  and len(widths) != 2):
            raise InputError(f"{key} must list {'two' if key == 'pair' else 'at least three'} "
                             f"layer widths, got {widths!r}")
        for w in widths:
            check_count(f"the widths in {key}", w)
    gains = [config.get("pid_grid_kp", []), config.get("pid_grid_kd", [])]
    if not all(isinstance(g, list) and all(isinstance(k, (int, float)) and not isinstance(
            k, bool) and np.isfinite(k) for k in g) for g in gains) \
            or not config.get("pid_filter_ratio", 1.0) > 0:
        raise InputError(f"pid_grid_kp and pid_grid_kd must list finite gains (e.g. [0, 1, 2]) "
                         f"and pid_filter_ratio be positive; got {gains[0]!r}, {gains[1]!r} and "
                         f"{config.get('pid_filter_ratio')!r}")
    rng = np.random.default_rng(config["seed"])
    stats = SettleStats(config.get("settle_tol", 1e-3))
    case = _pair_case(config, rng)
    total = len(config["ratios"]) + len(ARCHITECTURES) * len(HIERARCHIES) \
        + len(gains[0]) * len(gains[1])
    # One step per settle: the ratios, the chains (and their reference), the integral
    # controller, the gain grid and the best gains of the scan.
    with Progress(total=total + 3, desc="timescales", unit="settle",
                  disable=not progress) as bar:
        pair = _pair_study(config, case, stop, bar)
        chains = {} if stop_requested(stop) else _chain_study(config, rng, stop, bar)
        pid = {"grid": []} if stop_requested(stop) else _pid_study(config, case, stop, bar)
    for label, cases in (("layer pair", pair), ("chains", list(chains.values())),
                         ("pid", pid["grid"])):
        for entry in cases:
            if entry["diverged"] is None:
                stats.add(label, entry["residual"], entry["unstable"])
    results = {"pair": pair, "chains": chains, "pid": pid, "settling": stats.summary()}
    done = len(pair) + len(chains) + len(pid["grid"])
    if done < total:
        results["interrupted"] = stop.report(done, total, "measurements")
    return results


def _quality(result, options):
    """Residual, settled and unstable of a settled circuit's one problem."""
    residual = float(np.max(result.residual))
    return {"residual": residual, "settled": residual <= options.settle_tol,
            "unstable": bool(np.any(result.unstable))}


def _pair_case(config, rng):
    """The reference layer pair: W, B = -W^T and the error delta_l (one sample)."""
    d_out, d_in = config["pair"]
    W = config["weight_scale"] * rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)
    return W, -W.T, rng.standard_normal((1, d_out))


def _pair_study(config, case, stop=None, bar=None):
    """The layer pair settled for every ratio tau_controller / tau_system."""
    W, B, delta = case
    alpha = config["alpha"]
    target = ndi(W, B, delta, alpha)
    options = circuit_options(config, record_every=config["record_every"])
    pair = []
    for ratio in config["ratios"]:
        if stop_requested(stop):
            break
        J = circuit_jacobian(W, B, alpha, 1.0 / ratio)
        eigenvalues = np.linalg.eigvals(J)
        stability = {"ratio": ratio, "abscissa": float(eigenvalues.real.max()),
                     "predicted_rate": float(-eigenvalues.real.max()),
                     "oscillatory": bool(np.any(np.abs(eigenvalues.imag) > 1e-9))}
        try:
            result = settle_layer(W, B, delta, alpha, options.replace(
                tau_system=TAU_SYSTEM, tau_controller=ratio * TAU_SYSTEM), return_result=True)
        except NotSettledError:
            raise  # on_unsettled='raise': stop, do not record it as diverged
        except CircuitDivergedError as exc:
            pair.append({**stability, "diverged": str(exc), "time": float("nan"),
                         "rate": float("nan"), "overshoot": float("nan"),
                         "final_error": float("nan"), "trace_t": [], "trace_error": []})
            _step(bar)
            continue
        traces = result.traces
        assert traces is not None  # recorded: options have record_every
        metrics = trace_metrics(traces["t"], traces["delta"][:, 0], target[None],
                                config["tolerance"])
        metrics.update({
            **stability,
            **_quality(result, options),
            "diverged": None,
            "trace_t": traces["t"],
            "trace_error": np.sqrt(np.sum((traces["delta"][:, 0, 0] - target) ** 2, axis=1))
            / np.sqrt(np.sum(target ** 2)),
        })
        pair.append(metrics)
        _step(bar)
    return pair


def _step(bar):
    """One settle done (``bar``: a `Progress` or None)."""
    if bar is not None:
        bar.update(1)


def _chain_study(config, rng, stop=None, bar=None):
    """The chain settled sequentially and as repeat layers, for three hierarchies."""
    alpha = config["alpha"]
    widths = config["widths"]
    depth = len(widths) - 1
    weights = [config["weight_scale"] * rng.standard_normal((1, widths[l + 1], widths[l]))
               / np.sqrt(widths[l]) for l in range(depth)]
    feedback = [-w.transpose(0, 2, 1) for w in weights[1:]]
    output = rng.standard_normal((1, 1, widths[-1]))
    options = circuit_options(config, record_every=config["record_every"])
    reference = settle_chain(weights, feedback, output, alpha, architecture="repeat",
                             options=options, steps=4 * config["steps"], record_every=0).deltas
    _step(bar)
    factor = config["hierarchy_factor"]
    hierarchies = dict(zip(HIERARCHIES, (
        [factor ** l for l in range(1, depth)],
        [1.0] * (depth - 1),
        [factor ** -l for l in range(1, depth)],
    )))
    chains: dict[str, dict[str, Any]] = {}
    for architecture in ARCHITECTURES:
        for label, scales in hierarchies.items():
            if stop_requested(stop):
                return chains
            tau_system = [TAU_SYSTEM] * (depth - 1)
            tau_controller = [s * TAU_SYSTEM for s in scales]
            key = f"{architecture}, {label}"
            try:
                result = settle_chain(weights, feedback, output, alpha,
                                      architecture=architecture, options=options,
                                      tau_system=tau_system, tau_controller=tau_controller)
            except NotSettledError:
                raise
            except CircuitDivergedError as exc:
                chains[key] = {"diverged": str(exc), "time": float("nan"),
                               "overshoot": float("nan"), "tau_controller_over_system": scales}
                _step(bar)
                continue
            traces = result.traces
            assert traces is not None  # recorded: options have record_every
            if architecture == "sequential":
                # Each layer pair in turn: the time it needs to settle (to its
                # own end state), summed over the pairs.
                phases = [trace_metrics(ph["t"], ph[f"d{l - 1}"][:, 0, 0],
                                        ph[f"d{l - 1}"][-1, 0, 0], config["tolerance"])
                          for ph, l in zip(traces.phases(), range(depth, 1, -1))]
                metrics = {"time": float(sum(p["time"] for p in phases)),
                           "overshoot": max(p["overshoot"] for p in phases)}
            else:
                metrics = trace_metrics(traces["t"], traces["d1"][:, 0, 0],
                                        reference[0][0, 0], config["tolerance"])
            metrics.update({**_quality(result, options),
                            "diverged": None, "tau_controller_over_system": scales,
                            "final_error_all_layers": [
                                float(np.linalg.norm(d - r) / np.linalg.norm(r))
                                for d, r in zip(result.deltas, reference)]})
            chains[key] = metrics
            _step(bar)
    return chains


def _pid_study(config, case, stop=None, bar=None):
    """The reference layer pair (tau_controller = tau_system) under PID controllers.

    Returns
    -------
    dict
        ``integral``: the metrics of the leaky-integral controller (Eq. 8);
        ``grid``: per gain pair (``kp``, ``kd``) the metrics, ``speedup``
        (integral time / time), the continuous-time ``abscissa`` of
        `dinv.theory.pid_jacobian`, the Euler step's ``step_radius`` and the
        rate it predicts; ``fastest``: the stable pair with the shortest time;
        ``twice_as_fast``: the stable pairs at least 2x faster than the
        integral controller (may be empty).
    """
    W, B, delta = case
    alpha, dt, ratio = config["alpha"], config["dt"], config["pid_filter_ratio"]
    target = ndi(W, B, delta, alpha)
    options = circuit_options(config, record_every=config["record_every"]).replace(
        tau_system=TAU_SYSTEM, tau_controller=TAU_SYSTEM)

    def measure(controller):
        result = settle_layer(W, B, delta, alpha, options.replace(controller=controller),
                              return_result=True)
        traces = result.traces
        assert traces is not None  # recorded: options have record_every
        return {**trace_metrics(traces["t"], traces["delta"][:, 0], target[None],
                                config["tolerance"]),
                **_quality(result, options), "diverged": None}

    integral = {**measure(CONTROLLER), "abscissa": pid_abscissa(W, B, alpha),
                "step_radius": pid_step_radius(W, B, alpha, dt)}
    _step(bar)
    grid = []
    for kp in config["pid_grid_kp"]:
        for kd in config["pid_grid_kd"]:
            if stop_requested(stop):
                break
            radius = pid_step_radius(W, B, alpha, dt, 1.0, kp, kd, ratio)
            point = {"kp": kp, "kd": kd,
                     "abscissa": pid_abscissa(W, B, alpha, 1.0, kp, kd, ratio),
                     "step_radius": radius, "predicted_rate": float(-np.log(radius) / dt)}
            try:
                point.update(measure(pid_controller(kp, kd, ratio)))
            except NotSettledError:
                raise
            except CircuitDivergedError as exc:
                point.update({"diverged": str(exc), "time": float("nan"),
                              "rate": float("nan"), "overshoot": float("nan"),
                              "final_error": float("nan")})
            point["speedup"] = float(integral["time"] / point["time"])
            grid.append(point)
            _step(bar)
    scan = None if stop_requested(stop) else _pid_scan(config, case, measure, integral)
    _step(bar)
    stable = [p for p in grid if p["diverged"] is None and p["step_radius"] < 1
              and np.isfinite(p["time"])]
    fastest = min(stable, key=lambda p: p["time"], default=None)
    return {"filter_ratio": ratio, "tau_controller_over_system": 1.0, "integral": integral,
            "grid": grid, "scan": scan,
            "fastest": None if fastest is None else {
                k: fastest[k] for k in ("kp", "kd", "time", "speedup", "overshoot")},
            "twice_as_fast": [{"kp": p["kp"], "kd": p["kd"], "speedup": p["speedup"]}
                              for p in stable if p["speedup"] >= 2.0]}


def _pid_scan(config, case, measure, integral):
    """The gain pair whose Euler circuit decays fastest (smallest step radius) on a fine
    grid, and its measured metrics: how much faster PID can make the slowest mode."""
    W, B, _ = case
    alpha, dt, ratio = config["alpha"], config["dt"], config["pid_filter_ratio"]
    axes = []
    for key in ("pid_scan_kp", "pid_scan_kd"):
        first, last, count = config[key]
        check_count(key + "'s count", count)
        axes.append(np.linspace(first, last, int(count)))
    radii = np.array([[pid_step_radius(W, B, alpha, dt, 1.0, kp, kd, ratio) for kd in axes[1]]
                      for kp in axes[0]])
    i, j = np.unravel_index(np.argmin(radii), radii.shape)
    kp, kd = round(float(axes[0][i]), 10), round(float(axes[1][j]), 10)
    rate = float(-np.log(radii[i, j]) / dt)
    integral_rate = float(-np.log(integral["step_radius"]) / dt)
    try:
        best = measure(pid_controller(kp, kd, ratio))
    except CircuitDivergedError as exc:
        best = {"diverged": str(exc), "time": float("nan"), "overshoot": float("nan")}
    return {"kp": kp, "kd": kd, "predicted_rate": rate, "integral_rate": integral_rate,
            "rate_speedup": rate / integral_rate,
            "abscissa": pid_abscissa(W, B, alpha, 1.0, kp, kd, ratio),
            "time": best["time"], "overshoot": best["overshoot"],
            "speedup": float(integral["time"] / best["time"]), "diverged": best["diverged"],
            "stable_fraction": float(np.mean(radii < 1))}


def figure(results):
    """Convergence against the controller/system timescale ratio, chains and PID gains."""
    from dinv.analysis.figures import timescales_figure

    return timescales_figure(results["pair"], results["chains"],
                             results["config"]["tolerance"], results.get("pid"))
