"""Chained inversions through a deep network (Fig. 2): three architectures.

For a network with weights W_1 .. W_L the backward pass maps the output error
delta_L to the errors delta_1 .. delta_{L-1} of the hidden layers.

``sequential`` (Fig. 2A)
    One layer pair at a time, from the output down: controller u_l (layer l)
    drives system delta_{l-1} (layer l-1) until it settles; then delta_{l-1}
    (times ``gains[l-1]``, the g'(a_{l-1}) of Eq. 17) is held fixed as the
    target of the next pair. One Brian2 run per layer pair, one Network.
``repeat`` (Fig. 2B)
    Every hidden layer has two populations: A (a system, controlled from
    above) and B (the controller of the layer below), joined by an identity
    relay with gain g'(a_l): B's target is ``gain * A``. The whole backward
    pass settles in one run; its steady state equals the sequential one.
``single-loop`` (SLDI, Fig. 2C)
    The output controller drives the first hidden layer through feedback B
    (d_1 x d_L); its readout is the forward transformation through all layers
    in between, carried by fast relay populations
    ``tau dh_l/dt = -h_l + W_l g(h_{l-1})``, with the nonlinear controller of
    Eq. (14): ``tau du/dt = -alpha u + W_L g(h_{L-1}) - delta_L``. The hidden
    errors are the settled states of the first-layer and relay populations.

With ``transfers`` the sequential and repeat circuits use the nonlinear
controller of Eq. (14) on every layer (readout ``W_l g_{l-1}(delta_{l-1})``)
and no gains, as in Eq. (16).

Inversion of targets (``ChainSpec(targets=True)``, `di-targets`)
    The sequential or repeat chain whose systems hold deviations x_{l-1} =
    h_{l-1} - target_{l-1} of the forward pass's activities; each controller
    reads out the deviation of its own layer's activity through g_l at the
    forward pass's pre-activation a_l (the problem's ``offsets``):
    ``tau du_l/dt = -alpha u_l + g_l(a_l) - g_l(a_l - W_l x_{l-1}) - x_l``
    (`dinv.theory.target_layer_rhs`; the output's readout is linear). The
    settled deviations are the hidden errors, without a further g'. Linear
    transfers: the chain of errors without gains.
``direct`` (direct feedback control, DFC; Meulemans et al. 2021)
    One output controller u_L (integral with leak and, with ``kp``, a
    proportional part: `dinv.circuits.populations.direct_controller`) feeds
    every hidden layer through Q_l while the forward dynamics run::

        tau dx_1/dt = -x_1 + Q_1 u,
        tau dx_l/dt = -x_l + W_l [g(a_{l-1}) - g(a_{l-1} - x_{l-1})] + Q_l u,
        e = delta_L - W_L [g(a_{L-1}) - g(a_{L-1} - x_{L-1})]

    (`dinv.theory.direct_rhs`; the hidden layers beyond the first sum two
    inputs, `dinv.circuits.populations.with_forward_input`). The controller
    is the circuits' (error = readout - target), so the feedback pathways
    carry -Q_l. The hidden errors are the feedback's parts Q_l u at rest.
"""

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from brian2 import ms

from dinv.circuits.assembly import CircuitAssembly
from dinv.circuits.cache import CircuitCache
from dinv.circuits.options import SettleOptions, settle_options
from dinv.circuits.populations import (
    CONTROLLER,
    SYSTEM,
    direct_controller,
    proportional_gain,
    with_forward_input,
)
from dinv.circuits.settling import report_unsettled, unstable_problems
from dinv.circuits.structure import Block, Pathway, Phase, check_time
from dinv.circuits.traces import Traces
from dinv.errors import CircuitDivergedError, InputError
from dinv.hints import ArrayLike, BoolArray, FloatArray
from dinv.nonlinearities import get_transfer
from dinv.theory import chain_abscissa, direct_abscissa, loop_abscissa
from dinv.validation import check_invertible, check_leaks, finite_array, real_array

ARCHITECTURES = ("sequential", "repeat", "single-loop", "direct")
LOOPS = ("single-loop", "direct")
"""Architectures with one controller, at the output."""


