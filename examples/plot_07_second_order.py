"""
Second-order view: how far DI and BP are from Gauss-Newton
==========================================================

Is dynamic inversion a Gauss-Newton method (Podlaski & Machens 2020, Sec. 4.3)?
BP and simulated DI train the toy of Meulemans et al. (2020), a 4-4-4-2 tanh
student of a random teacher; at every fifth update the angle of each hidden
layer's update to the Gauss-Newton target and to the damped Gauss-Newton update
of all weights is measured (`dinv.analysis.second_order`). ``dinv run
second-order`` measures every rule on four cases.
"""

# %%
import matplotlib.pyplot as plt

from dinv.experiments.registry import get_experiment, make_config

study = get_experiment("second-order")
config = make_config(study, overrides={
    "seed": 0, "models": ["BP", "DI"], "cases": ["toy-tp"],
    "case_settings": {"toy-tp": {"steps": 41, "measure_every": 5}}})
angles = study.run(config, progress=False)["angles"]

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
for ax, key in zip(axes, ("to_gnt_deg", "to_gn_deg")):
    for rule, layer in [(r, l) for r in ("BP", "DI") for l in (1, 2)]:
        rows = [a for a in angles if a["rule"] == rule and a["layer"] == layer]
        ax.plot([a["step"] for a in rows], [a[key] for a in rows],
                "-" if rule == "BP" else "--", marker="o", label=f"{rule}, layer {layer}")
        print(f"{key} {rule} layer {layer}: median "
              f"{sorted(a[key] for a in rows)[len(rows) // 2]:.1f} degrees")
    ax.set_xlabel("updates")
    ax.set_title("to the GN target" if key == "to_gnt_deg" else "to Gauss-Newton (joint)")
axes[0].set_ylabel("angle (degrees)")
axes[1].legend(fontsize=8)
fig.tight_layout()
