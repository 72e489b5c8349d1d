"""Writing results: atomically, with the full config and package versions."""

import functools
import json
import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

PACKAGES = ("dynamic-inversion", "brian2", "numpy", "scipy", "matplotlib", "cython")

RESULTS = "results.json"
"""File name of a run's record inside its output folder."""

FIGURE = "figure.png"
"""File name of a run's figure inside its output folder."""

RESULTS_FORMAT = 2
"""Layout version of results.json (2: keyed by model name throughout, with ``units``;
described by the JSON Schemas in ``dinv/schemas``, `dinv.analysis.results_schema`)."""


@functools.cache
def _installed_versions():
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def package_versions():
    """Versions of Python and of the packages that decide the numbers (looked up once
    per process)."""
    return dict(_installed_versions())


def jsonable(value):
    """Convert numpy values (recursively) into JSON types; NaN becomes None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and np.isfinite(value).all():
            return value.tolist()  # Python floats already: no walk over the elements
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


class WriteError(OSError):
    """A result file could not be written (full disk, folder gone or read-only); the
    message names the file and says that the file as it was before is intact."""


def _atomic_write(path, write):
    """Write ``path`` through ``write(handle)`` into a temporary file, then rename.

    An `OSError` on the way (e.g. ENOSPC, a full disk) leaves ``path`` as it
    was and raises `WriteError` naming the file.
    """
    path = Path(path)
    try:
        _write_and_rename(path, write)
    except OSError as exc:
        raise WriteError(f"could not write {path}: {exc.strerror or exc}; the earlier "
                         f"{path.name} (if there was one) is intact") from exc


def _write_and_rename(path, write):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path, data):
    """Write ``data`` as JSON to ``path`` atomically (temp file + rename).

    A dict is written one top-level key per line, each value compact: Python's
    fast (C) encoder serves only compact output, and its indenting encoder took
    0.4 s for a regression's record of 90 000 numbers.
    """
    data = jsonable(data)
    if isinstance(data, dict) and data:
        text = "{\n" + ",\n".join(f"{json.dumps(key)}: {json.dumps(value, allow_nan=False)}"
                                  for key, value in data.items()) + "\n}\n"
    else:
        text = json.dumps(data, allow_nan=False)
    _atomic_write(path, lambda handle: handle.write(text.encode()))


def save_figure(fig, path, dpi=130):
    """Save a matplotlib figure as PNG atomically."""
    _atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=dpi))


def run_record(name, config, results, seconds, interruption=None, units=None):
    """The full record of one run, as written to results.json.

    ``units`` (the experiment's `Experiment.units`) is recorded as ``units``: the unit of
    every quantity, by key; ``results_format`` is `RESULTS_FORMAT`.

    ``interrupted`` tells whether the run was stopped early (by SIGINT or
    SIGTERM); ``interruption`` then says by which signal and after how much
    of the work (`dinv.experiments.interrupts.StopRequests.report`), and the
    results are those of the work done.
    """
    return {
        "experiment": name,
        "config": config,
        "seed": config["seed"],
        "versions": package_versions(),
        "command": " ".join(sys.argv),
        "wall_seconds": seconds,
        "interrupted": interruption is not None,
        "interruption": interruption,
        "results_format": RESULTS_FORMAT,
        "units": dict(units or {}),
        **results,
    }
