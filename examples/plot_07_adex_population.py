"""
Bring your own neuron: adaptive exponential integrate-and-fire
==============================================================

Any spiking neuron written as Brian2 writes one (equations with units, a
threshold, a reset, a namespace) becomes a population of any circuit. Say
which variable receives the input current, with its unit, and the range of
currents to measure the neuron over: `neuron_population` measures its rate
curve by simulating it (once; cached on disk), picks gains and biases for the
requested spread of intercepts and max rates (NEF), solves least-squares
decoders and decodes the spikes through an exponential synapse (see
:doc:`/guide/populations`). Here the AdEx neuron (Brette & Gerstner 2005,
with the tonic-spiking parameters of Naud et al. 2008) is the system and the
controller of a layer pair 20 <- 10 (alpha = 0.1, B = -W^T), 64 neurons per
dimension, for 40 tau of 10 ms.
"""

# %%
from brian2 import ms, mV, nA, nS, pF

from dinv.circuits import NeuronModel, Uniform, neuron_population
from dinv.experiments.spiking_inversion import check_layer_pair

adex = NeuronModel(
    equations="""
    dv/dt = (g_L * (E_L - v) + g_L * Delta_T * exp((v - V_T) / Delta_T) + I - w) / C : volt
    dw/dt = (a * (v - E_L) - w) / tau_w : amp
    I : amp
    """,
    threshold="v > V_T + 5 * Delta_T", reset="v = V_r\nw += b",
    namespace={"C": 200 * pF, "g_L": 10 * nS, "E_L": -70 * mV, "V_T": -50 * mV,
               "Delta_T": 2 * mV, "tau_w": 30 * ms, "a": 2 * nS, "b": 0 * nA, "V_r": -58 * mV},
    current="I", current_unit=nA, currents=(0 * nA, 1.2 * nA),
    initial={"v": Uniform(-70 * mV, -50 * mV)}, description="AdEx")
population = neuron_population(adex, neurons_per_dim=64)  # its system and controller

check = check_layer_pair(population)  # 20 <- 10, alpha 0.1, B = -W^T, 40 tau
print(f"AdEx: {check.angle_deg:.2f} degrees from Eq. (10); mean rates (system, controller) "
      f"{[round(rate) for rate in check.mean_rates_hz.values()]} Hz")
