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

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("dynamic-inversion")
except PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "unknown"

# Run from a source checkout (the repository root on sys.path), this folder is
# found before the installed package: its sub-packages are then the folders
# beside it.
_checkout = Path(__file__).resolve().parent.parent
if (_checkout / "circuits" / "__init__.py").is_file() and (_checkout / "setup.cfg").is_file():
    __path__.append(str(_checkout))
