"""
Bring your own neuron: Izhikevich, regular spiking
==================================================

The Izhikevich neuron (Izhikevich 2003) with its regular-spiking parameters,
written as Brian2's examples write it (current in mV/ms), as the system and
the controller of a layer pair 20 <- 10 (alpha = 0.1, B = -W^T), 64 neurons
per dimension, through the ensemble builder `neuron_population` (see
:ref:`sphx_glr_auto_examples_plot_07_adex_population.py`).

This neuron adapts strongly (``u += d`` at every spike): at the onset of a
current it fires several times faster than once adapted, while its tuning
uses the adapted rates. The NEF controller is an integrator whose neurons
feed their own readout back to themselves; with the default 10 ms synapse,
that fast onset makes it oscillate, and the settled readout is far from
Eq. (10) (the spiking study's numbers are in the user guide). A controller
whose synapse is tau_controller / alpha (here 100 ms) needs no recurrence at
all (the synapse *is* the leaky integral), and a slower system synapse
(30 ms) keeps the controller's input quieter. The readout then settles within
a few degrees, but the controller's neurons fire at about 200 Hz on average:
its input, the error scaled by 1 / alpha, carries the system's spike noise
amplified tenfold, beyond the range its tuning covers.
"""

# %%
from brian2 import ms, mV

from dinv.circuits import NeuronModel, Uniform, neuron_population
from dinv.experiments.spiking_inversion import check_layer_pair

izhikevich = NeuronModel(
    equations="""
    dv/dt = (0.04 / ms / mV) * v**2 + (5 / ms) * v + 140 * mV / ms - u + I : volt
    du/dt = a * (b * v - u) : volt / second
    I : volt / second
    """,
    threshold="v > 30*mV", reset="v = c\nu += d",
    namespace={"a": 0.02 / ms, "b": 0.2 / ms, "c": -65 * mV, "d": 8 * mV / ms},
    current="I", current_unit=mV / ms, currents=(0 * mV / ms, 120 * mV / ms),
    initial={"v": Uniform(-65 * mV, 30 * mV), "u": -13 * mV / ms}, description="Izhikevich")
system = neuron_population(izhikevich, "system", neurons_per_dim=64, tau_synapse=30 * ms)
controller = neuron_population(izhikevich, "controller", neurons_per_dim=64, tau_synapse=100 * ms)

check = check_layer_pair(system, controller)  # 20 <- 10, alpha 0.1, B = -W^T, 40 tau
print(f"Izhikevich: {check.angle_deg:.2f} degrees from Eq. (10); mean rates (system, controller) "
      f"{[round(rate) for rate in check.mean_rates_hz.values()]} Hz")
