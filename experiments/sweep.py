"""``dinv sweep``: a grid of runs of one experiment, on Dask distributed.

A sweep is an experiment, the settings every cell shares (``--set``,
``--quick``) and a grid (``--grid KEY=V1,V2``, ``KEY=a:b``): its cells are the
Cartesian product of the grid's values, each a full run of the experiment.

- Each cell has a stable id built from its grid values (`cell_id`) and its own
  folder ``DIR/cells/<cell id>/``, where its worker writes ``results.json``
  (the record of ``dinv run``, atomically) or, if the run raised,
  ``error.json``. A cell whose finished results.json holds its config is never
  run again: rerunning a sweep (after Ctrl-C, a crash, or with more seeds)
  runs only what is missing; failed cells are tried again.
- Cells that can share one circuit run as one Dask task
  (`dinv.experiments.stacking`, where present: `can_stack` groups them,
  `run_stacked` runs a group), the others one per task. A task is idempotent:
  it first skips the cells already finished on disk, so a task retried after
  its worker died repeats only the unfinished cells.
- On the way the client shows a progress bar over cells; at the end (also
  after Ctrl-C) it writes the tidy tables and the summary figure
  (`dinv.analysis.sweeps`).

The cluster (`dinv.experiments.cluster`): an embedded ``LocalCluster`` (one
single-threaded worker process per core, BLAS on one thread), an existing
scheduler, or SLURM jobs through dask-jobqueue's ``SLURMCluster``. Every
worker gets `WorkerSetup`: Brian2's Cython cache with its file locks on (no
two workers compile the same module at once), one BLAS thread, and SIGINT
ignored (the client decides when the sweep stops; Brian2's own Ctrl-C
handler would end a settle early).
"""

import hashlib
import itertools
import json
import math
import re
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dinv.analysis.sweeps import (
    CELLS,
    CURVES,
    ERROR,
    RESERVED,
    SPEC,
    SUMMARY_FIGURE,
    TABLE,
    build_tables,
    read_cell,
    summary_figure,
    summary_table,
)
from dinv.errors import InputError
from dinv.experiments.cluster import ClusterOptions, check_workers, connect
from dinv.experiments.folders import OutputFolder
from dinv.experiments.interrupts import stop_requested
from dinv.experiments.registry import Experiment, get_experiment, make_config
from dinv.experiments.results import (
    RESULTS,
    jsonable,
    package_versions,
    run_record,
    save_figure,
    write_json,
)

# The one place where the sweep meets stacking: `can_stack(name, configs)` ->
# groups (lists of indices into configs) and `run_stacked(name, configs,
# progress, stop)` -> one results dict per config, exactly as the experiment's
# own `run` gives for that config alone.
from dinv.experiments.stacking import can_stack, run_stacked

if TYPE_CHECKING:  # pandas is imported on first use
    import pandas as pd

TOML_KEYS = ("experiment", "quick", "out", "grid", "set")
"""Top-level keys of a sweep file."""


# --------------------------------------------------------------------------- the grid


