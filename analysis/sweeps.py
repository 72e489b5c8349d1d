"""The results of a sweep as tidy tables, and their summary figure (no Brian2).

A sweep folder (``dinv sweep ... --out DIR``) holds one folder per cell,
``DIR/cells/<cell id>/``, with the cell's ``results.json`` (the format of
``dinv run``) or ``error.json`` (a cell that raised), and two tables built
from them:

- ``DIR/sweep.parquet`` and ``DIR/sweep.csv``: one row per cell, model and
  metric, with the grid values as columns (`load_sweep`);
- ``DIR/curves.parquet``: the learning curves, one row per cell, model, curve
  and point (`load_curves`).

Metrics per experiment (`metric_rows`):

- every experiment: each number of the record's ``final`` dict per model
  (linear and nonlinear regression: ``error_ratio`` = final / initial error
  and ``nmse``, the final normalised error; ``mnist``: ``test_error``;
  ``autoencoder``: ``train_error`` and ``test_error``), and for every circuit
  model ``unsettled_fraction``, the share of its settles that fell short of
  ``settle_tol``;
- ``alpha-sweep``: per layer type and kind (``"square circuit"``,
  ``"square ndi"``), ``median_angle`` and ``median_relative_error`` over the
  leaks against the pseudo-inverse;
- ``timescales``: the settling counts only (its traces stay in the cells'
  results.json).

Curves (`curve_rows`): the regressions' NMSE after every update (x: update),
the data-set experiments' evaluations (x: samples seen), the alpha sweep's
angle and relative error against alpha; at most ``MAX_POINTS`` points per
curve, evenly spaced, the last one always kept.
"""

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas and matplotlib are imported on first use
    import pandas as pd
    from matplotlib.figure import Figure

CELLS = "cells"
"""Folder of a sweep's cells inside its output folder."""

TABLE = "sweep"
"""Stem of the tidy metrics table (``sweep.parquet``, ``sweep.csv``)."""

CURVES = "curves.parquet"
"""File name of the curves table."""

SPEC = "sweep.json"
"""File name of the sweep's description (experiment, fixed settings, grid, cells)."""

SUMMARY_FIGURE = "summary.png"
"""File name of the summary figure."""

ERROR = "error.json"
"""File name of a failed cell's error record."""

MAX_POINTS = 200
"""Most points kept per curve in the curves table."""

PRIMARY = ("nmse", "test_error", "median_angle", "train_error", "error_ratio",
           "unsettled_fraction")
"""Metrics in order of preference for the summary (the first one a sweep has)."""

LOG_CURVES = ("nmse", "relative_error", "test_error", "train_error")
"""Curves drawn on a log scale (where positive), with their geometric mean."""

RESERVED = ("cell", "status", "model", "metric", "value", "error", "curve", "x")
"""Column names of the tables other than the grid's."""


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_rows(record):
    """The metrics of one cell's results record: ``(model, metric, value)`` tuples."""
    rows = []
    for model, final in (record.get("final") or {}).items():
        for metric, value in (final or {}).items():
            if _number(value) or value is None:
                rows.append((model, metric, math.nan if value is None else float(value)))
    for model, entry in (record.get("layers") or {}).items():  # alpha-sweep
        for kind in entry.get("angle", {}):
            angle = np.asarray(entry["angle"][kind], dtype=float)
            error = np.asarray(entry["relative_error"][kind], dtype=float)
            rows.append((f"{model} {kind}", "median_angle", float(np.nanmedian(angle))))
            rows.append((f"{model} {kind}", "median_relative_error",
                         float(np.nanmedian(error))))
    for model, entry in (record.get("settling") or {}).items():
        if entry.get("settles"):
            rows.append((model, "unsettled_fraction", entry["unsettled"] / entry["settles"]))
    return rows


def _thin(n):
    """Indices of at most ``MAX_POINTS`` of ``n`` points, evenly spaced, the last kept."""
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, MAX_POINTS).round().astype(int))


def curve_rows(record):
    """The curves of one cell's results record: ``(model, curve, x, value)`` tuples."""
    rows = []
    for model, values in (record.get("nmse") or {}).items():
        values = np.asarray(values, dtype=float)
        rows += [(model, "nmse", float(i), float(values[i])) for i in _thin(values.size)]
    history = record.get("history") or []
    models = record.get("models") or []
    if history and models:
        metrics = [key for key in history[0] if key not in ("samples", "epoch")]
        for metric in metrics:
            for k, model in enumerate(models):
                for i in _thin(len(history)):
                    value = history[i][metric]  # by model name; a list in format 1
                    value = value.get(model) if isinstance(value, dict) else value[k]
                    rows.append((model, metric, float(history[i]["samples"]),
                                 math.nan if value is None else float(value)))
    alphas = record.get("alphas")
    for layer, entry in (record.get("layers") or {}).items():
        for curve in ("angle", "relative_error"):
            for kind, values in entry.get(curve, {}).items():
                rows += [(f"{layer} {kind}", curve, float(a),
                          math.nan if v is None else float(v)) for a, v in zip(alphas, values)]
    return rows


