"""What every spiking population shares: neurons behind a representation group.

Where the spiking code lives (the docs' architecture page says the same):

- `dinv.circuits.populations`: the population-model protocol
  (`PopulationModel`; a spiking model's `Ensemble`, what its ``build``
  returns, `Neurons`).
- this module: the built neurons of any spiking population
  (`SpikingNeurons`), the decoding synapses, the representation model of a
  system or controller (`spiking_model`, with the checks every factory
  shares) and the radii (`layer_radii`, `chain_radii`).
- `dinv.circuits.scn`: spike-coding networks (``scn``).
- `dinv.circuits.nef`: NEF ensembles of any neuron model, the ensemble
  builder `neuron_population`, and ``lif`` as one instance of it.
- `dinv.circuits.neurons`: a neuron model written as Brian2 writes one
  (`NeuronModel`) and its rate curve measured by simulation (cached).
- `dinv.circuits.spiking_equations`: every Brian2 string of the above.
- `dinv.spiking` (no Brian2): neuron parameters, rate curves, NEF tuning
  and decoders; `dinv.spiking_reference`: the numpy loop of a layer pair
  the Brian2 populations are checked against, spike for spike.

A spiking block of width d keeps the interface of a rate block: a
*representation* group of one unit per represented dimension (n problems x
batch x d) holds the readout (decoded, filtered spikes) that couplings read,
the input they write, a controller's target and leak, and the per-unit
``radius`` (the range represented, default 1). Behind it, ``neurons_per_dim``
spiking neurons per unit read their unit's quantities through linked
variables, and each neuron's reset makes its unit's readout jump at its spike
(through the linked ``xhat_rep``; `dinv.circuits.spiking_equations`). Usage::

    settle_layer(W, B, delta, 0.1, system="scn", controller="scn", dt=0.002,
                 steps=20000, radius=layer_radii(W, B, delta, 0.1))
    settle_layer(W, B, delta, 0.1, system=lif_population("system", 128), ...)

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
- **Radius**: values beyond a block's radius are represented poorly (NEF
  neurons saturate at their maximal rates; SCN neurons then fire very
  fast); `layer_radii` and `chain_radii` pick radii from the closed form.
"""

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from brian2 import Synapses, linked_var, second
from numpy.typing import NDArray

from dinv.circuits.brian_internals import live_view
from dinv.circuits.populations import KINDS, Ensemble, PopulationModel
from dinv.errors import InputError
from dinv.hints import ArrayLike, FloatArray, IntArray, Time
from dinv.theory import (
    chain_steady_state,
    direct_steady_state,
    layer_steady_state,
    steady_control,
    target_chain_linear,
)
from dinv.validation import check_number


def check_kind(kind: str) -> str:
    """``kind`` checked to be 'system' or 'controller'."""
    if kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, got {kind!r}")
    return kind


def check_time(name: str, value: Time, allow_zero: bool = False) -> float:
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


def block_stream(seed: int, block: str, *extra: int) -> np.random.Generator:
    """The random stream of one population: its seed and its block's name (and
    ``extra`` integers for a second, independent stream)."""
    return np.random.default_rng([int(seed), zlib.crc32(block.encode()), *extra])


class SpikingNeurons:
    """The neurons built behind one representation group (`Ensemble.build`).

    Satisfies `dinv.circuits.populations.Neurons`.

    Parameters
    ----------
    neurons : brian2.NeuronGroup
        With the variables ``active`` (0: silenced) and ``count`` (spikes).
    synapses : brian2.Synapses or None
        The decoding synapses, where the resets do not decode the spikes (the
        SCN on Brian2's numpy target).
    blocks : sequence of (Block, int, int)
        As `Ensemble.build` gets them.
    per_dim : int
    rest : list of (str, float or ndarray)
        Neuron variables and their values at rest (an array: one value per
        neuron of the group).
    quiet : dict of str to (ndarray, float) or None
        Variables whose values a silenced neuron gives up: name -> (values
        of every neuron of the group, value while silenced). A silenced
        neuron never spikes (``active`` gates its threshold); these also keep
        its state from running away unreset (e.g. an NEF neuron's input).

    Attributes
    ----------
    objects : list
        The spiking ``NeuronGroup`` (and its decoding ``Synapses``, if any).
    group : brian2.NeuronGroup
        The spiking neurons (``neurons_per_dim`` per representation unit).
    ranges : dict of str to (int, int)
        Each block's neurons.
    shapes : dict of str to tuple
        Each block's (n, batch, d, neurons_per_dim).
    """

    def __init__(self, neurons: Any, synapses: Any, blocks: Sequence[tuple[Any, int, int]],
                 per_dim: int, rest: list[tuple[str, Any]],
                 quiet: dict[str, tuple[FloatArray, float]] | None = None):
        self.group = neurons
        self.objects = [neurons] + ([] if synapses is None else [synapses])
        self.ranges: dict[str, tuple[int, int]] = {}
        self.shapes: dict[str, tuple[int, int, int, int]] = {}
        for block, start, stop in blocks:
            self.ranges[block.name] = (start * per_dim, stop * per_dim)
            self.shapes[block.name] = (block.n, (stop - start) // (block.n * block.width),
                                       block.width, per_dim)
        self._rest = rest
        self._quiet = quiet or {}

    def _view(self, variable: str, name: str) -> Any:
        start, stop = self.ranges[name]
        return live_view(self.group, variable)[start:stop]

    def rest(self, name: str) -> None:
        """Neurons of block ``name`` at rest: no spike history, spike counts 0."""
        start, stop = self.ranges[name]
        for variable, values in self._rest:
            view = self._view(variable, name)
            value = values[start:stop] if np.ndim(values) and np.size(values) == len(
                self.group) else values  # per neuron of the group: this block's
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
            count = round(fraction * cells.size)
            for dim in range(d):
                keep[dim, rng.choice(cells, size=count, replace=False)] = 0.0
        active = np.tile(keep.ravel(), n * batch)
        self._view("active", name)[...] = active
        start, stop = self.ranges[name]
        for variable, (values, silent) in self._quiet.items():
            self._view(variable, name)[...] = np.where(active > 0, values[start:stop], silent)


