"""The two-population circuit that inverts one layer (Eqs. 5-10, 14).

`LayerCircuit` is built once for given widths, batch size and number of
independent problems, then reused: set weights and targets, reset to rest,
run, read the settled state. `settle_layer` is the one-call entry point.
"""

from dataclasses import dataclass

import numpy as np
from brian2 import ms

from dinv.analysis.stability import jacobian_abscissa
from dinv.circuits.assembly import (
    ON_UNSETTLED,
    Block,
    CircuitAssembly,
    Pathway,
    check_time,
    report_unsettled,
    residual,
)
from dinv.circuits.cache import CircuitCache
from dinv.errors import CircuitDivergedError, InputError
from dinv.circuits.populations import CONTROLLER, SYSTEM
from dinv.validation import layer_problem


@dataclass
class Settled:
    """Outcome of one run of a `LayerCircuit`.

    Attributes
    ----------
    delta : ndarray, shape (n, batch, d_{l-1})
        Settled system state (the inverted error).
    u : ndarray, shape (n, batch, d_l)
        Settled control signal.
    residual : ndarray, shape (n,)
        Largest relative rate of change of either population at the end of
        the run, per problem: ``max|d state/dt| * tau / max(|state|, |target|)``.
        Near 0 when the circuit has settled.
    traces : dict or None
        With ``record_every``: ``'t'`` (steps, in units of tau_system),
        ``'delta'`` and ``'u'`` of shape (records, n, batch, d).
    steps : int
        Euler steps the run took (fewer than asked when ``stop_tol`` ended it).
    """

    delta: np.ndarray
    u: np.ndarray
    residual: np.ndarray
    traces: dict = None
    steps: int = 0


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
    tau_system : brian2.Quantity
        Time constant of the system population (second).
    tau_controller : brian2.Quantity
        Time constant of the controller (second); slower control is more stable.
    dt : float
        Euler step in units of the faster time constant (``tau_system``
        unless the controller is faster; the paper: 0.5).
    coupling : {'dense', 'synapses'}
        Implementation of the W and B pathways (see `dinv.circuits.assembly`).
    target : {'cython', 'numpy'}
        Brian2 code-generation target for the populations.
    transfer : str
        'linear' (Eq. 8, the default) or a nonlinearity g for the nonlinear
        controller of Eq. (14): ``du/dt = -alpha u + W g(delta) - delta_l``.
    system_model, controller_model : PopulationModel
        Neuron models of the two populations.
    divergence_limit : float
        A state larger than this times the largest target is divergence.
    """

    def __init__(self, d_out, d_in, batch=1, n=1, tau_system=10 * ms, tau_controller=10 * ms,
                 dt=0.5, coupling="dense", target="cython", transfer="linear",
                 system_model=SYSTEM, controller_model=CONTROLLER, divergence_limit=1e8):
        for label, value in (("d_out", d_out), ("d_in", d_in), ("n", n)):
            if int(value) != value or value < 1:
                raise InputError(f"{label} must be a positive integer, got {value!r}")
        check_time(tau_system, "tau_system")
        check_time(tau_controller, "tau_controller")
        self.shape_out = (int(n), int(batch), int(d_out))
        self.shape_in = (int(n), int(batch), int(d_in))
        self.tau_ratio = float(tau_system / tau_controller)
        self.tau_system = tau_system
        self.assembly = CircuitAssembly(
            [Block("system", "system", int(d_in), int(n), tau_system),
             Block("controller", "controller", int(d_out), int(n), tau_controller)],
            [Pathway("W", "system", "controller", transfer=transfer),
             Pathway("B", "controller", "system")],
            batch=batch, dt=dt, coupling=coupling, target=target,
            system_model=system_model, controller_model=controller_model,
            divergence_limit=divergence_limit,
        )

    def settle(self, W, B, delta, alpha, steps=1000, record_every=0, on_unsettled="warn",
               settle_tol=1e-3, stop_tol=None):
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
        steps : int
            Euler steps of ``dt * tau_system``.
        record_every : int
            Record both populations every this many steps (0: no traces).
        on_unsettled : {'warn', 'raise', 'ignore'}
            What to do when the final residual exceeds ``settle_tol``: warn
            `NotSettledWarning`, raise `CircuitDivergedError`, or nothing.
        settle_tol : float
            Largest residual (see `Settled`) accepted as settled.
        stop_tol : float or None
            Optional convergence criterion: end the run once the residual of
            every problem is below this (checked every 50 steps). None, the
            default, runs all ``steps``.

        Returns
        -------
        Settled
            Arrays in stacked (n, batch, d) layout.

        Raises
        ------
        CircuitDivergedError
            When the state becomes non-finite or explodes; the run stops there.
        """
        problem = layer_problem(W, B, delta, alpha)
        got = (problem.n, problem.batch, problem.d_out, problem.d_in)
        built = self.shape_out + self.shape_in[2:]
        if got != built:
            raise InputError(
                f"this circuit was built for n={built[0]}, batch={built[1]}, d_l={built[2]}, "
                f"d_(l-1)={built[3]}; got n={got[0]}, batch={got[1]}, d_l={got[2]}, "
                f"d_(l-1)={got[3]}"
            )
        if on_unsettled not in ON_UNSETTLED:
            raise InputError(f"on_unsettled must be one of {ON_UNSETTLED}, got {on_unsettled!r}")
        asm = self.assembly
        asm.set_matrix("W", problem.W)
        asm.set_matrix("B", problem.B)
        asm.set_target("controller", problem.delta)
        asm.set_alpha("controller", problem.alpha)
        try:
            traces = asm.run(steps, ("system", "controller"), ("system", "controller"),
                             record_every, stop_tol)
        except CircuitDivergedError as exc:
            raise CircuitDivergedError(f"{exc}: {self._cause(problem)}") from None
        states = {"system": asm.state("system"), "controller": asm.state("controller")}
        rates = asm.rates()
        rates["controller"] = rates["controller"] * self.tau_ratio
        settled = Settled(
            delta=states["system"],
            u=states["controller"],
            residual=residual(rates, states, np.abs(problem.delta).max(axis=(1, 2))),
            traces=None if traces is None else
            {"t": traces["t"] * float(asm.tau_unit / self.tau_system),
             "delta": traces["system"], "u": traces["controller"]},
            steps=asm.steps_run,
        )
        report_unsettled(float(settled.residual.max()), steps, settle_tol, on_unsettled)
        return settled

    def _cause(self, problem):
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