@dataclass
class ChainSettled:
    """Outcome of one backward pass through a chain circuit.

    Attributes
    ----------
    deltas : list of ndarray
        delta_1 .. delta_{L-1}, each (n, batch, d_l): for the linear
        controller already multiplied by its gain (Eq. 17).
    residual : ndarray, shape (n,)
        Largest relative change of any population's readout over the last
        check interval of its phase (see `dinv.circuits.settling`); near 0
        when settled.
    unstable : ndarray of bool, shape (n,)
        Per problem: the run ended unsettled because the circuit is unstable
        (a layer pair's, the loop's or direct control's Jacobian has an eigenvalue with
        positive real part, for the rate models with linear controllers;
        readouts that keep growing for the others).
    traces : Traces or None
        Readouts by the chain's block names (``u{l}``, ``d{l}``, ``h{l}``),
        time in units of the fastest system's tau; ``traces.phases()`` splits
        a sequential chain's records by layer pair, top pair first.
    steps : int
        Euler steps the run took (all phases; fewer than asked when
        ``stop_tol`` ended phases early).
    spiking : dict
        Per spiking population, by block name (``u{l}``, ``d{l}``,
        ``h{l}``), its spike statistics over its phase
        (`dinv.circuits.runner.AveragingWindows`); empty for rate models.
        Spiking populations' settled states are their readouts averaged over
        the last ``average_fraction`` of their phase.
    """

    deltas: list[FloatArray]
    residual: FloatArray
    traces: Traces | None = None
    steps: int = 0
    unstable: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    spiking: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class ChainProblem:
    """One backward pass to settle: the arrays of one chain.

    Attributes
    ----------
    weights : sequence of ndarray
        W_1 .. W_L, each (n, d_l, d_{l-1}) (W_1 only fixes d_0).
    feedback : sequence of ndarray
        B_2 .. B_L, each (n, d_{l-1}, d_l); for the single loop one B of
        shape (n, d_1, d_L).
    delta : ndarray, shape (n, batch, d_L)
        Output errors.
    alpha : float or ndarray
        Leaks: one, one per problem (n,), or one per problem and layer pair
        (n, L - 1).
    gains : sequence of ndarray or None
        g'(a_l), each (n, batch, d_l), for the linear controller (Eq. 17).
    offsets : sequence of ndarray or None
        a_1 .. a_{L-1}, each (n, batch, d_l): the forward pass's
        pre-activations, around which the inversion of targets and direct
        feedback control apply their transfers (None: zeros).
    labels : sequence of str or None
        A name per problem (e.g. the model's), prefixed to the messages of
        ``on_unsettled``.
    radius : dict or None
        Spiking populations: the range each represents, by block name
        (``u{l}``, ``d{l}``, ``h{l}``; scalars, (n, 1), (n, d) or (n, batch,
        d); e.g. `dinv.circuits.spiking.chain_radii`); missing: 1.
    """

    weights: Sequence[ArrayLike]
    feedback: Sequence[ArrayLike]
    delta: ArrayLike
    alpha: ArrayLike
    gains: Sequence[ArrayLike] | None = None
    labels: Sequence[str] | None = None
    radius: Mapping[str, ArrayLike] | None = None
    offsets: Sequence[ArrayLike] | None = None


def _per_layer(value: Any, count: int, name: str, check: Callable[[Any, str], object],
               what: str = "time constants") -> list[Any]:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * count
    if len(values) != count:
        raise InputError(f"{name} needs {count} {what} (one per layer), got {len(values)}")
    for v in values:
        check(v, name)
    return values


def _no_check(value: object, name: str) -> None:
    """Population models are checked by `SettleOptions`."""


def layer_settings(spec: "ChainSpec", options: SettleOptions) -> dict[str, list[Any]]:
    """Per-layer time constants and models of a chain, each list checked for length.

    Returns
    -------
    dict
        ``tau_system``, ``system`` (layers 1 .. L-1; for the single loop the
        relays' models replace those of layers 2 .. L-1 when ``relay`` is
        given), ``tau_controller`` and ``controller`` (layers 2 .. L, or
        layer L only for the single loop).
    """
    hidden = len(spec.widths) - 2
    controllers = 1 if spec.architecture in LOOPS else hidden
    settings = {
        "tau_system": _per_layer(options.tau_system, hidden, "tau_system", check_time),
        "tau_controller": _per_layer(options.tau_controller, controllers, "tau_controller",
                                     check_time),
        "system": _per_layer(options.system, hidden, "system", _no_check, "models"),
        "controller": _per_layer(options.controller, controllers, "controller", _no_check,
                                 "models"),
    }
    if spec.architecture == "single-loop" and options.relay is not None:
        relays = _per_layer(options.relay, hidden - 1, "relay", _no_check, "models")
        settings["system"] = settings["system"][:1] + relays
    return settings


@dataclass(frozen=True)
class ChainSpec:
    """The shape of one chain: what a circuit is built for.

    Attributes
    ----------
    widths : tuple of int
        d_0 .. d_L (d_0 is not simulated).
    architecture : {'sequential', 'repeat', 'single-loop', 'direct'}
    transfers : tuple of str or None
        g_1 .. g_{L-1} for the nonlinear controller (Eq. 14); None for the
        linear controller with gains (Eq. 17). 'single-loop', 'direct' and
        chains of targets default to linear transfers.
    n : int
        Independent problems (models) in the chain.
    targets : bool
        'sequential' and 'repeat': invert targets (deviations of the forward
        pass's activities, read out through g at its pre-activations).
    kp : float
        'direct': the proportional gain of the output controller (0: a
        leaky integral controller, any controller model).
    """

    widths: tuple[int, ...]
    architecture: str = "sequential"
    transfers: tuple[str, ...] | None = None
    n: int = 1
    targets: bool = False
    kp: float = 0.0


