"""Population models: everything a circuit needs to know about a population.

A `PopulationModel` is a neuron model with the roles of its variables: which
variable is read out as the population's activity, which one a coupling
writes into, which parameter is its time constant and, for a controller,
where its target (the error delta_l it drives its readout towards) and its
leak alpha go. It also carries what a spiking model needs: threshold, reset,
refractory period, its own namespace and parameter values. Circuits only
talk to populations through these roles, so another neuron model is a new
`PopulationModel`, not a new circuit: pass it as ``system=``, ``controller=``
(or ``relay=``) to any circuit or settle function, or register it by name
with `register_population_model`.

A circuit judges settling on each population's readout alone (see
`dinv.circuits.settling`), so a model needs no closed-form right-hand side.

A spiking population (`dinv.circuits.spiking`) is a model with an
``ensemble``: its equations describe a *representation* group of one unit
per represented dimension (readout, input, target and leak, as for a rate
model, so couplings are unchanged), and the ensemble adds the spiking neurons
and the synapses that decode their spikes into the readout (`Ensemble`). A
`PopulationFamily` registers the system and controller variants of one
spiking model under one name (``system='scn'`` and ``controller='scn'``).
"""

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np
from brian2 import Equations, NeuronGroup, Quantity
from numpy.typing import NDArray

from dinv.circuits.equations import (
    CONTROLLER_EQUATIONS,
    DIRECT_CONTROLLER_EQUATIONS,
    PID_CONTROLLER_EQUATIONS,
    PID_MATRIX_CONTROLLER_EQUATIONS,
    SYSTEM_EQUATIONS,
)
from dinv.errors import InputError
from dinv.hints import ArrayLike, FloatArray, IntArray
from dinv.validation import finite_array

KINDS = ("system", "controller")
"""Roles of populations: a system (driven by feedback) or a controller."""


def hashable(value: object) -> object:
    """A hashable stand-in for ``value``: quantities by value and unit, sequences as tuples.

    Brian2 quantities are numpy arrays, which do not hash; settings that
    contain them (time constants, parameter values) compare and hash by this.
    """
    if isinstance(value, Quantity):
        return ("quantity", tuple(np.asarray(value, dtype=float).ravel()), repr(value.dim))
    if isinstance(value, np.ndarray):
        return ("array", value.shape, tuple(value.ravel().tolist()))
    if isinstance(value, (list, tuple)):
        return tuple(hashable(v) for v in value)
    return value


Settings = dict[str, Any] | Iterable[tuple[str, Any]]
"""Named values: a dict, or (name, value) pairs (a `PopulationModel` keeps sorted pairs)."""


def _pairs(value: Settings, label: str) -> tuple[tuple[str, Any], ...]:
    """``value`` (a dict or pairs) as a tuple of (name, value) pairs, sorted by name."""
    items = value.items() if isinstance(value, dict) else value
    try:
        pairs = tuple(sorted((str(k), v) for k, v in items))
    except (TypeError, ValueError):
        raise InputError(f"{label} must be a dict or (name, value) pairs, got {value!r}") from None
    return pairs


class Neurons(Protocol):
    """What `Ensemble.build` returns: the neurons behind one representation group
    (`dinv.circuits.spiking.SpikingNeurons`)."""

    objects: list[Any]

    def rest(self, name: str) -> None:
        """Neurons of block ``name`` at rest."""

    def counts(self, name: str) -> IntArray:
        """Spikes per neuron of block ``name`` since its last rest."""

    def active(self, name: str) -> NDArray[np.bool_]:
        """Which neurons of block ``name`` may spike."""

    def silence(self, name: str, fraction: float, rng: np.random.Generator) -> None:
        """Silence ``fraction`` of the neurons of block ``name``."""


