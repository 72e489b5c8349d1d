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
"""

from dataclasses import dataclass

import numpy as np
from brian2 import ms

from dinv.circuits.assembly import (
    ON_UNSETTLED,
    Phase,
    Block,
    CircuitAssembly,
    Pathway,
    check_time,
    report_unsettled,
    residual,
)
from dinv.circuits.cache import CircuitCache
from dinv.errors import CircuitDivergedError, InputError
from dinv.nonlinearities import get_transfer
from dinv.validation import finite_array

ARCHITECTURES = ("sequential", "repeat", "single-loop")


@dataclass
class ChainSettled:
    """Outcome of one backward pass through a chain circuit.

    Attributes
    ----------
    deltas : list of ndarray
        delta_1 .. delta_{L-1}, each (n, batch, d_l): for the linear
        controller already multiplied by its gain (Eq. 17).
    residual : ndarray, shape (n,)
        Largest relative rate of change of any population at the end of its
        run (near 0 when settled).
    traces : dict or None
        Per block name, states of shape (records, n, batch, d), and ``'t'``;
        for the sequential architecture one dict per phase, top phase first.
    steps : int
        Euler steps the run took (all phases; fewer than asked when
        ``stop_tol`` ended phases early).
    """

    deltas: list
    residual: np.ndarray
    traces: object = None
    steps: int = 0


def _per_layer(value, count, name):
    values = list(value) if isinstance(value, (list, tuple)) else [value] * count
    if len(values) != count:
        raise InputError(f"{name} needs {count} time constants (one per layer), "
                         f"got {len(values)}")
    for v in values:
        check_time(v, name)
    return values


@dataclass(frozen=True)
class ChainSpec:
    """The shape of one chain: what a circuit is built for.

    Attributes
    ----------
    widths : tuple of int
        d_0 .. d_L (d_0 is not simulated).
    architecture : {'sequential', 'repeat', 'single-loop'}
    transfers : tuple of str or None
        g_1 .. g_{L-1} for the nonlinear controller (Eq. 14); None for the
        linear controller with gains (Eq. 17). 'single-loop' defaults to
        linear transfers.
    n : int
        Independent problems (models) in the chain.
    """

    widths: tuple
    architecture: str = "sequential"
    transfers: tuple = None
    n: int = 1


class _Member:
    """One chain inside a (possibly joint) chain circuit."""

    def __init__(self, prefix, spec, batch, tau_system, tau_controller):
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
        if spec.architecture == "single-loop" and transfers is None:
            transfers = ["linear"] * (depth - 1)
        if transfers is not None:
            transfers = list(transfers)
            if len(transfers) != depth - 1:
                raise InputError(f"transfers needs one name per hidden layer ({depth - 1}), "
                                 f"got {len(transfers)}")
            for name in transfers:
                get_transfer(name)
        self.prefix, self.widths, self.depth = prefix, widths, depth
        self.architecture, self.transfers = spec.architecture, transfers
        self.n, self.batch = int(spec.n), int(batch)
        self.phases = depth - 1 if spec.architecture == "sequential" else 1
        tau_sys = _per_layer(tau_system, depth - 1, "tau_system")
        single = spec.architecture == "single-loop"
        tau_ctl = _per_layer(tau_controller, 1 if single else depth - 1, "tau_controller")
        name = self.name
        self.blocks, self.pathways = [], []
        if single:
            for l in range(1, depth):
                self.blocks.append(Block(name(f"h{l}"), "system", widths[l], self.n,
                                         tau_sys[l - 1]))
            self.blocks.append(Block(name(f"u{depth}"), "controller", widths[depth], self.n,
                                     tau_ctl[0]))
            self.pathways.append(Pathway(name("B"), name(f"u{depth}"), name("h1")))
            for l in range(2, depth + 1):
                dst = name(f"u{depth}") if l == depth else name(f"h{l}")
                self.pathways.append(Pathway(name(f"W{l}"), name(f"h{l - 1}"), dst,
                                             transfer=transfers[l - 2]))
            return
        for l in range(depth, 1, -1):
            transfer = "linear" if transfers is None else transfers[l - 2]
            self.blocks.append(Block(name(f"u{l}"), "controller", widths[l], self.n,
                                     tau_ctl[l - 2]))
            self.blocks.append(Block(name(f"d{l - 1}"), "system", widths[l - 1], self.n,
                                     tau_sys[l - 2]))
            self.pathways.append(Pathway(name(f"W{l}"), name(f"d{l - 1}"), name(f"u{l}"),
                                         transfer=transfer))
            self.pathways.append(Pathway(name(f"B{l}"), name(f"u{l}"), name(f"d{l - 1}")))
            if spec.architecture == "repeat" and l < depth:
                self.pathways.append(Pathway(name(f"relay{l}"), name(f"d{l}"), name(f"u{l}"),
                                             kind="gain", variable="target"))

    def name(self, local):
        """Assembly name of the member's block or pathway ``local``."""
        return self.prefix + local

    def load(self, asm, weights, feedback, delta, alpha, gains):
        """Validate one problem and write its weights, gains and leaks."""
        depth, n, batch, widths = self.depth, self.n, self.batch, self.widths
        shapes = [np.shape(w) for w in weights]
        if shapes != [(n, widths[l + 1], widths[l]) for l in range(depth)]:
            raise InputError(f"weights must have shapes (n, d_l, d_(l-1)) for widths "
                             f"{widths} and n={n}, got {shapes}")
        # W_1 only fixes d_0: it is not simulated, so its values are not read.
        weights = [None] + [finite_array(f"W{l + 1}", w, (3,))
                            for l, w in enumerate(weights) if l > 0]
        delta = finite_array("delta", delta, (3,))
        if delta.shape != (n, batch, widths[-1]):
            raise InputError(f"delta must have shape {(n, batch, widths[-1])}, "
                             f"got {delta.shape}")
        pairs = 1 if self.architecture == "single-loop" else depth - 1
        alpha = finite_array("alpha", alpha, (0, 1, 2))
        if alpha.ndim < 2:
            alpha = np.full(n, alpha.item()) if alpha.size == 1 else alpha
            alpha = alpha[:, None] if alpha.ndim == 1 else alpha
        if alpha.shape[0] != n or alpha.shape[1] not in (1, pairs) or np.any(alpha < 0):
            raise InputError(f"alpha must be >= 0: one value, one per problem ({n}) or one "
                             f"per problem and layer pair ({n}, {pairs})")
        alpha = np.broadcast_to(alpha, (n, pairs))
        if gains is None or self.transfers is not None:
            gains = [np.ones((n, batch, d)) for d in widths[1:-1]]
        gains = [finite_array(f"gain{l + 1}", g, (3,)) for l, g in enumerate(gains)]
        if [g.shape for g in gains] != [(n, batch, d) for d in widths[1:-1]]:
            raise InputError("gains must be one (n, batch, d_l) array per hidden layer")
        name = self.name
        if self.architecture == "single-loop":
            feedback = [finite_array("B", b, (3,)) for b in feedback]
            if len(feedback) != 1 or feedback[0].shape != (n, widths[1], widths[-1]):
                raise InputError(f"single-loop feedback is one matrix B of shape "
                                 f"{(n, widths[1], widths[-1])}")
            alpha = alpha[:, 0]
            if np.any(alpha == 0) and widths[-1] > widths[1]:
                raise InputError("alpha = 0 makes the single loop singular when d_L > d_1; "
                                 "use alpha > 0")
            asm.set_matrix(name("B"), feedback[0])
            for l in range(2, depth + 1):
                asm.set_matrix(name(f"W{l}"), weights[l - 1])
            asm.set_target(name(f"u{depth}"), delta)
            asm.set_alpha(name(f"u{depth}"), alpha)
        else:
            feedback = [finite_array(f"B{l + 2}", b, (3,)) for l, b in enumerate(feedback)]
            if [b.shape for b in feedback] != [(n, widths[l - 1], widths[l])
                                               for l in range(2, depth + 1)]:
                raise InputError(f"feedback must be B_2..B_L of shapes (n, d_(l-1), d_l), "
                                 f"got {[b.shape for b in feedback]}")
            for l in range(2, depth + 1):
                if np.any(alpha[:, l - 2] == 0) and widths[l] > widths[l - 1]:
                    raise InputError(f"alpha = 0 makes the inversion of expanding layer {l} "
                                     "singular; use alpha > 0")
                asm.set_matrix(name(f"W{l}"), weights[l - 1])
                asm.set_matrix(name(f"B{l}"), feedback[l - 2])
                asm.set_alpha(name(f"u{l}"), np.ascontiguousarray(alpha[:, l - 2]))
            if self.architecture == "repeat":
                for l in range(2, depth):
                    asm.set_gain(name(f"relay{l}"), gains[l - 1])
                asm.set_target(name(f"u{depth}"), delta)
        self._gains = gains
        self._target = delta
        self.deltas = [None] * (depth - 1)
        self.residual = np.zeros(n)
        self.traces = []

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
        rates = {b: r for b, r in asm.rates().items() if b in active}
        scale = np.abs(self._target).max(axis=(1, 2))
        self.residual = np.maximum(self.residual, residual(rates, states, scale))
        name = self.name
        if self.architecture == "single-loop":
            self.deltas = [states[name(f"h{l}")] for l in range(1, self.depth)]
        elif self.architecture == "repeat":
            self.deltas = [states[name(f"d{l}")] * self._gains[l - 1]
                           for l in range(1, self.depth)]
        else:
            l = self.depth - phase
            settled = states[name(f"d{l - 1}")] * self._gains[l - 2]
            self.deltas[l - 2] = settled
            self._target = settled

    def split_traces(self, traces, scale):
        """Keep this chain's blocks of the run's traces, one dict per phase,
        keyed by the chain's own block names (``u{l}``, ``d{l}``, ``h{l}``),
        with time counted from the phase's start, in units of the fastest
        system population's tau (``scale`` converts from the run's unit)."""
        if traces is None:
            return
        for phase in range(self.phases):
            index = np.flatnonzero(traces["phase"] == phase)
            t = traces["t"][index]
            part = {"t": (t - t[0]) * scale}
            part.update({b[len(self.prefix):]: traces[b][index] for b in self.active(phase)})
            self.traces.append(part)

    def result(self, steps):
        """The `ChainSettled` of the last problem, run for ``steps`` steps."""
        if not self.traces:
            traces = None
        elif self.architecture == "sequential":
            traces = self.traces
        else:
            traces = self.traces[0]
        return ChainSettled(self.deltas, self.residual, traces, steps)


