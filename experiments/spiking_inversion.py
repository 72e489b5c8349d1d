"""The spiking study: spiking populations against the closed form.

Every case settles a dynamic-inversion circuit whose populations are spiking
(``scn``, spike-coding networks, `dinv.circuits.scn`; ``lif``, LIF ensembles
with decoders, and ``qif``, ``adex``, ``izhikevich``, the neurons of
`dinv.circuits.neuron_library` made populations by the ensemble builder
`dinv.circuits.nef.neuron_population`, with the same NEF recipe and settings
as ``lif``) and compares the settled readout, the time average
over the last ``average_fraction`` of the run, with the closed form of the
rate circuit (Eq. 10; Eq. 17 for the chain, `dinv.theory`).

Cases (``cases``), W_l ~ N(0, 1/d_l), B_l = -W_l^T, delta ~ N(0, I), alpha
``alpha``, tau ``tau_ms`` for every population:

- ``contracting``: a layer pair 20 <- 10 (d_{l-1} = 20, d_l = 10; the
  reference case of the spiking study);
- ``expanding``: 10 <- 20 (alpha keeps (W B - alpha I) invertible; the
  controller's steady state is large along the null space of W^T, so its
  radius, and its spike noise, is large);
- ``square``: 10 <- 10;
- ``chain``: a 3-layer sequential chain 20 <- 15 <- 10 (two layer pairs run one
  after the other, each for the whole ``duration``; the readout is both
  hidden errors, concatenated);
- ``spiking-system`` and ``spiking-controller``: the contracting pair with a
  spiking system and a rate controller, and the reverse.

Measures, per model and case: the angle and relative error of the averaged
readout against the closed form (``angle_deg``, ``rel_error``), the
moment-to-moment relative RMS error over the averaging window from the
recorded traces (``rms_error``: sqrt(mean_t |x(t) - x*|^2) / |x*|), mean and
max firing rates and spikes of the spiking populations, the same protocol's
error with rate populations (``rate_angle_deg``, ``rate_rel_error``: a numpy
run of the rate equations for the same time, averaged over the same window;
the part of the error that is the finite run's, not the spikes'), the
settling residual
(drift of the average beyond spike noise) and the wall time. ``sizes`` are
the neurons per dimension of the scaling records (``case_sizes`` those of the
cases other than contracting; None: ``sizes``); log-log slopes of the errors
against N are fitted per model and case (``goals``: per model, the angle at
64 neurons per dimension on the contracting case, its mean rates and slope
against the goal of `GOAL`). ``model_cases`` narrows the cases of a model.
On the contracting case at ``sweep_size`` neurons per dimension (models
that have one): a sweep of the readout time constant
(``tau_readout_ms``: tau_readout of ``scn``, tau_synapse of ``lif``), a sweep
of the simulated time (``durations``, in tau), and silencing ``silence`` of
each population's neurons (within each dimension, the same share of positive
and negative neurons; `LayerCircuit.silence`).

Settings and why:

- ``dt`` 0.002 tau (0.02 ms at tau 10 ms): the ``scn`` default needs
  tau_readout / 1000 (a run with a shorter readout gets a proportionally
  smaller step); ``lif`` needs only tau_ref / 20 but runs at the same step,
  so that both models see the same discretisation.
- ``duration`` 40 tau (20 000 steps; ``--quick``: 20 tau): the reference pair's
  slowest mode decays in about 4 tau, so the last fifth (8 tau) averages a
  settled readout; the expanding case has a slower mode (alpha / tau_c along
  the null space of W^T, 10 tau) that only its controller sees. The square
  pair and the chain have slow modes of their own (small singular values of
  W): after 40 tau a rate circuit is still 0.23 and 0.11 degrees from the
  closed form, so they run ``case_duration`` 80 tau (0.006 and 0.0007
  degrees); every record carries this finite-run error of the rate circuit
  (``rate_angle_deg``).
- radii ``margin`` (1.5) x the largest component of each block's closed-form
  state (`layer_radii`, `chain_radii`): values beyond the radius are
  represented poorly, and a larger radius costs precision in proportion.
- readouts recorded every ``record_interval`` tau (0.1: 1 ms) for the RMS error.

Outputs: ``scaling`` (records with ``population``, ``case``,
``neurons_per_dim``, ``angle_deg``, ``rel_error``, ``rms_error``,
``mean_rate_hz``, ``max_rate_hz``, ``spikes``, ``residual``, ``seconds``,
...), ``slopes``, ``goals``, ``tau_sweep``, ``duration_sweep``, ``silencing`` and
``settling`` (`dinv.experiments.settle_stats`); the figure shows the error
against N on log-log axes with the fitted slopes.
"""