class Drive(Protocol):
    """A coupling within a population (`PopulationModel.drive`, e.g. `MatrixGains`)."""

    @property
    def variable(self) -> str:
        """The parameter of the population's equations that the calls write."""

    def calls(self, view: Callable[[str], FloatArray],
              tau: float) -> list[Callable[[], object]]:
        """In-place numpy calls, run every step in this order."""


class Ensemble:
    """The hook of a spiking population: neurons behind a representation group.

    A `PopulationModel` with an ensemble keeps the interface of a rate
    population: one representation unit per represented dimension (for every
    problem and sample), holding the readout that couplings read and the
    input they write. The ensemble says which representation variables it
    uses and builds, for each Brian2 group of such units, the extra objects
    (a spiking ``NeuronGroup`` and the ``Synapses`` that decode its spikes into
    the readout). Subclasses are frozen dataclasses (hashable: circuit caches
    key on them); `dinv.circuits.spiking` has the two of the package.

    Attributes
    ----------
    filtered : str
        Representation variable judged at the checks of a run (a low-passed
        copy of the readout; see `dinv.circuits.settling`).
    average : str
        Running integral of the readout while ``window`` is 1 (second): the
        settled value a result reports is its time average.
    window : str
        Per-unit switch (0 or 1) of the running integral.
    radius : str
        Per-unit range represented (values beyond it are represented poorly).
    """

    filtered = "xbar"
    average = "xsum"
    window = "averaging"
    radius = "radius"

    def variables(self) -> tuple[str, ...]:
        """Representation variables the ensemble needs."""
        return (self.filtered, self.average, self.window, self.radius)

    def max_dt(self) -> float:
        """Largest time step (second) at which the neurons are simulated faithfully."""
        raise NotImplementedError

    def build(self, group: Any, blocks: Sequence[tuple[Any, int, int]], clock: Any,
              codeobj_class: type | None) -> Neurons:
        """Build the neurons behind ``group``.

        Parameters
        ----------
        group : brian2.NeuronGroup
            The representation group.
        blocks : sequence of (Block, int, int)
            Each block in the group with its first and one-past-last unit.
        clock : brian2.Clock
        codeobj_class : type

        Returns
        -------
        object
            With ``objects`` (Brian2 objects to add to the Network) and the
            methods ``rest(name)``, ``counts(name)`` and
            ``silence(name, fraction, rng)``; see
            `dinv.circuits.spiking.SpikingNeurons`.
        """
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class PopulationModel:
    """A neuron model usable as one population of a circuit.

    Parameters
    ----------
    equations : str
        Brian2 equations, every line with its unit.
    readout : str
        Variable read out as the population's activity: the settled error of
        a system, the control signal of a controller. For a rate model the
        state; for a spiking model a filtered variable (e.g. a trace that
        jumps at each spike and decays). Couplings read it; settling is judged
        on it; it is 0 at rest.
    input : str
        Parameter that the incoming coupling writes into: the feedback
        current ``B u`` of a system, the readout ``W g(delta_{l-1})`` of a
        controller.
    forward : str or None
        Systems that sum two couplings (the hidden layers of direct feedback
        control: feedback ``Q_l u`` and the forward drive from the layer
        below): the parameter of the second one (`with_forward_input`); None:
        one input.
    tau : str
        Shared parameter holding the population's time constant (second).
    kind : {'system', 'controller'}
        Role of the population.
    target : str or None
        Controllers: parameter holding the error delta_l to invert.
    leak : str or None
        Controllers: per-neuron parameter holding the leak alpha (one value
        per problem of a stack).
    threshold, reset : str or None
        Spike condition and reset statements (None: a rate model).
    refractory : str, brian2.Quantity or None
        Refractory period (None: none).
    method : str
        Brian2 integration method (``'euler'``, as in the paper).
    namespace : dict or tuple of (str, value) pairs
        Constants the equations use (the group's own namespace: equations
        never depend on the caller's variables).
    parameters : dict or tuple of (str, value) pairs
        Values set on the group after it is built (parameters of the
        equations, e.g. a gain).
    rest : dict or tuple of (str, value) pairs
        Other state variables and their values at rest (the readout is 0 at
        rest); every run starts from rest.
    description : str
        One line for listings of the registered models.
    ensemble : Ensemble or None
        Spiking populations: the neurons behind the representation units
        (None: a rate model; nothing else is built and nothing runs per step).
    drive : object or None
        A coupling *within* the population that element-wise equations
        cannot express (e.g. `MatrixGains`): an object with a ``variable``
        (a parameter of the equations) and ``calls(view, tau)``, the in-place
        numpy calls that write it; the dense coupling runs them every step
        after the population's inputs are written and before it integrates.
        None: no drive.
    """

    equations: str
    readout: str
    input: str
    tau: str
    kind: str = "system"
    target: str | None = None
    leak: str | None = None
    threshold: str | None = None
    reset: str | None = None
    refractory: str | Quantity | None = None
    method: str = "euler"
    namespace: Settings = ()
    parameters: Settings = ()
    rest: Settings = ()
    description: str = ""
    ensemble: Ensemble | None = None
    drive: Drive | None = None
    forward: str | None = None

    def __post_init__(self) -> None:
        for label in ("namespace", "parameters", "rest"):
            object.__setattr__(self, label, _pairs(getattr(self, label), label))
        if self.kind not in KINDS:
            raise InputError(f"a population model's kind must be one of {KINDS}, "
                             f"got {self.kind!r}")
        try:
            equations = Equations(self.equations)
        except Exception as exc:  # noqa: BLE001 - Brian2 raises several types for bad equations
            raise InputError(f"the population model's equations do not parse: {exc}") from None
        roles: dict[str, str | None] = {"readout": self.readout, "input": self.input,
                                        "tau": self.tau}
        if self.forward is not None:
            roles["forward"] = self.forward
        if self.kind == "controller":
            roles.update(target=self.target, leak=self.leak)
        elif self.target is not None or self.leak is not None:
            raise InputError("only controller models have a target and a leak; "
                             "pass kind='controller' or leave target and leak None")
        for role, name in roles.items():
            if name not in equations.names:
                raise InputError(f"the {self.kind} model's {role} variable {name!r} is not in "
                                 f"its equations (variables: {sorted(equations.names)})")
        parameters = {name for name in equations.names
                      if equations[name].type == "parameter"}
        for role in ("input", "forward", "tau", "target", "leak"):
            name = roles.get(role)
            if name is not None and name not in parameters:
                raise InputError(f"the {self.kind} model's {role} {name!r} must be a parameter "
                                 f"(a line '{name} : unit'), written by the circuit")
        if "shared" not in equations[self.tau].flags:
            raise InputError(f"the time constant {self.tau!r} must be '(shared, constant)'")
        if self.leak is not None and "shared" in equations[self.leak].flags:
            raise InputError(f"the leak {self.leak!r} must be per neuron (not shared): "
                             "problems of a stack have their own alpha")
        if self.ensemble is not None:
            if not isinstance(self.ensemble, Ensemble):
                raise InputError(f"ensemble must be an Ensemble (or None), got "
                                 f"{type(self.ensemble).__name__}")
            missing = [name for name in self.ensemble.variables()
                       if name not in equations.names]
            if missing:
                raise InputError(f"the spiking model's representation equations lack "
                                 f"{missing}, which its ensemble uses")
        if self.drive is not None and (getattr(self.drive, "variable", None) not in parameters
                                       or not callable(getattr(self.drive, "calls", None))):
            raise InputError(f"a model's drive must have a variable that is a parameter of "
                             f"its equations and a calls(view, tau) method, got {self.drive!r}")

    @property
    def spiking(self) -> bool:
        """Whether the population spikes (has an `Ensemble`)."""
        return self.ensemble is not None

    def key(self) -> tuple[object, ...]:
        """Everything that defines the model, hashable (for circuit caches)."""
        return tuple(hashable(getattr(self, f)) for f in self.__dataclass_fields__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PopulationModel) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def make_group(self, n: int, name: str, clock: Any, order: int,
                   codeobj_class: type | None) -> Any:
        """Build the Brian2 ``NeuronGroup`` of ``n`` neurons for this model.

        Parameters
        ----------
        n : int
            Number of neurons (problems x batch x layer width).
        name : str
            Unique Brian2 name of the group.
        clock : brian2.Clock
            Clock shared by the whole circuit.
        order : int
            Scheduling order inside the ``groups`` slot; a population is
            updated after every population with a lower order.
        codeobj_class : type
            Brian2 code-object class (code-generation target).

        Returns
        -------
        brian2.NeuronGroup
        """
        group = NeuronGroup(
            n,
            self.equations,
            threshold=self.threshold,
            reset=self.reset,
            refractory=False if self.refractory is None else self.refractory,
            method=self.method,
            name=name,
            clock=clock,
            order=order,
            namespace=dict(self.namespace),
            codeobj_class=codeobj_class,
        )
        for variable, value in dict(self.parameters).items():
            setattr(group, variable, value)
        return group


