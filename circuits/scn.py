"""Spike-coding networks (``scn``; Boerlin, Machens & Deneve 2013) as populations.

`scn_population` makes a system or controller model whose `SCNEnsemble`
builds, behind the representation group, neurons with signed
one-dimensional decoders that keep the readout near the ideal state y
(model: `dinv.spiking`; equations: `dinv.circuits.spiking_equations`; what
every spiking population shares: `dinv.circuits.spiking`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import NeuronGroup, ms, second

from dinv.circuits import spiking
from dinv.circuits import spiking_equations as eq
from dinv.circuits.brian_internals import CODEGEN_TARGETS, expect_sequential_spike_rule
from dinv.circuits.populations import (
    Ensemble,
    PopulationFamily,
    PopulationModel,
    pid_parameters,
    register_population_model,
)
from dinv.errors import InputError
from dinv.hints import FloatArray, Time
from dinv.spiking import scn_parameters
from dinv.validation import check_count, check_number


@dataclass(frozen=True)
class SCNEnsemble(Ensemble):
    """Spike-coding neurons behind a representation group (Boerlin et al. 2013).

    Times in seconds; see `scn_population` for the meaning and defaults.
    """

    neurons_per_dim: int = 32
    tau_readout: float = 0.02
    refractory: float = 0.0
    seed: int = 0
    decoder_scale: float = 1.0
    spread: float = 0.25
    cost: float = 0.5
    noise: float = 0.0
    tau_noise: float = 0.002
    steps_per_readout: float = 1000.0

    @property
    def random(self) -> bool:
        """Whether the neurons draw random numbers (voltage noise): then each run
        seeds Brian2's generator (`dinv.circuits.runner.seeded_noise`)."""
        return self.noise > 0

    def max_dt(self) -> float:
        """tau_readout / steps_per_readout: spikes fall on steps, so the coding
        error drifts for up to a step before a spike can answer it (a
        conservative limit: see `scn_population`)."""
        return self.tau_readout / self.steps_per_readout

    def build(self, group: Any, blocks: Sequence[tuple[Any, int, int]], clock: Any,
              codeobj_class: type | None) -> spiking.SpikingNeurons:
        """See `Ensemble.build`."""
        per_dim = self.neurons_per_dim
        size = len(group) * per_dim
        decoder = np.empty(size)
        mu = sigma = 0.0
        for block, start, stop in blocks:
            rng = spiking.block_stream(self.seed, block.name)
            drawn = scn_parameters(block.width, per_dim, rng, self.decoder_scale, self.spread,
                                   self.cost, self.noise)
            decoder[start * per_dim:stop * per_dim] = np.tile(
                drawn.decoder, (stop - start) // block.width)
            mu, sigma = drawn.mu, drawn.noise
        neurons, synapses = scn_neurons(group, decoder, per_dim, mu, sigma, self.tau_readout,
                                        self.refractory, self.tau_noise, clock, codeobj_class)
        rest = [("r", 0.0), ("ready", 0.0)] + ([("eta", 0.0)] if self.random else [])
        return spiking.SpikingNeurons(neurons, synapses, blocks, per_dim, rest)


def scn_neurons(group: Any, decoder: FloatArray, per_dim: int, mu: float, sigma: float | None,
                tau_readout: float, refractory: float, tau_noise: float, clock: Any,
                codeobj_class: type | None) -> tuple[Any, Any]:
    """The spike-coding neurons behind representation ``group`` and their decoding synapses.

    Shared by the circuits (`SCNEnsemble`) and the pair built from Brian2
    objects alone (`dinv.circuits.standalone`). The neurons have their
    group's ``order`` and the name ``<group>_spikes``: Brian2 resolves ties
    by name, so they integrate just before their group, from the readout at
    the start of the step (what `dinv.spiking_reference` mirrors).

    Parameters
    ----------
    group : brian2.NeuronGroup
        Representation units (``coding_error``, ``xhat``, ``radius``).
    decoder : ndarray
        Decoder of every neuron, ``per_dim`` consecutive neurons per unit.
    per_dim : int
    mu, sigma : float
        Rate cost and voltage noise (sigma 0 or None: no noise).
    tau_readout, refractory, tau_noise : float
        Seconds.
    clock : brian2.Clock
    codeobj_class : type or None

    Returns
    -------
    (brian2.NeuronGroup, brian2.Synapses or None)
        The neurons, whose resets decode their spikes (`SCN_RESET`), and None;
        on Brian2's numpy target (vectorised resets) decoding synapses that
        run the same rule synapse by synapse (`SCN_ON_PRE`).
    """
    noisy = bool(sigma)
    namespace = {"mu": mu, "tau_readout": tau_readout * second, "t_ref": refractory * second}
    if noisy:
        namespace.update(sigma=sigma, tau_noise=tau_noise * second)
    vectorised = codeobj_class is CODEGEN_TARGETS["numpy"]
    neurons = NeuronGroup(
        len(decoder), eq.scn_neurons(noisy), threshold=eq.SCN_THRESHOLD,
        reset="" if vectorised else eq.SCN_RESET, method="euler",
        name=f"{group.name}_spikes", clock=clock, order=group.order, namespace=namespace,
        codeobj_class=codeobj_class)
    spiking.link_to_units(neurons, group, per_dim, "coding_error", "xhat", "radius")
    neurons.decoder = decoder
    neurons.active = 1.0
    synapses = None
    if vectorised:
        synapses = spiking.decoding_synapses(neurons, group, decoder, per_dim, clock,
                                             codeobj_class, on_pre=eq.scn_on_pre(noisy),
                                             namespace=namespace)
        expect_sequential_spike_rule()
    return neurons, synapses


SCN_EQUATIONS = {"system": eq.SCN_SYSTEM, "controller": eq.SCN_CONTROLLER}
"""The representation equations of an SCN population by kind (without PID gains)."""


def scn_population(kind: str = "system", neurons_per_dim: int = 32, tau_readout: Time = 20 * ms,
                   refractory: Time = 0 * ms, seed: int = 0, decoder_scale: float = 1.0,
                   cost: float = 0.5, noise: float = 0.0, spread: float = 0.25,
                   tau_noise: Time = 2 * ms, kp: float = 0.0, kd: float = 0.0,
                   filter_ratio: float = 1.0) -> PopulationModel:
    """A spike-coding population (Boerlin, Machens & Deneve 2013) of ``kind``.

    Per represented dimension, ``neurons_per_dim`` neurons with signed
    one-dimensional decoders (half positive, half negative) keep the readout
    xhat (their filtered, decoded spikes) near the ideal state y, which
    integrates the population's own dynamics at the readout (system:
    ``tau_s dy/dt = -xhat + B u``; controller: ``tau_c dy/dt = -alpha uhat +
    W delta_{l-1} - delta_l``). Because y stays within about a decoder step of
    xhat, the time average of xhat satisfies the rate equations' steady state
    up to a boundary term that falls as 1 / (neurons_per_dim x window): no bias.

    Parameters
    ----------
    kind : {'system', 'controller'}
    neurons_per_dim : int
        Neurons per represented dimension (>= 2, even keeps ON and OFF equal).
    tau_readout : brian2.Quantity
        Decay of the readout (and of each neuron's rate trace). 20 ms (the
        reference numpy SCN's lambda_d = 50/s): a unit needs about
        |x| / (R |decoder| tau_readout) spikes per second, i.e. 14-15 Hz per
        neuron on average on the reference case at the default radius. The
        step must be at most tau_readout / 1000 (0.02 ms, dt = 0.002 at
        tau = 10 ms). (The sequential spike rule, `dinv.spiking`, would
        allow coarser steps: on the reference case at 64 per dimension,
        dt = 0.05 tau gave 0.08 degrees against 0.019 at 0.002.)
    refractory : brian2.Quantity
        Refractory period (0: none; the rate cost already spreads spikes).
    seed : int
        Seed of the decoders (one draw per population, see the module).
    decoder_scale : float
        |decoder| x neurons_per_dim in units of the radius (1: the readout
        moves in steps of about R / neurons_per_dim).
    cost : float
        Quadratic rate cost mu in units of the mean squared decoder (0.5:
        without it neurons fire wastefully, 500-800 Hz at the top).
    noise : float
        Voltage noise (Ornstein-Uhlenbeck, std in units of the mean decoder,
        correlation time ``tau_noise``); 0 (default) makes runs deterministic.
        With noise, each run seeds Brian2's generator with ``seed``, so spikes
        are reproducible (`dinv.circuits.runner.seeded_noise`). The threshold
        is about 0.75 / neurons_per_dim mean decoders: at 16 per dimension,
        noise 0.01 leaves rates at 25 Hz, 0.03 raises them to 63 Hz and 0.1
        to 230 Hz (noise-driven spikes).
    spread : float
        Heterogeneity of the decoder magnitudes (0 <= spread < 1).
    tau_noise : brian2.Quantity
    kp, kd, filter_ratio : float
        Controllers only: PID gains as in
        `dinv.circuits.populations.pid_controller` (scalars; same filtered
        derivatives), in the dynamics of y. 0, 0: the leaky integral (Eq. 8).

    Returns
    -------
    PopulationModel
    """
    spiking.check_kind(kind)
    per_dim = check_count("neurons_per_dim", neurons_per_dim, 2)
    ensemble = SCNEnsemble(
        neurons_per_dim=per_dim, tau_readout=spiking.check_time("tau_readout", tau_readout),
        refractory=spiking.check_time("refractory", refractory, allow_zero=True),
        seed=check_count("seed", seed, 0),
        decoder_scale=check_number("decoder_scale", decoder_scale, low=0, low_open=True),
        spread=float(spread), cost=float(cost), noise=float(noise),
        tau_noise=spiking.check_time("tau_noise", tau_noise))
    # Validate the neuron parameters now (scn_parameters checks them).
    scn_parameters(1, per_dim, np.random.default_rng(0), ensemble.decoder_scale,
                   ensemble.spread, ensemble.cost, ensemble.noise)
    pid = pid_parameters(kp, kd, filter_ratio if kind == "controller" else 1.0)
    if kind == "system" and pid is not None:
        raise InputError("PID gains (kp, kd) are for controllers; pass kind='controller'")
    label = (f"spike-coding network, {per_dim} neurons/dim, readout "
             f"{ensemble.tau_readout * 1e3:g} ms")
    if pid is None:
        return spiking.spiking_model(kind, SCN_EQUATIONS, ensemble, ensemble.tau_readout,
                                     "tau_readout", label, rest={"y": 0.0})
    return spiking.spiking_model(kind, {"controller": eq.SCN_PID_CONTROLLER}, ensemble,
                                 ensemble.tau_readout, "tau_readout",
                                 f"{label}, PID k_p={kp:g} k_d={kd:g}",
                                 rest={"y": 0.0, "e_f": 0.0, "rate_f": 0.0}, parameters=pid)


SCN = PopulationFamily(scn_population("system"), scn_population("controller"),
                       "spike-coding network (Boerlin et al. 2013), 32 neurons/dim")
"""The default spike-coding populations (``system='scn'``, ``controller='scn'``)."""

register_population_model("scn", SCN)
