"""NEF ensembles of any spiking neuron: the ensemble builder, and ``lif`` as one instance.

`neuron_population` takes a `dinv.circuits.neurons.NeuronModel` (a neuron
as Brian2 writes it, with the variable that receives its input current) and
makes a system or controller population of it, usable through ``system=``
and ``controller=`` of every circuit, following the Neural Engineering
Framework recipe, written once here:

- **tuning**: the neuron's rate curve (closed form, or measured by
  simulation, `NeuronModel.rate_curve`); per neuron an encoder (+1 or -1),
  a max rate and an intercept drawn from the requested ranges, and the gain
  and bias that put them there (`dinv.spiking.nef_parameters`);
- **decoders**: regularised least squares on the curve's rates (or the
  user's solver or decoders);
- **dynamics**: an exponential synapse ``tau_synapse`` decodes the spikes
  into the readout, and the neurons encode the recurrence and input
  transforms of the population's role (`NEF_SYSTEM`, `NEF_CONTROLLER` in
  `dinv.circuits.spiking_equations`), so that on average the readout
  follows Eq. (5) or Eq. (8).

`lif_population` is the builder applied to `lif_neuron`, a LIF neuron whose
closed-form curve (`dinv.spiking.LIFCurve`) is the fast path.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import NeuronGroup, ms, second
from brian2.units.fundamentalunits import get_dimensions, get_unit

from dinv.circuits import spiking_equations as eq
from dinv.circuits.neurons import NeuronModel, Uniform
from dinv.circuits.populations import (
    Ensemble,
    PopulationFamily,
    PopulationModel,
    register_population_model,
)
from dinv.circuits.spiking import (
    SpikingNeurons,
    block_stream,
    check_kind,
    check_time,
    link_to_units,
    spiking_model,
)
from dinv.errors import InputError
from dinv.hints import ArrayLike, FloatArray, Quantity, Time
from dinv.spiking import (
    LIFCurve,
    NEFParameters,
    RateCurve,
    Solver,
    check_tuning,
    nef_parameters,
)
from dinv.validation import check_count, check_number

NEF_EQUATIONS = {"system": eq.NEF_SYSTEM, "controller": eq.NEF_CONTROLLER}
"""The representation equations of an NEF population by kind."""


@dataclass(frozen=True)
class NEFEnsemble(Ensemble):
    """Neurons of any model with NEF tuning and decoders behind a representation group.

    Times in seconds; see `neuron_population` for the meaning and defaults.
    """

    neuron: NeuronModel
    neurons_per_dim: int = 64
    tau_synapse: float = 0.01
    max_rates: tuple[float, float] = (100.0, 200.0)
    intercepts: tuple[float, float] = (-1.0, 0.9)
    seed: int = 0
    regularisation: float = 0.02
    decoders: Solver | tuple[float, ...] | None = None
    eval_points: int = 1000

    def max_dt(self) -> float:
        """The neuron model's ``dt``: the step its rate curve (hence its tuning)
        holds at; for LIF, tau_ref / 20 (spike times, and so rates, which the
        decoders assume, are quantised to dt)."""
        return self.neuron.max_dt()

    def tuning(self, width: int, block: str) -> tuple[NEFParameters, dict[str, FloatArray],
                                                      dict[str, FloatArray], RateCurve]:
        """The neurons of one block of ``width`` units (one draw per block).

        Returns
        -------
        (NEFParameters, dict, dict, object)
            Gains, biases, encoders and decoders; the initial state and the
            per-neuron parameters (SI floats by name, one per neuron); the
            rate curve the tuning used.
        """
        count = width * self.neurons_per_dim
        parameters = self.neuron.draw_parameters(block_stream(self.seed, block, 1), count)
        curve = self.neuron.rate_curve(parameters if self.neuron.heterogeneous else None)
        rng = block_stream(self.seed, block)
        drawn = nef_parameters(width, self.neurons_per_dim, rng, curve, self.max_rates,
                               self.intercepts, self.regularisation, self.eval_points,
                               self.decoders)
        return drawn, self.neuron.draw_initial(rng, count), parameters, curve

    def build(self, group: Any, blocks: Sequence[tuple[Any, int, int]], clock: Any,
              codeobj_class: type | None) -> SpikingNeurons:
        """See `Ensemble.build`."""
        per_dim = self.neurons_per_dim
        size = len(group) * per_dim
        values: dict[str, FloatArray] = {}
        silent = 0.0
        for block, start, stop in blocks:
            drawn, initial, parameters, curve = self.tuning(block.width, block.name)
            silent = curve.silent
            reps = (stop - start) // block.width
            cells = slice(start * per_dim, stop * per_dim)
            for key, value in (*vars(drawn).items(), *initial.items(), *parameters.items()):
                if key != "dim_index":
                    values.setdefault(key, np.empty(size))[cells] = np.tile(value, reps)
        neurons, synapses = nef_neurons(
            group, self.neuron, values["gain"], values["bias"], values["encoder"],
            values["decoder"], per_dim, self.tau_synapse, clock, codeobj_class,
            {name: values[name] for name in dict(self.neuron.parameters)})
        # The initial state (e.g. membrane potentials spread, seeded) is the rest of every run.
        rest: list[tuple[str, Any]] = [(name, values[name]) for name in dict(self.neuron.initial)]
        quiet = {"gain": (values["gain"], 0.0), "bias": (values["bias"], silent)}
        return SpikingNeurons(neurons, synapses, blocks, per_dim, rest, quiet)


def nef_neuron_equations(neuron: NeuronModel) -> str:
    """The Brian2 equations of an NEF ensemble's neurons: the neuron model's, with its
    current line replaced by `NEF_CURRENT` and `NEF_NEURON_LINES` added."""
    unit = neuron.current_line_unit()
    template = eq.NEF_CURRENT if neuron.closed_form is not None else eq.NEF_CLIPPED_CURRENT
    line = template.format(current=neuron.current, unit=unit)
    declaration = re.compile(rf"\s*{re.escape(neuron.current)}\s*:")
    lines = [line if declaration.match(text) else text
             for text in neuron.equations.splitlines()]
    return "\n".join(lines) + eq.NEF_NEURON_LINES.format(unit=unit)


def nef_neurons(group: Any, neuron: NeuronModel, gain: FloatArray, bias: FloatArray,
                encoder: FloatArray, decoder: FloatArray, per_dim: int, tau_synapse: float,
                clock: Any, codeobj_class: type | None,
                parameters: dict[str, FloatArray] | None = None) -> tuple[Any, Any]:
    """The neurons of an NEF ensemble behind representation ``group``, and their decoding
    synapses.

    Shared by the circuits (`NEFEnsemble`) and the pair built from Brian2
    objects alone (`dinv.circuits.standalone`): neuron ``i`` belongs to
    unit ``i // per_dim``, whose ``encoded`` value it reads (linked) and whose
    readout jumps by ``radius * decoder_i / tau_synapse`` at its spikes. The
    neurons have their group's ``order`` and the name ``<group>_spikes``, so
    they integrate just before their group.

    Parameters
    ----------
    group : brian2.NeuronGroup
    neuron : NeuronModel
    gain, bias : ndarray
        SI values in the unit of the neuron's current.
    encoder, decoder : ndarray
        Encoders (+1, -1) and decoders (second).
    per_dim : int
    tau_synapse : float
        Seconds.
    clock : brian2.Clock
    codeobj_class : type or None
    parameters : dict of str to ndarray or None
        Per-neuron parameters of the model (SI floats).

    Returns
    -------
    (brian2.NeuronGroup, None)
        The neurons, whose resets decode their spikes (`DECODE`), and no
        synapses.
    """
    neurons = NeuronGroup(
        len(decoder), nef_neuron_equations(neuron), threshold=eq.nef_threshold(neuron.threshold),
        reset=eq.nef_reset(neuron.reset),
        refractory=False if neuron.refractory is None else neuron.refractory,
        method=neuron.method, name=f"{group.name}_spikes", clock=clock, order=group.order,
        # The linked ``encoded`` is evaluated in the neurons' namespace: it needs tau_synapse.
        namespace={**dict(neuron.namespace), "tau_synapse": tau_synapse * second,
                   **_current_range(neuron)},
        codeobj_class=codeobj_class)
    link_to_units(neurons, group, per_dim, "encoded", "xhat", "radius")
    unit = get_unit(neurons.variables["gain"].dim)
    neurons.gain = np.asarray(gain) * unit
    neurons.bias = np.asarray(bias) * unit
    neurons.encoder = encoder
    neurons.active = 1.0
    for name, values in (parameters or {}).items():
        setattr(neurons, f"{name}_", values)
    neurons.w_decode = np.asarray(decoder) / tau_synapse
    return neurons, None


def _current_range(neuron: NeuronModel) -> dict[str, Quantity]:
    """``current_min`` and ``current_max`` of `NEF_CLIPPED_CURRENT` (none for a closed form)."""
    if neuron.closed_form is not None:
        return {}
    grid = neuron.grid()
    unit = get_unit(get_dimensions(neuron.current_unit))
    return {"current_min": grid[0] * unit, "current_max": grid[-1] * unit}


def neuron_population(neuron: NeuronModel, kind: str | None = None, neurons_per_dim: int = 64,
                      tau_synapse: Time = 10 * ms,
                      max_rates: Sequence[float] = (100.0, 200.0),
                      intercepts: Sequence[float] = (-1.0, 0.9), seed: int = 0,
                      regularisation: float = 0.02,
                      decoders: Solver | ArrayLike | None = None,
                      ) -> PopulationModel | PopulationFamily:
    """A population of any spiking neuron model: the ensemble builder (NEF).

    One one-dimensional ensemble of ``neurons_per_dim`` neurons per
    represented dimension (encoders +1 and -1 alternating), tuned from the
    neuron's rate curve so that each starts to fire at its intercept and
    fires at its max rate at the radius (`dinv.spiking.nef_parameters`),
    decoded through an exponential synapse ``tau_synapse``; the neurons
    encode ``(1 - tau/tau_pop) xhat + (tau/tau_pop) input`` (controller: leak
    and error as in Eq. 8) so that the readout follows the population's
    dynamics on average. The rate curve is measured when the model is made
    (`dinv.circuits.neurons.NeuronModel.rate_curve`: a short Brian2 run,
    cached on disk), so a malformed model is refused here, with one line.

    Parameters
    ----------
    neuron : NeuronModel
    kind : {'system', 'controller'} or None
        The population's role; None: both, as a `PopulationFamily` (for
        ``system=`` and ``controller=`` alike, or `register_population_model`).
    neurons_per_dim : int
        Neurons per represented dimension (>= 2).
    tau_synapse : brian2.Quantity
        Synaptic (readout) time constant; 10 ms (5 ms was 2-2.5x worse in
        Nengo: the recurrent decoding error enters scaled by tau_pop / tau).
    max_rates : (float, float)
        Range of rates (Hz) at |x| = radius (100-200 Hz: mean rates below
        100 Hz). The neuron must reach the upper end on its current grid.
    intercepts : (float, float)
        Where neurons start to fire, in units of the radius (Nengo's U(-1, 0.9)).
    seed : int
        Seed of the tuning, the initial state and per-neuron parameters (one
        draw per population).
    regularisation : float
        L2 regularisation of the decoders relative to the largest rate (see
        `lif_population` for why 0.02).
    decoders : callable, array_like or None
        None: least squares. A solver ``(rates (K, m), x (m,)) -> decoders
        (K,)`` called per dimension with the rates (Hz) of its K neurons at
        m values x in [-1, 1]; or decoders (second) of shape (K,) used for
        every dimension.

    Returns
    -------
    PopulationModel or PopulationFamily
    """
    if not isinstance(neuron, NeuronModel):
        raise InputError(f"neuron must be a NeuronModel, got {type(neuron).__name__}")
    if kind is not None:
        check_kind(kind)
    per_dim = check_count("neurons_per_dim", neurons_per_dim, 2)
    max_rates, intercepts = check_tuning(max_rates, intercepts)
    chosen: Solver | tuple[float, ...] | None = decoders if callable(decoders) or decoders \
        is None else tuple(np.asarray(decoders, dtype=float).ravel().tolist())
    ensemble = NEFEnsemble(
        neuron=neuron, neurons_per_dim=per_dim,
        tau_synapse=check_time("tau_synapse", tau_synapse), max_rates=max_rates,
        intercepts=intercepts, seed=check_count("seed", seed, 0),
        regularisation=check_number("regularisation", regularisation, low=0),
        decoders=chosen)
    neuron.rate_curve(check_dt=True)  # measured now (cached): a bad model is refused here
    ensemble.tuning(1, "check")  # and so are tuning settings the curve cannot meet
    label = (f"{neuron.description} ensemble (NEF), {per_dim} neurons/dim, synapse "
             f"{ensemble.tau_synapse * 1e3:g} ms")
    models = {k: spiking_model(k, NEF_EQUATIONS, ensemble, ensemble.tau_synapse,
                               "tau_synapse", label) for k in ("system", "controller")}
    if kind is None:
        return PopulationFamily(models["system"], models["controller"], label)
    return models[kind]


STEPS_PER_REFRACTORY = 20.0
"""A LIF neuron's step: tau_ref / 20 (spike times, and so rates, are quantised to dt)."""


def lif_neuron(tau_rc: Time = 20 * ms, tau_ref: Time = 2 * ms) -> NeuronModel:
    """A LIF neuron (threshold 1, reset 0) with its closed-form rate curve.

    ``tau_rc dv/dt = -v + J`` (dimensionless current J), refractory
    ``tau_ref``, membranes starting uniformly between reset and threshold;
    step tau_ref / 20.

    Returns
    -------
    NeuronModel
    """
    rc, ref = check_time("tau_rc", tau_rc), check_time("tau_ref", tau_ref)
    return NeuronModel(
        equations=eq.LIF_NEURON, threshold=eq.LIF_THRESHOLD, reset=eq.LIF_RESET,
        refractory=ref * second, current="J", namespace={"tau_rc": rc * second},
        initial={"v": Uniform(0.0, 1.0)}, dt=ref / STEPS_PER_REFRACTORY * second,
        closed_form=LIFCurve(rc, ref), description="LIF")


def lif_population(kind: str = "system", neurons_per_dim: int = 64, tau_synapse: Time = 10 * ms,
                   max_rates: tuple[float, float] = (100.0, 200.0),
                   intercepts: tuple[float, float] = (-1.0, 0.9), tau_rc: Time = 20 * ms,
                   tau_ref: Time = 2 * ms, seed: int = 0,
                   regularisation: float = 0.02) -> PopulationModel:
    """A LIF ensemble with least-squares decoders (NEF): `neuron_population` of `lif_neuron`.

    One one-dimensional ensemble of ``neurons_per_dim`` heterogeneous LIF
    neurons per represented dimension (encoders +1 and -1), decoded through
    an exponential synapse ``tau_synapse``; the fixed decoding error enters
    the loop amplified by the controller's integration; it falls about as
    1 / neurons_per_dim.

    Parameters
    ----------
    kind : {'system', 'controller'}
    neurons_per_dim, tau_synapse, max_rates, intercepts, seed
        As in `neuron_population`; max rates below 1 / tau_ref.
    tau_rc, tau_ref : brian2.Quantity
        Membrane time constant and refractory period (Nengo: 20 ms, 2 ms).
    regularisation : float
        L2 regularisation of the decoders relative to the largest rate. 0.02,
        not Nengo's 0.1: the time-averaged readout is limited by the fixed
        decoding error, which regularisation raises (on the reference case
        20 <- 10: 0.1 gave 2.7 / 1.4 / 0.45 degrees at 16 / 64 / 256
        neurons per dimension, slope -0.66; 0.02 gave 2.0 / 0.72 / 0.24,
        slope -0.77; 0.01 gave 3.1 / 0.61 / 0.22, noisier at 16).

    Returns
    -------
    PopulationModel
    """
    model = neuron_population(lif_neuron(tau_rc, tau_ref), check_kind(kind), neurons_per_dim,
                              tau_synapse, max_rates, intercepts, seed, regularisation)
    assert isinstance(model, PopulationModel)  # a kind gives one model
    return model


LIF = PopulationFamily(lif_population("system"), lif_population("controller"),
                       "LIF ensemble with decoders (NEF), 64 neurons/dim")
"""The default LIF ensembles (``system='lif'``, ``controller='lif'``)."""

register_population_model("lif", LIF)