class _Member:
    """One chain inside a (possibly joint) chain circuit.

    Parameters
    ----------
    prefix : str
        Prepended to the chain's block and pathway names in the assembly.
    spec : ChainSpec
    batch : int
    options : SettleOptions
        Time constants and population models, one or one per layer.
    """

    def __init__(self, prefix, spec, batch, options):
        widths, transfers = self._check_spec(spec)
        self.prefix, self.widths, self.depth = prefix, widths, len(widths) - 1
        self.architecture, self.transfers = spec.architecture, transfers
        self.targets, self.kp = bool(spec.targets), float(spec.kp)
        self.n, self.batch = int(spec.n), int(batch)
        self.phases = self.depth - 1 if spec.architecture == "sequential" else 1
        self.blocks, self.pathways = [], []
        if spec.architecture == "single-loop":
            self._build_single_loop(options)
        elif spec.architecture == "direct":
            self._build_direct(options)
        else:
            self._build_pairs(options)

    @staticmethod
    def _check_spec(spec):
        widths = [int(w) for w in spec.widths]
        if len(widths) < 3 or min(widths) < 1:
            raise InputError(f"a chain needs at least one hidden layer: widths d_0..d_L with "
                             f"L >= 2, got {widths}")
        if spec.architecture not in ARCHITECTURES:
            raise InputError(f"architecture must be one of {ARCHITECTURES}, "
                             f"got {spec.architecture!r}")
        if int(spec.n) != spec.n or spec.n < 1:
            raise InputError(f"n must be a positive integer, got {spec.n!r}")
        depth = len(widths) - 1
        transfers = spec.transfers
        if spec.targets and spec.architecture not in ("sequential", "repeat"):
            raise InputError(f"targets applies to the 'sequential' and 'repeat' chains, not "
                             f"{spec.architecture!r}")
        if spec.kp and spec.architecture != "direct":
            raise InputError("kp (a proportional part) applies to the 'direct' chain only")
        if not (np.isfinite(spec.kp) and spec.kp >= 0):
            raise InputError(f"kp must be a number >= 0, got {spec.kp!r}")
        if (spec.architecture in LOOPS or spec.targets) and transfers is None:
            transfers = ["linear"] * (depth - 1)
        if transfers is not None:
            transfers = list(transfers)
            if len(transfers) != depth - 1:
                raise InputError(f"transfers needs one name per hidden layer ({depth - 1}), "
                                 f"got {len(transfers)}")
            for name in transfers:
                get_transfer(name)
        return widths, transfers

    def _layers(self, options):
        """Per-layer time constants and models; whether stability has a closed form."""
        spec = ChainSpec(tuple(self.widths), self.architecture,
                         None if self.transfers is None else tuple(self.transfers), self.n,
                         self.targets, self.kp)
        layers = layer_settings(spec, options)
        tau_sys, tau_ctl = layers["tau_system"], layers["tau_controller"]
        rate_models = (all(m == SYSTEM for m in layers["system"])
                       and all(m == CONTROLLER for m in layers["controller"]))
        # tau_system / tau_controller per layer pair (the loop: one, equal relays).
        self._ratios = [float(s / c) for s, c in zip(tau_sys, tau_ctl)]
        if self.architecture in LOOPS:  # the single loop, direct control
            linear = all(t == "linear" for t in self.transfers)
            self.exact_stability = (rate_models and linear
                                    and len({float(t / ms) for t in tau_sys}) == 1)
        else:
            self.exact_stability = rate_models and self.transfers is None
        return tau_sys, tau_ctl, layers["system"], layers["controller"]

    def _build_single_loop(self, options):
        """h_1 (driven by B u_L), relays h_2 .. h_{L-1}, and the output controller u_L."""
        depth, widths, name = self.depth, self.widths, self.name
        tau_sys, tau_ctl, systems, controllers = self._layers(options)
        for l in range(1, depth):
            self.blocks.append(Block(name(f"h{l}"), systems[l - 1], widths[l], self.n,
                                     tau_sys[l - 1]))
        self.blocks.append(Block(name(f"u{depth}"), controllers[0], widths[depth], self.n,
                                 tau_ctl[0]))
        self.pathways.append(Pathway(name("B"), name(f"u{depth}"), name("h1")))
        for l in range(2, depth + 1):
            dst = name(f"u{depth}") if l == depth else name(f"h{l}")
            self.pathways.append(Pathway(name(f"W{l}"), name(f"h{l - 1}"), dst,
                                         transfer=self.transfers[l - 2]))

    def _direct_controller(self, model):
        """The output controller of the direct chain: ``model`` with the chain's k_p."""
        if self.kp == 0 or proportional_gain(model) == self.kp:
            return model
        if model == CONTROLLER:
            return direct_controller(self.kp)
        raise InputError(f"the controller model ({model.description}) has no proportional "
                         f"part k_p={self.kp:g}: direct feedback control with it needs kp=0 "
                         "(or the rate controller, which gets k_p)")

    def _build_direct(self, options):
        """Hidden layers h_1 .. h_{L-1}, fed by Q_l from the output controller u_L and
        (beyond the first) by the forward drive from the layer below."""
        depth, widths, name = self.depth, self.widths, self.name
        tau_sys, tau_ctl, systems, controllers = self._layers(options)
        for l in range(1, depth):
            model = systems[l - 1] if l == 1 else with_forward_input(systems[l - 1])
            self.blocks.append(Block(name(f"h{l}"), model, widths[l], self.n, tau_sys[l - 1]))
            self.pathways.append(Pathway(name(f"Q{l}"), name(f"u{depth}"), name(f"h{l}")))
        self.blocks.append(Block(name(f"u{depth}"), self._direct_controller(controllers[0]),
                                 widths[depth], self.n, tau_ctl[0]))
        for l in range(2, depth + 1):
            last = l == depth
            self.pathways.append(Pathway(
                name(f"W{l}"), name(f"h{l - 1}"), name(f"u{depth}") if last else name(f"h{l}"),
                transfer=self.transfers[l - 2], offset="before",
                variable="input" if last else "forward"))

    def _build_pairs(self, options):
        """One controller u_l and system d_{l-1} per layer pair (sequential, repeat)."""
        name = self.name
        tau_sys, tau_ctl, systems, controllers = self._layers(options)
        for l in range(self.depth, 1, -1):
            offset: str | None
            if self.transfers is None:
                transfer, offset = "linear", None
            elif self.targets:  # the activity of layer l, through g_l; the output's a_L
                transfer = self.transfers[l - 1] if l < self.depth else "linear"
                offset = "after"
            else:
                transfer, offset = self.transfers[l - 2], None
            self.blocks.append(Block(name(f"u{l}"), controllers[l - 2], self.widths[l], self.n,
                                     tau_ctl[l - 2]))
            self.blocks.append(Block(name(f"d{l - 1}"), systems[l - 2], self.widths[l - 1],
                                     self.n, tau_sys[l - 2]))
            self.pathways.append(Pathway(name(f"W{l}"), name(f"d{l - 1}"), name(f"u{l}"),
                                         transfer=transfer, offset=offset))
            self.pathways.append(Pathway(name(f"B{l}"), name(f"u{l}"), name(f"d{l - 1}")))
            if self.architecture == "repeat" and l < self.depth:
                self.pathways.append(Pathway(name(f"relay{l}"), name(f"d{l}"), name(f"u{l}"),
                                             kind="gain", variable="target"))

    def name(self, local):
        """Assembly name of the member's block or pathway ``local``."""
        return self.prefix + local

    def load(self, asm, problem):
        """Validate one `ChainProblem` and write its weights, gains and leaks."""
        weights, delta, alpha, gains = self._check_problem(problem)
        if self.architecture == "single-loop":
            self._load_single_loop(asm, weights, problem.feedback, delta, alpha)
        elif self.architecture == "direct":
            self._load_direct(asm, weights, problem.feedback, delta, alpha)
        else:
            self._load_pairs(asm, weights, problem.feedback, delta, alpha, gains)
        self._load_offsets(asm, problem.offsets)
        self._gains = gains
        self._target = delta
        self._problem = (weights, problem.feedback, alpha)
        self._load_radius(asm, problem.radius)
        self.spiking = {}
        labels = problem.labels
        if labels is not None and (isinstance(labels, str) or len(labels) != self.n):
            raise InputError(f"labels must name each of the {self.n} problems, got {labels!r}")
        self.labels = [None] * self.n if labels is None else [str(x) for x in labels]
        self.deltas: list[Any] = [None] * (self.depth - 1)  # filled phase by phase
        self.residual = np.zeros(self.n)
        self.grows = np.zeros(self.n, dtype=bool)

    def _load_radius(self, asm, radius):
        """Radii of the member's spiking blocks (1 where ``radius`` has none)."""
        if radius is not None and not isinstance(radius, dict):
            raise InputError(f"radius must be a dict of radii by block name (e.g. from "
                             f"chain_radii), got {type(radius).__name__}")
        radius = radius or {}
        local = {b.name[len(self.prefix):] for b in self.blocks}
        unknown = sorted(set(radius) - local)
        if unknown:
            raise InputError(f"radius: no blocks called {unknown}; blocks: {sorted(local)}")
        for block in self.blocks:
            if block.model.spiking:
                asm.set_radius(block.name, radius.get(block.name[len(self.prefix):], 1.0))

    def _check_problem(self, problem):
        """Weights, delta, leaks (n, pairs) and gains of ``problem``, checked."""
        depth, n, batch, widths = self.depth, self.n, self.batch, self.widths
        pairs = 1 if self.architecture in LOOPS else depth - 1
        matrices = depth - 1 if self.architecture == "direct" else pairs
        for label, value, count in (("weights", problem.weights, depth),
                                    ("feedback", problem.feedback, matrices)):
            if isinstance(value, (list, tuple)) and len(value) == count:
                continue
            if label == "feedback" and self.architecture == "single-loop":
                raise InputError(f"single-loop feedback is one matrix B of shape "
                                 f"{(n, widths[1], widths[-1])}, in a list ([B]); got "
                                 f"{_describe(value)}")
            what = "W_1 .. W_L" if label == "weights" else (
                "Q_1 .. Q_(L-1)" if self.architecture == "direct" else "B_2 .. B_L")
            raise InputError(f"{label} must be a list of {count} arrays ({what}) for widths "
                             f"{widths}, got {_describe(value)}")
        shapes = [np.shape(w) for w in problem.weights]
        if shapes != [(n, widths[l + 1], widths[l]) for l in range(depth)]:
            raise InputError(f"weights must have shapes (n, d_l, d_(l-1)) for widths "
                             f"{widths} and n={n}, got {shapes}")
        # W_1 only fixes d_0: it is not simulated, so its values are not read.
        weights = [None] + [finite_array(f"W{l + 1}", w, (3,))
                            for l, w in enumerate(problem.weights) if l > 0]
        delta = finite_array("delta", problem.delta, (3,))
        if delta.shape != (n, batch, widths[-1]):
            raise InputError(f"delta must have shape {(n, batch, widths[-1])}, "
                             f"got {delta.shape}")
        alpha = check_leaks(problem.alpha, (n, pairs), meaning=(
            f"one value, one per problem ({n},) or one per problem and layer pair ({n}, {pairs})"))
        gains = problem.gains
        if gains is None or self.transfers is not None:
            gains = [np.ones((n, batch, d)) for d in widths[1:-1]]
        gains = [finite_array(f"gain{l + 1}", g, (3,)) for l, g in enumerate(gains)]
        if [g.shape for g in gains] != [(n, batch, d) for d in widths[1:-1]]:
            raise InputError("gains must be one (n, batch, d_l) array per hidden layer")
        return weights, delta, alpha, gains

    def _load_single_loop(self, asm, weights, feedback, delta, alpha):
        n, widths, name = self.n, self.widths, self.name
        feedback = [finite_array("B", b, (3,)) for b in feedback]
        if len(feedback) != 1 or feedback[0].shape != (n, widths[1], widths[-1]):
            raise InputError(f"single-loop feedback is one matrix B of shape "
                             f"{(n, widths[1], widths[-1])}")
        alpha = alpha[:, 0]
        if np.any(alpha == 0) and widths[-1] > widths[1]:
            raise InputError("alpha = 0 makes the single loop singular when d_L > d_1; "
                             "use alpha > 0")
        asm.set_matrix(name("B"), feedback[0])
        for l in range(2, self.depth + 1):
            asm.set_matrix(name(f"W{l}"), weights[l - 1])
        asm.set_target(name(f"u{self.depth}"), delta)
        asm.set_alpha(name(f"u{self.depth}"), alpha)

    def _load_direct(self, asm, weights, feedback, delta, alpha):
        n, widths, name, depth = self.n, self.widths, self.name, self.depth
        feedback = [finite_array(f"Q{l + 1}", q, (3,)) for l, q in enumerate(feedback)]
        if [q.shape for q in feedback] != [(n, widths[l], widths[-1]) for l in range(1, depth)]:
            raise InputError(f"direct feedback must be Q_1 .. Q_(L-1) of shapes (n, d_l, d_L), "
                             f"got {[q.shape for q in feedback]}")
        for l in range(1, depth):
            # The circuits' controller integrates readout - target: Q enters negated.
            asm.set_matrix(name(f"Q{l}"), -feedback[l - 1])
        for l in range(2, depth + 1):
            asm.set_matrix(name(f"W{l}"), weights[l - 1])
        asm.set_target(name(f"u{depth}"), delta)
        asm.set_alpha(name(f"u{depth}"), alpha[:, 0])
        self._feedback = feedback

    def _load_offsets(self, asm, offsets):
        """The forward pass's pre-activations of the offset pathways (targets, direct)."""
        where = {p.name: p.offset for p in self.pathways
                 if p.offset is not None and p.transfer != "linear"}
        if not where:
            return
        if offsets is None:
            offsets = [np.zeros((self.n, self.batch, d)) for d in self.widths[1:-1]]
        if not isinstance(offsets, (list, tuple)) or len(offsets) != self.depth - 1:
            raise InputError(f"offsets must be a list of the {self.depth - 1} hidden layers' "
                             f"pre-activations a_1 .. a_(L-1), got {_describe(offsets)}")
        offsets = [finite_array(f"offset{l + 1}", a, (3,)) for l, a in enumerate(offsets)]
        if [a.shape for a in offsets] != [(self.n, self.batch, d) for d in self.widths[1:-1]]:
            raise InputError("offsets must be one (n, batch, d_l) array per hidden layer")
        for l in range(2, self.depth + 1):  # W_l: from layer l - 1 to layer l
            offset = where.get(self.name(f"W{l}"))
            if offset is not None:
                asm.set_offset(self.name(f"W{l}"), offsets[l - 2 if offset == "before" else l - 1])

    def _load_pairs(self, asm, weights, feedback, delta, alpha, gains):
        depth, n, widths, name = self.depth, self.n, self.widths, self.name
        feedback = [finite_array(f"B{l + 2}", b, (3,)) for l, b in enumerate(feedback)]
        if [b.shape for b in feedback] != [(n, widths[l - 1], widths[l])
                                           for l in range(2, depth + 1)]:
            raise InputError(f"feedback must be B_2..B_L of shapes (n, d_(l-1), d_l), "
                             f"got {[b.shape for b in feedback]}")
        for l in range(2, depth + 1):
            check_invertible(alpha[:, l - 2], widths[l], widths[l - 1], layer=str(l))
            asm.set_matrix(name(f"W{l}"), weights[l - 1])
            asm.set_matrix(name(f"B{l}"), feedback[l - 2])
            asm.set_alpha(name(f"u{l}"), np.ascontiguousarray(alpha[:, l - 2]))
        if self.architecture == "repeat":
            for l in range(2, depth):
                asm.set_gain(name(f"relay{l}"), gains[l - 1])
            asm.set_target(name(f"u{depth}"), delta)

    def active(self, phase):
        """Blocks simulated in ``phase``."""
        if phase >= self.phases:
            return set()
        if self.architecture != "sequential":
            return {b.name for b in self.blocks}
        l = self.depth - phase
        return {self.name(f"u{l}"), self.name(f"d{l - 1}")}

    def prepare(self, asm, phase):
        """Set the target of a sequential chain's controller for ``phase``."""
        if self.architecture == "sequential" and phase < self.phases:
            asm.set_target(self.name(f"u{self.depth - phase}"), self._target)

    def collect(self, asm, phase, active):
        """Read the settled errors of ``phase`` and its residual."""
        if phase >= self.phases:
            return
        states = {b: asm.state(b) for b in active}
        self.residual = np.maximum(self.residual, asm.residual(active))
        for name, stats in asm.statistics(active).items():
            self.spiking[name[len(self.prefix):]] = stats
        if not self.exact_stability:
            self.grows |= asm.grows(active)
        name = self.name
        if self.architecture == "direct":
            u = states[name(f"u{self.depth}")]
            self.deltas = [-np.matmul(u, np.swapaxes(q, 1, 2)) for q in self._feedback]
        elif self.architecture == "single-loop":
            self.deltas = [states[name(f"h{l}")] for l in range(1, self.depth)]
        elif self.architecture == "repeat":
            self.deltas = [states[name(f"d{l}")] * self._gains[l - 1]
                           for l in range(1, self.depth)]
        else:
            l = self.depth - phase
            settled = states[name(f"d{l - 1}")] * self._gains[l - 2]
            self.deltas[l - 2] = settled
            self._target = settled

    def abscissa(self, rows):
        """Largest real eigenvalue of the circuit's Jacobian for the problems ``rows``
        (an index array), per problem; NaN everywhere without a closed form.

        A layer-pair chain (sequential or repeat) is stable if and only if
        every layer pair is (`dinv.theory.chain_abscissa`); the linear single
        loop from its small product (`dinv.theory.loop_abscissa`).
        """
        values = np.full(self.n, np.nan)
        if not self.exact_stability or len(rows) == 0:
            return values
        weights, feedback, alpha = self._problem
        if self.architecture == "direct":
            values[rows] = direct_abscissa([W[rows] for W in weights[1:]],
                                           [np.asarray(q, dtype=float)[rows] for q in feedback],
                                           alpha[rows, 0], self.kp, self._ratios[0])
        elif self.architecture == "single-loop":
            values[rows] = loop_abscissa([W[rows] for W in weights[1:]],
                                         np.asarray(feedback[0], dtype=float)[rows],
                                         alpha[rows, 0], self._ratios[0])
        else:
            values[rows] = chain_abscissa([W[rows] for W in weights[1:]],
                                          [np.asarray(B, dtype=float)[rows] for B in feedback],
                                          alpha[rows], self._ratios)
        return values

    def result(self, traces, steps, time_scale):
        """The `ChainSettled` of the last problem, from the run's ``traces``.

        The traces keep this chain's blocks under their own names (``u{l}``,
        ``d{l}``, ``h{l}``) and its phases; ``time_scale`` converts time to
        units of the fastest system's tau.
        """
        if traces is not None:
            names = {b.name[len(self.prefix):]: b.name for b in self.blocks}
            traces = traces.select(names, self.phases, time_scale)
        return ChainSettled(self.deltas, self.residual, traces, steps, spiking=self.spiking)


