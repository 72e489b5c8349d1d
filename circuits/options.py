"""The settings that travel together when a circuit settles: `SettleOptions`.

One frozen, validated, hashable object instead of a dozen keyword arguments
passed from function to function. Every settle function and circuit takes
``options=`` and keyword overrides of its fields::

    settle_layer(W, B, delta, 0.1, steps=2000, tau_controller=20 * ms)
    settle_layer(W, B, delta, 0.1, SettleOptions(steps=2000), stop_tol=1e-8)

Some fields fix the circuit that is built (``dt``, the time constants,
``coupling``, ``codegen_target`` and the population models:
`SettleOptions.circuit_key`); the others only the run.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import numpy as np
from brian2 import ms

from dinv.circuits.brian_internals import CODEGEN_TARGETS
from dinv.circuits.coupling import COUPLINGS
from dinv.circuits.populations import (
    CONTROLLER,
    SYSTEM,
    PopulationFamily,
    PopulationModel,
    get_population_model,
    hashable,
)
from dinv.circuits.structure import check_time
from dinv.errors import InputError
from dinv.hints import Time
from dinv.validation import check_on_unsettled

CIRCUIT_FIELDS = ("dt", "tau_system", "tau_controller", "coupling", "codegen_target",
                  "system", "controller", "relay")
"""Fields that fix the built circuit (the others only shape a run)."""


Model = PopulationModel | PopulationFamily | str
"""A population model, a family of them or the name of a registered one."""

Models = Model | list[Model] | tuple[Model, ...]
"""One population model for every layer, or one per layer."""

Times = Time | list[Time] | tuple[Time, ...]
"""One time constant (a ``brian2.Quantity`` in seconds) for every layer, or one per layer."""


def _models(value: Models, kind: str,
            label: str) -> PopulationModel | tuple[PopulationModel, ...]:
    """One population model or a tuple of them (per layer), names resolved."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise InputError(f"{label} needs at least one population model")
        return tuple(get_population_model(v, kind, label) for v in value)
    return get_population_model(value, kind, label)


