"""The two-population circuit that inverts one layer (Eqs. 5-10, 14).

`LayerCircuit` is built once for given widths, batch size and number of
independent problems, then reused: set weights and targets, reset to rest,
run, read the settled state. `settle_layer` is the one-call entry point.
"""

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np

from dinv.circuits.assembly import CircuitAssembly
from dinv.circuits.cache import CircuitCache
from dinv.circuits.options import SettleOptions, settle_options
from dinv.circuits.populations import CONTROLLER, SYSTEM
from dinv.circuits.settling import report_unsettled, unstable_problems
from dinv.circuits.structure import Block, Pathway
from dinv.circuits.traces import Traces
from dinv.errors import CircuitDivergedError, InputError
from dinv.hints import ArrayLike, BoolArray, FloatArray
from dinv.theory import jacobian_abscissa
from dinv.validation import layer_problem


@dataclass
class Settled:
    """Outcome of one run of a `LayerCircuit`.

    Attributes
    ----------
    delta : ndarray, shape (n, batch, d_{l-1})
        Settled system readout (the inverted error).
    u : ndarray, shape (n, batch, d_l)
        Settled control signal (the controller's readout).
    residual : ndarray, shape (n,)
        Relative change of either population's readout over the last check
        interval of the run, per unit of its time constant, per problem (see
        `dinv.circuits.settling`). Near 0 when the circuit has settled.
    unstable : ndarray of bool, shape (n,)
        Per problem: the run ended unsettled (residual above ``settle_tol``)
        because the circuit is unstable (largest real eigenvalue of its
        Jacobian > 0 for the rate models with the linear controller; readouts
        that keep growing for the others).
    traces : Traces or None
        With ``record_every``: ``'t'`` (in units of tau_system), ``'delta'``
        and ``'u'`` of shape (records, n, batch, d).
    steps : int
        Euler steps the run took (fewer than asked when ``stop_tol`` ended it).
    spiking : dict
        Per spiking population (``'system'``, ``'controller'``), its spike
        statistics (`dinv.circuits.runner.AveragingWindows`): ``spikes``,
        ``mean_rate_hz``, ``max_rate_hz``, ``counts`` per neuron...; empty
        for rate populations. Their ``delta`` and ``u`` are the readouts
        averaged over the last ``average_fraction`` of the run.
    """

    delta: FloatArray
    u: FloatArray
    residual: FloatArray
    traces: Traces | None = None
    steps: int = 0
    unstable: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    spiking: dict[str, dict[str, Any]] = field(default_factory=dict)


def _one(value: Any, name: str) -> Any:
    """The single value of a per-layer option (a layer circuit has one of each)."""
    if isinstance(value, tuple):
        if len(value) != 1:
            raise InputError(f"{name}: a layer circuit has one population of each kind, "
                             f"got {len(value)} values")
        return value[0]
    return value


