"""
Your own population model, and a spiking one
============================================

Every population of a circuit is a `dinv.circuits.PopulationModel`: Brian2
equations with units plus the roles of their variables (the readout the
couplings read, the input they write, the time constant). Any of them can be
swapped, here

1. the system for a rate population with a gain g of our own, whose steady
   state is Eq. (10) with g B in place of B, and
2. both populations for spike-coding networks (``system="scn"``,
   ``controller="scn"``; `dinv.circuits.scn_population`), whose readout is
   decoded, filtered spikes.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from dinv.circuits import LayerCircuit, PopulationModel, SettleOptions, layer_radii, settle_layer
from dinv.theory import layer_steady_state

rng = np.random.default_rng(0)
W = rng.standard_normal((10, 20)) / np.sqrt(20)
B = -W.T
delta = rng.standard_normal((4, 10))
alpha = 0.1

# %%
# A rate system with a gain
# -------------------------
# The equations are ordinary Brian2 equations; ``readout``, ``input`` and
# ``tau`` name the variables the circuit needs, ``parameters`` sets the
# constants. The controller stays the default leaky integrator (Eq. 8).
gained = PopulationModel(
    equations="""
    dx/dt = (-x + g * I_in) / tau_sys : 1
    I_in : 1
    g : 1 (shared, constant)
    tau_sys : second (shared, constant)
    """,
    readout="x", input="I_in", tau="tau_sys", kind="system", parameters={"g": 2.0},
    description="rate system with gain g")

settled = settle_layer(W, B, delta, alpha, SettleOptions(steps=2000, system=gained))
closed = layer_steady_state(W, 2.0 * B, delta, alpha)     # its own closed form
print(f"gained system: largest |circuit - Eq. (10) with 2 B|: "
      f"{np.abs(settled - closed).max():.2g}")

# %%
# Spike-coding populations
# ------------------------
# Spiking needs small steps (dt in units of the fastest tau; at most 0.002 for
# ``scn``) and a range to represent, its *radius*, which `layer_radii` picks
# from the closed form. The settled value of a spiking block is its readout
# averaged over the last fifth of the run. The registered name ``"scn"`` has
# 32 neurons per dimension (`scn_population` sets others). The run is 40 tau
# of the populations' 10 ms (20000 steps of 0.02 ms), as in the reference case
# of :ref:`spiking-reference-case`.
W1 = rng.normal(0, np.sqrt(1 / 10), (10, 20))
B1 = -W1.T
delta1 = rng.normal(size=(1, 10))
circuit = LayerCircuit(10, 20, options=SettleOptions(
    system="scn", controller="scn", dt=0.002, steps=20000, record_every=20))
result = circuit.settle(W1, B1, delta1, alpha, radius=layer_radii(W1, B1, delta1, alpha))

target = layer_steady_state(W1, B1, delta1, alpha)[0]
spiking = result.delta[0, 0]
cosine = spiking @ target / np.linalg.norm(spiking) / np.linalg.norm(target)
print(f"scn: angle to Eq. (10) {np.degrees(np.arccos(min(cosine, 1.0))):.2f} degrees; "
      f"mean rate {result.spiking['system']['mean_rate_hz']:.1f} Hz")

# %%
# The spiking system's readout against time, for three of its 20 units, and
# the closed form (dashed).
t = result.traces["t"]
fig, ax = plt.subplots(figsize=(6, 3.5))
for unit, colour in zip([0, 1, 2], ["tab:blue", "tab:orange", "tab:green"]):
    ax.plot(t, result.traces["delta"][:, 0, 0, unit], color=colour, lw=0.8)
    ax.axhline(target[unit], color=colour, ls="--", lw=1)
ax.set_xlabel("time (tau of the fastest population)")
ax.set_ylabel("readout of delta_{l-1}")
ax.set_title("Spike-coding system and controller, 32 neurons per dimension")
fig.tight_layout()
