"""
Settle one layer and compare with Eq. (10)
==========================================

The circuit of one layer pair: a fast *system* population holds the error
delta_{l-1} of layer l-1 (Eq. 5), a slow leaky-integral *controller* u_l drives
it through the feedback B (Eq. 8)::

    tau_system     d(delta_{l-1})/dt = -delta_{l-1} + B u_l
    tau_controller d(u_l)/dt         = -alpha u_l + W delta_{l-1} - delta_l

Its steady state is Eq. (10), delta_{l-1} = B (W B - alpha I)^-1 delta_l, which
is what the non-dynamic inversion rule (NDI, `dinv.models.rules.ndi`) and
`dinv.theory.layer_steady_state` compute in closed form. Here the Brian2
circuit (`dinv.circuits.settle_layer`) settles a batch of errors and we watch
it reach the closed form.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from dinv.circuits import settle_layer
from dinv.models.rules import ndi
from dinv.theory import jacobian_abscissa, layer_steady_state

rng = np.random.default_rng(0)
W = rng.standard_normal((10, 20)) / np.sqrt(20)   # layer l-1 (20 units) -> layer l (10)
B = -W.T                                           # "Tr-Init" feedback: always stable
delta = rng.standard_normal((8, 10))               # 8 errors of layer l, one per row
alpha = 0.1

# %%
# Settle: 1000 Euler steps of dt = 0.5 tau_system (the paper's settings, the
# defaults), recording the states every 5 steps.
result = settle_layer(W, B, delta, alpha, record_every=5, return_result=True)
closed = layer_steady_state(W, B, delta, alpha)        # Eq. (10)

settled = result.delta[0]          # the stacked layout: (n problems, batch, d_{l-1})
print(f"largest |circuit - Eq. (10)|: {np.abs(settled - closed).max():.2g}")
print(f"largest |NDI - Eq. (10)|:     {np.abs(ndi(W, B, delta, alpha) - closed).max():.2g}")
print(f"final residual: {result.residual[0]:.2g}, settled (< settle_tol = 1e-3): "
      f"{result.residual[0] < 1e-3}")
print(f"spectral abscissa of the circuit's Jacobian: {jacobian_abscissa(W, B, alpha):.3f}")

# %%
# The distance to the closed form along the run. The slowest mode decays at
# the rate given by the Jacobian's largest real eigenvalue (the spectral
# abscissa, `dinv.theory.jacobian_abscissa`), in units of 1 / tau_system.
t = result.traces["t"]                                 # units of tau_system
states = result.traces["delta"][:, 0]                  # (records, batch, d_{l-1})
distance = np.linalg.norm(states - closed, axis=-1) / np.linalg.norm(closed, axis=-1)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogy(t, distance, color="tab:blue", alpha=0.6, lw=1)
rate = -jacobian_abscissa(W, B, alpha)
visible = np.exp(-rate * t) > 1e-16          # down to rounding: float64's resolution
ax.semilogy(t[visible], np.exp(-rate * t[visible]), "k--", lw=1, label=f"exp(-{rate:.3f} t)")
ax.set_ylim(1e-17, 10)
ax.set_xlabel("time (tau_system)")
ax.set_ylabel("|delta(t) - Eq. 10| / |Eq. 10|")
ax.set_title("8 errors settled by one layer circuit")
ax.legend()
fig.tight_layout()
