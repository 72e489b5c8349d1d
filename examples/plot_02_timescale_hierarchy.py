"""
A timescale hierarchy of your own
=================================

A deep network inverts its layers one pair at a time (Fig. 2 of the paper).
In the *repeat-layer* architecture every hidden layer has a system and a
controller population, all simulated at once, and each population can have
its own time constant. Here a 12-16-10-6 network's backward pass is settled
with controllers that get slower up the hierarchy, with equal time constants,
and with controllers that get faster up the hierarchy; the sizes, time
constants and leak are ours to choose. `dinv.theory.chain_steady_state`
gives the common steady state (Eq. 10 layer by layer, Eq. 17 with the
identity transfer).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from brian2 import ms

from dinv.circuits.chains import settle_chain
from dinv.theory import chain_steady_state

rng = np.random.default_rng(1)
sizes = [12, 16, 10, 6]                       # d_0 .. d_3: two hidden layers to invert
alpha = 0.1
# Stacked arrays: a leading axis of n independent problems (here n = 1).
W = [rng.standard_normal((1, sizes[l + 1], sizes[l])) / np.sqrt(sizes[l]) for l in range(3)]
B = [-w.transpose(0, 2, 1) for w in W[1:]]    # B_2, B_3 (Tr-Init)
delta_L = rng.standard_normal((1, 1, sizes[-1]))   # one output error

target = chain_steady_state(W[1:], B, delta_L, alpha)  # [delta_1, delta_2]
print("steady state of delta_1, first units:", np.round(target[0][0, 0, :4], 4))

# %%
# Three hierarchies of controller time constants (hidden layers 1 and 2, in
# that order); every system population keeps tau_system = 5 ms.
hierarchies = {
    "slower up (10, 20 ms)": [10 * ms, 20 * ms],
    "uniform (10, 10 ms)": [10 * ms, 10 * ms],
    "faster up (10, 5 ms)": [10 * ms, 5 * ms],
}
fig, ax = plt.subplots(figsize=(6, 3.5))
for (label, taus), colour in zip(hierarchies.items(), ["tab:blue", "k", "tab:red"]):
    result = settle_chain(W, B, delta_L, alpha, architecture="repeat", steps=2000,
                          tau_system=[5 * ms, 5 * ms], tau_controller=taus,
                          record_every=10)
    d1 = result.traces["d1"][:, 0, 0]         # (records, d_1): readout of hidden layer 1
    error = np.linalg.norm(d1 - target[0][0, 0], axis=-1) / np.linalg.norm(target[0])
    final = max(np.abs(d - r).max() for d, r in zip(result.deltas, target))
    reached = result.traces["t"][np.flatnonzero(error > 0.01)[-1] + 1]
    print(f"{label:22s} within 1 % from t = {reached:5.1f} tau_system; "
          f"largest final |delta - steady state| {final:.1g}")
    ax.semilogy(result.traces["t"], error, color=colour, label=label)
ax.axhline(0.01, color="0.6", lw=0.8, ls=":")
ax.set_xlabel("time (tau_system = 5 ms)")
ax.set_ylabel("relative error of delta_1")
ax.set_title("Repeat-layer chain 12-16-10-6, alpha = 0.1")
ax.legend(title="controllers")
fig.tight_layout()
