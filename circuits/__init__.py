"""Brian2 circuits that invert feedforward layers through dynamics."""

from dinv.errors import (
    CircuitDivergedError,
    CircuitUnstableError,
    InputError,
    NotSettledError,
    NotSettledWarning,
)
from dinv.circuits.layer import LayerCircuit, Settled, settle_layer
from dinv.circuits.options import SettleOptions
from dinv.circuits.populations import (
    CONTROLLER,
    PID_CONTROLLER,
    POPULATION_MODELS,
    Ensemble,
    PopulationFamily,
    SYSTEM,
    PopulationModel,
    get_population_model,
    pid_controller,
    register_population_model,
)
from dinv.circuits.spiking import (
    LIF,
    SCN,
    chain_radii,
    layer_radii,
    lif_population,
    scn_population,
)
from dinv.circuits.traces import Traces

__all__ = [
    "CONTROLLER",
    "LIF",
    "SCN",
    "Ensemble",
    "PopulationFamily",
    "chain_radii",
    "layer_radii",
    "lif_population",
    "scn_population",
    "PID_CONTROLLER",
    "POPULATION_MODELS",
    "SYSTEM",
    "CircuitDivergedError",
    "CircuitUnstableError",
    "InputError",
    "LayerCircuit",
    "NotSettledError",
    "NotSettledWarning",
    "PopulationModel",
    "SettleOptions",
    "Settled",
    "Traces",
    "get_population_model",
    "pid_controller",
    "register_population_model",
    "settle_layer",
]