def _parse_value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _split_top_level(text):
    """``text`` split at the commas outside brackets, braces and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            if char == quote and text[i - 1] != "\\":
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


_RANGE = re.compile(r"^\s*(-?\d+)\s*:\s*(-?\d+)\s*(?::\s*(\d+)\s*)?$")


def _range_values(key, text):
    """``a:b`` (or ``a:b:step``): the integers a, a + step, ... below b; None if
    ``text`` is no range."""
    match = _RANGE.match(text)
    if not match:
        return None
    first, stop, step = int(match[1]), int(match[2]), int(match[3] or 1)
    if step < 1:
        raise InputError(f"--grid {key}={text}: the step of a range must be at least 1")
    if stop <= first:
        raise InputError(f"--grid {key}={text}: an integer range a:b runs from a up to "
                         f"b - 1 and needs b > a, e.g. {key}=0:10 for 0, 1, ..., 9")
    return list(range(first, stop, step))


def parse_grid_item(item):
    """One ``--grid KEY=V1,V2,...`` (or ``KEY=a:b``) as ``(key, values)``.

    Each value is read as JSON (``0.01``, ``true``, ``[30, 20, 10]``,
    ``"text"``), else taken as text; commas inside brackets or quotes do not
    split values.
    """
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InputError(f"--grid expects KEY=V1,V2,... or KEY=a:b, got {item!r}")
    values = _range_values(key, text)
    if values is None:
        parts = _split_top_level(text)
        if any(part == "" for part in parts):
            raise InputError(f"--grid {key}: empty value in {text!r}; give "
                             f"comma-separated values, e.g. {key}=0.01,0.001")
        values = [_parse_value(part) for part in parts]
    return key, values


def _file_grid_values(key, value):
    """A grid entry of a sweep file: a list, an ``"a:b"`` range, or one value."""
    if isinstance(value, list):
        if not value:
            raise InputError(f"sweep file: grid {key} lists no values")
        return value
    if isinstance(value, str):
        values = _range_values(key, value)
        if values is not None:
            return values
    return [value]


def read_sweep_file(path):
    """A sweep described in a TOML file (``dinv sweep --file sweep.toml``).

    Example::

        experiment = "linear-regression"
        quick = true
        out = "results/lr-sweep"
        [grid]
        seed = "0:10"            # or [0, 1, 2]
        lr = [0.01, 0.005]
        [set]
        samples = 500

    Returns
    -------
    dict
        ``experiment``, ``quick``, ``out`` (each None where the file leaves it
        out), ``grid`` (key -> list of values), ``set`` (key -> value).
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the same parser, from PyPI
        import tomli as tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"cannot read the sweep file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"the sweep file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(TOML_KEYS))
    if unknown:
        raise InputError(f"the sweep file {path} has unknown entries {', '.join(unknown)}; "
                         f"it may hold {', '.join(TOML_KEYS)}")
    for table in ("grid", "set"):
        if not isinstance(data.get(table, {}), dict):
            raise InputError(f"the sweep file {path}: {table} must be a table ([{table}])")
    return {
        "experiment": data.get("experiment"),
        "quick": data.get("quick"),
        "out": data.get("out"),
        "grid": {key: _file_grid_values(key, value)
                 for key, value in data.get("grid", {}).items()},
        "set": dict(data.get("set", {})),
    }


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs.

    Attributes
    ----------
    experiment : str or Experiment
        A registered experiment's name, or (in Python) an `Experiment`.
    grid : dict
        Setting -> list of values; the cells are their Cartesian product, the
        first key varying slowest.
    overrides : dict
        Settings every cell shares (``--set``, ``--models``).
    quick : bool
        Start from the experiment's ``--quick`` protocol.
    """

    experiment: str | Experiment
    grid: dict[str, list[Any]] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    quick: bool = False

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.experiment if isinstance(self.experiment, str) else self.experiment.name

    def resolve(self):
        """The `Experiment`."""
        if isinstance(self.experiment, Experiment):
            return self.experiment
        return get_experiment(self.experiment)


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: its id, grid values and full config."""

    id: str
    values: dict
    config: dict


def _render(value):
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def cell_id(values):
    """A stable, readable id of a cell from its grid values.

    ``seed=3,lr=0.01``: the grid keys in grid order; characters other than
    letters, digits and ``._=,+-`` become ``_``, and where that changed
    anything (or the id would pass 80 characters) a hash of the exact values
    follows, so that distinct cells never share an id.
    """
    if not values:
        return "base"
    text = ",".join(f"{key}={_render(value)}" for key, value in values.items())
    safe = re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)
    if safe != text or len(safe) > 80:
        digest = hashlib.sha1(json.dumps(jsonable(values), sort_keys=True)
                              .encode()).hexdigest()[:8]
        safe = f"{safe[:71]}-{digest}"
    return safe


