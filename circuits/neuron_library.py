"""Three spiking neurons a user would try, as `NeuronModel` factories for the ensemble builder.

Each factory takes the neuron's parameters (with units; the defaults are the
published ones below) and an optional refractory period, and returns a
`NeuronModel` that `dinv.circuits.nef.neuron_population` makes a population
of; the spiking study (``dinv run spiking-inversion``) measures the defaults
(`NEURONS`). Nothing is simulated when this module is imported: a model's
rate curve is measured when a population is first made of it (then cached
on disk). The gallery writes the same neurons out in full, as a user would.

`qif`
    Quadratic integrate-and-fire (Ermentrout & Kopell 1986; Latham et al.
    2000): ``tau dv/dt = (v - v_rest)(v - v_crit) / delta_v + R I``, spike at
    0 mV, reset to -70 mV; rheobase 0.05 nA.
`adex`
    Adaptive exponential integrate-and-fire (Brette & Gerstner 2005) with
    the tonic-spiking parameters of Naud et al. (2008, Fig. 4a): subthreshold
    adaptation a = 2 nS, tau_w = 30 ms, no spike-triggered adaptation (b = 0).
`izhikevich`
    Izhikevich (2003), regular spiking: a = 0.02/ms, b = 0.2/ms, c = -65 mV,
    d = 8 mV/ms, its current in mV/ms as in Brian2's examples. Its strong
    spike-triggered adaptation (d) makes it fire far faster at the onset of
    a current than once adapted (its rate curve is the adapted one); the
    docs' population page says what that does to a controller.

Without a refractory period, neurons of the first two fire bursts their
tuning does not know of; the spiking page of the user guide gives the
numbers, and ``adex(refractory=2 * ms)`` as the variant that meets the study's
goal.
"""

from brian2 import Mohm, ms, mV, nA, nS, pF

from dinv.circuits.neurons import NeuronModel, Uniform
from dinv.hints import Quantity, Time


def qif(tau: Quantity = 5 * ms, v_rest: Quantity = -65 * mV, v_crit: Quantity = -55 * mV,
        delta_v: Quantity = 5 * mV, R: Quantity = 100 * Mohm, v_peak: Quantity = 0 * mV,
        v_reset: Quantity = -70 * mV, refractory: Time | None = None) -> NeuronModel:
    """A quadratic integrate-and-fire neuron (current I in nA, tuned over 0-0.4 nA).

    Parameters
    ----------
    tau, v_rest, v_crit, delta_v, R, v_peak, v_reset : brian2.Quantity
        Membrane time constant, resting and critical potentials, their scale,
        input resistance, spike and reset potentials.
    refractory : brian2.Quantity or None
        Refractory period (None: none).

    Returns
    -------
    NeuronModel
    """
    return NeuronModel(
        equations="""
        dv/dt = ((v - v_rest) * (v - v_crit) / delta_v + R * I) / tau : volt
        I : amp
        """,
        threshold="v > v_peak", reset="v = v_reset", refractory=refractory,
        namespace={"tau": tau, "v_rest": v_rest, "v_crit": v_crit, "delta_v": delta_v,
                   "R": R, "v_peak": v_peak, "v_reset": v_reset},
        current="I", current_unit=nA, currents=(0 * nA, 0.4 * nA),
        initial={"v": Uniform(v_reset, v_crit)}, description="QIF")


def adex(C: Quantity = 200 * pF, g_L: Quantity = 10 * nS, E_L: Quantity = -70 * mV,
         V_T: Quantity = -50 * mV, Delta_T: Quantity = 2 * mV, tau_w: Quantity = 30 * ms,
         a: Quantity = 2 * nS, b: Quantity = 0 * nA, V_r: Quantity = -58 * mV,
         refractory: Time | None = None) -> NeuronModel:
    """An adaptive exponential integrate-and-fire neuron (current I in nA, tuned over
    0-1.2 nA); spike when v passes V_T + 5 Delta_T.

    Parameters
    ----------
    C, g_L, E_L, V_T, Delta_T : brian2.Quantity
        Capacitance, leak conductance and reversal, threshold and slope factor.
    tau_w, a, b : brian2.Quantity
        Adaptation: time constant, subthreshold coupling, jump at each spike.
    V_r : brian2.Quantity
        Reset potential.
    refractory
        As in `qif`.

    Returns
    -------
    NeuronModel
        Named "AdEx".
    """
    return NeuronModel(
        equations="""
        dv/dt = (g_L * (E_L - v) + g_L * Delta_T * exp((v - V_T) / Delta_T) + I - w) / C : volt
        dw/dt = (a * (v - E_L) - w) / tau_w : amp
        I : amp
        """,
        threshold="v > V_T + 5 * Delta_T", reset="v = V_r\nw += b", refractory=refractory,
        namespace={"C": C, "g_L": g_L, "E_L": E_L, "V_T": V_T, "Delta_T": Delta_T,
                   "tau_w": tau_w, "a": a, "b": b, "V_r": V_r},
        current="I", current_unit=nA, currents=(0 * nA, 1.2 * nA),
        initial={"v": Uniform(E_L, V_T)}, description="AdEx")


def izhikevich(a: Quantity = 0.02 / ms, b: Quantity = 0.2 / ms, c: Quantity = -65 * mV,
               d: Quantity = 8 * mV / ms, refractory: Time | None = None) -> NeuronModel:
    """An Izhikevich neuron, regular spiking by default (current I in mV/ms, tuned over
    0-120 mV/ms); spike at 30 mV.

    Parameters
    ----------
    a, b, c, d : brian2.Quantity
        Recovery rate and sensitivity, reset potential, recovery jump at each spike
        (Izhikevich 2003; the defaults are its regular-spiking values).
    refractory
        As in `qif`.

    Returns
    -------
    NeuronModel
        Named "Izhikevich RS".
    """
    return NeuronModel(
        equations="""
        dv/dt = (0.04 / ms / mV) * v**2 + (5 / ms) * v + 140 * mV / ms - u + I : volt
        du/dt = a * (b * v - u) : volt / second
        I : volt / second
        """,
        threshold="v > 30 * mV", reset="v = c\nu += d", refractory=refractory,
        namespace={"a": a, "b": b, "c": c, "d": d},
        current="I", current_unit=mV / ms, currents=(0 * mV / ms, 120 * mV / ms),
        initial={"v": Uniform(c, 30 * mV), "u": b * c}, description="Izhikevich RS")


QIF = qif()
"""Quadratic integrate-and-fire neuron with the default parameters."""

ADEX = adex()
"""Adaptive exponential integrate-and-fire neuron, tonic spiking."""

IZHIKEVICH_RS = izhikevich()
"""Izhikevich neuron, regular spiking."""

NEURONS = {"qif": QIF, "adex": ADEX, "izhikevich": IZHIKEVICH_RS}
"""The library by short name (the spiking study's model names)."""
