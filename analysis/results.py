"""Reading a run's results.json: its JSON Schema, validation, a tidy table (no Brian2).

Every experiment's ``results.json`` is described by a JSON Schema (draft 2020-12)
shipped with the package, ``dinv/schemas/NAME.schema.json`` (`schema_path`), whose
shared parts sit in ``common.schema.json`` beside it. `validate_results` checks a
record against it, `read_results` reads and checks one (one-line errors) and `load_results` turns
a record into one tidy pandas table:

========== ================================================================
column     meaning
========== ================================================================
experiment the experiment's name (``dinv list``)
model      model name; alpha-sweep: ``"LAYER ndi"`` / ``"LAYER circuit"``;
           timescales: ``"layer pair"``, a chain's label, ``"integral"``
           or ``"PID kp=.. kd=.."``; spiking-inversion:
           ``"POPULATION CASE"`` (e.g. ``"scn contracting"``);
           second-order: ``"CASE RULE"`` (e.g. ``"toy-tp DI"``)
metric     e.g. ``error``, ``nmse``, ``angle_ndi``, ``test_error``; numbers
           of ``final`` as ``final_<name>``; settling as ``settles``,
           ``unsettled``, ``unsettled_fraction``, ``worst_residual``,
           ``median_residual``; spiking-inversion: the numbers of its
           records (``angle_deg``, ``rel_error``, ``rms_error``,
           ``mean_rate_hz``, ...), ``slope_<error>`` and
           ``silencing_angle_ratio``; second-order: ``loss``, ``to_bp_deg``,
           ``to_gnt_deg``, ``to_gn_deg``, ``to_lgn_deg``, ``null_share``
layer      the layer of a per-layer curve (regressions' ``curves``,
           ``median_angle_ndi``; second-order: the weight layer, from 1), else
           missing
step       the x value of a series: updates (regressions, second-order), training
           samples seen (mnist, autoencoder), alpha (alpha-sweep),
           tau_controller / tau_system (timescales' layer pair);
           spiking-inversion: neurons per dimension (``scaling``), the
           readout time constant (``tau_sweep``) or the simulated time
           (``duration_sweep``); NaN for single numbers
step_unit  what ``step`` counts: ``updates``, ``samples``, ``alpha``,
           ``tau_controller/tau_system``, ``neurons_per_dim``,
           ``readout_ms``, ``duration_tau`` (missing for single numbers)
value      the number (NaN where results.json holds null)
unit       the unit from the record's ``units`` (e.g. ``%``, ``degrees``,
           ``dimensionless``, ``tau_system``); missing if not recorded
========== ================================================================

Records of results format 1 (before ``units`` and the model-keyed history) load
too, without units.
"""

import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dinv.errors import InputError

if TYPE_CHECKING:  # pandas is imported on first use
    import pandas as pd

COLUMNS = ("experiment", "model", "metric", "layer", "step", "step_unit", "value", "unit")
"""Columns of `load_results`' table, in order."""

SCHEMA_FOLDER = "schemas"
"""Folder of the JSON Schemas inside the installed ``dinv`` package."""

RESULTS = "results.json"


def schema_path(experiment: str) -> Path:
    """Path of the JSON Schema of ``experiment``'s results.json, in the installed package.

    ``schema_path("common")`` is the file of the parts every experiment shares.
    """
    path = resources.files("dinv") / SCHEMA_FOLDER / f"{experiment}.schema.json"
    if not path.is_file():
        known = sorted(p.name.removesuffix(".schema.json")
                       for p in (resources.files("dinv") / SCHEMA_FOLDER).iterdir()
                       if p.name.endswith(".schema.json"))
        raise ValueError(f"no results schema for {experiment!r}; there are: {', '.join(known)}")
    return Path(str(path))


def results_schema(experiment: str) -> dict[str, Any]:
    """The JSON Schema (a dict) of ``experiment``'s results.json."""
    return json.loads(schema_path(experiment).read_text())


def _registry():
    from referencing import Registry, Resource

    folder = schema_path("common").parent
    return Registry().with_resources(
        (path.name, Resource.from_contents(json.loads(path.read_text())))
        for path in folder.glob("*.schema.json"))


class ResultsFileError(InputError):
    """A results.json that cannot be read, is not a run's record, or breaks its
    experiment's JSON Schema; the message names the file and what is wrong, in one line."""


def validate_results(record: dict[str, Any] | str | os.PathLike[str],
                     sample: bool = False) -> None:
    """Check a results record (a dict, or the path of a results.json or of its folder)
    against its experiment's JSON Schema.

    Parameters
    ----------
    record : dict or str or Path
    sample : bool
        Check every array of more than ``2 * SAMPLE_ENDS`` items at its first and last
        `SAMPLE_ENDS` items only (what ``dinv show`` does: a regression's curves hold
        10^5 to 10^6 numbers, which take seconds to check one by one; no schema bounds
        an array's length by more than ``SAMPLE_ENDS``, so only the type of the middle
        items goes unchecked). False: every item.

    Raises
    ------
    jsonschema.ValidationError
        Naming the first place where the record breaks the schema.
    """
    import jsonschema

    if not isinstance(record, dict):
        record = _read(record)
    schema = results_schema(record["experiment"])
    validator = jsonschema.Draft202012Validator(schema, registry=_registry())
    validator.validate(_ends(record) if sample else record)


