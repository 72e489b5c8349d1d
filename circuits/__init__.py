"""Brian2 rate circuits that invert feedforward layers through dynamics."""

from dinv.errors import CircuitDivergedError, InputError, NotSettledWarning
from dinv.circuits.layer import LayerCircuit, Settled, settle_layer
from dinv.circuits.populations import CONTROLLER, SYSTEM, PopulationModel

__all__ = [
    "CONTROLLER",
    "SYSTEM",
    "CircuitDivergedError",
    "InputError",
    "LayerCircuit",
    "NotSettledWarning",
    "PopulationModel",
    "Settled",
    "settle_layer",
]