import itertools
import time
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from brian2 import ms

from dinv.analysis.metrics import vector_angle
from dinv.circuits import (
    LayerCircuit,
    PopulationFamily,
    PopulationModel,
    SettleOptions,
    layer_radii,
    lif_population,
    neuron_population,
    scn_population,
    settle_layer,
)
from dinv.circuits.chains import ChainCircuit
from dinv.circuits.neuron_library import NEURONS
from dinv.circuits.spiking import chain_radii
from dinv.errors import InputError
from dinv.experiments.interrupts import stop_requested
from dinv.experiments.progress import Progress
from dinv.experiments.settings import CIRCUIT_DESCRIPTIONS
from dinv.experiments.settle_stats import SettleStats
from dinv.theory import chain_steady_state, layer_steady_state
from dinv.validation import check_count, check_number

MODELS = ("scn", "lif", *NEURONS)
CASES = ("contracting", "expanding", "square", "chain", "spiking-system",
         "spiking-controller")

PAIRS = {"contracting": (10, 20), "expanding": (20, 10), "square": (10, 10),
         "spiking-system": (10, 20), "spiking-controller": (10, 20)}
"""Layer-pair cases: (d_l, d_{l-1})."""

CHAIN_WIDTHS = (5, 20, 15, 10)
"""The chain case: d_0 (not simulated), d_1, d_2, d_3."""

DEFAULTS = {
    "seed": 0,
    "models": list(MODELS),
    "cases": list(CASES),
    # The neurons of the ensemble builder: the contracting pair and the mixed circuits.
    "model_cases": {name: ["contracting", "spiking-system", "spiking-controller"]
                    for name in NEURONS},
    "sizes": [16, 32, 64, 128, 256],
    "case_sizes": None,
    "alpha": 0.1,
    "tau_ms": 10.0,
    "dt": 0.002,
    "duration": 40.0,
    "case_duration": {"square": 80.0, "chain": 80.0},
    "average_fraction": 0.2,
    "record_interval": 0.1,
    "margin": 1.5,
    "sweep_size": {"scn": 32, "lif": 64},
    "tau_readout_ms": {"scn": [10.0, 20.0, 40.0], "lif": [5.0, 10.0, 20.0]},
    "durations": [10.0, 20.0, 40.0, 80.0],
    "silence": 0.25,
    "settle_tol": 1e-3,
}
QUICK = {"sizes": [16, 32, 64], "case_sizes": [32], "duration": 20.0, "case_duration": {},
         "tau_readout_ms": {"scn": [20.0, 40.0], "lif": [5.0, 10.0]},
         "durations": [10.0, 20.0], "models": ["scn", "lif", "adex"],
         "model_cases": {"adex": ["contracting"]}}

