"""Metrics, stability measures, figures and sweep tables from plain arrays (no Brian2).

`load_sweep` and `load_curves` (`dinv.analysis.sweeps`) are imported on first
use, so that the modules that do not need pandas never load it.
"""

__all__ = ["load_sweep", "load_curves"]


def __getattr__(name):
    if name in __all__:
        from dinv.analysis import sweeps

        return getattr(sweeps, name)
    raise AttributeError(f"module 'dinv.analysis' has no attribute {name!r}")
