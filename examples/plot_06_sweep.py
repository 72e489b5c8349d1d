"""
A sweep over seeds and learning rates
=====================================

``dinv sweep`` runs a grid of an experiment's settings, one full run per
*cell*, on Dask (a local cluster by default, or a running scheduler, or SLURM
jobs). Here a tiny grid, two seeds times two learning rates of the quick
linear regression with two models and 60 samples, runs on one local worker
through the Python API (`dinv.experiments.sweep.run_sweep`); the tidy table
comes back through `dinv.analysis.load_sweep`.

The same sweep from a shell::

    dinv sweep linear-regression --quick --grid seed=0:2 --grid lr=0.01,0.005 \\
        --set samples=60 --models "BP,DI a=0.01" --workers 1 --out DIR

Cells that differ only in the seed train together in one circuit
(`dinv.experiments.stacking`), with the numbers each gets alone.
"""

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from dinv.analysis import load_curves, load_sweep
from dinv.experiments.cluster import ClusterOptions
from dinv.experiments.sweep import SweepSpec, run_sweep


def sweep(out):
    """Run the grid into ``out`` on one local Dask worker."""
    spec = SweepSpec("linear-regression", grid={"seed": [0, 1], "lr": [0.01, 0.005]},
                     overrides={"samples": 60, "models": ["BP", "DI a=0.01"]}, quick=True)
    outcome = run_sweep(spec, out, ClusterOptions(workers=1), progress=False,
                        command="plot_06_sweep.py")
    print(outcome.counts, f"{outcome.seconds:.1f} s")


# %%
# The tidy table has one row per cell, model and metric, with one column per
# grid key; `load_curves` gives the learning curves of every cell.
def analyse(out):
    """Print the final NMSE per model, learning rate and seed; plot the curves."""
    table = load_sweep(out)
    print(table.columns.tolist())
    nmse = table[table.metric == "nmse"]
    print(nmse.pivot_table(index=["model", "lr"], columns="seed", values="value")
          .to_string(float_format="{:.3g}".format))

    curves = load_curves(out)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    nmse_curves = curves[curves.curve == "nmse"]
    for (model, lr, seed), curve in nmse_curves.groupby(["model", "lr", "seed"]):
        ax.semilogy(curve["x"], curve["value"], lw=1,
                    color="tab:blue" if model == "BP" else "tab:red",
                    ls="-" if lr == 0.01 else "--", label=f"{model}, lr={lr}, seed {seed}")
    ax.set_xlabel("update")
    ax.set_ylabel("NMSE")
    ax.set_title("linear-regression --quick, 60 samples")
    ax.legend(fontsize=7)
    fig.tight_layout()


# %%
# Dask starts its workers as new processes, which import this script again:
# the work runs only in the script itself (``__main__``), as with any
# multiprocessing code.
if __name__ == "__main__":
    folder = Path(tempfile.mkdtemp()) / "lr-sweep"
    sweep(folder)
    analyse(folder)