DESCRIPTIONS = {
    "seed": "random seed: weights, errors delta and the populations' neurons (same seed, "
            "same numbers)",
    "models": "spiking population models to study: 'scn' (spike-coding networks), 'lif' "
              "(LIF ensembles with decoders), 'qif', 'adex', 'izhikevich' (ensembles of "
              "those neurons, dinv.circuits.neuron_library)",
    "model_cases": "cases of the models named here, instead of cases",
    "cases": "circuits to settle: contracting, expanding, square, chain, spiking-system, "
             "spiking-controller",
    "sizes": "neurons per represented dimension of the contracting case's scaling records",
    "case_sizes": "neurons per dimension of the cases other than contracting (null: sizes)",
    "alpha": "leak alpha of every circuit",
    "tau_ms": "time constant tau (ms) of every system and controller population",
    "dt": "Euler step in units of tau (smaller where a model's readout needs it)",
    "duration": "simulated time of every settle, in units of tau",
    "case_duration": "simulated time (tau) of the cases named here, instead of duration",
    "average_fraction": "the settled readout is the time average over this last fraction "
                        "of each run",
    "record_interval": "readouts recorded every this many tau, for the RMS error",
    "margin": "radii of the spiking populations: this times the largest component of each "
              "block's closed-form state",
    "sweep_size": "neurons per dimension of the sweeps and the silencing test, by model (a "
                  "model without one has neither)",
    "tau_readout_ms": "readout time constants (ms) swept on the contracting case, by model "
                      "(scn: tau_readout, lif: tau_synapse)",
    "durations": "simulated times (tau) swept on the contracting case",
    "silence": "fraction of each population's neurons silenced in the silencing test "
               "(0: no test)",
    "settle_tol": CIRCUIT_DESCRIPTIONS["settle_tol"],
}
"""One line per setting (``dinv run spiking-inversion --help``)."""

UNITS = {
    "neurons_per_dim": "neurons",
    "sizes": "neurons",
    "angle_deg": "degrees",
    "rel_error": "dimensionless",
    "rms_error": "dimensionless",
    "rate_angle_deg": "degrees",
    "rate_rel_error": "dimensionless",
    "mean_rate_hz": "Hz",
    "max_rate_hz": "Hz",
    "spikes": "spikes",
    "residual": "dimensionless",
    "circuit_residual": "dimensionless",
    "readout_ms": "ms",
    "duration_tau": "tau",
    "dt": "tau",
    "steps": "steps",
    "silenced": "dimensionless",
    "fraction": "dimensionless",
    "angle_ratio": "dimensionless",
    "slope": "dimensionless",
    "d_l": "dimensions",
    "d_l_minus_1": "dimensions",
    "widths": "dimensions",
    "seconds": "s",
    "wall_seconds": "s",
}
"""Unit of every quantity of results.json (recorded in it as ``units``): times of the
circuit in units of tau (``tau_ms``, that of every population); errors relative to the
closed form; ``silenced`` and ``fraction`` are shares of the neurons; ``slope`` is that of
log(error) against log(neurons_per_dim) (``slopes``: one per error)."""

READOUT = {"scn": "tau_readout", "lif": "tau_synapse", **dict.fromkeys(NEURONS, "tau_synapse")}
"""The readout time constant's keyword of each model's factory."""

DEFAULT_READOUT_MS = {"scn": 20.0, "lif": 10.0, **dict.fromkeys(NEURONS, 10.0)}


def _neuron_factory(name: str) -> Callable[..., PopulationModel]:
    def make(kind: str, per_dim: int, **settings: Any) -> PopulationModel:
        model = neuron_population(NEURONS[name], kind, per_dim, **settings)
        assert isinstance(model, PopulationModel)  # a kind gives one model
        return model
    return make


FACTORIES: dict[str, Callable[..., PopulationModel]] = {
    "scn": scn_population, "lif": lif_population,
    **{name: _neuron_factory(name) for name in NEURONS}}

GOAL = {"neurons_per_dim": 64, "angle_deg": 3.0, "mean_rate_hz": 100.0, "slope": -0.25}
"""The goal of a spiking model on the contracting pair: within ``angle_deg`` of Eq. (10)
at ``neurons_per_dim``, mean rates at most ``mean_rate_hz`` at every size, and the
angle falling with N (fitted log-log slope at most ``slope``)."""


class PairCheck(NamedTuple):
    """What `check_layer_pair` measured."""

    angle_deg: float
    """Angle (degrees) of the settled hidden error to Eq. (10)'s."""
    mean_rates_hz: dict[str, float]
    """Mean firing rate (Hz) of each spiking population, by name."""


