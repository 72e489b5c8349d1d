"""Metrics, stability measures, figures and results tables from plain arrays (no Brian2).

`load_results`, `read_results`, `validate_results`, `results_schema`, `schema_path`
and `ResultsFileError` (`dinv.analysis.results`: one run's results.json, checked
against its JSON Schema, and as a tidy table), `load_sweep` and `load_curves`
(`dinv.analysis.sweeps`) are imported on first use, so that the modules that do not
need pandas never load it.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what static tools see; at run time, __getattr__ imports on first use
    from dinv.analysis.results import (
        ResultsFileError,
        load_results,
        read_results,
        results_schema,
        schema_path,
        validate_results,
    )
    from dinv.analysis.sweeps import load_curves, load_sweep

__all__ = [
    "ResultsFileError",
    "load_curves",
    "load_results",
    "load_sweep",
    "read_results",
    "results_schema",
    "schema_path",
    "validate_results",
]

_SWEEPS = ("load_sweep", "load_curves")


def __getattr__(name: str) -> Any:
    if name in _SWEEPS:
        from dinv.analysis import sweeps

        return getattr(sweeps, name)
    if name in __all__:
        from dinv.analysis import results

        return getattr(results, name)
    raise AttributeError(f"module 'dinv.analysis' has no attribute {name!r}")