def _grid_column(value):
    """A grid value as a table cell: numbers and text as they are, others as JSON."""
    if value is None or _number(value) or isinstance(value, (str, bool)):
        return value
    return json.dumps(value)


def build_tables(folder, cells):
    """The metrics and curves tables of the cells of a sweep, from the files on disk.

    Parameters
    ----------
    folder : Path
        The sweep's output folder.
    cells : list of dict
        ``{"id": cell id, "values": {grid key: value}}`` per cell, in grid order.

    Returns
    -------
    tuple of pandas.DataFrame
        ``(metrics, curves)``. Metrics: ``cell``, the grid keys, ``status``
        ('done', 'error', 'interrupted' or 'pending'), ``model``, ``metric``,
        ``value``, ``error`` (the message of a failed cell). A cell without
        metrics (failed or not run yet) has one row with empty model,
        metric and value.
    """
    import pandas as pd

    keys = list(cells[0]["values"]) if cells else []
    metric_table, curve_table = [], []
    for cell in cells:
        grid = {key: _grid_column(value) for key, value in cell["values"].items()}
        status, record, error = read_cell(Path(folder) / CELLS / cell["id"])
        base = {"cell": cell["id"], **grid, "status": status}
        rows = metric_rows(record) if record else []
        for model, metric, value in rows:
            metric_table.append({**base, "model": model, "metric": metric, "value": value,
                                 "error": None})
        if not rows:
            metric_table.append({**base, "model": None, "metric": None, "value": math.nan,
                                 "error": error})
        for model, curve, x, value in (curve_rows(record) if record else []):
            curve_table.append({"cell": cell["id"], **grid, "model": model, "curve": curve,
                                "x": x, "value": value})
    columns = ["cell", *keys, "status", "model", "metric", "value", "error"]
    metrics = pd.DataFrame(metric_table, columns=columns)
    curves = pd.DataFrame(curve_table, columns=["cell", *keys, "model", "curve", "x", "value"])
    for frame in (metrics, curves):
        for column in ("model", "metric", "error", "curve", "status", "cell"):
            if column in frame:
                frame[column] = frame[column].astype("string")
    return metrics, curves


def read_cell(cell_dir):
    """The state of one cell folder: ``(status, record or None, error message or None)``.

    'done': a finished results.json; 'interrupted': a results.json marked
    interrupted; 'error': an error.json; 'pending': neither.
    """
    cell_dir = Path(cell_dir)
    results = cell_dir / "results.json"
    if results.is_file():
        try:
            record = json.loads(results.read_text())
        except (OSError, ValueError) as exc:
            return "error", None, f"unreadable {results}: {exc}"
        return ("interrupted" if record.get("interrupted") else "done"), record, None
    error = cell_dir / ERROR
    if error.is_file():
        try:
            entry = json.loads(error.read_text())
            return "error", None, f"{entry.get('type')}: {entry.get('message')}"
        except (OSError, ValueError) as exc:
            return "error", None, f"unreadable {error}: {exc}"
    return "pending", None, None


def load_sweep(folder: str | os.PathLike[str]) -> "pd.DataFrame":
    """The tidy metrics table of the sweep in ``folder``.

    Parameters
    ----------
    folder : str or Path
        A ``dinv sweep`` output folder.

    Returns
    -------
    pandas.DataFrame
        One row per cell, model and metric: ``cell``, one column per grid
        key, ``status``, ``model``, ``metric``, ``value``, ``error`` (see the
        module docstring for the metrics of each experiment).
    """
    import pandas as pd

    path = Path(folder) / f"{TABLE}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {folder} the folder of a "
                                "dinv sweep (its --out)?")
    return pd.read_parquet(path)


def load_curves(folder: str | os.PathLike[str]) -> "pd.DataFrame":
    """The curves table of the sweep in ``folder``: ``cell``, the grid keys,
    ``model``, ``curve``, ``x``, ``value``."""
    import pandas as pd

    path = Path(folder) / CURVES
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {folder} the folder of a "
                                "dinv sweep (its --out)?")
    return pd.read_parquet(path)


def primary_metric(metrics: "pd.DataFrame") -> str | None:
    """The metric a summary shows for a metrics table (see `PRIMARY`), or None."""
    present = set(metrics["metric"].dropna())
    for metric in PRIMARY:
        if metric in present:
            return metric
    return sorted(present)[0] if present else None


def _group_columns(table, grid_keys, spread):
    """The grid keys other than the spread key, that vary in ``table``."""
    return [key for key in grid_keys if key != spread and key in table
            and table[key].nunique(dropna=False) > 1]


def _label(model, values, columns):
    extra = ", ".join(f"{key}={value}" for key, value in zip(columns, values))
    return f"{model} ({extra})" if extra else str(model)