def check_layer_pair(system: PopulationModel | PopulationFamily,
                     controller: PopulationModel | PopulationFamily | None = None, *,
                     seed: int = 0, alpha: float = 0.1, steps: int = 20000,
                     dt: float = 0.002) -> PairCheck:
    """Settle population models on the study's reference layer pair and measure them.

    The layer pair 20 <- 10 (W of shape (10, 20), entries N(0, 1/10) drawn with
    ``seed``), B = -W^T, leak ``alpha``, one random output error, settled for
    ``steps`` Euler steps of ``dt`` (in units of tau; the defaults: 40 tau) with
    ``system`` and ``controller`` (default: ``system``) as its populations. The
    goal of the spiking study is an angle within 3 degrees at mean rates of at
    most 100 Hz.

    Parameters
    ----------
    system, controller : PopulationModel or PopulationFamily
        E.g. from `dinv.circuits.neuron_population` (a family serves as both).
    seed : int
    alpha : float
    steps : int
    dt : float

    Returns
    -------
    PairCheck
        The angle to Eq. (10)'s hidden error and the populations' mean rates.
    """
    rng = np.random.default_rng(seed)
    W = rng.normal(0, np.sqrt(1 / 10), (10, 20))
    B, delta = -W.T, rng.normal(size=(1, 10))
    result = settle_layer(W, B, delta, alpha, system=system, controller=controller or system,
                          dt=dt, steps=steps, radius=layer_radii(W, B, delta, alpha),
                          return_result=True)
    angle = float(vector_angle(result.delta[0, 0], layer_steady_state(W, B, delta, alpha)[0]))
    rates = {name: float(stats["mean_rate_hz"]) for name, stats in result.spiking.items()}
    return PairCheck(angle, rates)


def _generator(seed, label):
    return np.random.default_rng([int(seed), zlib.crc32(label.encode())])


def _case_arrays(case, seed):
    """W, B (lists for the chain), delta of a case, drawn from (seed, case)."""
    rng = _generator(seed, "chain" if case == "chain" else
                     "contracting" if case.startswith("spiking") else case)
    if case == "chain":
        weights = [rng.normal(0.0, np.sqrt(1.0 / d_out), (d_out, d_in))
                   for d_in, d_out in itertools.pairwise(CHAIN_WIDTHS)]
        return weights, [-W.T for W in weights[1:]], rng.normal(0.0, 1.0, (1, CHAIN_WIDTHS[-1]))
    d_out, d_in = PAIRS[case]
    W = rng.normal(0.0, np.sqrt(1.0 / d_out), (d_out, d_in))
    return W, -W.T, rng.normal(0.0, 1.0, (1, d_out))