class LayerCircuit:
    """System population (layer l-1) controlled by a leaky integrator (layer l).

    Parameters
    ----------
    d_out : int
        Width d_l of the controller (the layer whose error is inverted).
    d_in : int
        Width d_{l-1} of the system population.
    batch : int
        Error vectors settled per problem in one run.
    n : int
        Independent problems (each its own W, B and alpha) in one run.
    options : SettleOptions or None
        How the circuit is built (``dt``, time constants, ``coupling``,
        ``codegen_target``, ``system`` and ``controller`` models) and, by
        default, run. ``dt`` is in units of the faster time constant.
    transfer : str
        'linear' (Eq. 8, the default) or a nonlinearity g for the nonlinear
        controller of Eq. (14): ``du/dt = -alpha u + W g(delta) - delta_l``.
    divergence_limit : float
        A readout larger than this times the largest target is divergence.
    **overrides
        Fields of `SettleOptions`, e.g. ``tau_controller=40*ms``.
    """

    def __init__(self, d_out: int, d_in: int, batch: int = 1, n: int = 1,
                 options: SettleOptions | None = None, transfer: str = "linear",
                 divergence_limit: float = 1e8, **overrides: Any):
        options = settle_options(options, overrides)
        for label, value in (("d_out", d_out), ("d_in", d_in), ("n", n)):
            if int(value) != value or value < 1:
                raise InputError(f"{label} must be a positive integer, got {value!r}")
        tau_system = _one(options.tau_system, "tau_system")
        tau_controller = _one(options.tau_controller, "tau_controller")
        self.options = options
        self.shape_out = (int(n), int(batch), int(d_out))
        self.shape_in = (int(n), int(batch), int(d_in))
        self.tau_ratio = float(tau_system / tau_controller)
        self.tau_system = tau_system
        self.models = (_one(options.system, "system"), _one(options.controller, "controller"))
        # Stability has a cheap closed form (Eq. 13) for the rate models with
        # the linear controller; other circuits watch their readouts grow.
        self.exact_stability = self.models == (SYSTEM, CONTROLLER) and transfer == "linear"
        self.assembly = CircuitAssembly(
            [Block("system", self.models[0], int(d_in), int(n), tau_system),
             Block("controller", self.models[1], int(d_out), int(n), tau_controller)],
            [Pathway("W", "system", "controller", transfer=transfer),
             Pathway("B", "controller", "system")],
            batch=batch, dt=options.dt, coupling=options.coupling,
            codegen_target=options.codegen_target, divergence_limit=divergence_limit,
            watch_growth=() if self.exact_stability else ("system", "controller"),
        )

    def set_radius(self, block: str, values: ArrayLike) -> None:
        """Range represented by a spiking population (``'system'`` or ``'controller'``),
        per problem and unit; see `dinv.circuits.assembly.CircuitAssembly.set_radius`."""
        self.assembly.set_radius(block, values)

    def silence(self, fraction: float, seed: int = 0,
                blocks: Collection[str] | None = None) -> None:
        """Silence ``fraction`` of each spiking population's neurons (seeded);
        see `dinv.circuits.assembly.CircuitAssembly.silence`."""
        self.assembly.silence(fraction, seed, blocks)

    def settle(self, W: ArrayLike, B: ArrayLike, delta: ArrayLike, alpha: ArrayLike,
               options: SettleOptions | None = None,
               radius: Mapping[str, ArrayLike] | None = None, **overrides: Any) -> Settled:
        """Run the circuit from rest and return the settled state.

        Parameters
        ----------
        W : array_like, shape (d_l, d_{l-1}) or (n, d_l, d_{l-1})
            Forward weights.
        B : array_like, shape (d_{l-1}, d_l) or (n, d_{l-1}, d_l)
            Feedback weights.
        delta : array_like, shape (batch, d_l) or (n, batch, d_l)
            Errors of layer l (the controller's targets).
        alpha : float or array_like of shape (n,)
            Controller leak(s), >= 0.
        options : SettleOptions or None
            Run settings (``steps``, ``record_every``, ``stop_tol``,
            ``on_unsettled``, ``settle_tol``, ``average_fraction``); None:
            those the circuit was built with. Its circuit fields must be the
            circuit's own.
        radius : dict or None
            Spiking populations: the range each represents, ``{'system': ...,
            'controller': ...}`` (scalars, (n, 1), (n, d) or (n, batch, d);
            e.g. `dinv.circuits.spiking.layer_radii`); None or a missing
            entry: 1. Rate populations ignore it.
        **overrides
            Fields of `SettleOptions`, e.g. ``steps=3000``.

        Returns
        -------
        Settled
            Arrays in stacked (n, batch, d) layout.

        Raises
        ------
        CircuitDivergedError
            When the state becomes non-finite or explodes (the run stops
            there), or with ``on_unsettled='raise'`` when it ends unsettled
            (`CircuitUnstableError` when the circuit is unstable).
        """
        options = settle_options(options or self.options, overrides)
        if options.circuit_key() != self.options.circuit_key():
            raise InputError("these options need another circuit (dt, time constants, "
                             "coupling, codegen_target or models differ from the ones it was "
                             "built with); build one with them, or use settle_layer")
        problem = layer_problem(W, B, delta, alpha)
        got = (problem.n, problem.batch, problem.d_out, problem.d_in)
        built = self.shape_out + self.shape_in[2:]
        if got != built:
            raise InputError(
                f"this circuit was built for n={built[0]}, batch={built[1]}, d_l={built[2]}, "
                f"d_(l-1)={built[3]}; got n={got[0]}, batch={got[1]}, d_l={got[2]}, "
                f"d_(l-1)={got[3]}"
            )
        asm = self.assembly
        asm.set_matrix("W", problem.W)
        asm.set_matrix("B", problem.B)
        asm.set_target("controller", problem.delta)
        asm.set_alpha("controller", problem.alpha)
        if asm.spiking or radius is not None:
            asm.set_radii(radius)
        blocks = ("system", "controller")
        try:
            traces = asm.run(options.steps, blocks, blocks, options.record_every,
                             options.stop_tol, options.average_fraction)
        except CircuitDivergedError as exc:
            raise CircuitDivergedError(f"{exc}: {self._cause(problem)}") from None
        residual = asm.residual(blocks)
        abscissa, grows = self._stability(problem, residual > options.settle_tol)
        settled = Settled(
            delta=asm.state("system"),
            u=asm.state("controller"),
            residual=residual,
            traces=None if traces is None else traces.select(
                {"delta": "system", "u": "controller"},
                time_scale=float(asm.tau_unit / self.tau_system)),
            steps=asm.steps_run,
            unstable=unstable_problems(residual, options.settle_tol, abscissa, grows),
            spiking=asm.statistics(blocks),
        )
        report_unsettled(residual, options.steps, options.settle_tol, options.on_unsettled,
                         abscissa, grows)
        return settled

    def _stability(self, problem, short):
        """Largest real eigenvalue (NaN where not computed) and readout growth of
        the problems ``short`` (bool, (n,)) that ended unsettled."""
        abscissa = np.full(problem.n, np.nan)
        if not short.any():
            return abscissa, None
        if not self.exact_stability:
            return abscissa, self.assembly.grows(("system", "controller"))
        rows = np.flatnonzero(short)
        abscissa[rows] = jacobian_abscissa(problem.W[rows], problem.B[rows],
                                           problem.alpha[rows], self.tau_ratio)
        return abscissa, None

    def _cause(self, problem):
        if self.models != (SYSTEM, CONTROLLER):
            return ("the feedback makes the circuit unstable or the Euler step dt="
                    f"{self.assembly.dt:g} is too large: use a larger alpha, a stable "
                    "feedback B, a slower controller or a smaller dt")
        worst = max(
            jacobian_abscissa(problem.W[c], problem.B[c], problem.alpha[c], self.tau_ratio)
            for c in range(problem.n)
        )
        if worst > 0:
            return (f"the circuit is unstable (largest real eigenvalue of its Jacobian "
                    f"{worst:.3g} > 0): use a larger alpha or a stable feedback B "
                    "(B = -W^T is always stable)")
        return (f"the circuit is stable (largest real eigenvalue {worst:.3g}) but the Euler "
                f"step dt={self.assembly.dt:g} is too large for its fast modes: use a "
                "smaller dt")


