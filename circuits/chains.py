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

from circuits.assembly import (
    ON_UNSETTLED,
    TRANSFERS,
    Block,
    CircuitAssembly,
    Pathway,
    check_time,
    report_unsettled,
    residual,
)
from circuits.cache import CircuitCache
from circuits.errors import CircuitDivergedError, InputError
from circuits.problem import finite_array

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
    """

    deltas: list
    residual: np.ndarray
    traces: object = None


def _per_layer(value, count, name):
    values = list(value) if isinstance(value, (list, tuple)) else [value] * count
    if len(values) != count:
        raise InputError(f"{name} needs {count} time constants (one per layer), "
                         f"got {len(values)}")
    for v in values:
        check_time(v, name)
    return values


class ChainCircuit:
    """The backward pass of a network of widths d_0 .. d_L as one circuit.

    Parameters
    ----------
    widths : sequence of int
        d_0 .. d_L (d_0 is not simulated).
    architecture : {'sequential', 'repeat', 'single-loop'}
    transfers : sequence of str or None
        g_1 .. g_{L-1} for the nonlinear controller (Eq. 14); None for the
        linear controller with gains (Eq. 17). Required for 'single-loop'.
    batch, n : int
        Samples per problem and independent problems (models).
    tau_system : Quantity or list
        Time constant of the populations that receive control or relay
        (layers 1 .. L-1), one value or one per layer.
    tau_controller : Quantity or list
        Time constant of the controllers (layers 2 .. L; only layer L for
        'single-loop'), one value or one per layer.
    dt : float
        Euler step in units of the fastest system population's tau.
    coupling, target : str
        See `circuits.assembly.CircuitAssembly`.
    """

    def __init__(self, widths, architecture="sequential", transfers=None, batch=1, n=1,
                 tau_system=10 * ms, tau_controller=10 * ms, dt=0.5, coupling="dense",
                 target="cython"):
        widths = [int(w) for w in widths]
        if len(widths) < 3 or min(widths) < 1:
            raise InputError(f"a chain needs at least one hidden layer: widths d_0..d_L with "
                             f"L >= 2, got {widths}")
        if architecture not in ARCHITECTURES:
            raise InputError(f"architecture must be one of {ARCHITECTURES}, "
                             f"got {architecture!r}")
        depth = len(widths) - 1
        if architecture == "single-loop" and transfers is None:
            transfers = ["linear"] * (depth - 1)
        if transfers is not None:
            transfers = list(transfers)
            if len(transfers) != depth - 1:
                raise InputError(f"transfers needs one name per hidden layer ({depth - 1}), "
                                 f"got {len(transfers)}")
            for name in transfers:
                if name not in TRANSFERS:
                    raise InputError(f"transfer must be one of {list(TRANSFERS)}, "
                                     f"got {name!r}")
        self.widths, self.depth = widths, depth
        self.architecture, self.transfers = architecture, transfers
        self.n, self.batch = int(n), int(batch)
        tau_sys = _per_layer(tau_system, depth - 1, "tau_system")
        n_controllers = 1 if architecture == "single-loop" else depth - 1
        tau_ctl = _per_layer(tau_controller, n_controllers, "tau_controller")
        self.tau_system, self.tau_controller = tau_sys, tau_ctl
        blocks, pathways = [], []
        if architecture == "single-loop":
            for l in range(1, depth):
                blocks.append(Block(f"h{l}", "system", widths[l], self.n, tau_sys[l - 1]))
            blocks.append(Block(f"u{depth}", "controller", widths[depth], self.n, tau_ctl[0]))
            pathways.append(Pathway("B", f"u{depth}", "h1"))
            for l in range(2, depth + 1):
                dst = f"u{depth}" if l == depth else f"h{l}"
                pathways.append(Pathway(f"W{l}", f"h{l - 1}", dst, transfer=transfers[l - 2]))
        else:
            for l in range(depth, 1, -1):
                transfer = "linear" if transfers is None else transfers[l - 2]
                blocks.append(Block(f"u{l}", "controller", widths[l], self.n, tau_ctl[l - 2]))
                blocks.append(Block(f"d{l - 1}", "system", widths[l - 1], self.n,
                                    tau_sys[l - 2]))
                pathways.append(Pathway(f"W{l}", f"d{l - 1}", f"u{l}", transfer=transfer))
                pathways.append(Pathway(f"B{l}", f"u{l}", f"d{l - 1}"))
                if architecture == "repeat" and l < depth:
                    pathways.append(Pathway(f"relay{l}", f"d{l}", f"u{l}", kind="gain",
                                            variable="target"))
        self.assembly = CircuitAssembly(blocks, pathways, batch=self.batch, dt=dt,
                                        coupling=coupling, target=target)

    def settle(self, weights, feedback, delta, alpha, gains=None, steps=1000, record_every=0,
               on_unsettled="warn", settle_tol=1e-3):
        """Run the backward pass from rest.

        Parameters
        ----------
        weights : list of ndarray
            W_1 .. W_L, each (n, d_l, d_{l-1}) (W_1 is not used).
        feedback : list of ndarray
            B_2 .. B_L, each (n, d_{l-1}, d_l); for 'single-loop' one matrix
            B of shape (n, d_1, d_L).
        delta : ndarray, shape (n, batch, d_L)
            Output errors.
        alpha : ndarray, shape (n,)
            Leak of the controllers (the same for every layer of a problem).
        gains : list of ndarray or None
            g'(a_1) .. g'(a_{L-1}), each (n, batch, d_l), for the linear
            controller (Eq. 17); None means ones.
        steps : int
            Euler steps per run (per layer pair for 'sequential').
        record_every : int
            Record all active populations every this many steps (0: none).
        on_unsettled : {'warn', 'raise', 'ignore'}
        settle_tol : float

        Returns
        -------
        ChainSettled
        """
        if on_unsettled not in ON_UNSETTLED:
            raise InputError(f"on_unsettled must be one of {ON_UNSETTLED}, got {on_unsettled!r}")
        depth, n, batch = self.depth, self.n, self.batch
        weights = [finite_array(f"W{l + 1}", w, (3,)) for l, w in enumerate(weights)]
        if [w.shape for w in weights] != [(n, self.widths[l + 1], self.widths[l])
                                          for l in range(depth)]:
            raise InputError(f"weights must have shapes (n, d_l, d_(l-1)) for widths "
                             f"{self.widths} and n={n}, got {[w.shape for w in weights]}")
        delta = finite_array("delta", delta, (3,))
        if delta.shape != (n, batch, self.widths[-1]):
            raise InputError(f"delta must have shape {(n, batch, self.widths[-1])}, "
                             f"got {delta.shape}")
        alpha = finite_array("alpha", alpha, (0, 1))
        alpha = np.full(n, alpha.item()) if alpha.size == 1 else alpha
        if alpha.shape != (n,) or np.any(alpha < 0):
            raise InputError(f"alpha must be >= 0, one value or one per problem ({n})")
        if gains is None or self.transfers is not None:
            gains = [np.ones((n, batch, d)) for d in self.widths[1:-1]]
        gains = [finite_array(f"gain{l + 1}", g, (3,)) for l, g in enumerate(gains)]
        if [g.shape for g in gains] != [(n, batch, d) for d in self.widths[1:-1]]:
            raise InputError("gains must be one (n, batch, d_l) array per hidden layer")
        asm = self.assembly
        scale = np.abs(delta).max(axis=(1, 2))
        if self.architecture == "single-loop":
            feedback = [finite_array("B", b, (3,)) for b in feedback]
            if len(feedback) != 1 or feedback[0].shape != (n, self.widths[1], self.widths[-1]):
                raise InputError(f"single-loop feedback is one matrix B of shape "
                                 f"{(n, self.widths[1], self.widths[-1])}")
            if np.any(alpha == 0) and self.widths[-1] > self.widths[1]:
                raise InputError("alpha = 0 makes the single loop singular when d_L > d_1; "
                                 "use alpha > 0")
            asm.set_matrix("B", feedback[0])
            for l in range(2, depth + 1):
                asm.set_matrix(f"W{l}", weights[l - 1])
            asm.set_target(f"u{depth}", delta)
            asm.set_alpha(f"u{depth}", alpha)
            traces = self._run(steps, set(asm.blocks), record_every)
            deltas = [asm.state(f"h{l}") for l in range(1, depth)]
            res = residual(asm.rates(), {b: asm.state(b) for b in asm.blocks}, scale)
            report_unsettled(float(res.max()), steps, settle_tol, on_unsettled)
            return ChainSettled(deltas, res, traces)
        feedback = [finite_array(f"B{l + 2}", b, (3,)) for l, b in enumerate(feedback)]
        if [b.shape for b in feedback] != [(n, self.widths[l - 1], self.widths[l])
                                           for l in range(2, depth + 1)]:
            raise InputError(f"feedback must be B_2..B_L of shapes (n, d_(l-1), d_l), "
                             f"got {[b.shape for b in feedback]}")
        for l in range(2, depth + 1):
            if np.any(alpha == 0) and self.widths[l] > self.widths[l - 1]:
                raise InputError(f"alpha = 0 makes the inversion of expanding layer {l} "
                                 "singular; use alpha > 0")
            asm.set_matrix(f"W{l}", weights[l - 1])
            asm.set_matrix(f"B{l}", feedback[l - 2])
            asm.set_alpha(f"u{l}", alpha)
        if self.architecture == "repeat":
            for l in range(2, depth):
                asm.set_gain(f"relay{l}", gains[l - 1])
            asm.set_target(f"u{depth}", delta)
            traces = self._run(steps, set(asm.blocks), record_every)
            deltas = [asm.state(f"d{l}") * gains[l - 1] for l in range(1, depth)]
            res = residual(asm.rates(), {b: asm.state(b) for b in asm.blocks}, scale)
            report_unsettled(float(res.max()), steps, settle_tol, on_unsettled)
            return ChainSettled(deltas, res, traces)
        deltas, all_traces = [None] * (depth - 1), []
        res = np.zeros(n)
        target = delta
        for l in range(depth, 1, -1):
            asm.set_target(f"u{l}", target)
            active = {f"u{l}", f"d{l - 1}"}
            all_traces.append(self._run(steps, active, record_every))
            settled = asm.state(f"d{l - 1}") * gains[l - 2]
            res = np.maximum(res, residual(asm.rates(), {b: asm.state(b) for b in active},
                                           np.abs(target).max(axis=(1, 2))))
            deltas[l - 2] = settled
            target = settled
        report_unsettled(float(res.max()), steps, settle_tol, on_unsettled)
        return ChainSettled(deltas, res, all_traces if record_every else None)

    def _run(self, steps, active, record_every):
        try:
            return self.assembly.run(steps, active, sorted(active) if record_every else (),
                                     record_every)
        except CircuitDivergedError as exc:
            raise CircuitDivergedError(
                f"{exc} ({self.architecture} chain): the feedback makes a layer unstable or "
                "dt is too large; check the Jacobian eigenvalues of each layer "
                "(analysis.stability), use a larger alpha, stable feedback or a smaller dt"
            ) from None


_CACHE = CircuitCache()


def settle_chain(weights, feedback, delta, alpha, gains=None, architecture="sequential",
                 transfers=None, steps=1000, dt=0.5, tau_system=10 * ms,
                 tau_controller=10 * ms, coupling="dense", target="cython", record_every=0,
                 on_unsettled="warn", settle_tol=1e-3):
    """Settle a chained backward pass; circuits are cached by shape and options.

    Parameters are those of `ChainCircuit` and `ChainCircuit.settle`; stacked
    arrays (leading axis n) throughout.

    Returns
    -------
    ChainSettled
    """
    weights = [np.asarray(w, dtype=float) for w in weights]
    delta = np.asarray(delta, dtype=float)
    if delta.ndim != 3 or any(w.ndim != 3 for w in weights):
        raise InputError("settle_chain takes stacked arrays: weights (n, d_l, d_(l-1)) and "
                         "delta (n, batch, d_L)")
    widths = [weights[0].shape[2]] + [w.shape[1] for w in weights]
    n, batch = delta.shape[:2]

    def key_time(value):
        values = value if isinstance(value, (list, tuple)) else [value]
        return tuple(float(v / ms) for v in values)

    key = ("chain", tuple(widths), architecture, None if transfers is None else tuple(transfers),
           batch, n, key_time(tau_system), key_time(tau_controller), float(dt), coupling, target)
    circuit = _CACHE.get(key, lambda: ChainCircuit(
        widths, architecture, transfers, batch, n, tau_system, tau_controller, dt, coupling,
        target))
    return circuit.settle(weights, feedback, delta, alpha, gains, steps, record_every,
                          on_unsettled, settle_tol)