def make_cells(spec, paired=False):
    """The cells of ``spec``, each config checked (`make_config`), in grid order.

    Every grid key must be a setting of the experiment, given once, with
    distinct values, and not also fixed by ``overrides``. A ``parallel``
    setting (the regressions' companion process) is the sweep's to choose:
    ``paired`` (tasks of two cores, `dinv.experiments.cluster.ClusterOptions`)
    turns it on, else it is off (each cell runs on one core of its worker).
    """
    experiment = spec.resolve()
    known = make_config(experiment, spec.quick, {})
    for key, values in spec.grid.items():
        if key not in known:
            raise InputError(f"--grid {key}: {experiment.name} has no setting {key!r}; "
                             f"settings: {', '.join(k for k in known if k != 'quick')}")
        if key in RESERVED:
            raise InputError(f"--grid {key}: {key!r} names a column of the sweep's table; "
                             "it cannot be swept")
        if key in spec.overrides:
            raise InputError(f"{key} is both swept (--grid) and fixed (--set); drop one")
        if not values:
            raise InputError(f"--grid {key} lists no values")
    overrides = dict(spec.overrides)
    if "parallel" in known:
        if "parallel" in overrides or "parallel" in spec.grid:
            raise InputError("parallel is set by the sweep (a companion process where its "
                             "tasks have two cores each; --workers N: one core per cell); "
                             "drop it")
        overrides["parallel"] = bool(paired)
    cells, seen = [], {}
    keys = list(spec.grid)
    for combination in itertools.product(*(spec.grid[key] for key in keys)):
        values = dict(zip(keys, combination))
        config = make_config(experiment, spec.quick, {**overrides, **values})
        values = {key: config[key] for key in keys}  # as checked (e.g. 1.0 -> 1)
        cid = cell_id(values)
        if cid in seen:
            raise InputError(f"--grid gives the cell {cid} twice; list every value once")
        seen[cid] = True
        cells.append(Cell(cid, values, config))
    return cells


# --------------------------------------------------------------------------- the workers


def _json_round_trip(value):
    return json.loads(json.dumps(jsonable(value)))


def _finished(cell_dir, config):
    """Whether ``cell_dir`` holds the finished results of a run with ``config``
    (``parallel`` aside: where the closed-form side ran changes no number)."""
    status, record, _ = read_cell(cell_dir)
    if status != "done":
        return False

    def numbers(values):
        return {key: value for key, value in values.items() if key != "parallel"}

    return numbers(record.get("config") or {}) == numbers(_json_round_trip(config))


def _run_alone(experiment, cell, cell_dir):
    """The results of one cell run by the experiment's own ``run``.

    An experiment with checkpoints writes them into the cell's folder and, if
    an earlier attempt left one there (its worker was killed), continues
    from it.
    """
    if not experiment.checkpoints:
        return experiment.run(cell.config, progress=False, stop=None)
    from dinv.experiments.supervised import CHECKPOINT, read_checkpoint

    resume = None
    if (cell_dir / CHECKPOINT).is_file():
        meta, arrays = read_checkpoint(cell_dir)
        if meta["config"] == _json_round_trip(cell.config):
            resume = (meta["state"], arrays)
    return experiment.run(cell.config, progress=False, folder=cell_dir, resume=resume,
                          stop=None)


def _registered(name):
    try:
        return get_experiment(name)
    except InputError:
        return None


def _write_error(cell_dir, cell, exc, tb, command):
    write_json(cell_dir / ERROR, {
        "cell": cell.id, "grid": cell.values, "config": cell.config,
        "type": type(exc).__name__, "message": str(exc), "traceback": tb,
        "command": command, "versions": package_versions(), "time": time.time(),
    })


def _write_results(cell_dir, experiment, cell, results, seconds, command, group):
    interruption = results.pop("interrupted", None)
    record = run_record(experiment.name, cell.config, results, seconds, interruption,
                        experiment.units)
    record["command"] = command
    record["sweep"] = {"cell": cell.id, "grid": cell.values, "stacked_with": group - 1}
    write_json(cell_dir / RESULTS, record)
    (cell_dir / ERROR).unlink(missing_ok=True)


