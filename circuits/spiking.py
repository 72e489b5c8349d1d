"""Spiking populations: spike-coding networks (``scn``) and LIF ensembles (``lif``).

Either model fills any population of any circuit (``system=``,
``controller=``, ``relay=``), mixed freely with rate populations::

    settle_layer(W, B, delta, 0.1, system="scn", controller="scn", dt=0.002,
                 steps=20000, radius=layer_radii(W, B, delta, 0.1))
    settle_layer(W, B, delta, 0.1, system=lif_population("system", 128), ...)

A spiking block of width d keeps the interface of a rate block: a
*representation* group of one unit per represented dimension (n problems x
batch x d) holds the readout (decoded, filtered spikes) that couplings read,
the input they write, a controller's target and leak, and the per-unit
``radius`` (the range represented, default 1). Behind it, ``neurons_per_dim``
spiking neurons per unit read their unit's quantities through linked
variables, and a ``Synapses`` object (one synapse per neuron, ``on_pre``)
makes the unit's readout jump at each spike. Equations:
`dinv.circuits.spiking_equations`; the model and its parameters:
`dinv.spiking`.

Choices (and why):

- **Neuron parameters** are drawn once per population (block) from its own
  stream, ``default_rng([seed, crc32(block name)])``, and tiled over the
  problems and samples: every problem and sample of a block is represented
  by the same neurons, so problems of a stack compare like with like, and
  the same seed gives the same neurons (and, without noise, the same spikes).
- **Settled value**: the time average of the readout over the last
  ``average_fraction`` of each run (phase), kept as a running integral in
  the representation group and switched on by the run controller; the
  residual of a spiking block is the drift of that average between the two
  halves of the window (`dinv.circuits.settling`), so a circuit that has
  settled in the average does not warn.
- **dt**: spiking needs small steps; a circuit whose step exceeds a
  population's `Ensemble.max_dt` refuses to build (`InputError` naming a
  suitable ``dt``) rather than give wrong numbers.
- **Radius**: values beyond a block's radius are represented poorly (LIF
  neurons saturate at their maximal rates; SCN neurons then fire very
  fast); `layer_radii` and `chain_radii` pick radii from the closed form.
"""

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import NeuronGroup, Synapses, linked_var, ms, second
from numpy.typing import NDArray

from dinv.circuits import spiking_equations as eq
from dinv.circuits.brian_internals import expect_sequential_spike_rule, live_view
from dinv.circuits.populations import (
    KINDS,
    Ensemble,
    PopulationFamily,
    PopulationModel,
    register_population_model,
)
from dinv.errors import InputError
from dinv.hints import ArrayLike, FloatArray, IntArray, Time
from dinv.spiking import lif_parameters, scn_parameters
from dinv.theory import (
    chain_steady_state,
    direct_steady_state,
    layer_steady_state,
    steady_control,
    target_chain_linear,
)


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or not value > 0:
        raise InputError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _seconds(name: str, value: Time, allow_zero: bool = False) -> float:
    """A time given as a Brian2 quantity (or seconds), as float seconds."""
    try:
        seconds = float(value / second) if hasattr(value, "dim") else float(value)
    except Exception:  # noqa: BLE001 - a quantity of other units raises one of several types
        raise InputError(f"{name} must be a time, e.g. 10*ms; got {value!r}") from None
    if hasattr(value, "dim") and value.dim != second.dim:
        raise InputError(f"{name} must be a time, e.g. 10*ms; got {value!r}")
    if not np.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise InputError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"time, got {value!r}")
    return seconds


def _count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) \
            or int(value) != value or value < minimum:
        raise InputError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return int(value)


def _stream(seed: int, block: str) -> np.random.Generator:
    """The random stream of one population: its seed and its block's name."""
    return np.random.default_rng([int(seed), zlib.crc32(block.encode())])


