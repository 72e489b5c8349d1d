"""Brian2 circuits that invert feedforward layers through dynamics."""

from dinv.circuits.layer import LayerCircuit, Settled, settle_layer
from dinv.circuits.nef import LIF, lif_neuron, lif_population, neuron_population
from dinv.circuits.neurons import NeuronModel, Normal, Uniform
from dinv.circuits.options import SettleOptions
from dinv.circuits.populations import (
    CONTROLLER,
    PID_CONTROLLER,
    POPULATION_MODELS,
    SYSTEM,
    Ensemble,
    PopulationFamily,
    PopulationModel,
    get_population_model,
    pid_controller,
    register_population_model,
)
from dinv.circuits.scn import SCN, scn_population
from dinv.circuits.spiking import chain_radii, layer_radii
from dinv.circuits.traces import Traces
from dinv.errors import (
    CircuitDivergedError,
    CircuitUnstableError,
    InputError,
    NotSettledError,
    NotSettledWarning,
)

__all__ = [
    "CONTROLLER",
    "LIF",
    "PID_CONTROLLER",
    "POPULATION_MODELS",
    "SCN",
    "SYSTEM",
    "CircuitDivergedError",
    "CircuitUnstableError",
    "Ensemble",
    "InputError",
    "LayerCircuit",
    "NeuronModel",
    "Normal",
    "NotSettledError",
    "NotSettledWarning",
    "PopulationFamily",
    "PopulationModel",
    "SettleOptions",
    "Settled",
    "Traces",
    "Uniform",
    "chain_radii",
    "get_population_model",
    "layer_radii",
    "lif_neuron",
    "lif_population",
    "neuron_population",
    "pid_controller",
    "register_population_model",
    "scn_population",
    "settle_layer",
]
