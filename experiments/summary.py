"""The summary tables a run prints at its end, and ``dinv show DIR``.

`summary_lines(record)` turns a results record (results.json) into a table per
experiment: the final numbers of every model (regressions, mnist, autoencoder), the
circuit's angle to W^+ delta per alpha and layer type (alpha-sweep), the convergence
times (timescales), the spiking populations' errors at the largest size
(spiking-inversion), the median angles to Gauss-Newton (second-order); then how the
circuit models settled. `show(folder)` prints it
for a finished or interrupted run, the progress of a run known only by its
checkpoint, or the summary of a sweep folder.
"""

import json
import math
from pathlib import Path
from typing import Any

from dinv.errors import InputError
from dinv.experiments.settle_stats import describe

RESULTS = "results.json"
CHECKPOINT = "checkpoint.npz"


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return str(value)


def table(header, rows, indent="  "):
    """Lines of a plain-text table: ``header`` (column titles) over ``rows``."""
    cells = [[str(h) for h in header]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
            for row in cells]


def _unit(record, key):
    unit = (record.get("units") or {}).get(key)
    return f" ({unit})" if unit and unit != "dimensionless" else ""


def _final_table(record):
    finals = record.get("final") or {}
    settling = record.get("settling") or {}
    keys = list(dict.fromkeys(k for final in finals.values() for k in final))
    header = ["model"] + [k.replace("_", " ") + _unit(record, k) for k in keys]
    rows = [[name] + [final.get(k) for k in keys] for name, final in finals.items()]
    if settling:
        header.append("settling")
        for row in rows:
            row.append(describe(settling[row[0]]) if row[0] in settling else "")
    lines = table(header, rows)
    lines += [f"  {name}: {describe(entry)}" for name, entry in settling.items()
              if name not in finals]
    return lines


def _alpha_table(record):
    layers = record.get("layers") or {}
    if not layers:
        return ["  (no layer type done)"]
    header = ["alpha"] + [f"{name} {tuple(entry['shape'])}" for name, entry in layers.items()]
    rows = [[alpha] + [entry["angle"]["circuit"][k] for entry in layers.values()]
            for k, alpha in enumerate(record["alphas"])]
    lines = ["  angle (degrees) of the Brian2 circuit's delta to W^+ delta:"]
    lines += table(header, rows)
    lines += [f"  {name}: {describe(entry)}"
              for name, entry in (record.get("settling") or {}).items()]
    return lines


def _timescales_table(record):
    lines = ["  layer pair, per tau_controller / tau_system (times in tau_system):"]
    lines += table(["ratio", "time", "rate", "predicted rate", "overshoot", "settled"],
                   [[p["ratio"], p.get("time"), p.get("rate"), p.get("predicted_rate"),
                     p.get("overshoot"), p.get("settled", "diverged")]
                    for p in record.get("pair", [])])
    chains = record.get("chains") or {}
    if chains:
        lines.append("  deep chains (time until delta_1 stays within tolerance):")
        lines += table(["chain", "time", "overshoot", "settled"],
                       [[label, c.get("time"), c.get("overshoot"),
                         c.get("settled", "diverged")] for label, c in chains.items()])
    pid = record.get("pid") or {}
    if pid.get("grid"):
        integral, fastest = pid.get("integral") or {}, pid.get("fastest")
        text = f"  PID: integral controller time {_cell(integral.get('time'))}"
        if fastest:
            text += (f"; fastest simulated gains K_p={fastest['kp']:g}, K_d={fastest['kd']:g}: "
                     f"time {_cell(fastest['time'])} ({_cell(fastest['speedup'])}x faster)")
        lines.append(text)
    lines += [f"  {name}: {describe(entry)}"
              for name, entry in (record.get("settling") or {}).items()]
    return lines


def _spiking_table(record):
    scaling = record.get("scaling") or []
    if not scaling:
        return ["  (no settle done)"] + [f"  {name}: {describe(entry)}" for name, entry
                                         in (record.get("settling") or {}).items()]
    largest: dict[tuple[str, str], dict[str, Any]] = {}
    for r in scaling:
        key = (r["population"], r["case"])
        if key not in largest or r["neurons_per_dim"] > largest[key]["neurons_per_dim"]:
            largest[key] = r
    slopes = {(s["population"], s["case"]): s.get("rel_error")
              for s in record.get("slopes") or []}
    lines = ["  per model and case, at its largest neurons per dimension N; slope: of log "
             "rel error against log N:"]
    lines += table(["model", "case", "N", "angle (degrees)", "rel error", "rms error",
                    "mean rate (Hz)", "slope"],
                   [[p, c, r["neurons_per_dim"], r["angle_deg"], r["rel_error"],
                     r["rms_error"], r["mean_rate_hz"], slopes.get((p, c))]
                    for (p, c), r in largest.items()])
    for population, entry in (record.get("silencing") or {}).items():
        lines.append(f"  {population}: {_cell(entry['fraction'])} of the neurons silenced: "
                     f"angle x {_cell(entry['angle_ratio'])}")
    lines += [f"  {name}: {describe(entry)}"
              for name, entry in (record.get("settling") or {}).items()]
    return lines