SAMPLE_ENDS = 4
"""Items kept at each end of a long array by ``validate_results(sample=True)``."""


def _ends(value):
    """``value`` with every long array cut to its first and last `SAMPLE_ENDS` items."""
    if isinstance(value, dict):
        return {key: _ends(item) for key, item in value.items()}
    if isinstance(value, list):
        if len(value) > 2 * SAMPLE_ENDS:
            value = value[:SAMPLE_ENDS] + value[-SAMPLE_ENDS:]
        return [_ends(item) for item in value]
    return value


def read_results(path: str | os.PathLike[str], validate: bool = True,
                 sample: bool = True) -> dict[str, Any]:
    """The record of a results.json (or of the folder holding one), checked.

    Parameters
    ----------
    path : str or Path
        A results.json or its folder.
    validate : bool
        Check the record against its experiment's JSON Schema (records of results
        format 1, written by versions before the schemas, are not checked).
    sample : bool
        Check long arrays at their ends only (see `validate_results`).

    Returns
    -------
    dict

    Raises
    ------
    ResultsFileError
        In one line, naming the file: it is missing, not JSON, not a JSON object, names
        no experiment or one without a schema, or breaks the schema (where and how).
    """
    import jsonschema

    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    if not path.is_file():
        raise ResultsFileError(f"{path}: no such file")
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ResultsFileError(f"{path} is not readable JSON ({exc})") from None
    except OSError as exc:
        raise ResultsFileError(f"{path} cannot be read ({exc.strerror})") from None
    if not isinstance(record, dict):
        kind = {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
            type(record), "a number")
        raise ResultsFileError(f"{path} holds {kind}, not the JSON object a dinv run writes")
    experiment = record.get("experiment")
    if not isinstance(experiment, str):
        raise ResultsFileError(f"{path} names no experiment (its key 'experiment' is "
                               f"{experiment!r}); is it a dinv results.json?")
    try:
        schema_path(experiment)
    except ValueError:
        known = sorted(p.name.removesuffix(".schema.json")
                       for p in schema_path("common").parent.glob("*.schema.json"))
        raise ResultsFileError(
            f"{path} names the experiment {experiment!r}, which dinv does not know "
            f"(experiments: {', '.join(k for k in known if k != 'common')})") from None
    if validate and "results_format" in record:
        try:
            validate_results(record, sample=sample)
        except jsonschema.ValidationError as exc:
            where = "/".join(map(str, exc.absolute_path)) or "the top level"
            message = exc.message if len(exc.message) <= 160 else exc.message[:157] + "..."
            raise ResultsFileError(f"{path} breaks the {experiment} results schema at "
                                   f"{where}: {message}") from None
    return record


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    return read_results(path)


def _value(value: float | None) -> float:
    if value is None:
        return math.nan
    return float(value)


def load_results(path: str | os.PathLike[str] | dict[str, Any]) -> "pd.DataFrame":
    """One run's results as a tidy table (see the module docstring for the columns).

    Parameters
    ----------
    path : str or Path or dict
        A results.json, the folder holding one, a sweep folder (every cell's results,
        with a ``cell`` column) or an already loaded record.

    Returns
    -------
    pandas.DataFrame
        Columns `COLUMNS` (and ``cell`` for a sweep folder).
    """
    import pandas as pd

    if isinstance(path, dict):
        return _frame(pd, _rows(path))
    path = Path(path)
    if path.is_dir() and not (path / RESULTS).exists() and (path / "cells").is_dir():
        frames = []
        for cell in sorted((path / "cells").iterdir()):
            if (cell / RESULTS).is_file():
                frame = _frame(pd, _rows(_read(cell)))
                frame.insert(0, "cell", cell.name)
                frames.append(frame)
        if not frames:
            return _frame(pd, []).assign(cell=pd.Series(dtype="string"))
        return pd.concat(frames, ignore_index=True)
    return _frame(pd, _rows(_read(path)))


def _frame(pd, rows):
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["layer"] = frame["layer"].astype("Int64")
    frame["step"] = frame["step"].astype(float)
    frame["value"] = frame["value"].astype(float)
    for column in ("experiment", "model", "metric", "step_unit", "unit"):
        frame[column] = frame[column].astype("string")
    return frame


