"""Print the user guide's table of the ensemble builder's neurons and their variants.

Usage::

    python docs/scripts/neuron_variants.py [SIZES ...]

Settles the spiking study's contracting pair (20 <- 10, W ~ N(0, 1/10),
B = -W^T, alpha 0.1, tau 10 ms, 40 tau of dt = 0.002, seed 0; its `Study`)
at 16, 64 and 128 neurons per dimension (or SIZES) with both populations
made by the ensemble builder from:

- ``lif measured``: the LIF neuron of ``lif`` *measured* by simulation (no
  closed-form curve): the control, the builder's measurement and tuning
  against ``lif``'s closed form;
- ``qif``, ``adex``, ``izhikevich``: `dinv.circuits.neuron_library`;
- ``qif + 2 ms refractory``, ``adex + 2 ms refractory``: the same neurons
  with an absolute refractory period (membrane clamped after each spike);
- ``izhikevich, synapses 30 / 100 ms``: the gallery's configuration (the
  system's synapse 30 ms, the controller's tau_controller / alpha = 100 ms).

Prints a Markdown table of the angle of the averaged readout to Eq. (10),
the moment-to-moment relative RMS error and the mean rate.
"""

import dataclasses
import sys

from brian2 import ms, nA

from dinv.circuits import NeuronModel, lif_neuron, neuron_population
from dinv.circuits.neuron_library import ADEX, IZHIKEVICH_RS, QIF
from dinv.experiments.registry import EXPERIMENTS, make_config
from dinv.experiments.spiking_inversion import Study


def refractory(neuron, top):
    """``neuron`` with a 2 ms refractory period (and a grid up to ``top`` nA)."""
    equations = neuron.equations.replace(": volt\n", ": volt (unless refractory)\n", 1)
    return dataclasses.replace(neuron, equations=equations, refractory=2 * ms,
                               currents=(0 * nA, top * nA),
                               description=f"{neuron.description} + refractory")


def measured_lif():
    """The LIF neuron of ``lif`` without its closed form, measured at the study's step."""
    lif = lif_neuron()
    return NeuronModel(equations=lif.equations, threshold=lif.threshold, reset=lif.reset,
                       refractory=lif.refractory, current="J", namespace=lif.namespace,
                       currents=(0.5, 12.0), initial=lif.initial, dt=0.02 * ms,
                       description="LIF measured")


def factory(neuron, synapses=None):
    """A study factory of ``neuron`` (``synapses``: ms per kind, else 10)."""
    def make(kind, per_dim, seed=0):
        tau = (synapses or {}).get(kind, 10.0) * ms
        return neuron_population(neuron, kind, per_dim, seed=seed, tau_synapse=tau)
    return make


VARIANTS = {
    "lif measured": factory(measured_lif()),
    "qif": factory(QIF),
    "qif + 2 ms refractory": factory(refractory(QIF, 1.5)),
    "adex": factory(ADEX),
    "adex + 2 ms refractory": factory(refractory(ADEX, 3.0)),
    "izhikevich": factory(IZHIKEVICH_RS),
    "izhikevich, synapses 30 / 100 ms": factory(IZHIKEVICH_RS,
                                                {"system": 30.0, "controller": 100.0}),
}


def main(argv):
    """Print the table for the sizes in ``argv`` (default 16, 64, 128)."""
    sizes = [int(a) for a in argv] or [16, 64, 128]
    study = Study(make_config(EXPERIMENTS["spiking-inversion"], overrides={"models": ["lif"]}),
                  factories=VARIANTS)
    print("| neuron | " + " | ".join(f"{n}: angle (deg), RMS, rate (Hz)" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name in VARIANTS:
        cells = []
        for size in sizes:
            r = study.measure(name, "contracting", size)
            cells.append(f"{r['angle_deg']:.3g}, {r['rms_error']:.2g}, {r['mean_rate_hz']:.0f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