def summary_table(metrics: "pd.DataFrame", grid_keys: Sequence[str],
                  spread: str = "seed") -> "tuple[str | None, pd.DataFrame]":
    """Per model (and per value of every varying grid key other than ``spread``):
    count, median, mean, std, min and max of the primary metric over the cells.

    Returns
    -------
    tuple
        ``(metric name or None, pandas.DataFrame)``.
    """
    metric = primary_metric(metrics)
    if metric is None:
        return None, metrics.iloc[:0]
    done = metrics[(metrics["status"] == "done") & (metrics["metric"] == metric)]
    columns = ["model", *_group_columns(done, grid_keys, spread)]
    table = (done.groupby(columns, sort=False, dropna=False)["value"]
             .agg(["count", "median", "mean", "std", "min", "max"]).reset_index())
    return metric, table


def summary_figure(metrics: "pd.DataFrame", curves: "pd.DataFrame", grid_keys: Sequence[str],
                   spread: str = "seed", title: str = "") -> "Figure":
    """The spread over ``spread`` (the seeds) per model: final errors and curves.

    Left: the primary metric of every cell (points) and its median (a bar) per
    model and per value of the other varying grid keys. Right: the matching
    curves (the primary metric's curve where there is one, else the first
    curve), their mean over the cells (geometric on a log axis: errors) and a
    band from the 10th to the 90th percentile (min to max with fewer than 10
    cells).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    from dinv.analysis.figures import PALETTE

    metric, _table = summary_table(metrics, grid_keys, spread)
    fig = Figure(figsize=(13, 5.2), layout="constrained")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    fig.suptitle(title or "sweep summary")
    if metric is None:
        left.text(0.5, 0.5, "no finished cells", ha="center", transform=left.transAxes)
        return fig
    done = metrics[(metrics["status"] == "done") & (metrics["metric"] == metric)]
    columns = _group_columns(done, grid_keys, spread)
    groups = list(done.groupby(["model", *columns], sort=False, dropna=False))
    colour = {}
    rng = np.random.default_rng(0)
    for k, (key, rows) in enumerate(groups):
        colour[key] = PALETTE[k % len(PALETTE)]
        values = rows["value"].to_numpy(dtype=float)
        left.scatter(values, k + rng.uniform(-0.15, 0.15, values.size), s=14,
                     color=colour[key], alpha=0.7, zorder=3)
        left.plot([np.nanmedian(values)] * 2, [k - 0.35, k + 0.35], color="k", lw=2,
                  zorder=4)
        left.text(1.0, k, f" n={values.size}", transform=left.get_yaxis_transform(),
                  va="center", fontsize=7)
    left.set_yticks(range(len(groups)),
                    [_label(key[0], key[1:], columns) for key, _ in groups], fontsize=7)
    left.invert_yaxis()
    left.set_xlabel(f"final {metric} (points: cells; bar: median)")
    positive = done["value"].dropna()
    if metric != "median_angle" and len(positive) and (positive > 0).all():
        left.set_xscale("log")
    left.grid(axis="x", alpha=0.3)
    _curve_panel(right, curves, metric, columns, groups, colour)
    return fig


def _curve_panel(axis, curves, metric, columns, groups, colour):
    if curves is None or curves.empty:
        axis.text(0.5, 0.5, "no curves", ha="center", transform=axis.transAxes)
        return
    names = list(curves["curve"].dropna().unique())
    curve = metric if metric in names else names[0]
    chosen = curves[curves["curve"] == curve]
    finite = chosen["value"].dropna()
    log = curve in LOG_CURVES and len(finite) > 0 and bool((finite > 0).all())
    many = chosen["cell"].nunique() >= 10
    for key, _ in groups:
        rows = chosen[chosen["model"] == key[0]]
        for column, value in zip(columns, key[1:]):
            rows = rows[rows[column] == value]
        if rows.empty:
            continue
        wide = rows.pivot_table(index="x", columns="cell", values="value")
        x = wide.index.to_numpy(dtype=float)
        values = wide.to_numpy(dtype=float)
        low, high = (10, 90) if many else (0, 100)
        with np.errstate(all="ignore"):
            mean = np.exp(np.nanmean(np.log(values), axis=1)) if log \
                else np.nanmean(values, axis=1)
            lo, hi = np.nanpercentile(values, [low, high], axis=1)
        axis.plot(x, mean, color=colour[key], lw=1.2,
                  label=_label(key[0], key[1:], columns))
        axis.fill_between(x, lo, hi, color=colour[key], alpha=0.2, lw=0)
    if log:
        axis.set_yscale("log")
    if curve in ("angle", "relative_error"):
        axis.set_xscale("log")
    axis.set_xlabel(_x_name(curve))
    axis.set_ylabel(curve)
    axis.set_title(f"{curve}: {'geometric ' if log else ''}mean over the cells, band: "
                   f"{'10th-90th percentile' if many else 'min-max'}", fontsize=9)
    axis.legend(fontsize=6, ncol=2)
    axis.grid(alpha=0.3)


def _x_name(curve):
    return {"nmse": "update", "angle": "alpha", "relative_error": "alpha"}.get(
        curve, "samples seen")
