"""Merge autoencoder runs that trained different models on the same protocol; draw and tabulate.

Usage::

    python docs/scripts/autoencoder_merge.py OUT.png RUN_DIR [RUN_DIR ...]

The 25-epoch autoencoder of the user guide ran as two processes side by side, one
per weight init (``--models "BP uniform,FA uniform,..."`` and the orthogonal
ones), each writing its own ``results.json``. This script checks that the runs
share their protocol (every setting but ``models``, and the evaluation
schedule), merges their histories, reconstructions and t-SNE maps, draws Fig.
4b-d of the merged run (`dinv.analysis.figures.autoencoder_figure`) into
OUT.png and prints the user guide's table (in Markdown): training error per image at the
start, after epochs 2, 6, 12 and the last, and the final test error.
"""

import json
import sys
from pathlib import Path

import numpy as np

from dinv.analysis.figures import autoencoder_figure
from dinv.experiments.results import save_figure

EPOCHS = (2, 6, 12)


def read(folder):
    """A run's results.json record and its config."""
    record = json.loads((Path(folder) / "results.json").read_text())
    if record.get("interrupted"):
        raise SystemExit(f"{folder}: the run was interrupted; resume it first")
    return record, record["config"]


def merge(runs):
    """One results dict holding every run's models; refuses runs of different protocols."""
    (first, config), rest = runs[0], runs[1:]
    keep = {key: value for key, value in config.items() if key != "models"}
    for results, other in rest:
        differ = sorted(key for key in set(keep) | set(other)
                        if key != "models" and keep.get(key) != other.get(key))
        if differ:
            raise SystemExit(f"the runs differ in {differ}: they are not one protocol")
        if [h["samples"] for h in results["history"]] != \
                [h["samples"] for h in first["history"]]:
            raise SystemExit("the runs evaluated at different samples")
    merged = {"models": [], "history": [dict(h) for h in first["history"]],
              "images": {"input": first["images"]["input"]},
              "tsne": {"labels": first["tsne"]["labels"], "maps": {}},
              "image_shape": first["image_shape"], "dataset": first["dataset"],
              "final": {}}
    for results, _ in runs:
        merged["models"] += results["models"]
        for into, entry in zip(merged["history"], results["history"]):
            for metric in ("train_error", "test_error"):
                into[metric] = {**into[metric], **entry[metric]}
        merged["images"].update({m: results["images"][m] for m in results["models"]})
        merged["tsne"]["maps"].update(results["tsne"]["maps"])
        if results["tsne"]["maps"] and merged["tsne"]["labels"] != results["tsne"]["labels"]:
            raise SystemExit("the runs mapped different test images")
    return merged


def table(merged):
    """Markdown rows: model, training error at the start, after EPOCHS and the last, test."""
    history = merged["history"]
    last = history[-1]
    columns = [history[0]] + [next(h for h in history if h["epoch"] >= e)
                              for e in EPOCHS if e < last["epoch"]] + [last]
    lines = ["| model | start | " + " | ".join(f"epoch {h['epoch']:g}" for h in columns[1:])
             + " | test, last |", "|---|" + "---|" * (len(columns) + 1)]
    for model in merged["models"]:
        values = [h["train_error"][model] for h in columns] + [last["test_error"][model]]
        lines.append(f"| {model} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    return "\n".join(lines)


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    out, folders = Path(argv[1]), argv[2:]
    merged = merge([read(folder) for folder in folders])
    images = {name: np.asarray(value) for name, value in merged["images"].items()}
    maps = {name: np.asarray(value) for name, value in merged["tsne"]["maps"].items()}
    fig = autoencoder_figure(merged["history"], merged["models"], images,
                             tuple(merged["image_shape"]),
                             {"labels": np.asarray(merged["tsne"]["labels"]), "maps": maps},
                             merged["dataset"]["name"])
    save_figure(fig, out)
    print(table(merged))
    print(f"\nfigure: {out}")


if __name__ == "__main__":
    main(sys.argv)
