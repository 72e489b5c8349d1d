"""Print the user guide's numbers of classification and simulated-DI autoencoder runs.

Usage::

    python docs/scripts/dataset_tables.py RUN_DIR
    python docs/scripts/dataset_tables.py published [--partial] RUN_DIR [RUN_DIR ...]

``RUN_DIR`` holds the ``results.json`` of ``dinv run mnist`` or ``dinv run
mnist-3x256`` (the classification table: test error after epochs 1, 5 and the
last, beside the published numbers the run records) or of ``dinv run
autoencoder`` (training error of every model at every evaluation). Either way it
then compares each simulated DI model with the NDI model of the same name
(``DI a=0.01`` with ``NDI a=0.01``, ``DI uniform`` with ``NDI uniform``): at
how many evaluations they are equal to the digits the docs show, and their
largest difference. Finally it prints the feedback re-stabilisations, the
settling counts and the run's times (training and evaluation summed over a
resumed run's processes).

``published`` prints one reStructuredText table of the published test errors
(`PUBLISHED`) and of the final test error of every model of the classification
runs given, each row with its network, data and training, then how far each
rule is from BP in every run and publication (`gaps`), the runs' times and,
for runs that measured them, the medians of the second-order measures per model
and layer (`second_order_table`).

An interrupted run is refused, since its last numbers are not the protocol's;
``published --partial`` takes it, and its rows say where it stopped.
"""

import json
import math
import statistics
import sys
from pathlib import Path

EPOCHS = (1, 5)

CLASSIFICATION = ("mnist", "mnist-3x256")
"""Experiments whose results.json has a classification history (test error per model)."""

PUBLISHED = (
    ("Podlaski & Machens 2020, Fig. 4a", "784-1000-10 tanh/softmax",
     "MNIST (60000 / 10000)", "online SGD, rate 1e-3, 10 epochs",
     {"BP": 2.2, "FA": 1.8, "PBP, NDI, DI": "about 2.8"}),
    ("BioTorch (Sanfiz & Akrout 2021)", "LeNet (convolutional)", "MNIST (60000 / 10000)",
     "SGD with momentum, best of 100 epochs", {"BP": 0.84, "FA": 1.91}),
    ("BioTorch (Sanfiz & Akrout 2021)", "LeNet (convolutional)",
     "Fashion-MNIST (60000 / 10000)", "SGD with momentum, best of 100 epochs",
     {"BP": 8.88, "FA": 12.77}),
    ("Deep Feedback Control (Meulemans et al. 2021)", "784-256-256-256-10 tanh/softmax",
     "MNIST (60000 / 10000)", "Adam, batches of 128, best of 100 epochs",
     {"BP": 1.83, "DFC": 2.20}),
    ("Deep Feedback Control (Meulemans et al. 2021)", "784-256-256-256-10 tanh/softmax",
     "Fashion-MNIST (60000 / 10000)", "Adam, batches of 128, best of 100 epochs",
     {"BP": 10.60, "DFC": 11.30}),
)
"""Published test errors (%): source, network, data, training and the error per rule
(DFC's are 100 minus its test accuracies: MNIST BP 98.17 %, DFC 97.80 %; Fashion-MNIST
BP 89.40 %, DFC 88.70 %)."""

DATA_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "digits": "digits (8 x 8)",
              "mnist-5k": "mnist-5k, a subset of MNIST"}
"""How the table names the data sets of the runs."""


def read(folder, partial=False):
    """The results.json record of a finished run (or, with ``partial``, of an interrupted
    one: its rows then say how far it got)."""
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no such file; give the folder of a finished run")
    record = json.loads(path.read_text())
    if record.get("interrupted") and not partial:
        raise SystemExit(f"{folder}: the run was interrupted; resume it first "
                         f"(dinv run {record['experiment']} --resume {folder})")
    return record


