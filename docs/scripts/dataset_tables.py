"""Print the user guide's numbers of a Fashion-MNIST classification or simulated-DI autoencoder run.

Usage::

    python docs/scripts/dataset_tables.py RUN_DIR

``RUN_DIR`` holds the ``results.json`` of ``dinv run mnist`` (the classification
table: test error after epochs 1, 5 and the last, beside the paper's MNIST
numbers) or of ``dinv run autoencoder`` (training error of every model at every
evaluation). Either way it then compares each simulated DI model with the NDI
model of the same name (``DI a=0.01`` with ``NDI a=0.01``, ``DI uniform`` with
``NDI uniform``): at how many evaluations they are equal to the digits the
user guide shows, and their largest difference. Finally it prints the feedback
re-stabilisations, the settling counts and the run's times (training and
evaluation summed over a resumed run's processes). An interrupted
run is refused, since its last numbers are not the protocol's.
"""

import json
import sys
from pathlib import Path

EPOCHS = (1, 5)


def read(folder):
    """The results.json record of a finished run."""
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no such file; give the folder of a finished run")
    record = json.loads(path.read_text())
    if record.get("interrupted"):
        raise SystemExit(f"{folder}: the run was interrupted; resume it first "
                         f"(dinv run {record['experiment']} --resume {folder})")
    return record


def classification_table(record):
    """Markdown rows: model, test error after EPOCHS and the last epoch, the paper's MNIST value."""
    history = record["history"]
    last = history[-1]
    columns = [next(h for h in history if h["epoch"] >= e - 1e-9)
               for e in EPOCHS if e < last["epoch"]] + [last]
    epochs = " / ".join(f"{h['epoch']:g}" for h in columns)
    lines = [f"| model | test error after {epochs} epochs (%) | paper, MNIST (%) |",
             "|---|---|---|"]
    paper = record.get("paper_test_error", {})
    for model in record["models"]:
        values = [f"{h['test_error'][model]:.2f}" for h in columns]
        values[-1] = f"**{values[-1]}**"
        reference = paper.get(record["rules"][model].upper())
        lines.append(f"| {model} | " + " / ".join(values) + " | "
                     + ("-" if reference is None else f"{reference:g}") + " |")
    return lines


def autoencoder_table(record):
    """Markdown rows: model, training error per image at every evaluation (by samples)."""
    history = record["history"]
    lines = ["| model | " + " | ".join(f"{h['samples']} samples" for h in history) + " |",
             "|---|" + "---|" * len(history)]
    for model in record["models"]:
        lines.append(f"| {model} | "
                     + " | ".join(f"{h['train_error'][model]:.2f}" for h in history) + " |")
    return lines


def di_against_ndi(record, metric, digits):
    """One line per simulated DI model: evaluations equal to NDI's at `digits`, largest gap."""
    lines = []
    for model, rule in record["rules"].items():
        partner = "N" + model
        if rule != "di" or partner not in record["rules"]:
            continue
        gaps = [abs(h[metric][model] - h[metric][partner]) for h in record["history"]]
        equal = sum(round(h[metric][model], digits) == round(h[metric][partner], digits)
                    for h in record["history"])
        lines.append(f"{model} against {partner} ({metric}): equal to {digits} decimals at "
                     f"{equal} of {len(gaps)} evaluations; largest difference {max(gaps):.2g}")
    return lines


def summary(record):
    """Re-stabilisations, settling and wall time."""
    lines = [f"feedback re-stabilisations: {len(record.get('restabilised', []))}"]
    for model, s in record.get("settling", {}).items():
        lines.append(f"{model} settles: {s['unsettled']} of {s['settles']} unsettled "
                     f"(worst residual {s['worst_residual']:.2g}, tolerance {s['tolerance']:g})")
    training = sum(sum(epoch.values()) for epoch in record["epoch_seconds"])
    lines.append(f"training {training:.0f} s and evaluations {record['eval_seconds']:.0f} s, "
                 f"over every process of the run; wall time of the process that finished "
                 f"it {record['wall_seconds']:.0f} s")
    return lines


def main(argv):
    if len(argv) != 2:
        raise SystemExit(__doc__)
    record = read(argv[1])
    if record["experiment"] == "mnist":
        lines = classification_table(record) + [""] + di_against_ndi(record, "test_error", 2)
    elif record["experiment"] == "autoencoder":
        lines = autoencoder_table(record) + [""] + di_against_ndi(record, "train_error", 2)
    else:
        raise SystemExit(f"{argv[1]}: a {record['experiment']!r} run; give a mnist or "
                         "autoencoder run")
    print("\n".join(lines + summary(record)))


if __name__ == "__main__":
    main(sys.argv)