SYSTEM = PopulationModel(
    equations=SYSTEM_EQUATIONS, readout="delta", input="I_fb", tau="tau_system",
    description="linear rate system, Eq. (5): tau d(delta)/dt = -delta + B u",
)
"""Fast linear rate system (Eq. 5)."""

CONTROLLER = PopulationModel(
    equations=CONTROLLER_EQUATIONS, readout="u", input="readout", tau="tau_controller",
    kind="controller", target="target", leak="alpha",
    description="leaky-integral controller, Eq. (8): tau du/dt = -alpha u + W delta - delta_l",
)
"""Slow leaky-integral controller (Eq. 8)."""



@dataclass(frozen=True)
class MatrixGains:
    """The P and D terms of a PID controller with gain matrices (Eq. 7).

    The drive of `PID_MATRIX_CONTROLLER_EQUATIONS`: every step, after the
    controller's readout input and target are written and before it
    integrates, the circuit sets (per sample, e = readout - target, units
    1/second)::

        pid_drive = K_p rate_e + K_d tau_c accel_e = P (e - e_f) + Q rate_f,
        P = (K_p / f + K_d / f^2) / tau_c,   Q = -K_d / f,   f = filter_ratio

    (rate_e and accel_e as in the equations), by in-place numpy calls on
    live views of the group's arrays: no Python frame per step, one dense
    d_l x d_l product per sample (two with K_d).

    Attributes
    ----------
    kp, kd : tuple of tuple of float
        K_p and K_d, (d_l, d_l), as nested tuples (hashable, equal by value).
    filter_ratio : float
        tau_d / tau_controller.
    """

    kp: tuple[tuple[float, ...], ...]
    kd: tuple[tuple[float, ...], ...]
    filter_ratio: float
    variable = "pid_drive"

    @property
    def width(self) -> int:
        """d_l, the controller width the matrices fit."""
        return len(self.kp)

    def calls(self, view: Callable[[str], FloatArray],
              tau: float) -> list[Callable[[], object]]:
        """The in-place numpy calls that compute ``pid_drive`` of one block.

        Parameters
        ----------
        view : callable
            Variable name -> live (n, batch, d_l) view of the block's neurons
            (`dinv.circuits.structure.Slot.view`).
        tau : float
            The block's tau_controller in seconds.

        Returns
        -------
        list of callable
            Functions without arguments, to run in this order every step.

        Raises
        ------
        InputError
            When the block is not d_l units wide.
        """
        readout, target, e_f, rate_f, drive = (
            view(name) for name in ("readout", "target", "e_f", "rate_f", self.variable))
        if readout.shape[-1] != self.width:
            raise InputError(f"pid_controller: the gain matrices are {self.width} x "
                             f"{self.width}, but a controller it is used for has "
                             f"{readout.shape[-1]} units; pass one model per layer "
                             "(controller=[...]) with matrices of each layer's width")
        f = self.filter_ratio
        kp, kd = np.array(self.kp), np.array(self.kd)
        # Row vectors: x P^T, contiguous for matmul.
        P = np.ascontiguousarray(((kp / f + kd / f**2) / tau).T)
        error = np.empty_like(readout)
        calls: list[Callable[[], object]] = [partial(np.subtract, readout, target, out=error),
                 partial(np.subtract, error, e_f, out=error),
                 partial(np.matmul, error, P, out=drive)]
        if np.any(kd):
            Q = np.ascontiguousarray((-kd / f).T)
            extra = np.empty_like(readout)
            calls += [partial(np.matmul, rate_f, Q, out=extra),
                      partial(np.add, drive, extra, out=drive)]
        return calls