class Study:
    """Builds and reuses the circuits of the study; measures one settle.

    ``factories`` adds models by name: ``factory(kind, per_dim, seed=...)`` ->
    `PopulationModel` (e.g. a variant of a neuron, `docs/scripts/neuron_variants.py`).
    """

    def __init__(self, config: dict[str, Any],
                 factories: dict[str, Callable[..., PopulationModel]] | None = None):
        self.config = config
        self.circuits: dict[tuple[Any, ...], Any] = {}
        self.factories = {**FACTORIES, **(factories or {})}

    def population(self, model: str, kind: str, per_dim: int, seed: int,
                   readout_ms: float | None = None) -> PopulationModel:
        """A population of ``model`` (``readout_ms``: its readout time constant)."""
        extra = {} if readout_ms is None else {READOUT[model]: readout_ms * ms}
        return self.factories[model](kind, per_dim, seed=seed, **extra)

    def dt(self, model: str, readout_ms: float | None) -> float:
        """The Euler step (units of tau): ``dt``, smaller where the readout needs it."""
        config = self.config
        readout = self.population(model, "system", 2, 0, readout_ms)
        assert readout.ensemble is not None  # a spiking model
        return min(float(config["dt"]), readout.ensemble.max_dt() / (config["tau_ms"] * 1e-3))

    def options(self, model, case, per_dim, readout_ms, duration):
        config = self.config
        dt = self.dt(model, readout_ms)
        seed = config["seed"]
        system: PopulationModel | str = self.population(model, "system", per_dim, seed,
                                                        readout_ms)
        controller: PopulationModel | str = self.population(model, "controller", per_dim,
                                                            seed, readout_ms)
        if case == "spiking-system":
            controller = "rate-controller"
        elif case == "spiking-controller":
            system = "rate-system"
        return SettleOptions(
            steps=int(round(duration / dt)), dt=dt, tau_system=config["tau_ms"] * ms,
            tau_controller=config["tau_ms"] * ms, system=system, controller=controller,
            on_unsettled="ignore", settle_tol=config["settle_tol"],
            record_every=max(1, int(round(config["record_interval"] / dt))),
            average_fraction=config["average_fraction"])

    def circuit(self, model, case, per_dim, readout_ms, options):
        key = (model, case, per_dim, readout_ms)
        if key not in self.circuits:
            if case == "chain":
                self.circuits[key] = ChainCircuit(CHAIN_WIDTHS, "sequential", options=options)
            else:
                d_out, d_in = PAIRS[case]
                self.circuits[key] = LayerCircuit(d_out, d_in, options=options)
        return self.circuits[key]

    def measure(self, model, case, per_dim, readout_ms=None, duration=None, silence=0.0):
        """One settle; returns its record (dict)."""
        config = self.config
        if duration is None:
            duration = (config["case_duration"] or {}).get(case, config["duration"])
        duration = float(duration)
        options = self.options(model, case, per_dim, readout_ms, duration)
        circuit = self.circuit(model, case, per_dim, readout_ms, options)
        alpha, margin = config["alpha"], config["margin"]
        W, B, delta = _case_arrays(case, config["seed"])
        if silence:
            circuit.silence(silence, seed=config["seed"])
        start = time.perf_counter()
        try:
            if case == "chain":
                weights = [w[None] for w in W]
                feedback = [b[None] for b in B]
                result = circuit.settle(weights, feedback, delta[None], alpha, options=options,
                                        radius=chain_radii(weights, feedback, delta[None],
                                                           alpha, margin=margin))
                reference = chain_steady_state(weights[1:], feedback, delta[None], alpha)
                settled = np.concatenate([d[0, 0] for d in result.deltas])
                exact = np.concatenate([r[0, 0] for r in reference])
                moments = _chain_moments(result.traces, reference,
                                         config["average_fraction"])
            else:
                result = circuit.settle(W, B, delta, alpha, options=options,
                                        radius=layer_radii(W, B, delta, alpha, margin=margin))
                exact = layer_steady_state(W[None], B[None], delta[None], alpha)[0, 0]
                settled = result.delta[0, 0]
                traces = result.traces
                late = traces["t"] >= (1 - config["average_fraction"]) * traces["t"][-1]
                moments = traces["delta"][late][:, 0, 0]
        finally:
            if silence:
                circuit.silence(0.0)
        seconds = time.perf_counter() - start
        norm = np.linalg.norm(exact)
        rate = rate_baseline(case, W, B, delta, alpha, duration, config["average_fraction"])
        rms = float(np.sqrt(np.mean(np.sum((moments - exact) ** 2, axis=-1))) / norm)
        stats = list(result.spiking.values())
        return {
            "population": model, "case": case, "neurons_per_dim": int(per_dim),
            "angle_deg": float(vector_angle(settled, exact)),
            "rel_error": float(np.linalg.norm(settled - exact) / norm),
            "rms_error": rms,
            "rate_angle_deg": float(vector_angle(rate, exact)),
            "rate_rel_error": float(np.linalg.norm(rate - exact) / norm),
            "mean_rate_hz": float(np.mean([s["mean_rate_hz"] for s in stats])),
            "max_rate_hz": float(max(s["max_rate_hz"] for s in stats)),
            "spikes": int(sum(s["spikes"] for s in stats)),
            "residual": float(np.max(result.residual)),
            "unstable": bool(np.any(result.unstable)),
            "readout_ms": float(DEFAULT_READOUT_MS.get(model, 10.0) if readout_ms is None
                                else readout_ms),
            "duration_tau": duration, "dt": float(options.dt), "steps": options.steps,
            "silenced": float(silence), "seconds": seconds,
        }