def _rows(record):
    """``COLUMNS`` tuples of every number of a record worth a row."""
    experiment = record["experiment"]
    units = record.get("units") or {}
    rows = []

    def add(model, metric, value, step=math.nan, step_unit=None, layer=None, unit_of=None):
        rows.append((experiment, model, metric, layer, float(step), step_unit,
                     _value(value), units.get(unit_of or metric)))

    for model, final in (record.get("final") or {}).items():
        for metric, value in (final or {}).items():
            if value is None or isinstance(value, (int, float)):
                add(model, f"final_{metric}", value, unit_of=metric)
    if "error" in record and "nmse" in record:
        _regression_rows(record, add)
    if record.get("history"):
        _history_rows(record, add)
    if "layers" in record and "alphas" in record:
        _alpha_rows(record, add)
    if "pair" in record:
        _timescales_rows(record, add)
    if "scaling" in record:
        _spiking_rows(record, add)
    if "angles" in record:
        _second_order_rows(record, add)
    for model, entry in (record.get("settling") or {}).items():
        for key in ("settles", "unsettled", "worst_residual", "median_residual"):
            add(model, key, entry.get(key),
                unit_of="circuit_residual" if "residual" in key else key)
        if entry.get("settles"):
            add(model, "unsettled_fraction", entry["unsettled"] / entry["settles"])
    return rows


def _regression_rows(record, add):
    updates = record.get("updates") or {}
    for metric in ("error", "nmse"):
        for model, values in record[metric].items():
            steps = updates.get("error") or range(len(values))
            for step, value in zip(steps, values):
                add(model, metric, value, step, "updates")
    for metric, by_model in (record.get("curves") or {}).items():
        for model, layers in by_model.items():
            for layer, values in enumerate(layers):
                steps = updates.get("curves") or range(1, len(values) + 1)
                for step, value in zip(steps, values):
                    if value is not None:  # SLDI's layers beyond the loop
                        add(model, metric, value, step, "updates", layer)
    for model, layers in (record.get("median_angle_ndi") or {}).items():
        for layer, value in enumerate(layers):
            add(model, "median_angle_ndi", value, layer=layer)


def _history_rows(record, add):
    models = record.get("models") or []
    for entry in record["history"]:
        for metric, values in entry.items():
            if metric in ("samples", "epoch"):
                continue
            if isinstance(values, list):  # results format 1: in the order of models
                values = dict(zip(models, values))
            for model, value in values.items():
                add(model, metric, value, entry["samples"], "samples")


def _alpha_rows(record, add):
    alphas = record["alphas"]
    for layer, entry in record["layers"].items():
        for metric in ("angle", "relative_error"):
            for method, values in entry[metric].items():
                for alpha, value in zip(alphas, values):
                    add(f"{layer} {method}", metric, value, alpha, "alpha")
        for alpha, value in zip(alphas, entry.get("circuit_residual", [])):
            add(f"{layer} circuit", "circuit_residual", value, alpha, "alpha")


TIMESCALE_METRICS = ("time", "rate", "predicted_rate", "abscissa", "overshoot", "final_error",
                     "residual", "step_radius", "speedup")


def _timescales_rows(record, add):
    for entry in record["pair"]:
        for metric in TIMESCALE_METRICS:
            if metric in entry:
                add("layer pair", metric, entry[metric], entry["ratio"],
                    "tau_controller/tau_system")
    for label, entry in (record.get("chains") or {}).items():
        for metric in TIMESCALE_METRICS:
            if metric in entry:
                add(label, metric, entry[metric])
    pid = record.get("pid") or {}
    points = [("integral", pid["integral"])] if pid.get("integral") else []
    points += [(f"PID kp={p['kp']:g} kd={p['kd']:g}", p) for p in pid.get("grid", [])]
    for model, entry in points:
        for metric in TIMESCALE_METRICS:
            if metric in entry:
                add(model, metric, entry[metric])


SECOND_ORDER_METRICS = ("loss", "to_bp_deg", "to_gnt_deg", "to_gn_deg", "to_lgn_deg",
                        "null_share")
"""Numbers of a second-order record's ``angles`` that `load_results` makes rows of."""


def _second_order_rows(record, add):
    for entry in record["angles"]:
        for metric in SECOND_ORDER_METRICS:
            if entry.get(metric) is not None:
                add(f"{entry['case']} {entry['rule']}", metric, entry[metric], entry["step"],
                    "updates", entry["layer"])


SPIKING_METRICS = ("angle_deg", "rel_error", "rms_error", "rate_angle_deg", "rate_rel_error",
                   "mean_rate_hz", "max_rate_hz", "spikes", "residual", "seconds")
"""Numbers of a spiking-inversion record that `load_results` makes rows of."""


def _spiking_rows(record, add):
    for part, step in (("scaling", "neurons_per_dim"), ("tau_sweep", "readout_ms"),
                       ("duration_sweep", "duration_tau")):
        for entry in record.get(part) or []:
            model = f"{entry['population']} {entry['case']}"
            for metric in SPIKING_METRICS:
                if metric in entry:
                    add(model, metric, entry[metric], entry[step], step)
    for entry in record.get("slopes") or []:
        for metric in ("angle_deg", "rel_error", "rms_error"):
            add(f"{entry['population']} {entry['case']}", f"slope_{metric}", entry.get(metric),
                unit_of="slope")
    for population, entry in (record.get("silencing") or {}).items():
        add(f"{population} {entry['intact']['case']}", "silencing_angle_ratio",
            entry.get("angle_ratio"), unit_of="angle_ratio")