def run_cells(experiment, cells, folder, command):
    """A Dask task: run ``cells`` (one stackable group) and write their folders.

    Cells already finished on disk are skipped (a task retried after its
    worker died repeats only what is missing). More than one cell left of a
    registered experiment: `run_stacked`; should that raise, each cell is run
    alone so that one bad cell does not take the others with it. A cell whose
    run raises gets ``error.json`` (type, message, traceback) and the others
    go on.

    Returns
    -------
    list of dict
        Per cell: ``id``, ``status`` ('done', 'skipped' or 'error'),
        ``seconds``, ``error`` (message or None).
    """
    experiment = experiment if isinstance(experiment, Experiment) \
        else get_experiment(experiment)
    folder = Path(folder)
    outcomes, todo = {}, []
    for cell in cells:
        cell_dir = folder / CELLS / cell.id
        if _finished(cell_dir, cell.config):
            outcomes[cell.id] = {"id": cell.id, "status": "skipped", "seconds": 0.0,
                                 "error": None}
        else:
            todo.append(cell)
    for cell in todo:
        (folder / CELLS / cell.id).mkdir(parents=True, exist_ok=True)
    if len(todo) > 1 and not experiment.checkpoints \
            and experiment is _registered(experiment.name):
        start = time.perf_counter()
        try:
            results = run_stacked(experiment.name, [cell.config for cell in todo],
                                  progress=False)
        except Exception:  # noqa: BLE001 - each cell alone tells which one fails
            results = None
        if results is not None:
            seconds = (time.perf_counter() - start) / len(todo)
            for cell, result in zip(todo, results):
                _write_results(folder / CELLS / cell.id, experiment, cell, result, seconds,
                               command, len(todo))
                outcomes[cell.id] = {"id": cell.id, "status": "done", "seconds": seconds,
                                     "error": None}
            todo = []
    for cell in todo:
        cell_dir = folder / CELLS / cell.id
        (cell_dir / ERROR).unlink(missing_ok=True)
        start = time.perf_counter()
        try:
            results = _run_alone(experiment, cell, cell_dir)
        except Exception as exc:  # noqa: BLE001 - recorded; the other cells go on
            _write_error(cell_dir, cell, exc, traceback.format_exc(), command)
            outcomes[cell.id] = {"id": cell.id, "status": "error",
                                 "seconds": time.perf_counter() - start,
                                 "error": f"{type(exc).__name__}: {exc}"}
            continue
        seconds = time.perf_counter() - start
        _write_results(cell_dir, experiment, cell, results, seconds, command, 1)
        outcomes[cell.id] = {"id": cell.id, "status": "done", "seconds": seconds,
                             "error": None}
    return [outcomes[cell.id] for cell in cells]


# --------------------------------------------------------------------------- the client


@dataclass
class SweepOutcome:
    """What a sweep did.

    Attributes
    ----------
    folder : Path
    cells : list of Cell
    counts : dict
        Cells per status at the end ('done', 'error', 'interrupted', 'pending'),
        and 'skipped': finished before this invocation.
    metrics, curves : pandas.DataFrame
        The tables written (`dinv.analysis.sweeps.build_tables`).
    interrupted : str or None
        The signal that stopped the sweep ('SIGINT', 'SIGTERM') or None.
    seconds : float
    errors : dict
        Cell id -> error message of every failed cell.
    """

    folder: Path
    cells: list["Cell"]
    counts: dict[str, int]
    metrics: "pd.DataFrame"
    curves: "pd.DataFrame"
    interrupted: str | None = None
    seconds: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)


def plan_groups(spec, cells, workers):
    """The Dask tasks: groups of cells (`can_stack`), each cut to at most
    ceil(cells / workers) cells so that every worker gets work."""
    if not cells:
        return []
    if not isinstance(spec.experiment, str):
        return [[cell] for cell in cells]
    groups = can_stack(spec.name, [cell.config for cell in cells])
    size = max(1, math.ceil(len(cells) / max(1, workers)))
    tasks = []
    for group in groups:
        for start in range(0, len(group), size):
            tasks.append([cells[i] for i in group[start:start + size]])
    return tasks