def _describe(value: Any) -> str:
    """A short description of a value for an error message."""
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return repr(value) if value is None or np.ndim(value) == 0 else \
        f"an array of shape {np.shape(value)}"


class JointChainCircuit:
    """Several chains (e.g. the DI and SLDI models of one training step) in one
    Brian2 Network: their phases run together, so all of them settle in as
    many runs as the deepest sequential chain has layer pairs.

    Parameters
    ----------
    specs : sequence of ChainSpec
    batch : int
        Samples per problem (shared by all chains).
    options : SettleOptions or None
        How the circuit is built (time constants and models, one or one per
        layer and shared by all chains: systems/relays of layers 1 .. L-1,
        controllers of layers 2 .. L, or layer L only for single-loop; ``dt``
        in units of the fastest population's tau; coupling, codegen_target)
        and, by default, run.
    prefixes : sequence of str or None
        Prefix of each chain's block names in the assembly.
    **overrides
        Fields of `SettleOptions`.
    """

    def __init__(self, specs: Sequence[ChainSpec], batch: int = 1,
                 options: SettleOptions | None = None, prefixes: Sequence[str] | None = None,
                 **overrides: Any):
        options = settle_options(options, overrides)
        if not specs:
            raise InputError("a joint chain circuit needs at least one chain")
        self.options = options
        prefixes = prefixes or [f"c{m}_" for m in range(len(specs))]
        self.members = [_Member(prefix, spec, batch, options)
                        for prefix, spec in zip(prefixes, specs)]
        self.assembly = CircuitAssembly(
            [b for m in self.members for b in m.blocks],
            [p for m in self.members for p in m.pathways],
            batch=batch, dt=options.dt, coupling=options.coupling,
            codegen_target=options.codegen_target,
            watch_growth=[b.name for m in self.members if not m.exact_stability
                          for b in m.blocks])
        self._time_scale: float | None = None

    def settle_all(self, problems: Sequence[ChainProblem], options: SettleOptions | None = None,
                   **overrides: Any) -> list[ChainSettled]:
        """Settle one problem per chain.

        Parameters
        ----------
        problems : sequence of ChainProblem
            One per chain, in the order of the specs.
        options : SettleOptions or None
            Run settings (``steps`` per run, per layer pair for sequential
            chains; ``record_every``, ``stop_tol`` (a phase ends early once
            its populations have settled), ``on_unsettled``, ``settle_tol``);
            None: those the circuit was built with. Its circuit fields must
            be the circuit's own.
        **overrides
            Fields of `SettleOptions`.

        Returns
        -------
        list of ChainSettled
        """
        options = settle_options(options or self.options, overrides)
        if options.circuit_key() != self.options.circuit_key():
            raise InputError("these options need another circuit (dt, time constants, "
                             "coupling, codegen_target or models differ from the ones it was "
                             "built with); build one with them, or use settle_chains")
        if len(problems) != len(self.members):
            raise InputError(f"{len(self.members)} chains need {len(self.members)} problems, "
                             f"got {len(problems)}")
        for problem in problems:
            if not isinstance(problem, ChainProblem):
                raise InputError(f"problems must be ChainProblem objects, got "
                                 f"{type(problem).__name__}")
        asm = self.assembly
        for member, problem in zip(self.members, problems):
            member.load(asm, problem)
        phases = self._phases(options.steps)
        record = sorted(set().union(*(p.active for p in phases))) if options.record_every \
            else ()
        try:
            traces = asm.run_phases(phases, record, options.record_every, options.stop_tol,
                                    options.average_fraction)
        except CircuitDivergedError as exc:
            raise CircuitDivergedError(f"{exc}: {self._cause()}") from None
        if self._time_scale is None:  # the structure is fixed: computed once
            self._time_scale = float(asm.tau_unit / asm.structure.fastest_tau("system"))
        time_scale = self._time_scale
        results = [m.result(traces, asm.steps_run, time_scale) for m in self.members]
        tol = options.settle_tol
        abscissa = [m.abscissa(np.flatnonzero(m.residual > tol)) for m in self.members]
        for result, member, values in zip(results, self.members, abscissa):
            result.unstable = unstable_problems(member.residual, tol, values, member.grows)
        report_unsettled(np.concatenate([m.residual for m in self.members]), options.steps,
                         tol, options.on_unsettled, np.concatenate(abscissa),
                         np.concatenate([m.grows for m in self.members]),
                         [label for m in self.members for label in m.labels])
        return results

    def silence(self, fraction: float, seed: int = 0,
                blocks: Collection[str] | None = None) -> None:
        """Silence ``fraction`` of each spiking population's neurons (seeded); see
        `dinv.circuits.assembly.CircuitAssembly.silence` (``blocks``: assembly names)."""
        self.assembly.silence(fraction, seed, blocks)

    def _cause(self):
        """Why a run diverged, from the chains' Jacobians where they have a closed form."""
        if all(m.exact_stability for m in self.members):
            worst = max(float(np.max(m.abscissa(np.arange(m.n)))) for m in self.members)
            if worst > 0:
                return (f"a layer of the circuit is unstable (largest real eigenvalue of its "
                        f"Jacobian {worst:+.3g} > 0): use a larger alpha or stable feedback "
                        "(B_l = -W_l^T is always stable)")
            return (f"the circuit is stable (largest real eigenvalue {worst:.3g}) but the "
                    f"Euler step dt={self.assembly.dt:g} is too large for its fast modes: use "
                    "a smaller dt")
        return ("the feedback makes a layer unstable or dt is too large; check the Jacobian "
                "eigenvalues of each layer (dinv.theory.jacobian_abscissa, loop_abscissa), "
                "use a larger alpha, stable feedback, a slower controller or a smaller dt")

    def _phases(self, steps):
        """One phase per layer pair of the deepest sequential chain."""
        asm, phases = self.assembly, []
        for index in range(max(m.phases for m in self.members)):
            actives = [m.active(index) for m in self.members]
            phases.append(Phase(
                steps, set().union(*actives),
                start=lambda index=index: [m.prepare(asm, index) for m in self.members],
                end=lambda index=index, actives=actives: [
                    m.collect(asm, index, a) for m, a in zip(self.members, actives)],
            ))
        return phases