def settle_layer(W, B, delta, alpha, steps=1000, dt=0.5, tau_system=10 * ms,
                 tau_controller=10 * ms, coupling="dense", target="cython", transfer="linear",
                 record_every=0, on_unsettled="warn", settle_tol=1e-3, stop_tol=None,
                 return_result=False):
    """Settle the dynamic-inversion circuit of one layer and return delta_{l-1}.

    Simulates, from rest, the system and controller populations (Eqs. 5, 8)::

        tau_system     d(delta_{l-1})/dt = -delta_{l-1} + B u
        tau_controller du/dt             = -alpha u + W g(delta_{l-1}) - delta_l

    with g the identity (Eq. 8, the default) or ``transfer`` (Eq. 14). With
    the identity the steady state is ``B (W B - alpha I)^-1 delta_l`` (Eq. 10).
    Circuits are built once per shape and option set and reused by later calls.

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
    steps : int
        Euler steps (the paper: 1000).
    dt : float
        Euler step in units of the faster of the two time constants
        (tau_system by default; the paper: 0.5).
    tau_system, tau_controller : brian2.Quantity
        Time constants (second) of the two populations.
    coupling : {'dense', 'synapses'}
        Implementation of the W and B pathways.
    target : {'cython', 'numpy'}
        Brian2 code-generation target.
    transfer : str
        g of the controller's readout: 'linear' or a nonlinearity (Eq. 14).
    record_every : int
        Record traces every this many steps (0: none).
    on_unsettled : {'warn', 'raise', 'ignore'}
        Reaction to a run that ends before the circuit settled.
    settle_tol : float
        Residual accepted as settled.
    stop_tol : float or None
        Optional convergence criterion ending the run early (off by default).
    return_result : bool
        Return the full `Settled` (stacked layout, with traces) instead.

    Returns
    -------
    ndarray or Settled
        Settled delta_{l-1} in the layout of ``delta``: (batch, d_{l-1}),
        (d_{l-1},) or (n, batch, d_{l-1}).
    """
    problem = layer_problem(W, B, delta, alpha)
    check_time(tau_system, "tau_system")
    check_time(tau_controller, "tau_controller")
    key = ("layer", problem.d_out, problem.d_in, problem.batch, problem.n, float(dt),
           float(tau_system / ms), float(tau_controller / ms), coupling, target, transfer)
    circuit = _CACHE.get(key, lambda: LayerCircuit(
        problem.d_out, problem.d_in, problem.batch, problem.n, tau_system, tau_controller,
        dt, coupling, target, transfer))
    result = circuit.settle(problem.W, problem.B, problem.delta, problem.alpha, steps,
                            record_every, on_unsettled, settle_tol, stop_tol)
    if return_result:
        return result
    return problem.restore(result.delta)