def _chain_moments(traces, reference, fraction):
    """The chain's hidden errors over the averaging window of each phase,
    concatenated like the settled readout: (records, d_1 + d_2).

    Phase 0 settles the top pair (``d2``), phase 1 the next (``d1``); the
    window of each is its last ``fraction``; both have as many records.
    """
    parts = traces.phases()
    rows = []
    for layer in range(len(reference)):
        phase = parts[len(reference) - 1 - layer]
        late = phase["t"] >= (1 - fraction) * phase["t"][-1]
        rows.append(phase[f"d{layer + 1}"][late][:, 0, 0])
    count = min(r.shape[0] for r in rows)
    return np.concatenate([r[-count:] for r in rows], axis=-1)


RATE_DT = 0.01
"""Euler step (units of tau) of the finite-time rate baseline (`rate_baseline`)."""


def _rate_pair(W, B, target, alpha, duration, fraction):
    """Rate layer pair (Eqs. 5, 8; tau_s = tau_c) from rest for ``duration`` tau, in
    numpy: the system's state averaged over the last ``fraction`` of the run."""
    steps = int(round(duration / RATE_DT))
    first = int(round((1 - fraction) * steps))
    x, u = np.zeros(B.shape[0]), np.zeros(B.shape[1])
    total = np.zeros_like(x)
    for step in range(steps):
        x, u = x + RATE_DT * (-x + B @ u), u + RATE_DT * (-alpha * u + W @ x - target)
        if step >= first:
            total += x
    return total / (steps - first)


def rate_baseline(case, W, B, delta, alpha, duration, fraction):
    """The same protocol with rate populations: what a run of ``duration`` tau,
    averaged like the spiking readouts, gives without spikes (the settling error
    of the protocol itself; slow modes of the square and chain cases decay at
    about alpha / tau).

    Returns the averaged readout, flattened like the study's (chain: d_1, d_2).
    """
    if case == "chain":
        upper = _rate_pair(W[2], B[1], delta[0], alpha, duration, fraction)
        lower = _rate_pair(W[1], B[0], upper, alpha, duration, fraction)
        return np.concatenate([lower, upper])
    return _rate_pair(W, B, delta[0], alpha, duration, fraction)


def fit_slope(sizes, values):
    """Slope of log(values) against log(sizes) (least squares); None with < 2 points."""
    sizes, values = np.asarray(sizes, dtype=float), np.asarray(values, dtype=float)
    keep = values > 0
    if keep.sum() < 2:
        return None
    return float(np.polyfit(np.log(sizes[keep]), np.log(values[keep]), 1)[0])


