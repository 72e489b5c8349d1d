"""The two-population circuit that inverts one layer (Eqs. 5-10).

`LayerCircuit` is built once for given widths, batch size and number of
independent problems, then reused: set weights and targets, reset to rest,
run, read the settled state. `settle_layer` is the one-call entry point.
"""

import gc
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from brian2 import Clock, Network, NetworkOperation, Quantity, have_same_dimensions, ms, second
from brian2.codegen.runtime.cython_rt import CythonCodeObject
from brian2.codegen.runtime.numpy_rt import NumpyCodeObject

from analysis.stability import jacobian_abscissa
from circuits.couplings import DenseCoupling, SynapticCoupling, state_view
from circuits.errors import CircuitDivergedError, InputError, NotSettledWarning
from circuits.populations import CONTROLLER, SYSTEM
from circuits.problem import layer_problem

CODE_TARGETS = {"cython": CythonCodeObject, "numpy": NumpyCodeObject}
COUPLINGS = {"dense": DenseCoupling, "synapses": SynapticCoupling}
ON_UNSETTLED = ("warn", "raise", "ignore")
# Brian2 writes object names into the generated code, so every circuit uses the
# same names (they only need to be unique within one Network): the compiled
# Cython code of one circuit then serves every later circuit of any shape.
TAG = "dinv"


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
        Largest relative time derivative of either population at the end of
        the run, per problem: ``max|d state/dt| * tau / max(|state|, |target|)``.
        Near 0 when the circuit has settled.
    traces : dict or None
        With ``record_every``: ``'t'`` (steps, in units of tau_system),
        ``'delta'`` and ``'u'`` of shape (records, n, batch, d).
    """

    delta: np.ndarray
    u: np.ndarray
    residual: np.ndarray
    traces: dict = None


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
        Euler step in units of ``tau_system`` (the paper: 0.5).
    coupling : {'dense', 'synapses'}
        Implementation of the W and B pathways (see `circuits.couplings`).
    target : {'cython', 'numpy'}
        Brian2 code-generation target for the populations.
    system_model, controller_model : PopulationModel
        Neuron models of the two populations.
    divergence_limit : float
        A state larger than this times the largest target is divergence.
    """

    def __init__(
        self,
        d_out,
        d_in,
        batch=1,
        n=1,
        tau_system=10 * ms,
        tau_controller=10 * ms,
        dt=0.5,
        coupling="dense",
        target="cython",
        system_model=SYSTEM,
        controller_model=CONTROLLER,
        divergence_limit=1e8,
    ):
        for label, value in (("d_out", d_out), ("d_in", d_in), ("batch", batch), ("n", n)):
            if int(value) != value or value < 1:
                raise InputError(f"{label} must be a positive integer, got {value!r}")
        if coupling not in COUPLINGS:
            raise InputError(f"coupling must be one of {sorted(COUPLINGS)}, got {coupling!r}")
        if target not in CODE_TARGETS:
            raise InputError(f"target must be one of {sorted(CODE_TARGETS)}, got {target!r}")
        _check_time(tau_system, "tau_system")
        _check_time(tau_controller, "tau_controller")
        if not (np.isfinite(dt) and dt > 0):
            raise InputError(f"dt must be a positive number (in units of tau_system), got {dt!r}")
        self.shape_out = (int(n), int(batch), int(d_out))
        self.shape_in = (int(n), int(batch), int(d_in))
        self.dt = float(dt)
        self.divergence_limit = float(divergence_limit)
        self.system_model = system_model
        self.controller_model = controller_model
        tag = TAG
        codeobj = CODE_TARGETS[target]
        self.clock = Clock(dt=self.dt * tau_system, name=f"{tag}_clock")
        self.controller = controller_model.make_group(
            int(np.prod(self.shape_out)), f"{tag}_controller", self.clock, 0, codeobj
        )
        self.system = system_model.make_group(
            int(np.prod(self.shape_in)), f"{tag}_system", self.clock, 2, codeobj
        )
        setattr(self.system, system_model.tau, tau_system)
        setattr(self.controller, controller_model.tau, tau_controller)
        self.tau_system = tau_system
        self.tau_controller = tau_controller
        make = COUPLINGS[coupling]
        extra = {"codeobj_class": codeobj} if coupling == "synapses" else {}
        # Forward pathway W: system state -> controller readout (Eq. 6).
        self.forward = make(
            self.system, system_model.state, self.controller, controller_model.input,
            self.shape_in, self.shape_out, f"{tag}_W", **extra,
        )
        # Feedback pathway B: control signal -> system input (Eq. 5).
        self.feedback = make(
            self.controller, controller_model.state, self.system, system_model.input,
            self.shape_out, self.shape_in, f"{tag}_B", **extra,
        )
        self._delta = state_view(self.system, system_model.state, self.shape_in)
        self._u = state_view(self.controller, controller_model.state, self.shape_out)
        self._target = state_view(self.controller, "target", self.shape_out)
        self._alpha = state_view(self.controller, "alpha", self.shape_out)
        self._watch = NetworkOperation(
            self._check_and_record, when="end", clock=self.clock, name=f"{tag}_watch"
        )
        self.network = Network(
            self.system,
            self.controller,
            *self.forward.brian_objects,
            *self.feedback.brian_objects,
            self._watch,
            name=f"{tag}_network",
        )
        self._record_every = 0
        self._records = []
        self._step = 0
        self._limit = np.inf
        self._diverged_at = None
        # Each Network.run calls gc.collect(), which costs tens of ms per run
        # (measured: 97 ms against 12 ms per short run in a process holding
        # Brian2, scipy and matplotlib). Objects alive now are long-lived, so
        # move them out of the collector's view; a circuit dropped later is
        # only freed after gc.unfreeze() (settle_layer's cache does this).
        gc.collect()
        gc.freeze()

    def settle(self, W, B, delta, alpha, steps=1000, record_every=0, on_unsettled="warn",
               settle_tol=1e-3):
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
        if (problem.n, problem.batch) != self.shape_out[:2] or problem.d_out != self.shape_out[2] \
                or problem.d_in != self.shape_in[2]:
            raise InputError(
                f"this circuit was built for n={self.shape_out[0]}, batch={self.shape_out[1]}, "
                f"d_l={self.shape_out[2]}, d_(l-1)={self.shape_in[2]}; got n={problem.n}, "
                f"batch={problem.batch}, d_l={problem.d_out}, d_(l-1)={problem.d_in}"
            )
        if int(steps) != steps or steps < 1:
            raise InputError(f"steps must be a positive integer, got {steps!r}")
        if on_unsettled not in ON_UNSETTLED:
            raise InputError(f"on_unsettled must be one of {ON_UNSETTLED}, got {on_unsettled!r}")
        self.forward.set_matrix(problem.W)
        self.feedback.set_matrix(problem.B)
        self._target[...] = problem.delta
        self._alpha[...] = problem.alpha[:, None, None]
        self._delta[...] = 0.0
        self._u[...] = 0.0
        self._record_every = int(record_every)
        self._records = [(0, self._delta.copy(), self._u.copy())] if record_every else []
        self._step = 0
        self._limit = self.divergence_limit * max(1.0, float(np.abs(problem.delta).max()))
        self._diverged_at = None
        self.network.run(int(steps) * self.clock.dt, namespace={})
        if self._diverged_at is not None:
            raise CircuitDivergedError(self._divergence_message(problem))
        settled = Settled(
            delta=self._delta.copy(),
            u=self._u.copy(),
            residual=self._residual(problem),
            traces=self._traces(),
        )
        worst = float(settled.residual.max())
        if worst > settle_tol and on_unsettled != "ignore":
            message = (
                f"the circuit has not settled after {steps} steps (relative rate of change "
                f"{worst:.2g} > settle_tol={settle_tol:g}); run more steps, use a larger "
                "alpha or a slower controller, or pass on_unsettled='ignore'"
            )
            if on_unsettled == "raise":
                raise CircuitDivergedError(message)
            warnings.warn(message, NotSettledWarning, stacklevel=2)
        return settled

    def _check_and_record(self):
        self._step += 1
        if self._record_every and self._step % self._record_every == 0:
            self._records.append((self._step, self._delta.copy(), self._u.copy()))
        if self._step % 50 == 0 or self._step == 1:
            size = max(np.abs(self._delta).max(initial=0.0), np.abs(self._u).max(initial=0.0))
            if not np.isfinite(size) or size > self._limit:
                self._diverged_at = self._step
                self.network.stop()

    def _residual(self, problem):
        """Relative rate of change of both populations at the final state."""
        tau_ratio = float(self.tau_system / self.tau_controller)
        d_delta = -self._delta + self._u @ problem.B.transpose(0, 2, 1)
        d_u = tau_ratio * (
            -problem.alpha[:, None, None] * self._u
            + self._delta @ problem.W.transpose(0, 2, 1)
            - problem.delta
        )
        scale = np.maximum(
            np.abs(self._delta).max(axis=(1, 2)), np.abs(problem.delta).max(axis=(1, 2))
        )
        scale = np.maximum(scale, np.finfo(float).tiny)
        rate = np.maximum(np.abs(d_delta).max(axis=(1, 2)), np.abs(d_u).max(axis=(1, 2)))
        return rate / scale

    def _traces(self):
        if not self._record_every:
            return None
        steps, deltas, us = zip(*self._records)
        return {
            "t": np.asarray(steps) * self.dt,
            "delta": np.stack(deltas),
            "u": np.stack(us),
        }

    def _divergence_message(self, problem):
        ratio = float(self.tau_system / self.tau_controller)
        worst = max(
            jacobian_abscissa(problem.W[c], problem.B[c], problem.alpha[c], ratio)
            for c in range(problem.n)
        )
        cause = (
            f"the circuit is unstable (largest real eigenvalue of its Jacobian {worst:.3g} > 0): "
            "use a larger alpha or a stable feedback B (B = -W^T is always stable)"
            if worst > 0
            else f"the circuit is stable (largest real eigenvalue {worst:.3g}) but the Euler step "
            f"dt={self.dt:g} is too large for its fast modes: use a smaller dt"
        )
        return f"circuit diverged after {self._diverged_at} steps: {cause}"