def _times(value: Times, label: str) -> Times:
    """One time constant or a tuple of them (per layer), each checked."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise InputError(f"{label} needs at least one time constant")
        for v in value:
            check_time(v, label)
        return tuple(value)
    check_time(value, label)
    return value


@dataclass(frozen=True, eq=False)
class SettleOptions:
    """How a circuit is built and run.

    Parameters
    ----------
    steps : int
        Euler steps of a run (per layer pair for a sequential chain; the
        paper: 1000).
    dt : float
        Euler step in units of the fastest time constant of the circuit (the
        paper: 0.5).
    tau_system, tau_controller : brian2.Quantity or sequence of them
        Time constants (second) of the systems (and single-loop relays) and
        of the controllers: one value, or one per layer for chains.
    stop_tol : float or None
        Optional convergence criterion: a run (or phase) ends once the
        residual of every problem is below it (see `dinv.circuits.settling`).
        None runs every step.
    on_unsettled : {'warn', 'raise', 'ignore'}
        What to do when the final residual exceeds ``settle_tol``: warn
        `NotSettledWarning`, raise `NotSettledError` (`CircuitUnstableError`
        when the circuit is unstable; both are `CircuitDivergedError`), or nothing (the
        residual is in the result either way). The message says whether the
        circuit is unstable (see `dinv.circuits.settling`).
    settle_tol : float
        Largest final residual accepted as settled (> 0).
    record_every : int
        Record the readouts every this many steps (0: no traces).
    coupling : {'dense', 'synapses'}
        Pathways as in-place matmuls (default) or Brian2 ``Synapses``.
    codegen_target : {'cython', 'numpy'}
        Brian2 code-generation target of the populations.
    system, controller : PopulationModel, str or sequence of them
        Neuron models of the systems and controllers (a registered name, see
        `dinv.circuits.populations.POPULATION_MODELS`), one for all or one
        per layer (systems of layers 1 .. L-1; controllers of layers 2 .. L,
        or layer L only for the single loop).
    relay : PopulationModel, str, sequence of them or None
        Models of the single loop's relays h_2 .. h_{L-1} (None: the system
        model of each layer).
    average_fraction : float
        Spiking populations: the share (0, 1] of each run (phase), at its
        end, over which the readout is averaged into the settled value (0.2:
        the last fifth). Rate populations ignore it.
    """

    steps: int = 1000
    dt: float = 0.5
    tau_system: Times = field(default_factory=lambda: 10 * ms)
    tau_controller: Times = field(default_factory=lambda: 10 * ms)
    stop_tol: float | None = None
    on_unsettled: str = "warn"
    settle_tol: float = 1e-3
    record_every: int = 0
    coupling: str = "dense"
    codegen_target: str = "cython"
    system: Models = SYSTEM
    controller: Models = CONTROLLER
    relay: Models | None = None
    average_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not _is_int(self.steps) or self.steps < 1:
            raise InputError(f"steps must be a positive integer, got {self.steps!r}")
        if not _is_number(self.dt) or not self.dt > 0:
            raise InputError(f"dt must be a positive number (in units of tau), "
                             f"got {self.dt!r}")
        if self.stop_tol is not None and not (_is_number(self.stop_tol) and self.stop_tol > 0):
            raise InputError(f"stop_tol must be a positive number or None, "
                             f"got {self.stop_tol!r}")
        check_on_unsettled(self.on_unsettled)
        if not _is_number(self.average_fraction) or not 0 < self.average_fraction <= 1:
            raise InputError(f"average_fraction must lie in (0, 1], "
                             f"got {self.average_fraction!r}")
        if not _is_number(self.settle_tol) or not self.settle_tol > 0:
            raise InputError(f"settle_tol must be a positive number, got {self.settle_tol!r}")
        if not _is_int(self.record_every) or self.record_every < 0:
            raise InputError(f"record_every must be an integer >= 0, "
                             f"got {self.record_every!r}")
        if self.coupling not in COUPLINGS:
            raise InputError(f"coupling must be one of {list(COUPLINGS)}, "
                             f"got {self.coupling!r}")
        if self.codegen_target not in CODEGEN_TARGETS:
            raise InputError(f"codegen_target must be one of {sorted(CODEGEN_TARGETS)}, "
                             f"got {self.codegen_target!r}")
        normal = {
            "steps": int(self.steps),
            "record_every": int(self.record_every),
            "tau_system": _times(self.tau_system, "tau_system"),
            "tau_controller": _times(self.tau_controller, "tau_controller"),
            "system": _models(self.system, "system", "system"),
            "controller": _models(self.controller, "controller", "controller"),
            "relay": None if self.relay is None else _models(self.relay, "system", "relay"),
        }
        for name, value in normal.items():
            object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> "SettleOptions":
        """A copy with ``changes`` (field names as keywords), validated.

        Raises
        ------
        InputError
            For a keyword that is not an option.
        """
        unknown = sorted(set(changes) - set(self.__dataclass_fields__))
        if unknown:
            hint = ("; the code-generation target is now called codegen_target"
                    if "target" in unknown else "")
            raise InputError(f"unknown settle options {unknown}; the options are "
                             f"{list(self.__dataclass_fields__)}{hint}")
        return dataclasses.replace(self, **changes) if changes else self

    def key(self) -> tuple[object, ...]:
        """All fields, hashable."""
        return tuple(hashable(getattr(self, f)) for f in self.__dataclass_fields__)

    def circuit_key(self) -> tuple[object, ...]:
        """The fields that fix a built circuit, hashable (for circuit caches)."""
        return tuple(hashable(getattr(self, f)) for f in CIRCUIT_FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SettleOptions) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())


def _is_int(value: object) -> TypeGuard[int | float | np.integer]:
    return (isinstance(value, (int, np.integer)) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer())


def _is_number(value: object) -> TypeGuard[int | float | np.integer | np.floating]:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool) and bool(np.isfinite(value)))


def settle_options(options: "SettleOptions | None", overrides: dict[str, Any]) -> SettleOptions:
    """``options`` (None: the defaults) with keyword ``overrides`` applied.

    Raises
    ------
    InputError
        When ``options`` is not a `SettleOptions` (e.g. a number passed where
        ``steps=`` was meant) or an override is not an option.
    """
    if options is None:
        options = SettleOptions()
    elif not isinstance(options, SettleOptions):
        raise InputError(f"options must be a SettleOptions (or None), got {options!r}; "
                         "pass settings as keywords, e.g. steps=2000")
    return options.replace(**overrides)