def slopes(records):
    """Per (population, case) with >= 2 sizes: log-log slopes of the errors against N."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["population"], r["case"]), []).append(r)
    out = []
    for (population, case), rows in groups.items():
        rows = sorted(rows, key=lambda r: r["neurons_per_dim"])
        if len(rows) < 2:
            continue
        sizes = [r["neurons_per_dim"] for r in rows]
        out.append({"population": population, "case": case, "sizes": sizes,
                    **{key: fit_slope(sizes, [r[key] for r in rows])
                       for key in ("angle_deg", "rel_error", "rms_error")}})
    return out


def _check(config):
    for key in ("models", "cases", "sizes", "durations"):
        if not isinstance(config[key], list) or not config[key]:
            raise InputError(f"setting {key} must be a non-empty list, got {config[key]!r}")
    unknown = [m for m in config["models"] if m not in MODELS]
    if unknown:
        raise InputError(f"models: unknown {unknown}; the spiking models are {list(MODELS)}")
    unknown = [c for c in config["cases"] if c not in CASES]
    if unknown:
        raise InputError(f"cases: unknown {unknown}; the cases are {list(CASES)}")
    if config["case_sizes"] is not None and (not isinstance(config["case_sizes"], list)
                                             or not config["case_sizes"]):
        raise InputError(f"setting case_sizes must be a non-empty list or null, got "
                         f"{config['case_sizes']!r}")
    for case, duration in (config["case_duration"] or {}).items():
        if case not in CASES or isinstance(duration, bool) \
                or not isinstance(duration, (int, float)) or not duration > 0:
            raise InputError(f"case_duration: {case!r}: {duration!r} must be a positive time "
                             f"(tau) of one of the cases {list(CASES)}")
    for size in config["sizes"] + (config["case_sizes"] or []):
        check_count("neurons per dimension", size, minimum=2)
    for key in ("sweep_size", "tau_readout_ms"):
        if not isinstance(config[key], dict):
            raise InputError(f"setting {key} must be a JSON object with a value per model, "
                             f"got {config[key]!r}")
    missing = [m for m in config["sweep_size"] if m in config["models"]
               and m not in config["tau_readout_ms"]]
    if missing:
        raise InputError(f"tau_readout_ms needs a list for {missing}, which have a sweep_size")
    chosen = config.get("model_cases") or {}
    if not isinstance(chosen, dict) or any(
            m not in MODELS or not isinstance(c, list) or any(x not in CASES for x in c)
            for m, c in chosen.items()):
        raise InputError(f"model_cases must map models {list(MODELS)} to lists of cases "
                         f"{list(CASES)}, got {chosen!r}")
    for key in ("tau_ms", "dt", "duration", "record_interval", "margin", "settle_tol"):
        check_number(f"setting {key}", config[key], low=0, low_open=True)
    for duration in config["durations"]:
        check_number("setting durations: each", duration, low=0, low_open=True)
    check_number("setting alpha", config["alpha"], low=0)
    check_number("setting average_fraction", config["average_fraction"], low=0, high=1,
                 low_open=True)
    check_number("setting silence", config["silence"], low=0, high=1, high_open=True)
    for model in config["models"]:
        if model not in config["sweep_size"]:
            continue
        check_count(f"setting sweep_size: {model}", config["sweep_size"][model], minimum=2)
        readouts = config["tau_readout_ms"][model]
        for readout in readouts if isinstance(readouts, list) else [readouts]:
            check_number(f"setting tau_readout_ms: {model}", readout, low=0, low_open=True)


def jobs(config):
    """The settles of the study: (part, model, case, size, keywords).

    In the order most worth having from an interrupted run: the contracting
    case's scaling of every model, its sweeps and silencing, then the other
    cases.
    """
    todo: list[tuple[str, str, str, int, dict[str, float]]] = []
    case_sizes = config["case_sizes"] or config["sizes"]
    cases = {model: model_cases(config, model) for model in config["models"]}
    for model in config["models"]:
        if "contracting" in cases[model]:
            for size in config["sizes"]:
                todo.append(("scaling", model, "contracting", size, {}))
    for model in config["models"]:
        if "contracting" not in cases[model] or model not in config["sweep_size"]:
            continue
        size = config["sweep_size"][model]
        for readout in config["tau_readout_ms"][model]:
            todo.append(("tau_sweep", model, "contracting", size,
                         {"readout_ms": float(readout)}))
        for duration in config["durations"]:
            todo.append(("duration_sweep", model, "contracting", size,
                         {"duration": float(duration)}))
        if config["silence"]:
            todo.append(("silencing", model, "contracting", size, {}))
            todo.append(("silencing", model, "contracting", size,
                         {"silence": float(config["silence"])}))
    for model in config["models"]:
        for case in cases[model]:
            if case != "contracting":
                for size in case_sizes:
                    todo.append(("scaling", model, case, size, {}))
    return todo


def model_cases(config: dict[str, Any], model: str) -> list[str]:
    """The cases ``model`` runs: ``model_cases[model]`` where given, else ``cases``."""
    return (config.get("model_cases") or {}).get(model, config["cases"])


def goals(records: list[dict[str, Any]],
          slopes_: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model with a contracting record at `GOAL` size: that record's angle, the
    largest mean rate of its contracting records, the fitted slope of the angle,
    and whether all three meet `GOAL` (``met``)."""
    out = {}
    slope = {s["population"]: s["angle_deg"] for s in slopes_ if s["case"] == "contracting"}
    for model in dict.fromkeys(r["population"] for r in records):
        rows = [r for r in records if r["population"] == model and r["case"] == "contracting"]
        at = [r for r in rows if r["neurons_per_dim"] == GOAL["neurons_per_dim"]]
        if not at:
            continue
        entry = {"angle_deg": at[0]["angle_deg"],
                 "mean_rate_hz": max(r["mean_rate_hz"] for r in rows),
                 "slope": slope.get(model)}
        entry["met"] = bool(entry["angle_deg"] <= GOAL["angle_deg"]
                            and entry["mean_rate_hz"] <= GOAL["mean_rate_hz"]
                            and entry["slope"] is not None and entry["slope"] <= GOAL["slope"])
        out[model] = entry
    return out