def _gain(name: str, value: ArrayLike) -> float | FloatArray:
    """A PID gain checked: a float, or a square float matrix."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if not np.isfinite(value):
            raise InputError(f"pid_controller: {name} must be finite, got {value!r}")
        return float(value)
    gain = finite_array(f"pid_controller: {name}", value, (0, 2))
    if gain.ndim == 0:
        return float(gain)
    if gain.shape[0] != gain.shape[1] or gain.shape[0] == 0:
        raise InputError(f"pid_controller: {name} must be a number or a square (d_l, d_l) "
                         f"matrix, got shape {gain.shape}")
    return gain


def pid_controller(kp: ArrayLike = 0.0, kd: ArrayLike = 0.0,
                   filter_ratio: float = 1.0) -> PopulationModel:
    """A PID controller (Eq. 7) with K_i = I and K_u = -alpha I, filtered derivatives.

    ::

        tau_c du/dt = -alpha u + e + K_p tau_c de/dt + K_d tau_c^2 d2e/dt2

    with the controller error ``e = W delta_{l-1} - delta_l`` (readout minus
    target). The derivatives are *filtered*, not taken from the system's
    equation: e is low-passed with tau_d = filter_ratio * tau_controller
    (state ``e_f``), ``(e - e_f) / tau_d`` estimates de/dt (transfer
    s / (1 + s tau_d)); that estimate is low-passed again with the same tau_d
    (state ``rate_f``) and ``(rate_e - rate_f) / tau_d`` estimates d2e/dt2.
    The default tau_d = tau_controller keeps the Euler circuit stable over
    the gains of the timescale study at the paper's dt = 0.5; filter_ratio
    0.5 (tau_d = dt when tau_controller <= tau_system) makes the estimates
    exact backward differences of e, but the Euler circuit then diverges
    from moderate gains on (k_p = 0.5, k_d = 0.25 on the study's reference
    case; `dinv.theory.pid_step_radius` says which). Filters start at rest (0): a target
    switched on at t = 0 is a step of e, and the P term responds to it at once
    (u jumps by -k_p delta_l), as the integrated form ``u = k_p e + ...`` of
    Eq. 7 does. The steady state is Eq. (9) whatever the gains; with
    ``kp = kd = 0`` the filters do not enter du/dt and the controller is
    Eq. (8). numpy theory: `dinv.theory.pid_layer_rhs`,
    `dinv.theory.pid_jacobian`.

    Scalar gains are constants of the Brian2 equations
    (`PID_CONTROLLER_EQUATIONS`). A (d_l, d_l) matrix for either gain couples
    the units, so both gains then enter as matrices (a scalar k as k I)
    through the ``pid_drive`` parameter of `PID_MATRIX_CONTROLLER_EQUATIONS`,
    which the circuit computes each step (`MatrixGains`; dense coupling
    only). Per-layer gains: pass a list of models as ``controller=``, one per
    layer, each with matrices of its layer's width.

    Parameters
    ----------
    kp : float or array_like, shape (d_l, d_l)
        Proportional gain K_p (dimensionless).
    kd : float or array_like, shape (d_l, d_l)
        Derivative gain K_d in units of tau_controller.
    filter_ratio : float
        tau_d / tau_controller of the derivative filters (positive).

    Returns
    -------
    PopulationModel
    """
    kp, kd = _gain("kp", kp), _gain("kd", kd)
    if isinstance(filter_ratio, bool) or not isinstance(filter_ratio, (int, float)) \
            or not np.isfinite(filter_ratio):
        raise InputError(f"pid_controller: filter_ratio must be a finite number, "
                         f"got {filter_ratio!r}")
    if not filter_ratio > 0:
        raise InputError(f"pid_controller: filter_ratio (tau_d / tau_controller) must be "
                         f"positive, got {filter_ratio!r}")
    if isinstance(kp, float) and isinstance(kd, float):
        return PopulationModel(
            equations=PID_CONTROLLER_EQUATIONS, readout="u", input="readout",
            tau="tau_controller", kind="controller", target="target", leak="alpha",
            parameters={"k_p": kp, "k_d": kd, "filter_ratio": float(filter_ratio)},
            rest={"e_f": 0.0, "rate_f": 0.0},
            description=f"PID controller, Eq. (7): k_p={kp:g}, k_d={kd:g} tau_c, "
                        f"derivatives filtered with tau_d={filter_ratio:g} tau_c",
        )
    return _matrix_pid_controller(kp, kd, float(filter_ratio))


def _matrix_pid_controller(kp: float | FloatArray, kd: float | FloatArray,
                           filter_ratio: float) -> PopulationModel:
    """`pid_controller` with gain matrices (a scalar gain becomes k I)."""
    width = next(k for k in (kp, kd) if isinstance(k, np.ndarray)).shape[0]
    kp, kd = (np.eye(width) * k if isinstance(k, float) else k for k in (kp, kd))
    if kp.shape != kd.shape:
        raise InputError(f"pid_controller: kp and kd must have the same shape, got "
                         f"{kp.shape} and {kd.shape}")
    gains = MatrixGains(tuple(map(tuple, kp.tolist())), tuple(map(tuple, kd.tolist())),
                        filter_ratio)
    return PopulationModel(
        equations=PID_MATRIX_CONTROLLER_EQUATIONS, readout="u", input="readout",
        tau="tau_controller", kind="controller", target="target", leak="alpha",
        parameters={"filter_ratio": filter_ratio},
        rest={"e_f": 0.0, "rate_f": 0.0, "pid_drive": 0.0}, drive=gains,
        description=f"PID controller, Eq. (7): {width} x {width} gain matrices K_p, K_d "
                    f"tau_c, derivatives filtered with tau_d={filter_ratio:g} tau_c",
    )


def pid_gains(model: PopulationModel) -> dict[str, Any] | None:
    """The gains of a `pid_controller` model, or None for any other model.

    Returns
    -------
    dict or None
        ``kp``, ``kd`` (floats or (d_l, d_l) arrays) and ``filter_ratio``,
        as `dinv.theory.pid_jacobian` takes them.
    """
    if isinstance(model.drive, MatrixGains):
        return {"kp": np.array(model.drive.kp), "kd": np.array(model.drive.kd),
                "filter_ratio": model.drive.filter_ratio}
    if model.equations != PID_CONTROLLER_EQUATIONS:
        return None
    values = dict(model.parameters)
    return {"kp": values["k_p"], "kd": values["k_d"], "filter_ratio": values["filter_ratio"]}


PID_CONTROLLER = pid_controller()
"""The PID controller with zero gains (Eq. 8 with idle filters); see `pid_controller`."""


@dataclass(frozen=True)
class ProportionalPart:
    """The drive of `direct_controller`: ``u = u_i + k_p (readout - target)``.

    Every step, after the controller's readout input and target are written
    and before it integrates, the circuit sets its readout u from the
    integral part u_i and the controller error, by in-place numpy calls on
    live views of the group's arrays.

    Attributes
    ----------
    kp : float
        Proportional gain k_p (dimensionless).
    """

    kp: float
    variable = "u"

    def calls(self, view, tau):
        """The in-place numpy calls that compute u of one block (``tau`` unused).

        Parameters
        ----------
        view : callable
            Variable name -> live (n, batch, d) view of the block's neurons.
        tau : float

        Returns
        -------
        list of callable
        """
        readout, target, integral, u = (view(name) for name in ("readout", "target", "u_i",
                                                                 self.variable))
        error = np.empty_like(readout)
        return [partial(np.subtract, readout, target, out=error),
                partial(np.multiply, error, self.kp, out=error),
                partial(np.add, integral, error, out=u)]


def direct_controller(kp: float = 1.5) -> PopulationModel:
    """The output controller of direct feedback control (DFC; Meulemans et al. 2021).

    ::

        tau_c du_i/dt = e - alpha u_i,    u = u_i + k_p e,    e = readout - target

    An integral part with a leak and a proportional part; its readout is u.
    u is computed by the circuit every step (`ProportionalPart`; dense
    coupling only). At rest e = alpha u_i, so the steady state is that of a
    leaky integral controller with the leak alpha / (1 + alpha k_p)
    (`dinv.theory.direct_leak`). Meulemans et al.'s published toy
    configuration uses k_p = 1.5 (the default).

    Parameters
    ----------
    kp : float
        Proportional gain, >= 0.

    Returns
    -------
    PopulationModel
    """
    if isinstance(kp, bool) or not isinstance(kp, (int, float)) or not (np.isfinite(kp)
                                                                         and kp >= 0):
        raise InputError(f"direct_controller: kp must be a number >= 0, got {kp!r}")
    return PopulationModel(
        equations=DIRECT_CONTROLLER_EQUATIONS, readout="u", input="readout",
        tau="tau_controller", kind="controller", target="target", leak="alpha",
        rest={"u_i": 0.0}, drive=ProportionalPart(float(kp)),
        description=f"direct feedback controller (DFC): tau du_i/dt = e - alpha u_i, "
                    f"u = u_i + k_p e, k_p={float(kp):g}",
    )


def proportional_gain(model: PopulationModel) -> float:
    """k_p of a `direct_controller` model; 0 for any other controller (no proportional
    part at rest: a PID controller's filtered one vanishes there)."""
    drive = model.drive
    return drive.kp if isinstance(drive, ProportionalPart) else 0.0


FORWARD_INPUT = "I_ff"
"""The second input of a system made by `with_forward_input`."""


def with_forward_input(model: PopulationModel) -> PopulationModel:
    """A system model like ``model`` whose input is the sum of two couplings.

    The input parameter line of the equations (``I_fb : 1`` of the rate
    system, ``I_in : 1`` of the spiking ones) becomes a sum of two
    parameters, each written by its own coupling::

        I_fb = I_fb_own + I_ff : 1
        I_fb_own : 1
        I_ff : 1

    (``input`` is then ``I_fb_own``, ``forward`` ``I_ff``): the hidden
    layers of direct feedback control take feedback and forward drive.

    Parameters
    ----------
    model : PopulationModel
        A system model whose input is a dimensionless parameter line.

    Returns
    -------
    PopulationModel
        The model with two inputs (``model`` itself if it has them already).

    Raises
    ------
    InputError
        When the input is not a plain ``NAME : 1`` line.
    """
    if model.forward is not None:
        return model
    name = model.input
    lines = model.equations.splitlines()
    found = [k for k, line in enumerate(lines) if line.split("#")[0].split() == [name, ":", "1"]]
    if model.kind != "system" or len(found) != 1:
        raise InputError(f"a forward input needs a system model whose input {name!r} is one "
                         f"line '{name} : 1'")
    own = f"{name}_own"
    lines[found[0]] = f"{name} = {own} + {FORWARD_INPUT} : 1\n{own} : 1\n{FORWARD_INPUT} : 1"
    return dataclasses.replace(model, equations="\n".join(lines), input=own,
                               forward=FORWARD_INPUT,
                               description=f"{model.description} (with a forward input)")

@dataclass(frozen=True)
class PopulationFamily:
    """The system and controller variants of one population model, under one name.

    ``get_population_model(family, kind)`` picks the variant of the kind asked,
    so ``system='scn'`` and ``controller='scn'`` both resolve.

    Attributes
    ----------
    system, controller : PopulationModel
    description : str
    """

    system: PopulationModel
    controller: PopulationModel
    description: str = ""
    kind = "system or controller"

    def __post_init__(self) -> None:
        for kind in KINDS:
            model = getattr(self, kind)
            if not isinstance(model, PopulationModel) or model.kind != kind:
                raise InputError(f"a population family's {kind} must be a {kind} "
                                 f"PopulationModel, got {model!r}")

    def variant(self, kind: str) -> PopulationModel:
        """The model of ``kind``."""
        return getattr(self, kind)


DIRECT_CONTROLLER = direct_controller()
"""The controller of direct feedback control with the published k_p = 1.5."""

POPULATION_MODELS: dict[str, PopulationModel | PopulationFamily] = {
    "rate-system": SYSTEM, "rate-controller": CONTROLLER, "pid-controller": PID_CONTROLLER,
    "dfc-controller": DIRECT_CONTROLLER}
"""Population models by name (``system='rate-system'``); see `register_population_model`."""


def register_population_model(name: str, model: PopulationModel | PopulationFamily) -> None:
    """Make ``model`` available by ``name`` (e.g. to ``--set system=NAME``).

    Raises
    ------
    InputError
        When ``name`` is taken by another model or ``model`` is not a
        `PopulationModel`.
    """
    if not isinstance(model, (PopulationModel, PopulationFamily)):
        raise InputError(f"register a PopulationModel or a PopulationFamily, got "
                         f"{type(model).__name__}")
    if POPULATION_MODELS.get(name, model) != model:
        raise InputError(f"a different population model is already called {name!r}")
    POPULATION_MODELS[name] = model


def get_population_model(model: PopulationModel | PopulationFamily | str, kind: str,
                         role: str | None = None) -> PopulationModel:
    """The population model ``model`` names (or is), checked to be of ``kind``.

    Parameters
    ----------
    model : PopulationModel, PopulationFamily or str
        A model, or the name of a registered one (see `POPULATION_MODELS`);
        a family gives its variant of ``kind``.
    kind : {'system', 'controller'}
        The role it must fill.
    role : str or None
        Name of the option in error messages (default ``kind``).

    Returns
    -------
    PopulationModel

    Raises
    ------
    InputError
        For an unknown name or a model of the other kind.
    """
    role = role or kind
    name = model if isinstance(model, str) else None
    if isinstance(model, str):
        if model not in POPULATION_MODELS:
            raise InputError(f"{role}: no population model called {model!r}; known models: "
                             f"{sorted(POPULATION_MODELS)}")
        model = POPULATION_MODELS[model]
    if isinstance(model, PopulationFamily):
        model = model.variant(kind)
    if not isinstance(model, PopulationModel):
        raise InputError(f"{role} must be a PopulationModel or the name of one "
                         f"({sorted(POPULATION_MODELS)}), got {model!r}")
    if model.kind != kind:
        fits = sorted(n for n, m in POPULATION_MODELS.items()
                      if m.kind == kind or isinstance(m, PopulationFamily))
        called = f" {name!r}" if name else ""
        raise InputError(f"{role} needs a {kind} model, got the {model.kind} model{called}; "
                         f"{kind} models: {fits}")
    return model