def _spec_record(spec, cells):
    return {"experiment": spec.name, "quick": spec.quick, "set": spec.overrides,
            "grid": spec.grid, "cells": [{"id": c.id, "values": c.values} for c in cells]}


def _check_spec(folder, spec):
    """A folder holding another sweep (other experiment or fixed settings) is refused;
    the grid may differ (more seeds: only the new cells run)."""
    path = folder / SPEC
    if not path.is_file():
        if (folder / RESULTS).exists():
            raise InputError(f"{folder} holds the results of a dinv run ({RESULTS}), not a "
                             "sweep; choose another --out")
        return
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}; choose another --out") from None
    mine = _json_round_trip({"experiment": spec.name, "quick": spec.quick,
                             "set": spec.overrides})
    theirs = {key: earlier.get(key) for key in mine}
    if mine != theirs:
        differ = [key for key in mine if mine[key] != theirs[key]]
        raise InputError(f"{folder} holds a sweep with other {', '.join(differ)} "
                         f"({', '.join(f'{k}={json.dumps(theirs[k])}' for k in differ)}); "
                         "rerun it as it was, or choose another --out")


def pays_to_pair(spec, cluster):
    """Whether the sweep's tasks should take two cores each (`ClusterOptions.paired`).

    The regressions (experiments with the ``parallel`` setting) run their
    closed-form side beside the simulation: on an embedded LocalCluster of
    this machine's cores, one task per two cores, its DI circuits in the
    worker and the rest in a companion process, so that one Brian2 loop
    serves all the task's cells. ``benchmarks/sweep_speed.py`` compares it
    with one-core workers (``--workers 2``).
    """
    if not isinstance(spec.experiment, str) or not cluster.can_pair():
        return False
    return "parallel" in make_config(spec.resolve(), spec.quick, {})


def run_sweep(spec, out, cluster=None, progress=True, stop=None, command=None):
    """Run the cells of ``spec`` not finished in ``out``, then write the tables.

    Parameters
    ----------
    spec : SweepSpec
    out : Path
        The sweep's folder (created and locked like a run's output folder).
    cluster : ClusterOptions or None
        Where to run (None: a LocalCluster with one worker per core).
    progress : bool
        Progress bar over cells (tqdm, with the ETA).
    stop : StopRequests or None
        Looked at while waiting: on a request the outstanding tasks are
        cancelled, the cluster closed and the tables written with the cells
        done so far.
    command : str or None
        The command line recorded in every cell's results.json.

    Returns
    -------
    SweepOutcome
    """
    from tqdm import tqdm

    cluster = cluster or ClusterOptions()
    if pays_to_pair(spec, cluster):
        cluster = replace(cluster, paired=True)
    command = command or " ".join(sys.argv)
    cells = make_cells(spec, cluster.paired)
    out = Path(out)
    start = time.perf_counter()
    interrupted = None
    errors: dict[str, str] = {}
    with OutputFolder(out):
        _check_spec(out, spec)
        write_json(out / SPEC, {**_spec_record(spec, cells), "command": command,
                                "versions": package_versions()})
        todo = [cell for cell in cells if not _finished(out / CELLS / cell.id, cell.config)]
        skipped = len(cells) - len(todo)
        if todo:
            bar = tqdm(total=len(cells), initial=skipped, unit="cell", desc=spec.name,
                       disable=not progress, smoothing=0.1, dynamic_ncols=True)
            try:
                with connect(cluster) as client:
                    if cluster.scheduler is not None:
                        check_workers(client)
                    interrupted = _submit_and_wait(client, spec, todo, out, cluster, command,
                                                   bar, stop, errors)
            finally:
                bar.close()
        metrics, curves = _write_tables(out, spec, cells)
    statuses = metrics.drop_duplicates("cell")["status"].value_counts().to_dict()
    counts = {status: int(statuses.get(status, 0))
              for status in ("done", "error", "interrupted", "pending")}
    counts["skipped"] = skipped
    for cell in cells:
        if cell.id not in errors:
            status, _, message = read_cell(out / CELLS / cell.id)
            if status == "error":
                errors[cell.id] = message
    return SweepOutcome(out, cells, counts, metrics, curves, interrupted,
                        time.perf_counter() - start, errors)