def link_to_units(neurons: Any, group: Any, per_dim: int, *variables: str) -> None:
    """Link each neuron to its unit's ``variables`` (``<name>_rep``): neuron ``i`` belongs
    to unit ``i // per_dim`` of ``group``. A neuron's reset may write a linked variable
    of its unit (``xhat_rep``, the readout): the resets run neuron by neuron."""
    index = np.arange(len(neurons)) // per_dim
    for name in variables:
        setattr(neurons, f"{name}_rep", linked_var(group, name, index=index))


def decoding_synapses(neurons: Any, group: Any, weights: ArrayLike, per_dim: int, clock: Any,
                      codeobj_class: type | None, on_pre: str,
                      namespace: dict[str, Any] | None = None) -> Any:
    """One synapse per neuron onto its unit, running ``on_pre`` at the neuron's spikes
    (weights ``w_decode``); for a rule that cannot run in a vectorised reset."""
    synapses = Synapses(neurons, group, model="w_decode : 1 (constant)", on_pre=on_pre,
                        name=f"{group.name}_decode", clock=clock, namespace=namespace or {},
                        codeobj_class=codeobj_class)
    synapses.connect(i=np.arange(len(neurons)), j=np.arange(len(neurons)) // per_dim)
    synapses.w_decode = weights
    return synapses


FILTER_READOUTS = 2.0
"""The slow copy ``xbar`` judged at checks low-passes the readout with this many
readout (synapse) time constants."""

REPRESENTATION_REST = {"xbar": 0.0, "xsum": 0.0, "averaging": 0.0}
"""The representation variables every spiking model puts at rest (`AVERAGING`)."""


def spiking_model(kind: str, equations: dict[str, str], ensemble: Ensemble,
                  readout_tau: float, tau_name: str, description: str,
                  rest: dict[str, float] | None = None,
                  parameters: dict[str, float] | tuple[()] = ()) -> PopulationModel:
    """The representation model of a spiking population of ``kind``.

    The one place where a spiking family's factory (`dinv.circuits.scn`,
    `dinv.circuits.nef`) becomes a `PopulationModel`: the readout ``xhat``,
    the input ``I_in``, the time constant and, for a controller, ``target``
    and ``alpha``; the readout's time constant (named ``tau_name``) and the
    slow copy's filter in the namespace.

    Parameters
    ----------
    kind : {'system', 'controller'}
    equations : dict of str to str
        The representation equations by kind.
    ensemble : Ensemble
    readout_tau : float
        The readout's time constant (second).
    tau_name : str
        Its name in the equations (``tau_readout``, ``tau_synapse``).
    description : str
    rest : dict or None
        Representation variables at rest beyond `REPRESENTATION_REST`.
    parameters : dict or tuple
        Parameters of the representation equations (e.g. PID gains).

    Returns
    -------
    PopulationModel
    """
    check_kind(kind)
    if not isinstance(ensemble, Ensemble):
        raise InputError(f"ensemble must be an Ensemble, got {type(ensemble).__name__}")
    namespace = {tau_name: readout_tau * second,
                 "tau_filter": FILTER_READOUTS * readout_tau * second}
    common: dict[str, Any] = dict(
        readout="xhat", input="I_in", namespace=namespace, ensemble=ensemble,
        rest={**(rest or {}), **REPRESENTATION_REST}, parameters=parameters,
        description=description)
    if kind == "system":
        return PopulationModel(equations=equations["system"], tau="tau_system", kind="system",
                               **common)
    return PopulationModel(equations=equations["controller"], tau="tau_controller",
                           kind="controller", target="target", leak="alpha", **common)


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
    margin = check_number("margin", margin, low=0, low_open=True)
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
    margin = check_number("margin", margin, low=0, low_open=True)
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
    margin = check_number("margin", margin, low=0, low_open=True)
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
    margin = check_number("margin", margin, low=0, low_open=True)
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