class ChainCircuit(JointChainCircuit):
    """The backward pass of one network of widths d_0 .. d_L as one circuit.

    Parameters
    ----------
    widths : sequence of int
        d_0 .. d_L (d_0 is not simulated).
    architecture : {'sequential', 'repeat', 'single-loop'}
    transfers : sequence of str or None
        g_1 .. g_{L-1} for the nonlinear controller (Eq. 14); None for the
        linear controller with gains (Eq. 17).
    batch, n : int
        Samples per problem and independent problems (models).
    options : SettleOptions or None
        See `JointChainCircuit`.
    **overrides
        Fields of `SettleOptions`, e.g. ``tau_controller=[20*ms, 10*ms]``.

    Blocks are named ``u{l}`` (controllers), ``d{l}`` (systems) and, for
    single-loop, ``h{l}`` (first layer and relays).
    """

    def __init__(self, widths: Sequence[int], architecture: str = "sequential",
                 transfers: Sequence[str] | None = None, batch: int = 1, n: int = 1,
                 options: SettleOptions | None = None, **overrides: Any):
        spec = ChainSpec(tuple(widths), architecture,
                         None if transfers is None else tuple(transfers), n)
        super().__init__([spec], batch, options, prefixes=[""], **overrides)

    def settle(self, weights: Sequence[ArrayLike], feedback: Sequence[ArrayLike],
               delta: ArrayLike, alpha: ArrayLike, gains: Sequence[ArrayLike] | None = None,
               options: SettleOptions | None = None,
               radius: Mapping[str, ArrayLike] | None = None, **overrides: Any) -> ChainSettled:
        """Run the backward pass from rest (see `JointChainCircuit.settle_all`).

        Returns
        -------
        ChainSettled
        """
        problem = ChainProblem(weights, feedback, delta, alpha, gains, radius=radius)
        return self.settle_all([problem], options, **overrides)[0]


