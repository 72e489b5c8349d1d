"""
Bring your own neuron: quadratic integrate-and-fire
===================================================

The quadratic integrate-and-fire neuron (Ermentrout & Kopell 1986; Latham et
al. 2000) as the system and the controller of a layer pair 20 <- 10
(alpha = 0.1, B = -W^T), 64 neurons per dimension, through the ensemble
builder `neuron_population` (see
:ref:`sphx_glr_auto_examples_plot_07_adex_population.py`). Its rate rises
as the square root of the current above threshold, so steeply there that the
builder measures a second, finer set of currents where the rate rises
(``qif.rate_curve()`` returns the measured curve the tuning used).
"""

# %%
from brian2 import Mohm, ms, mV, nA

from dinv.circuits import NeuronModel, Uniform, neuron_population
from dinv.experiments.spiking_inversion import check_layer_pair

qif = NeuronModel(
    equations="""
    dv/dt = ((v - v_rest) * (v - v_crit) / delta_v + R * I) / tau : volt
    I : amp
    """,
    threshold="v > 0*mV", reset="v = -70*mV", current="I", current_unit=nA,
    namespace={"tau": 5 * ms, "v_rest": -65 * mV, "v_crit": -55 * mV, "delta_v": 5 * mV,
               "R": 100 * Mohm},
    currents=(0 * nA, 0.4 * nA), initial={"v": Uniform(-70 * mV, -55 * mV)}, description="QIF")
population = neuron_population(qif, neurons_per_dim=64)

check = check_layer_pair(population)  # 20 <- 10, alpha 0.1, B = -W^T, 40 tau
print(f"QIF: {check.angle_deg:.2f} degrees from Eq. (10); mean rates (system, controller) "
      f"{[round(rate) for rate in check.mean_rates_hz.values()]} Hz")