def _submit_and_wait(client, spec, todo, out, cluster, command, bar, stop, errors):
    """Submit the tasks and follow them; the signal name if the sweep was stopped."""
    from distributed import as_completed

    tasks = plan_groups(spec, todo, cluster.expected_workers())
    experiment = spec.experiment
    futures = {}
    for group in tasks:
        key = f"dinv-cells-{group[0].id}-{uuid.uuid4().hex[:8]}"
        future = client.submit(run_cells, experiment, group, str(out), command,
                               retries=cluster.retries, pure=False, key=key)
        futures[future] = group
    pending = as_completed(futures)
    failed = 0
    while not pending.is_empty():
        if stop_requested(stop):
            client.cancel(list(futures))
            return stop.signal_name
        batch = pending.next_batch(block=False)
        if not batch:
            time.sleep(0.2)
            continue
        for future in batch:
            group = futures[future]
            try:
                outcomes = future.result()
            except Exception as exc:  # noqa: BLE001 - a task that never returned
                outcomes = _task_failed(group, out, exc, command)
            for outcome in outcomes:
                if outcome["status"] == "error":
                    failed += 1
                    errors[outcome["id"]] = outcome["error"]
            bar.update(len(group))
            if failed:
                bar.set_postfix(failed=failed)
    return None


def _task_failed(group, out, exc, command):
    """Record an error for every cell of a task that failed as a whole (its worker
    died too often, or writing failed), unless the cell finished meanwhile."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        exc = RuntimeError(f"every worker that ran this cell died ({exc.allowed_failures} "
                           "times): killed, or out of memory? The last one was "
                           f"{getattr(exc.last_worker, 'address', exc.last_worker)}")
    outcomes = []
    for cell in group:
        cell_dir = out / CELLS / cell.id
        if _finished(cell_dir, cell.config):
            outcomes.append({"id": cell.id, "status": "done", "error": None})
            continue
        _write_error(cell_dir, cell, exc, "".join(traceback.format_exception(exc)), command)
        outcomes.append({"id": cell.id, "status": "error",
                         "error": f"{type(exc).__name__}: {exc}"})
    return outcomes


def _write_tables(out, spec, cells):
    """Write the metrics table (Parquet and CSV), the curves table and the summary
    figure of ``cells`` from their folders; returns the two tables."""
    from dinv.experiments.results import _atomic_write

    metrics, curves = build_tables(out, [{"id": c.id, "values": c.values} for c in cells])
    _atomic_write(out / f"{TABLE}.parquet", lambda h: metrics.to_parquet(h, index=False))
    _atomic_write(out / f"{TABLE}.csv",
                  lambda h: h.write(metrics.to_csv(index=False).encode()))
    _atomic_write(out / CURVES, lambda h: curves.to_parquet(h, index=False))
    done = int((metrics.drop_duplicates("cell")["status"] == "done").sum())
    title = (f"{spec.name}: {done} of {len(cells)} cells"
             + (" (quick)" if spec.quick else ""))
    figure = summary_figure(metrics, curves, list(spec.grid), title=title)
    save_figure(figure, out / SUMMARY_FIGURE)
    return metrics, curves


def format_summary(outcome, grid_keys):
    """The lines ``dinv sweep`` prints at the end: counts and, per model, the primary
    metric over the cells."""
    import pandas as pd

    counts = outcome.counts
    lines = [f"cells: {counts['done']} done ({counts['skipped']} already before), "
             f"{counts['error']} failed, {counts['interrupted'] + counts['pending']} "
             f"not finished, of {len(outcome.cells)}; {outcome.seconds:.1f} s"]
    metric, table = summary_table(outcome.metrics, grid_keys)
    if metric is not None and not table.empty:
        lines.append(f"final {metric} over the cells:")
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            lines += ["  " + line for line in
                      table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
                      .splitlines()]
    return lines