class JointChainCircuit:
    """Several chains (e.g. the DI and SLDI models of one training step) in one
    Brian2 Network: their phases run together, so all of them settle in as
    many runs as the deepest sequential chain has layer pairs.

    Parameters
    ----------
    specs : sequence of ChainSpec
    batch : int
        Samples per problem (shared by all chains).
    tau_system, tau_controller : Quantity or list
        Time constants of the systems/relays (layers 1 .. L-1) and of the
        controllers (layers 2 .. L; layer L only for single-loop), one value
        or one per layer, shared by all chains.
    dt : float
        Euler step in units of the fastest population's tau.
    coupling, target : str
        See `dinv.circuits.assembly.CircuitAssembly`.
    """

    def __init__(self, specs, batch=1, tau_system=10 * ms, tau_controller=10 * ms, dt=0.5,
                 coupling="dense", target="cython", prefixes=None):
        if not specs:
            raise InputError("a joint chain circuit needs at least one chain")
        prefixes = prefixes or [f"c{m}_" for m in range(len(specs))]
        self.members = [_Member(prefix, spec, batch, tau_system, tau_controller)
                        for prefix, spec in zip(prefixes, specs)]
        self.assembly = CircuitAssembly(
            [b for m in self.members for b in m.blocks],
            [p for m in self.members for p in m.pathways],
            batch=batch, dt=dt, coupling=coupling, target=target)

    def settle_all(self, problems, steps=1000, record_every=0, on_unsettled="warn",
                   settle_tol=1e-3, stop_tol=None):
        """Settle one problem per chain.

        Parameters
        ----------
        problems : sequence of dict
            Per chain: ``weights`` (W_1 .. W_L, each (n, d_l, d_{l-1})),
            ``feedback`` (B_2 .. B_L, each (n, d_{l-1}, d_l), or [B] of shape
            (n, d_1, d_L) for single-loop), ``delta`` (n, batch, d_L),
            ``alpha`` ((n,), or (n, L - 1) for one leak per layer pair) and optionally ``gains`` (g'(a_l), each
            (n, batch, d_l), linear controller only).
        steps : int
            Euler steps per run (per layer pair for sequential chains).
        record_every : int
            Record the active populations every this many steps (0: none).
        on_unsettled : {'warn', 'raise', 'ignore'}
        settle_tol : float
        stop_tol : float or None
            Optional convergence criterion: a phase ends early once the
            relative rate of change of its populations is below this (see
            `dinv.circuits.assembly.CircuitAssembly.run_phases`). None (the
            default) runs every step.

        Returns
        -------
        list of ChainSettled
        """
        if on_unsettled not in ON_UNSETTLED:
            raise InputError(f"on_unsettled must be one of {ON_UNSETTLED}, got {on_unsettled!r}")
        if len(problems) != len(self.members):
            raise InputError(f"{len(self.members)} chains need {len(self.members)} problems, "
                             f"got {len(problems)}")
        asm = self.assembly
        for member, problem in zip(self.members, problems):
            member.load(asm, problem["weights"], problem["feedback"], problem["delta"],
                        problem["alpha"], problem.get("gains"))
        phases = []
        for index in range(max(m.phases for m in self.members)):
            actives = [m.active(index) for m in self.members]
            phases.append(Phase(
                steps, set().union(*actives),
                start=lambda index=index: [m.prepare(asm, index) for m in self.members],
                end=lambda index=index, actives=actives: [
                    m.collect(asm, index, a) for m, a in zip(self.members, actives)],
            ))
        try:
            traces = asm.run_phases(phases, sorted(set().union(*(p.active for p in phases)))
                                    if record_every else (), record_every, stop_tol)
        except CircuitDivergedError as exc:
            raise CircuitDivergedError(
                f"{exc}: the feedback makes a layer unstable or dt is too large; check "
                "the Jacobian eigenvalues of each layer (dinv.analysis.stability), use a "
                "larger alpha, stable feedback, a slower controller or a smaller dt"
            ) from None
        fastest_system = min((b.tau for b in asm.blocks.values() if b.kind == "system"),
                             key=lambda tau: float(tau / ms))
        scale = float(asm.tau_unit / fastest_system)
        for member in self.members:
            member.split_traces(traces, scale)
        results = [m.result(asm.steps_run) for m in self.members]
        worst = max(float(r.residual.max()) for r in results)
        report_unsettled(worst, steps, settle_tol, on_unsettled)
        return results


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
    tau_system, tau_controller, dt, coupling, target
        See `JointChainCircuit`.

    Blocks are named ``u{l}`` (controllers), ``d{l}`` (systems) and, for
    single-loop, ``h{l}`` (first layer and relays).
    """

    def __init__(self, widths, architecture="sequential", transfers=None, batch=1, n=1,
                 tau_system=10 * ms, tau_controller=10 * ms, dt=0.5, coupling="dense",
                 target="cython"):
        spec = ChainSpec(tuple(widths), architecture,
                         None if transfers is None else tuple(transfers), n)
        super().__init__([spec], batch, tau_system, tau_controller, dt, coupling, target,
                         prefixes=[""])

    def settle(self, weights, feedback, delta, alpha, gains=None, steps=1000, record_every=0,
               on_unsettled="warn", settle_tol=1e-3, stop_tol=None):
        """Run the backward pass from rest (see `JointChainCircuit.settle_all`).

        Returns
        -------
        ChainSettled
        """
        problem = {"weights": weights, "feedback": feedback, "delta": delta, "alpha": alpha,
                   "gains": gains}
        return self.settle_all([problem], steps, record_every, on_unsettled, settle_tol,
                               stop_tol)[0]


_CACHE = CircuitCache()


def _time_key(value):
    values = value if isinstance(value, (list, tuple)) else [value]
    return tuple(float(v / ms) if hasattr(v, "dim") else v for v in values)


def settle_chains(specs, problems, steps=1000, dt=0.5, tau_system=10 * ms,
                  tau_controller=10 * ms, coupling="dense", target="cython", record_every=0,
                  on_unsettled="warn", settle_tol=1e-3, stop_tol=None):
    """Settle several chains in one joint circuit, cached by specs and options.

    Parameters
    ----------
    specs : sequence of ChainSpec
    problems : sequence of dict
        One per spec, see `JointChainCircuit.settle_all`.
    Other parameters: see `JointChainCircuit`.

    Returns
    -------
    list of ChainSettled
    """
    batch = int(np.shape(problems[0]["delta"])[1]) if problems else 1
    key = ("chains", tuple(specs), batch, _time_key(tau_system), _time_key(tau_controller),
           float(dt), coupling, target)
    circuit = _CACHE.get(key, lambda: JointChainCircuit(
        specs, batch, tau_system, tau_controller, dt, coupling, target))
    return circuit.settle_all(problems, steps, record_every, on_unsettled, settle_tol,
                              stop_tol)


def settle_chain(weights, feedback, delta, alpha, gains=None, architecture="sequential",
                 transfers=None, steps=1000, dt=0.5, tau_system=10 * ms,
                 tau_controller=10 * ms, coupling="dense", target="cython", record_every=0,
                 on_unsettled="warn", settle_tol=1e-3, stop_tol=None):
    """Settle one chained backward pass; circuits are cached by shape and options.

    Parameters are those of `ChainCircuit` and `ChainCircuit.settle`; stacked
    arrays (leading axis n) throughout.

    Returns
    -------
    ChainSettled
    """
    delta = np.asarray(delta, dtype=float)
    weights = [np.asarray(w, dtype=float) for w in weights]
    if delta.ndim != 3 or any(w.ndim != 3 for w in weights) or not weights:
        raise InputError("settle_chain takes stacked arrays: weights (n, d_l, d_(l-1)) and "
                         "delta (n, batch, d_L)")
    widths = (weights[0].shape[2],) + tuple(w.shape[1] for w in weights)
    spec = ChainSpec(widths, architecture, None if transfers is None else tuple(transfers),
                     delta.shape[0])
    problem = {"weights": weights, "feedback": feedback, "delta": delta, "alpha": alpha,
               "gains": gains}
    return settle_chains([spec], [problem], steps, dt, tau_system, tau_controller, coupling,
                         target, record_every, on_unsettled, settle_tol, stop_tol)[0]