def _check_time(value, name):
    ok = (
        isinstance(value, Quantity)
        and have_same_dimensions(value, second)
        and np.size(value) == 1
        and bool(np.isfinite(float(value / ms)) and float(value / ms) > 0)
    )
    if not ok:
        raise InputError(f"{name} must be a positive time, e.g. 10*ms; got {value!r}")


_CACHE = OrderedDict()
_CACHE_SIZE = 8


def _evict_oldest():
    """Drop the least recently used cached circuit and free its memory.

    Circuits are frozen out of the garbage collector's view when built (see
    `LayerCircuit`), so dropping one means unfreezing, collecting, refreezing.
    """
    _CACHE.popitem(last=False)
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def settle_layer(W, B, delta, alpha, steps=1000, dt=0.5, tau_system=10 * ms,
                 tau_controller=10 * ms, coupling="dense", target="cython",
                 record_every=0, on_unsettled="warn", settle_tol=1e-3, return_result=False):
    """Settle the dynamic-inversion circuit of one layer and return delta_{l-1}.

    Simulates, from rest, the system and controller populations (Eqs. 5, 8)::

        tau_system     d(delta_{l-1})/dt = -delta_{l-1} + B u
        tau_controller du/dt             = -alpha u + W delta_{l-1} - delta_l

    whose steady state is ``B (W B - alpha I)^-1 delta_l`` (Eq. 10). Circuits
    are built once per shape and option set and reused by later calls.

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
        Euler step in units of tau_system (the paper: 0.5).
    tau_system, tau_controller : brian2.Quantity
        Time constants (second) of the two populations.
    coupling : {'dense', 'synapses'}
        Implementation of the W and B pathways.
    target : {'cython', 'numpy'}
        Brian2 code-generation target.
    record_every : int
        Record traces every this many steps (0: none).
    on_unsettled : {'warn', 'raise', 'ignore'}
        Reaction to a run that ends before the circuit settled.
    settle_tol : float
        Residual accepted as settled.
    return_result : bool
        Return the full `Settled` (stacked layout, with traces) instead.

    Returns
    -------
    ndarray or Settled
        Settled delta_{l-1} in the layout of ``delta``: (batch, d_{l-1}),
        (d_{l-1},) or (n, batch, d_{l-1}).
    """
    problem = layer_problem(W, B, delta, alpha)
    _check_time(tau_system, "tau_system")
    _check_time(tau_controller, "tau_controller")
    key = (problem.d_out, problem.d_in, problem.batch, problem.n, float(dt),
           float(tau_system / ms), float(tau_controller / ms), coupling, target)
    circuit = _CACHE.pop(key, None)
    if circuit is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _evict_oldest()
        circuit = LayerCircuit(problem.d_out, problem.d_in, problem.batch, problem.n,
                               tau_system, tau_controller, dt, coupling, target)
    _CACHE[key] = circuit
    result = circuit.settle(problem.W, problem.B, problem.delta, problem.alpha, steps,
                            record_every, on_unsettled, settle_tol)
    if return_result:
        return result
    return problem.restore(result.delta)