_CACHE = CircuitCache()


def settle_chains(specs: Sequence[ChainSpec], problems: Sequence[ChainProblem],
                  options: SettleOptions | None = None, **overrides: Any) -> list[ChainSettled]:
    """Settle several chains in one joint circuit, cached by specs and circuit options.

    Parameters
    ----------
    specs : sequence of ChainSpec
    problems : sequence of ChainProblem
        One per spec.
    options : SettleOptions or None
        See `JointChainCircuit` and `JointChainCircuit.settle_all`.
    **overrides
        Fields of `SettleOptions`.

    Returns
    -------
    list of ChainSettled
    """
    options = settle_options(options, overrides)
    if not problems or not isinstance(problems[0], ChainProblem):
        raise InputError("problems must be a non-empty sequence of ChainProblem objects")
    if np.ndim(problems[0].delta) != 3:
        raise InputError(f"delta must have shape (n, batch, d_L), got shape "
                         f"{np.shape(problems[0].delta)}")
    # Checked on every call, not only when a circuit is built (a cached one
    # was built for other settings); a pair that passed is remembered.
    for spec in specs:
        _check_settings(spec, options)
    batch = int(np.shape(problems[0].delta)[1])
    key = ("chains", tuple(specs), batch, options.circuit_key())
    circuit = _CACHE.get(key, lambda: JointChainCircuit(specs, batch, options))
    return circuit.settle_all(problems, options)