def classification_table(record):
    """Markdown rows: model, test error after EPOCHS and the last epoch, the published value
    (the paper's MNIST errors for mnist; those of ``paper_reference`` otherwise)."""
    history = record["history"]
    last = history[-1]
    columns = [next(h for h in history if h["epoch"] >= e - 1e-9)
               for e in EPOCHS if e < last["epoch"]] + [last]
    epochs = " / ".join(f"{h['epoch']:g}" for h in columns)
    published = "paper, MNIST" if record["experiment"] == "mnist" else "published"
    lines = [f"| model | test error after {epochs} epochs (%) | {published} (%) |",
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


def _cell(value, digits):
    """A published value as given (``digits`` None), a measured one to ``digits`` decimals."""
    if isinstance(value, str):
        return value
    return f"{value:g}" if digits is None else f"{value:.{digits}f}"


def network(record):
    """Layer widths and nonlinearities of a classification run, e.g. 784-1000-10 tanh/softmax."""
    return "-".join(str(width) for width in record["sizes"]) + " tanh/softmax"


def training(config):
    """The training of a run in words: batches, rate, epochs, seed."""
    batch = int(config["batch_size"])
    scaled = batch > 1 and config.get("lr_scaling") == "sqrt"
    epochs = int(config["epochs"])
    length = f"{epochs} epoch{'s' if epochs != 1 else ''}"
    if config.get("train_samples") is not None:
        length += f" of {int(config['train_samples'])} samples"
    return (("online SGD" if batch == 1 else f"SGD, batches of {batch}")
            + f", rate {config['lr']:g}" + (" / sqrt(batch)" if scaled else "")
            + f", {length}, seed {config['seed']}")


def run_rows(record):
    """(source, network, data, training, {model: final test error}) of a classification run;
    a spiking DI model's pass (``spiking``: the first samples of epoch 1 only) says how
    many samples it trained on."""
    data = record["dataset"]
    name = DATA_NAMES.get(data["name"], data["name"])
    command = f"this package, dinv run {record['experiment']}"
    if record.get("interrupted"):
        stop = record["interruption"]
        command += (f" (interrupted after {stop['done']} of {stop['total']} {stop['unit']}: "
                    f"its last evaluation)")
    errors = {model: record["final"][model]["test_error"] for model in record["models"]}
    for model, part in (record.get("spiking") or {}).items():
        errors[f"{model}, {part['samples']} samples"] = part["final_test_error"]
    return (command, network(record), f"{name} ({data['train']} / {data['test']})",
            training(record["config"]), errors)


def published_table(records):
    """reStructuredText list-table: every published row, then every model of ``records``."""
    lines = [".. list-table::", "   :header-rows: 1", "",
             "   * - source", "     - network", "     - data (train / test)",
             "     - training", "     - rule", "     - test error (%)"]
    rows = [(row, None) for row in PUBLISHED] + [(run_rows(r), 2) for r in records]
    for (source, net, data, how, errors), digits in rows:
        for rule, value in errors.items():
            lines += [f"   * - {source}", f"     - {net}", f"     - {data}", f"     - {how}",
                      f"     - {rule}", f"     - {_cell(value, digits)}"]
    return lines


def gaps(records):
    """Per publication and run: each rule's final test error minus BP's, and BP against the
    published BP of the same network on the full data set (what the data alone costs)."""
    lines = []
    for source, _, data, _, errors in PUBLISHED:
        numbers = {r: v for r, v in errors.items() if not isinstance(v, str) and r != "BP"}
        if "BP" in errors and numbers:
            lines.append(f"{source}, {data}: " + ", ".join(
                f"{rule} {value - errors['BP']:+.2f}" for rule, value in numbers.items())
                + " points from BP")
    for record in records:
        source, net, data, _, errors = run_rows(record)
        bp = next((v for m, v in errors.items() if record["rules"].get(m) == "bp"), None)
        if bp is None:
            continue
        n_test = record["dataset"]["test"]
        noise = 100.0 * math.sqrt(bp / 100.0 * (1.0 - bp / 100.0) / n_test)
        lines.append(f"{record['experiment']} on {data}: " + ", ".join(
            f"{m} {v - bp:+.2f}" for m, v in errors.items() if record["rules"].get(m) != "bp")
            + f" points from BP ({bp:.2f} %; one test error at BP's level has a binomial "
            f"standard error of {noise:.2f} points on {n_test} test images)")
        full = {"mnist-5k": "MNIST (60000 / 10000)"}.get(record["dataset"]["name"])
        # The mnist experiment is the paper's protocol: against the paper's BP only the
        # data differ; other publications also trained otherwise.
        cause = ("the data alone" if record["experiment"] == "mnist"
                 else "the data and the training together")
        for p_source, p_net, p_data, _, p_errors in PUBLISHED:
            if p_net == net and p_data == full and "BP" in p_errors:
                lines.append(f"  BP on the subset against BP on full MNIST ({p_source}): "
                             f"{bp:.2f} - {p_errors['BP']:.2f} = {bp - p_errors['BP']:+.2f} "
                             f"points from {cause}")
    return lines


SECOND_ORDER = ("to_bp_deg", "to_gnt_deg", "to_gn_deg", "to_lgn_deg", "null_share")
"""The second-order measures, as results.json names them."""


def second_order_table(record):
    """reStructuredText list-table: per model and layer, the median of every second-order
    measure over the run's measurements (nan where all were null; no table without
    measurements)."""
    records = record.get("second_order") or []
    if not records:
        return []
    groups = {}
    for entry in records:
        groups.setdefault((entry["model"], entry["layer"]), []).append(entry)
    counts = {len(entries) for entries in groups.values()}
    lines = [".. list-table::", "   :header-rows: 1", "",
             "   * - model", "     - layer", "     - to BP (deg)", "     - to GN target (deg)",
             "     - to GN (deg)", "     - to layer-wise GN (deg)", "     - null-space share"]
    for (model, layer), entries in groups.items():
        values = [[e[key] for e in entries if e[key] is not None] for key in SECOND_ORDER]
        medians = [statistics.median(v) if v else float("nan") for v in values]
        lines += [f"   * - {model}", f"     - {layer}"]
        lines += [f"     - {value:.1f}" for value in medians[:-1]]
        lines.append(f"     - {medians[-1]:.2f}")
    damping = sorted({e["damping"] for e in records})
    measured = sorted({e["samples"] for e in records})
    lines += ["", f"medians over {'/'.join(map(str, sorted(counts)))} measurements at "
              f"{len(measured)} points ({measured[0]} to {measured[-1]} samples), damping "
              f"{'/'.join(f'{d:g}' for d in damping)}"]
    return lines


def main(argv):
    if len(argv) >= 3 and argv[1] == "published":
        partial = argv[2] == "--partial"
        folders = argv[3:] if partial else argv[2:]
        records = [read(folder, partial) for folder in folders]
        for folder, record in zip(folders, records):
            if record["experiment"] not in CLASSIFICATION:
                raise SystemExit(f"{folder}: a {record['experiment']!r} run; give "
                                 f"{' or '.join(CLASSIFICATION)} runs")
        lines = published_table(records) + [""] + gaps(records)
        for folder, record in zip(folders, records):
            lines += ["", f"{folder}:"] + summary(record)
            table = second_order_table(record)
            lines += ["", "second-order measures:", ""] + table if table else []
        print("\n".join(lines))
        return
    if len(argv) != 2:
        raise SystemExit(__doc__)
    record = read(argv[1])
    if record["experiment"] in CLASSIFICATION:
        lines = classification_table(record) + [""] + di_against_ndi(record, "test_error", 2)
        if "paper_reference" in record:
            lines.append(f"published numbers: {record['paper_reference']}")
    elif record["experiment"] == "autoencoder":
        lines = autoencoder_table(record) + [""] + di_against_ndi(record, "train_error", 2)
    else:
        raise SystemExit(f"{argv[1]}: a {record['experiment']!r} run; give a mnist, "
                         "mnist-3x256 or autoencoder run")
    print("\n".join(lines + summary(record)))


if __name__ == "__main__":
    main(sys.argv)