def run(config, progress=True, stop=None):
    """Run the study (see the module); ``stop`` is looked at between settles.

    Returns
    -------
    dict
        ``scaling``, ``slopes``, ``tau_sweep``, ``duration_sweep``,
        ``silencing`` (per model: ``intact`` and ``silenced`` records and the
        angle ratio), ``settling``, ``cases`` (the widths of each case);
        after a stop request the parts done and ``interrupted``.
    """
    _check(config)
    study = Study(config)
    stats = SettleStats(config["settle_tol"])
    parts: dict[str, list[dict[str, Any]]] = {
        "scaling": [], "tau_sweep": [], "duration_sweep": [], "silencing": []}
    done_keys: dict[tuple[Any, ...], dict[str, Any]] = {}
    todo = jobs(config)
    done = len(todo)
    with Progress(total=len(todo), desc="spiking inversion", unit="settle",
                  disable=not progress) as bar:
        for index, (part, model, case, size, extra) in enumerate(todo):
            if stop_requested(stop):
                done = index
                break
            # The default readout and duration, unsilenced, are the scaling run itself.
            normal = {"readout_ms": float(DEFAULT_READOUT_MS[model]),
                      "duration": float(config["duration"]), "silence": 0.0}
            key = (model, case, size, tuple(sorted({**normal, **extra}.items())))
            if key in done_keys:
                record = dict(done_keys[key])
            else:
                record = study.measure(model, case, size, **extra)
                done_keys[key] = record
                stats.add(f"{model} {case}", record["residual"], record["unstable"])
            parts[part].append(record)
            bar.update(1)
    silencing = {}
    for model in config["models"]:
        rows = [r for r in parts["silencing"] if r["population"] == model]
        if len(rows) == 2:
            intact, silenced = rows
            silencing[model] = {"intact": intact, "silenced": silenced,
                                "fraction": silenced["silenced"],
                                "angle_ratio": silenced["angle_deg"] / intact["angle_deg"]}
    results = {
        "scaling": parts["scaling"],
        "slopes": slopes(parts["scaling"]),
        "goals": goals(parts["scaling"], slopes(parts["scaling"])),
        "tau_sweep": parts["tau_sweep"],
        "duration_sweep": parts["duration_sweep"],
        "silencing": silencing,
        "settling": stats.summary(),
        "cases": {**{case: {"d_l": d_out, "d_l_minus_1": d_in}
                     for case, (d_out, d_in) in PAIRS.items()},
                  "chain": {"widths": list(CHAIN_WIDTHS)}},
    }
    if done < len(todo):
        results["interrupted"] = stop.report(done, len(todo), "settles")
    return results


def figure(results):
    """Error against neurons per dimension, readout and duration sweeps, silencing."""
    from dinv.analysis.figures import spiking_inversion_figure

    return spiking_inversion_figure(results["scaling"], results["slopes"],
                                    results["tau_sweep"], results["duration_sweep"],
                                    results["silencing"])