_CHECKED: dict = {}
"""The (spec, options) pairs `_check_settings` has passed (the training loops settle the
same pair at every update; checking its time constants costs Brian2 unit arithmetic)."""


def _check_settings(spec: ChainSpec, options: SettleOptions) -> None:
    """Refuse a chain spec or options that do not fit each other (`layer_settings`)."""
    key = (spec, options)
    if key in _CHECKED:
        return
    _Member._check_spec(spec)
    layer_settings(spec, options)
    if len(_CHECKED) > 64:
        _CHECKED.clear()
    _CHECKED[key] = True


def settle_chain(weights: Sequence[ArrayLike], feedback: Sequence[ArrayLike], delta: ArrayLike,
                 alpha: ArrayLike, gains: Sequence[ArrayLike] | None = None,
                 architecture: str = "sequential", transfers: Sequence[str] | None = None,
                 options: SettleOptions | None = None,
                 radius: Mapping[str, ArrayLike] | None = None,
                 **overrides: Any) -> ChainSettled:
    """Settle one chained backward pass; circuits are cached by shape and options.

    Parameters are those of `ChainCircuit`, `ChainProblem` (``radius``: the
    spiking populations' ranges by block name) and `SettleOptions` (as
    ``options`` or keyword overrides, e.g. ``steps=3000``); stacked arrays
    (leading axis n) throughout.

    Returns
    -------
    ChainSettled
    """
    if not isinstance(weights, (list, tuple)):
        raise InputError(f"weights must be a list of arrays W_1 .. W_L, got "
                         f"{_describe(weights)}")
    errors = real_array("delta", delta)
    arrays = [real_array(f"W{l + 1}", w) for l, w in enumerate(weights)]
    if errors.ndim != 3 or any(w.ndim != 3 for w in arrays) or not arrays:
        raise InputError("settle_chain takes stacked arrays: weights (n, d_l, d_(l-1)) and "
                         "delta (n, batch, d_L)")
    widths = (arrays[0].shape[2],) + tuple(w.shape[1] for w in arrays)
    spec = ChainSpec(widths, architecture, None if transfers is None else tuple(transfers),
                     errors.shape[0])
    problem = ChainProblem(arrays, feedback, errors, alpha, gains, radius=radius)
    return settle_chains([spec], [problem], options, **overrides)[0]
