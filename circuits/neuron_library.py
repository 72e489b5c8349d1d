"""Three spiking neurons a user would try, as `NeuronModel` objects for the ensemble builder.

Each is written as Brian2 writes it (the gallery writes them again, as a user
would) and made a population by `dinv.circuits.nef.neuron_population`; the
spiking study (``dinv run spiking-inversion``) measures them. Nothing is
simulated when this module is imported: a model's rate curve is measured
when a population is first made of it (then cached on disk).

`QIF`
    Quadratic integrate-and-fire (Ermentrout & Kopell 1986; Latham et al.
    2000): ``tau dv/dt = (v - v_rest)(v - v_crit) / delta_v + R I``, spike at
    0 mV, reset to -70 mV; rheobase 0.05 nA.
`ADEX`
    Adaptive exponential integrate-and-fire (Brette & Gerstner 2005) with
    the tonic-spiking parameters of Naud et al. (2008, Fig. 4a): subthreshold
    adaptation a = 2 nS, tau_w = 30 ms, no spike-triggered adaptation (b = 0).
`IZHIKEVICH_RS`
    Izhikevich (2003), regular spiking: a = 0.02/ms, b = 0.2/ms, c = -65 mV,
    d = 8 mV/ms, its current in mV/ms as in Brian2's examples. Its strong
    spike-triggered adaptation (d) makes it fire far faster at the onset of
    a current than once adapted (its rate curve is the adapted one); the
    docs' population page says what that does to a controller.
"""

from brian2 import Mohm, ms, mV, nA, nS, pF

from dinv.circuits.neurons import NeuronModel, Uniform

QIF = NeuronModel(
    equations="""
    dv/dt = ((v - v_rest) * (v - v_crit) / delta_v + R * I) / tau : volt
    I : amp
    """,
    threshold="v > v_peak", reset="v = v_reset",
    namespace={"tau": 5 * ms, "v_rest": -65 * mV, "v_crit": -55 * mV, "delta_v": 5 * mV,
               "R": 100 * Mohm, "v_peak": 0 * mV, "v_reset": -70 * mV},
    current="I", current_unit=nA, currents=(0 * nA, 0.4 * nA),
    initial={"v": Uniform(-70 * mV, -55 * mV)}, description="QIF")
"""Quadratic integrate-and-fire neuron (current I in nA)."""

ADEX = NeuronModel(
    equations="""
    dv/dt = (g_L * (E_L - v) + g_L * Delta_T * exp((v - V_T) / Delta_T) + I - w) / C : volt
    dw/dt = (a * (v - E_L) - w) / tau_w : amp
    I : amp
    """,
    threshold="v > V_T + 5 * Delta_T", reset="v = V_r\nw += b",
    namespace={"C": 200 * pF, "g_L": 10 * nS, "E_L": -70 * mV, "V_T": -50 * mV,
               "Delta_T": 2 * mV, "tau_w": 30 * ms, "a": 2 * nS, "b": 0 * nA,
               "V_r": -58 * mV},
    current="I", current_unit=nA, currents=(0 * nA, 1.2 * nA),
    initial={"v": Uniform(-70 * mV, -50 * mV)}, description="AdEx")
"""Adaptive exponential integrate-and-fire neuron, tonic spiking (current I in nA)."""

IZHIKEVICH_RS = NeuronModel(
    equations="""
    dv/dt = (0.04 / ms / mV) * v**2 + (5 / ms) * v + 140 * mV / ms - u + I : volt
    du/dt = a * (b * v - u) : volt / second
    I : volt / second
    """,
    threshold="v > 30 * mV", reset="v = c\nu += d",
    namespace={"a": 0.02 / ms, "b": 0.2 / ms, "c": -65 * mV, "d": 8 * mV / ms},
    current="I", current_unit=mV / ms, currents=(0 * mV / ms, 120 * mV / ms),
    initial={"v": Uniform(-65 * mV, 30 * mV), "u": -13 * mV / ms},
    description="Izhikevich RS")
"""Izhikevich neuron, regular spiking (current I in mV/ms)."""

NEURONS = {"qif": QIF, "adex": ADEX, "izhikevich": IZHIKEVICH_RS}
"""The library by short name (the spiking study's model names)."""
