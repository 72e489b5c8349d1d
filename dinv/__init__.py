"""dynamic-inversion: Brian2 circuits for credit assignment by dynamic inversion.

Podlaski & Machens, *Biological credit assignment through dynamic inversion of
feedforward networks*, NeurIPS 2020.

The package's sub-packages live in the repository's top-level folders
(``circuits/``, ``models/``, ``analysis/``, ``experiments/``) and are installed
as ``dinv.circuits``, ``dinv.models``, ``dinv.analysis`` and
``dinv.experiments`` (``package_dir`` in ``setup.cfg``). The modules in this
folder hold what every layer of the package shares and need neither Brian2 nor
matplotlib: the exceptions (`dinv.errors`), input validation
(`dinv.validation`), the nonlinearities (`dinv.nonlinearities`) and the theory
of the circuits in numpy (`dinv.theory`).
"""

from pathlib import Path


def __getattr__(name):
    """``__version__``, looked up on first use (``importlib.metadata`` takes tens of
    milliseconds to import, which the commands that simulate nothing need not pay)."""
    if name != "__version__":
        raise AttributeError(f"module 'dinv' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("dynamic-inversion")
    except PackageNotFoundError:  # a source checkout that was never installed
        found = "unknown"
    globals()["__version__"] = found
    return found


# Run from a source checkout (the repository root on sys.path), this folder is
# found before the installed package: its sub-packages are then the folders
# beside it.
_checkout = Path(__file__).resolve().parent.parent
if (_checkout / "circuits" / "__init__.py").is_file() and (_checkout / "setup.cfg").is_file():
    __path__.append(str(_checkout))