def _second_order_table(record):
    """Per case: the median angle to GN and to the GN target and the null-space share of
    every rule, per layer."""
    lines = []
    medians = record.get("medians") or []
    for case in dict.fromkeys(m["case"] for m in medians):
        rows = [m for m in medians if m["case"] == case]
        layers = sorted({m["layer"] for m in rows})
        damping = (record.get("cases") or {}).get(case, {}).get("damping")
        lines.append(f"  {case} (damping {_cell(damping)}): median over training of the angle "
                     "(degrees) to GN / to the GN target, and the null-space share, per layer:")
        header = ["rule"] + [f"layer {layer}" for layer in layers]
        table_rows = []
        for rule in dict.fromkeys(m["rule"] for m in rows):
            cells = {m["layer"]: m for m in rows if m["rule"] == rule}
            table_rows.append([rule] + [
                "/".join(_cell(cells[layer][key]) for key in ("to_gn_deg", "to_gnt_deg",
                                                               "null_share"))
                if layer in cells else "-" for layer in layers])
        lines += table(header, table_rows)
        for name, entry in ((record.get("cases") or {}).get(case, {}).get("unsolved")
                            or {}).items():
            if entry["samples"]:
                lines.append(f"  {name}: the exact steady state was not found for "
                             f"{entry['samples']} of {entry['of']} samples")
    if not medians:
        lines.append("  (no measurement done)")
    lines += [f"  {name}: {describe(entry)}"
              for name, entry in (record.get("settling") or {}).items()]
    return lines


def summary_lines(record):
    """The summary table of a results record (without the header line)."""
    if "angles" in record:
        return _second_order_table(record)
    if "alphas" in record and "layers" in record:
        return _alpha_table(record)
    if "pair" in record:
        return _timescales_table(record)
    if "scaling" in record:
        return _spiking_table(record)
    return _final_table(record)


def header_line(record, folder=None):
    """One line: what ran, how, how long, and whether it finished."""
    config = record.get("config") or {}
    quick = ", --quick" if config.get("quick") else ""
    where = f"{folder}: " if folder is not None else ""
    text = f"{where}{record.get('experiment')} (seed {record.get('seed')}{quick})"
    interruption = record.get("interruption")
    if interruption:
        return (f"{text}, INTERRUPTED by {interruption['signal']} after "
                f"{interruption['done']} of {interruption['total']} {interruption['unit']} "
                f"({record.get('wall_seconds', 0.0):.1f} s): partial results")
    return f"{text}, finished in {record.get('wall_seconds', 0.0):.1f} s"


def show(folder):
    """The lines ``dinv show DIR`` prints for ``folder``.

    Raises
    ------
    InputError
        When ``folder`` holds no run (no results.json, checkpoint or sweep).
    """
    from dinv.analysis.results import read_results

    folder = Path(folder)
    if (folder / RESULTS).is_file():
        record = read_results(folder)
        try:
            lines = [header_line(record, folder), *summary_lines(record)]
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            if "results_format" in record:  # checked against its schema: a bug of dinv
                raise
            raise InputError(f"{folder / RESULTS} was written by an older dinv (results "
                             f"format 1) and does not have the layout this version reads "
                             f"({type(exc).__name__}: {exc})") from None
        if "results_format" not in record:
            lines.insert(1, "  (results format 1, written by an older dinv: not checked against "
                            "a schema)")
        if record.get("interrupted") and (folder / CHECKPOINT).is_file():
            lines.append(f"continue with: dinv run {record['experiment']} --resume {folder}")
        return lines
    if (folder / CHECKPOINT).is_file():
        return _checkpoint_lines(folder)
    if (folder / "sweep.json").is_file():
        return _sweep_lines(folder)
    raise InputError(f"{folder} holds no run: no {RESULTS}, {CHECKPOINT} or sweep.json "
                     "(give the --out folder of a dinv run or dinv sweep)")


def _checkpoint_lines(folder):
    """A run known only by its checkpoint (killed before it wrote results)."""
    from dinv.experiments.supervised import by_model, read_checkpoint

    meta, _ = read_checkpoint(folder)
    state, config = meta["state"], meta["config"]
    lines = [f"{folder}: {meta['experiment']} (seed {config.get('seed')}"
             f"{', --quick' if config.get('quick') else ''}), not finished: epoch "
             f"{state['epoch']} of {config['epochs']}, {state['samples']} samples seen "
             f"(checkpoint only)"]
    history = by_model(state.get("history") or [], meta.get("models") or [])
    if history:
        last = history[-1]
        metrics = [k for k in last if k not in ("samples", "epoch")]
        lines.append(f"  last evaluation, after {last['samples']} samples:")
        models = list(next(iter(last[m] for m in metrics)) if metrics else [])
        lines += table(["model"] + metrics, [[m] + [last[k].get(m) for k in metrics]
                                             for m in models])
    lines.append(f"continue with: dinv run {meta['experiment']} --resume {folder}")
    return lines


def _sweep_lines(folder):
    """The counts and the primary metric per model of a sweep folder."""
    import pandas as pd

    from dinv.analysis.sweeps import build_tables, summary_table

    spec = json.loads((folder / "sweep.json").read_text())
    grid = list(spec.get("grid") or {})
    cells = [{"id": c["id"], "values": c.get("values", {})} for c in spec.get("cells", [])]
    metrics, _ = build_tables(folder, cells)
    statuses = metrics.drop_duplicates("cell")["status"].value_counts().to_dict()
    lines = [f"{folder}: sweep of {spec.get('experiment')} over {', '.join(grid) or '-'}: "
             + ", ".join(f"{count} {status}" for status, count in statuses.items())
             + f" of {len(cells)} cells"]
    metric, frame = summary_table(metrics, grid)
    if metric is not None and not frame.empty:
        lines.append(f"final {metric} over the cells:")
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            lines += ["  " + line for line in
                      frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")
                      .splitlines()]
    return lines