class SpikingNeurons:
    """The neurons built behind one representation group (`Ensemble.build`).

    Attributes
    ----------
    objects : list
        The spiking ``NeuronGroup`` and its decoding ``Synapses``.
    group : brian2.NeuronGroup
        The spiking neurons (``neurons_per_dim`` per representation unit).
    ranges : dict of str to (int, int)
        Each block's neurons.
    shapes : dict of str to tuple
        Each block's (n, batch, d, neurons_per_dim).
    """

    def __init__(self, neurons: Any, synapses: Any, blocks: Sequence[tuple[Any, int, int]],
                 per_dim: int, rest: list[tuple[str, Any]]):
        self.group = neurons
        self.objects = [neurons, synapses]
        self.ranges: dict[str, tuple[int, int]] = {}
        self.shapes: dict[str, tuple[int, int, int, int]] = {}
        for block, start, stop in blocks:
            self.ranges[block.name] = (start * per_dim, stop * per_dim)
            self.shapes[block.name] = (block.n, (stop - start) // (block.n * block.width),
                                       block.width, per_dim)
        self._rest = rest
        self._active = live_view(neurons, "active")

    def _view(self, variable: str, name: str) -> Any:
        start, stop = self.ranges[name]
        return live_view(self.group, variable)[start:stop]

    def rest(self, name: str) -> None:
        """Neurons of block ``name`` at rest: no spike history, spike counts 0."""
        start, stop = self.ranges[name]
        for variable, value in self._rest:
            view = self._view(variable, name)
            if np.ndim(value) and np.size(value) == len(self.group):
                value = value[start:stop]  # per neuron of the group: this block's
            view[...] = value if np.ndim(value) == 0 else np.tile(
                value, view.size // np.size(value))
        self._view("count", name)[...] = 0
        if "lastspike" in self.group.variables:  # a refractory model
            self._view("lastspike", name)[...] = -1e9
            self._view("not_refractory", name)[...] = True

    def counts(self, name: str) -> IntArray:
        """Spikes per neuron of block ``name`` since its last rest, (n, batch, d, K)."""
        return self._view("count", name).reshape(self.shapes[name]).copy()

    def active(self, name: str) -> NDArray[np.bool_]:
        """Which neurons of block ``name`` may spike (bool, (n, batch, d, K))."""
        return self._view("active", name).reshape(self.shapes[name]) > 0

    def silence(self, name: str, fraction: float, rng: np.random.Generator) -> None:
        """Silence ``fraction`` of the neurons of each sign of every dimension.

        The same neurons of the population's draw are silenced for every
        problem and sample; ``fraction`` 0 brings every neuron back.
        """
        n, batch, d, per_dim = self.shapes[name]
        keep = np.ones((d, per_dim))
        for sign in (0, 1):
            cells = np.arange(sign, per_dim, 2)
            count = int(round(fraction * cells.size))
            for dim in range(d):
                keep[dim, rng.choice(cells, size=count, replace=False)] = 0.0
        self._view("active", name)[...] = np.tile(keep.ravel(), n * batch)


@dataclass(frozen=True)
class SCNEnsemble(Ensemble):
    """Spike-coding neurons behind a representation group (Boerlin et al. 2013).

    Times in seconds; see `scn_population` for the meaning and defaults.
    """

    neurons_per_dim: int = 32
    tau_readout: float = 0.02
    refractory: float = 0.0
    seed: int = 0
    decoder_scale: float = 1.0
    spread: float = 0.25
    cost: float = 0.5
    noise: float = 0.0
    tau_noise: float = 0.002
    steps_per_readout: float = 1000.0

    @property
    def random(self) -> bool:
        """Whether the neurons draw random numbers (voltage noise): then each run
        seeds Brian2's generator (`dinv.circuits.runner.seeded_noise`)."""
        return self.noise > 0

    def max_dt(self) -> float:
        """tau_readout / steps_per_readout: spikes fall on steps, so the coding
        error drifts for up to a step before a spike can answer it (a
        conservative limit: see `scn_population`)."""
        return self.tau_readout / self.steps_per_readout

    def build(self, group: Any, blocks: Sequence[tuple[Any, int, int]], clock: Any,
              codeobj_class: type | None) -> SpikingNeurons:
        """See `Ensemble.build`."""
        per_dim = self.neurons_per_dim
        size = len(group) * per_dim
        noisy = self.noise > 0
        decoder = np.empty(size)
        mu = sigma = 0.0
        for block, start, stop in blocks:
            drawn = scn_parameters(block.width, per_dim, _stream(self.seed, block.name),
                                   self.decoder_scale, self.spread, self.cost, self.noise)
            decoder[start * per_dim:stop * per_dim] = np.tile(
                drawn.decoder, (stop - start) // block.width)
            mu, sigma = drawn.mu, drawn.noise
        neurons, synapses = scn_neurons(group, decoder, per_dim, mu, sigma, self.tau_readout,
                                        self.refractory, self.tau_noise, clock, codeobj_class)
        rest = [("r", 0.0), ("ready", 0.0)] + ([("eta", 0.0)] if noisy else [])
        return SpikingNeurons(neurons, synapses, blocks, per_dim, rest)


@dataclass(frozen=True)
class LIFEnsemble(Ensemble):
    """LIF neurons with least-squares decoders behind a representation group (NEF).

    Times in seconds; see `lif_population` for the meaning and defaults.
    """

    neurons_per_dim: int = 64
    tau_synapse: float = 0.01
    max_rates: tuple[float, ...] = (100.0, 200.0)
    intercepts: tuple[float, ...] = (-1.0, 0.9)
    tau_rc: float = 0.02
    tau_ref: float = 0.002
    seed: int = 0
    regularisation: float = 0.02
    steps_per_refractory: float = 20.0
    random = False

    def max_dt(self) -> float:
        """tau_ref / steps_per_refractory: spike times (and so rates, which the
        decoders assume) are quantised to dt."""
        return self.tau_ref / self.steps_per_refractory

    def build(self, group: Any, blocks: Sequence[tuple[Any, int, int]], clock: Any,
              codeobj_class: type | None) -> SpikingNeurons:
        """See `Ensemble.build`."""
        per_dim = self.neurons_per_dim
        size = len(group) * per_dim
        values = {k: np.empty(size) for k in ("gain", "bias", "encoder", "decoder", "v0")}
        for block, start, stop in blocks:
            rng = _stream(self.seed, block.name)
            drawn = lif_parameters(block.width, per_dim, rng, self.max_rates,
                                   self.intercepts, self.tau_rc, self.tau_ref,
                                   self.regularisation)
            drawn_v0 = rng.uniform(0.0, 1.0, block.width * per_dim)
            reps = (stop - start) // block.width
            cells = slice(start * per_dim, stop * per_dim)
            for key, value in (("gain", drawn.gain), ("bias", drawn.bias),
                               ("encoder", drawn.encoder), ("decoder", drawn.decoder),
                               ("v0", drawn_v0)):
                values[key][cells] = np.tile(value, reps)
        neurons, synapses = lif_neurons(group, values["gain"], values["bias"], values["encoder"],
                                        values["decoder"], per_dim, self.tau_synapse,
                                        self.tau_rc, self.tau_ref, clock, codeobj_class)
        # Membrane potentials start spread (seeded): not all tonic neurons at once.
        return SpikingNeurons(neurons, synapses, blocks, per_dim, [("v", values["v0"])])


def scn_neurons(group: Any, decoder: FloatArray, per_dim: int, mu: float, sigma: float | None,
                tau_readout: float, refractory: float, tau_noise: float, clock: Any,
                codeobj_class: type | None) -> tuple[Any, Any]:
    """The spike-coding neurons behind representation ``group`` and their decoding synapses.

    Shared by the circuits (`SCNEnsemble`) and the pair built from Brian2
    objects alone (`dinv.circuits.standalone`). The neurons have their
    group's ``order`` and the name ``<group>_spikes``: Brian2 resolves ties
    by name, so they integrate just before their group, from the readout at
    the start of the step (what `dinv.spiking_reference` mirrors).

    Parameters
    ----------
    group : brian2.NeuronGroup
        Representation units (``coding_error``, ``xhat``, ``radius``).
    decoder : ndarray
        Decoder of every neuron, ``per_dim`` consecutive neurons per unit.
    per_dim : int
    mu, sigma : float
        Rate cost and voltage noise (sigma 0 or None: no noise).
    tau_readout, refractory, tau_noise : float
        Seconds.
    clock : brian2.Clock
    codeobj_class : type or None

    Returns
    -------
    (brian2.NeuronGroup, brian2.Synapses)
    """
    noisy = bool(sigma)
    namespace = {"mu": mu, "tau_readout": tau_readout * second, "t_ref": refractory * second}
    if noisy:
        namespace.update(sigma=sigma, tau_noise=tau_noise * second)
    neurons = NeuronGroup(
        len(decoder), eq.scn_neurons(noisy), threshold=eq.SCN_THRESHOLD, reset=eq.SCN_RESET,
        method="euler", name=f"{group.name}_spikes", clock=clock, order=group.order,
        namespace=namespace, codeobj_class=codeobj_class)
    neurons.coding_error_rep = linked_var(group, "coding_error",
                                          index=np.arange(len(decoder)) // per_dim)
    neurons.decoder = decoder
    neurons.active = 1.0
    synapses = _decoding(neurons, group, decoder, per_dim, clock, codeobj_class,
                         on_pre=eq.scn_on_pre(noisy), namespace=namespace)
    expect_sequential_spike_rule()
    return neurons, synapses


def lif_neurons(group: Any, gain: FloatArray, bias: FloatArray, encoder: FloatArray,
                decoder: FloatArray, per_dim: int, tau_synapse: float, tau_rc: float,
                tau_ref: float, clock: Any, codeobj_class: type | None) -> tuple[Any, Any]:
    """The LIF neurons behind representation ``group`` and their decoding synapses.

    Shared like `scn_neurons`. ``decoder`` in seconds (least-squares decoders
    of rates); times in seconds. Membranes start at 0.

    Returns
    -------
    (brian2.NeuronGroup, brian2.Synapses)
    """
    neurons = NeuronGroup(
        len(decoder), eq.LIF_NEURONS, threshold=eq.LIF_THRESHOLD, reset=eq.LIF_RESET,
        refractory=tau_ref * second, method="euler", name=f"{group.name}_spikes",
        clock=clock, order=group.order,
        namespace={"tau_rc": tau_rc * second, "tau_synapse": tau_synapse * second},
        codeobj_class=codeobj_class)
    neurons.encoded_rep = linked_var(group, "encoded", index=np.arange(len(decoder)) // per_dim)
    neurons.gain = gain
    neurons.bias = bias
    neurons.encoder = encoder
    neurons.active = 1.0
    synapses = _decoding(neurons, group, np.asarray(decoder) / tau_synapse, per_dim, clock,
                         codeobj_class)
    return neurons, synapses


def _decoding(neurons: Any, group: Any, weights: FloatArray, per_dim: int, clock: Any,
              codeobj_class: type | None, on_pre: str = eq.DECODE,
              namespace: dict[str, Any] | None = None) -> Any:
    """One synapse per neuron onto its unit; ``on_pre`` (default: a spike adds ``radius *
    w`` to the readout)."""
    synapses = Synapses(neurons, group, model="w : 1 (constant)", on_pre=on_pre,
                        name=f"{group.name}_decode", clock=clock, namespace=namespace or {},
                        codeobj_class=codeobj_class)
    synapses.connect(i=np.arange(len(neurons)), j=np.arange(len(neurons)) // per_dim)
    synapses.w = weights
    return synapses


FILTER_READOUTS = 2.0
"""The slow copy ``xbar`` judged at checks low-passes the readout with this many
readout (synapse) time constants."""


def _filter_namespace(tau: float) -> dict[str, Any]:
    return {"tau_filter": FILTER_READOUTS * tau * second}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, got {kind!r}")


def _pid(kp: float, kd: float, filter_ratio: float) -> dict[str, float] | None:
    """PID parameters (None without gains: the plain controller equations)."""
    values = {"kp": kp, "kd": kd, "filter_ratio": filter_ratio}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not np.isfinite(value):
            raise InputError(f"{name} must be a finite number, got {value!r}")
    if not filter_ratio > 0:
        raise InputError(f"filter_ratio must be positive, got {filter_ratio!r}")
    if kp == 0 and kd == 0:
        return None
    return {"k_p": float(kp), "k_d": float(kd), "filter_ratio": float(filter_ratio)}


def scn_population(kind: str = "system", neurons_per_dim: int = 32, tau_readout: Time = 20 * ms,
                   refractory: Time = 0 * ms, seed: int = 0, decoder_scale: float = 1.0,
                   cost: float = 0.5, noise: float = 0.0, spread: float = 0.25,
                   tau_noise: Time = 2 * ms, kp: float = 0.0, kd: float = 0.0,
                   filter_ratio: float = 1.0) -> PopulationModel:
    """A spike-coding population (Boerlin, Machens & Deneve 2013) of ``kind``.

    Per represented dimension, ``neurons_per_dim`` neurons with signed
    one-dimensional decoders (half positive, half negative) keep the readout
    xhat (their filtered, decoded spikes) near the ideal state y, which
    integrates the population's own dynamics at the readout (system:
    ``tau_s dy/dt = -xhat + B u``; controller: ``tau_c dy/dt = -alpha uhat +
    W delta_{l-1} - delta_l``). Because y stays within about a decoder step of
    xhat, the time average of xhat satisfies the rate equations' steady state
    up to a boundary term that falls as 1 / (neurons_per_dim x window): no bias.

    Parameters
    ----------
    kind : {'system', 'controller'}
    neurons_per_dim : int
        Neurons per represented dimension (>= 2, even keeps ON and OFF equal).
    tau_readout : brian2.Quantity
        Decay of the readout (and of each neuron's rate trace). 20 ms (the
        reference numpy SCN's lambda_d = 50/s): a unit needs about
        |x| / (R |decoder| tau_readout) spikes per second, i.e. 14-15 Hz per
        neuron on average on the reference case at the default radius. The
        step must be at most tau_readout / 1000 (0.02 ms, dt = 0.002 at
        tau = 10 ms). (The sequential spike rule, `dinv.spiking`, would
        allow coarser steps: on the reference case at 64 per dimension,
        dt = 0.05 tau gave 0.08 degrees against 0.019 at 0.002.)
    refractory : brian2.Quantity
        Refractory period (0: none; the rate cost already spreads spikes).
    seed : int
        Seed of the decoders (one draw per population, see the module).
    decoder_scale : float
        |decoder| x neurons_per_dim in units of the radius (1: the readout
        moves in steps of about R / neurons_per_dim).
    cost : float
        Quadratic rate cost mu in units of the mean squared decoder (0.5:
        without it neurons fire wastefully, 500-800 Hz at the top).
    noise : float
        Voltage noise (Ornstein-Uhlenbeck, std in units of the mean decoder,
        correlation time ``tau_noise``); 0 (default) makes runs deterministic.
        With noise, each run seeds Brian2's generator with ``seed``, so spikes
        are reproducible (`dinv.circuits.runner.seeded_noise`). The threshold
        is about 0.75 / neurons_per_dim mean decoders: at 16 per dimension,
        noise 0.01 leaves rates at 25 Hz, 0.03 raises them to 63 Hz and 0.1
        to 230 Hz (noise-driven spikes).
    spread : float
        Heterogeneity of the decoder magnitudes (0 <= spread < 1).
    tau_noise : brian2.Quantity
    kp, kd, filter_ratio : float
        Controllers only: PID gains as in
        `dinv.circuits.populations.pid_controller` (scalars; same filtered
        derivatives), in the dynamics of y. 0, 0: the leaky integral (Eq. 8).

    Returns
    -------
    PopulationModel
    """
    _check_kind(kind)
    per_dim = _count("neurons_per_dim", neurons_per_dim, 2)
    ensemble = SCNEnsemble(
        neurons_per_dim=per_dim, tau_readout=_seconds("tau_readout", tau_readout),
        refractory=_seconds("refractory", refractory, allow_zero=True),
        seed=_count("seed", seed, 0), decoder_scale=_positive("decoder_scale", decoder_scale),
        spread=float(spread), cost=float(cost), noise=float(noise),
        tau_noise=_seconds("tau_noise", tau_noise))
    # Validate the neuron parameters now (scn_parameters checks them).
    scn_parameters(1, per_dim, np.random.default_rng(0), ensemble.decoder_scale,
                   ensemble.spread, ensemble.cost, ensemble.noise)
    namespace = {"tau_readout": ensemble.tau_readout * second,
                 **_filter_namespace(ensemble.tau_readout)}
    pid = _pid(kp, kd, filter_ratio) if kind == "controller" else _pid(kp, kd, 1.0)
    if kind == "system" and pid is not None:
        raise InputError("PID gains (kp, kd) are for controllers; pass kind='controller'")
    label = (f"spike-coding network, {per_dim} neurons/dim, readout "
             f"{ensemble.tau_readout * 1e3:g} ms")
    common: dict[str, Any] = dict(
        readout="xhat", input="I_in", namespace=namespace, ensemble=ensemble,
        rest={"y": 0.0, "xbar": 0.0, "xsum": 0.0, "averaging": 0.0})
    if kind == "system":
        return PopulationModel(equations=eq.SCN_SYSTEM, tau="tau_system", kind="system",
                               description=label, **common)
    if pid is not None:
        common["rest"] = {**common["rest"], "e_f": 0.0, "rate_f": 0.0}
        return PopulationModel(equations=eq.SCN_PID_CONTROLLER, tau="tau_controller",
                               kind="controller", target="target", leak="alpha",
                               parameters=pid, description=f"{label}, PID k_p={kp:g} "
                               f"k_d={kd:g}", **common)
    return PopulationModel(equations=eq.SCN_CONTROLLER, tau="tau_controller",
                           kind="controller", target="target", leak="alpha",
                           description=label, **common)


def lif_population(kind: str = "system", neurons_per_dim: int = 64, tau_synapse: Time = 10 * ms,
                   max_rates: tuple[float, float] = (100.0, 200.0),
                   intercepts: tuple[float, float] = (-1.0, 0.9), tau_rc: Time = 20 * ms,
                   tau_ref: Time = 2 * ms, seed: int = 0,
                   regularisation: float = 0.02) -> PopulationModel:
    """A LIF ensemble with least-squares decoders (Neural Engineering Framework).

    One one-dimensional ensemble of ``neurons_per_dim`` heterogeneous LIF
    neurons per represented dimension (encoders +1 and -1), decoded through
    an exponential synapse ``tau_synapse``; the neurons encode
    ``(1 - tau/tau_pop) xhat + (tau/tau_pop) input`` (controller: leak and
    error as in Eq. 8) so that the readout follows the population's dynamics
    on average (`dinv.spiking`). The fixed decoding error enters the loop
    amplified by the controller's integration; it falls about as
    1 / neurons_per_dim.

    Parameters
    ----------
    kind : {'system', 'controller'}
    neurons_per_dim : int
        Neurons per represented dimension (>= 2).
    tau_synapse : brian2.Quantity
        Synaptic (readout) time constant; 10 ms (5 ms was 2-2.5x worse in
        Nengo: the recurrent decoding error enters scaled by tau_pop / tau).
    max_rates : (float, float)
        Range of rates (Hz) at |x| = radius (100-200 Hz: mean rates below 100 Hz).
    intercepts : (float, float)
        Where neurons start to fire, in units of the radius (Nengo's U(-1, 0.9)).
    tau_rc, tau_ref : brian2.Quantity
        Membrane time constant and refractory period (Nengo: 20 ms, 2 ms).
    seed : int
        Seed of gains, biases and decoders (one draw per population).
    regularisation : float
        L2 regularisation of the decoders relative to the largest rate. 0.02,
        not Nengo's 0.1: the time-averaged readout is limited by the fixed
        decoding error, which regularisation raises (on the reference case
        of the spiking study: 0.1 gave 2.7 / 1.4 / 0.45 degrees at 16 / 64 / 256
        neurons per dimension, slope -0.66; 0.02 gave 2.0 / 0.72 / 0.24,
        slope -0.77; 0.01 gave 3.1 / 0.61 / 0.22, noisier at 16).

    Returns
    -------
    PopulationModel
    """
    _check_kind(kind)
    per_dim = _count("neurons_per_dim", neurons_per_dim, 2)
    ensemble = LIFEnsemble(
        neurons_per_dim=per_dim, tau_synapse=_seconds("tau_synapse", tau_synapse),
        max_rates=tuple(float(v) for v in max_rates),
        intercepts=tuple(float(v) for v in intercepts), tau_rc=_seconds("tau_rc", tau_rc),
        tau_ref=_seconds("tau_ref", tau_ref), seed=_count("seed", seed, 0),
        regularisation=float(regularisation))
    lif_parameters(1, per_dim, np.random.default_rng(0), ensemble.max_rates,
                   ensemble.intercepts, ensemble.tau_rc, ensemble.tau_ref,
                   ensemble.regularisation, eval_points=10)
    namespace = {"tau_synapse": ensemble.tau_synapse * second,
                 **_filter_namespace(ensemble.tau_synapse)}
    label = (f"LIF ensemble (NEF), {per_dim} neurons/dim, synapse "
             f"{ensemble.tau_synapse * 1e3:g} ms")
    common: dict[str, Any] = dict(
        readout="xhat", input="I_in", namespace=namespace, ensemble=ensemble,
        rest={"xbar": 0.0, "xsum": 0.0, "averaging": 0.0}, description=label)
    if kind == "system":
        return PopulationModel(equations=eq.LIF_SYSTEM, tau="tau_system", kind="system",
                               **common)
    return PopulationModel(equations=eq.LIF_CONTROLLER, tau="tau_controller",
                           kind="controller", target="target", leak="alpha", **common)


SCN = PopulationFamily(scn_population("system"), scn_population("controller"),
                       "spike-coding network (Boerlin et al. 2013), 32 neurons/dim")
"""The default spike-coding populations (``system='scn'``, ``controller='scn'``)."""

LIF = PopulationFamily(lif_population("system"), lif_population("controller"),
                       "LIF ensemble with decoders (NEF), 64 neurons/dim")
"""The default LIF ensembles (``system='lif'``, ``controller='lif'``)."""

register_population_model("scn", SCN)
register_population_model("lif", LIF)


# ------------------------------------------------------------------- radii
def _radius(values: FloatArray, margin: float, per_unit: bool, floor: float) -> FloatArray:
    """margin x the largest |value| per problem (n, 1) or per problem and unit (n, d)."""
    peak = np.abs(values).max(axis=1)  # over the batch: (n, d)
    if not per_unit:
        peak = peak.max(axis=1, keepdims=True)
    return margin * np.maximum(peak, floor)


def layer_radii(W: ArrayLike, B: ArrayLike, delta: ArrayLike, alpha: ArrayLike,
                margin: float = 1.5, per_unit: bool = False,
                floor: float = 1e-6) -> dict[str, FloatArray]:
    """Radii of a layer pair's blocks from its closed form (Eq. 10).

    Parameters
    ----------
    W, B, delta, alpha
        As in `dinv.circuits.layer.settle_layer` (stacked or not).
    margin : float
        Radius = margin x the largest steady-state component (1.5, as the
        Nengo reference); transients overshoot the steady state a little.
    per_unit : bool
        One radius per unit (shape (n, d)) instead of one per problem (n, 1).
    floor : float
        Smallest radius (a zero steady state would give radius 0).

    Returns
    -------
    dict
        ``{'system': ..., 'controller': ...}``, each (n, 1) or (n, d), for the
        ``radius=`` of `settle_layer`.
    """
    from dinv.validation import layer_problem

    p = layer_problem(W, B, delta, alpha)
    assert p.B is not None  # layer_problem refuses a missing B (need_b)
    u = steady_control(p.W, p.B, p.delta, p.alpha)
    settled = layer_steady_state(p.W, p.B, p.delta, p.alpha)
    margin = _positive("margin", margin)
    return {"system": _radius(settled, margin, per_unit, floor),
            "controller": _radius(u, margin, per_unit, floor)}


def chain_radii(weights: Sequence[ArrayLike], feedback: Sequence[ArrayLike], delta: ArrayLike,
                alpha: ArrayLike, gains: Sequence[FloatArray] | None = None,
                margin: float = 1.5, per_unit: bool = False,
                floor: float = 1e-6) -> dict[str, FloatArray]:
    """Radii of a sequential or repeat chain's blocks from its closed form (Eq. 17).

    Parameters as in `dinv.circuits.chains.settle_chain` (stacked arrays,
    weights W_1 .. W_L); ``margin``, ``per_unit`` and ``floor`` as in
    `layer_radii`.

    Returns
    -------
    dict
        By block name: ``d{l}`` (systems, their un-gained steady state) and
        ``u{l}`` (controllers), for the ``radius=`` of `settle_chain`.
    """
    margin = _positive("margin", margin)
    forward = [np.asarray(w, dtype=float) for w in weights[1:]]
    back = [np.asarray(b, dtype=float) for b in feedback]
    deltas = chain_steady_state(forward, back, np.asarray(delta, dtype=float), alpha, gains)
    pairs = len(forward)
    leaks = np.broadcast_to(np.asarray(alpha, dtype=float).reshape(
        (-1, 1) if np.ndim(alpha) == 1 else np.shape(alpha) or (1, 1)), (deltas[0].shape[0],
                                                                         pairs))
    radii = {}
    for j in range(pairs):  # layer l = j + 2: target delta_l
        target = deltas[j + 1] if j + 1 < pairs else np.asarray(delta, dtype=float)
        u = steady_control(forward[j], back[j], target, leaks[:, j])
        radii[f"u{j + 2}"] = _radius(u, margin, per_unit, floor)
        radii[f"d{j + 1}"] = _radius(np.einsum("nij,nbj->nbi", back[j], u), margin,
                                     per_unit, floor)
    return radii


def direct_radii(weights: list[np.ndarray], feedback: list[np.ndarray], delta: np.ndarray,
                 alpha: ArrayLike, kp: float = 0.0, slopes: list[np.ndarray] | None = None,
                 margin: float = 1.5, per_unit: bool = False, floor: float = 1e-6
                 ) -> dict[str, np.ndarray]:
    """Radii of the direct (DFC) chain's blocks from its linearised steady state.

    Parameters
    ----------
    weights : list of ndarray
        W_1 .. W_L, each (n, d_l, d_(l-1)).
    feedback : list of ndarray
        Q_1 .. Q_(L-1), each (n, d_l, d_L).
    delta : ndarray, shape (n, batch, d_L)
    alpha : float or ndarray
        One leak, or one per problem ((n,) or (n, 1)).
    kp : float
        The controller's proportional gain.
    slopes : list of ndarray or None
        g'(a_1) .. g'(a_(L-1)), each (n, batch, d_l); None: ones.
    margin, per_unit, floor
        As in `layer_radii`.

    Returns
    -------
    dict
        By block name: ``h{l}`` (the hidden layers' deviations) and ``u{L}``
        (the controller; its steady state in the circuits' sign), for the
        ``radius=`` of `dinv.circuits.chains.settle_chains`.
    """
    margin = _positive("margin", margin)
    weights = [np.asarray(w, dtype=float) for w in weights[1:]]
    feedback = [np.asarray(q, dtype=float) for q in feedback]
    leak = np.asarray(alpha, dtype=float).reshape(-1)
    leak = leak if leak.size > 1 else leak[0]
    _, u = direct_steady_state(weights, feedback, np.asarray(delta, dtype=float), leak, kp,
                               slopes)
    radii = {f"u{len(weights) + 1}": _radius(u, margin, per_unit, floor)}
    x = None
    for l, q in enumerate(feedback):
        own = np.einsum("nij,nbj->nbi", q, u)
        if x is not None:
            forward = x if slopes is None else x * slopes[l - 1]
            own = own + np.einsum("nij,nbj->nbi", weights[l - 1], forward)
        x = own
        radii[f"h{l + 1}"] = _radius(x, margin, per_unit, floor)
    return radii


def target_radii(weights: list[np.ndarray], feedback: list[np.ndarray], delta: np.ndarray,
                 alpha: ArrayLike, slopes: list[np.ndarray] | None = None, margin: float = 1.5,
                 per_unit: bool = False, floor: float = 1e-6) -> dict[str, np.ndarray]:
    """Radii of the blocks of a chain of targets (DI of targets) from its linearised
    steady state (`dinv.theory.target_chain_linear`).

    Parameters as in `chain_radii`, with ``slopes`` g'(a_1) .. g'(a_(L-1)) (each (n,
    batch, d_l); None: ones) in place of gains.

    Returns
    -------
    dict
        By block name: ``d{l}`` (the deviations x_l) and ``u{l}`` (the controllers,
        u_l = (D_l W_l B_l - alpha I)^-1 x_l; the output's without D).
    """
    margin = _positive("margin", margin)
    weights = [np.asarray(w, dtype=float) for w in weights[1:]]
    feedback = [np.asarray(b, dtype=float) for b in feedback]
    delta = np.asarray(delta, dtype=float)
    states = target_chain_linear(weights, feedback, delta, alpha, slopes)
    pairs = len(weights)
    leaks = np.broadcast_to(np.asarray(alpha, dtype=float).reshape(
        (-1, 1) if np.ndim(alpha) == 1 else np.shape(alpha) or (1, 1)), (delta.shape[0], pairs))
    radii = {}
    for j in range(pairs):  # layer pair (W_{j+2}, B_{j+2}): u_{j+2} drives d_{j+1}
        upper = states[j + 1] if j + 1 < pairs else delta
        A = (weights[j] @ feedback[j])[:, None]                      # (n, 1, d, d)
        if j + 1 < pairs and slopes is not None:
            A = slopes[j + 1][..., :, None] * A                      # (n, batch, d, d)
        A = A - leaks[:, j, None, None, None] * np.eye(A.shape[-1])
        control = np.linalg.solve(A, upper[..., None])[..., 0]
        radii[f"d{j + 1}"] = _radius(states[j], margin, per_unit, floor)
        radii[f"u{j + 2}"] = _radius(control, margin, per_unit, floor)
    return radii