_CACHE = CircuitCache()


@overload
def settle_layer(W: ArrayLike, B: ArrayLike, delta: ArrayLike, alpha: ArrayLike,
                 options: SettleOptions | None = None, *, transfer: str = "linear",
                 return_result: Literal[False] = False,
                 radius: Mapping[str, ArrayLike] | None = None, **overrides: Any) -> FloatArray: ...


@overload
def settle_layer(W: ArrayLike, B: ArrayLike, delta: ArrayLike, alpha: ArrayLike,
                 options: SettleOptions | None = None, *, transfer: str = "linear",
                 return_result: Literal[True],
                 radius: Mapping[str, ArrayLike] | None = None, **overrides: Any) -> Settled: ...


@overload
def settle_layer(W: ArrayLike, B: ArrayLike, delta: ArrayLike, alpha: ArrayLike,
                 options: SettleOptions | None = None, *, transfer: str = "linear",
                 return_result: bool = False, radius: Mapping[str, ArrayLike] | None = None,
                 **overrides: Any) -> FloatArray | Settled: ...


def settle_layer(W: ArrayLike, B: ArrayLike, delta: ArrayLike, alpha: ArrayLike,
                 options: SettleOptions | None = None, *, transfer: str = "linear",
                 return_result: bool = False, radius: Mapping[str, ArrayLike] | None = None,
                 **overrides: Any) -> FloatArray | Settled:
    """Settle the dynamic-inversion circuit of one layer and return delta_{l-1}.

    Simulates, from rest, the system and controller populations (Eqs. 5, 8)::

        tau_system     d(delta_{l-1})/dt = -delta_{l-1} + B u
        tau_controller du/dt             = -alpha u + W g(delta_{l-1}) - delta_l

    with g the identity (Eq. 8, the default) or ``transfer`` (Eq. 14). With
    the identity the steady state is ``B (W B - alpha I)^-1 delta_l`` (Eq. 10).
    Other population models (``system=``, ``controller=``) settle to their
    own steady states. Circuits are built once per shape and circuit options
    and reused by later calls.

    Parameters
    ----------
    W : array_like, shape (d_l, d_{l-1}) or (n, d_l, d_{l-1})
        Forward weights (a stack settles n independent circuits in one run).
    B : array_like, shape (d_{l-1}, d_l) or (n, d_{l-1}, d_l)
        Feedback weights.
    delta : array_like, shape (d_l,), (batch, d_l) or (n, batch, d_l)
        Errors of layer l, one row per sample.
    alpha : float or array_like of shape (n,)
        Controller leak, >= 0 (> 0 for expanding layers).
    options : SettleOptions or None
        Steps, dt (units of the faster time constant), time constants,
        stop_tol, on_unsettled, settle_tol, record_every, coupling,
        codegen_target and population models; None: the defaults (1000 steps
        of dt = 0.5, as in the paper).
    transfer : str
        g of the controller's readout: 'linear' or a nonlinearity (Eq. 14).
    return_result : bool
        Return the full `Settled` (stacked layout, with traces and spike
        statistics) instead.
    radius : dict or None
        Spiking populations (``system='scn'``, ...): the range each
        represents, ``{'system': ..., 'controller': ...}``; see
        `LayerCircuit.settle` and `dinv.circuits.spiking.layer_radii`.
    **overrides
        Fields of `SettleOptions`, e.g. ``steps=2000, tau_controller=20*ms``.

    Returns
    -------
    ndarray or Settled
        Settled delta_{l-1} in the layout of ``delta``: (batch, d_{l-1}),
        (d_{l-1},) or (n, batch, d_{l-1}).
    """
    options = settle_options(options, overrides)
    problem = layer_problem(W, B, delta, alpha)
    key = ("layer", problem.d_out, problem.d_in, problem.batch, problem.n, transfer,
           options.circuit_key())
    circuit = _CACHE.get(key, lambda: LayerCircuit(
        problem.d_out, problem.d_in, problem.batch, problem.n, options, transfer))
    result = circuit.settle(problem.W, problem.B, problem.delta, problem.alpha, options,
                            radius=radius)
    if return_result:
        return result
    return problem.restore(result.delta)
