"""
Analyse a run's results.json
============================

Every ``dinv run`` writes ``results.json``: the full config, the seed, the
command, package versions and the experiment's results. This example runs a
tiny linear regression (``dinv run linear-regression --quick`` with four
models and 100 samples) into a temporary folder, turns its results into a
tidy pandas table and plots the learning curves.

The same run from a shell::

    dinv run linear-regression --quick --models "BP,FA,NDI a=0.01,DI a=0.01" \\
        --set samples=100 --out DIR
"""

# %%
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from dinv.experiments.cli import main

folder = Path(tempfile.mkdtemp()) / "linear"
status = main(["run", "linear-regression", "--quick", "--models", "BP,FA,NDI a=0.01,DI a=0.01",
               "--set", "samples=100", "--seed", "0", "--no-progress", "--out", str(folder)])
assert status == 0, "the run failed"
print(sorted(p.name for p in folder.iterdir()))


# %%
# One helper reads a run into a tidy table, one row per number: experiment,
# model, metric, step, value, unit. (Swap it for the package's own loader once
# there is one; the columns are the same.)
def load_results(path):
    """A regression run's results.json as a tidy DataFrame."""
    record = json.loads(Path(path).read_text())
    rows = []
    for model, errors in record["error"].items():          # after every update
        rows += [(record["experiment"], model, "error", step, value, "summed squared error")
                 for step, value in enumerate(errors)]
    for model, final in record["final"].items():            # final numbers per model
        rows += [(record["experiment"], model, metric, len(record["error"][model]) - 1,
                  value, "ratio") for metric, value in final.items()]
    return pd.DataFrame(rows, columns=["experiment", "model", "metric", "step", "value", "unit"])


table = load_results(folder / "results.json")
print(table.head())

# %%
# The final error relative to the initial one, per model, and how the run was
# made: everything needed to repeat it is in the record.
final = table[table.metric == "error_ratio"].set_index("model")["value"]
print(final.to_string(float_format="{:.3g}".format))
record = json.loads((folder / "results.json").read_text())
print("seed", record["seed"], "| steps per settle", record["config"]["steps"],
      "| brian2", record["versions"]["brian2"])
print("settling:", {m: f"{s['unsettled']} of {s['settles']} unsettled"
                    for m, s in record["settling"].items()})

# %%
# Learning curves from the tidy table.
curves = table[table.metric == "error"].pivot(index="step", columns="model", values="value")
fig, ax = plt.subplots(figsize=(6, 3.5))
for model in record["models"]:
    ndi = "NDI" in model                      # drawn dashed on top: DI lies under it
    ax.semilogy(curves.index, curves[model], label=model, ls="--" if ndi else "-",
                color="k" if ndi else None, zorder=3 if ndi else 2)
ax.set_xlabel("update")
ax.set_ylabel("summed squared error on the data set")
ax.set_title("linear-regression --quick, 100 samples")
ax.legend()
fig.tight_layout()
