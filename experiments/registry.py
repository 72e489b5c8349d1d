"""Registry of the experiments: name -> protocol, quick overrides, figure.

An experiment's protocol lives in its own module of `dinv.experiments`, which
holds ``DEFAULTS`` (the paper's protocol), ``QUICK`` (the overrides of
``--quick``), ``DESCRIPTIONS`` (one line per setting), ``UNITS`` (of every
quantity of its results), ``run`` and ``figure``. The registry names the
module and imports it only when the protocol is needed, so that listing the
experiments (``dinv list``, ``dinv --help``) loads neither Brian2 nor matplotlib.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from dinv.errors import InputError
from dinv.experiments.catalogue import DATASETS


@dataclass(frozen=True)
class Option:
    """An experiment-specific command-line flag setting one config key."""

    flag: str
    key: str
    help: str
    type: Callable[[str], Any] | None = None  # None: a boolean switch


@dataclass(frozen=True)
class Experiment:
    """An experiment of the paper (or beyond it), and where its protocol lives.

    Attributes
    ----------
    name : str
        Name used by ``dinv run NAME``.
    paper : str
        Figure panels it reproduces.
    module : str
        The full name of the module that holds the protocol (imported on first use):
        ``DEFAULTS``, ``QUICK``, ``DESCRIPTIONS``, ``UNITS``, ``run`` and ``figure``
        (e.g. ``"dinv.experiments.linear_regression"``; a protocol of one's own may
        live in any importable module).
    options : tuple of Option
        Extra command-line flags.
    checkpoints : bool
        Long runs that write checkpoints into their output folder and can be
        resumed (``dinv run NAME --resume DIR``).
    """

    name: str
    paper: str
    module: str
    options: tuple[Option, ...] = ()
    checkpoints: bool = False

    @property
    def protocol(self) -> ModuleType:
        """The module of the protocol (imported on first use)."""
        return importlib.import_module(self.module)

    @property
    def defaults(self) -> dict[str, Any]:
        """The paper's protocol: every setting and its default."""
        return self.protocol.DEFAULTS

    @property
    def quick(self) -> dict[str, Any]:
        """Overrides of ``--quick`` (a smoke run of a minute or two)."""
        return self.protocol.QUICK

    @property
    def descriptions(self) -> dict[str, str]:
        """One line per setting of `defaults`: what it means (``dinv run NAME --help``)."""
        return self.protocol.DESCRIPTIONS

    @property
    def units(self) -> dict[str, str]:
        """Unit of every quantity of the results, written into results.json as ``units``."""
        return self.protocol.UNITS

    def run(self, config: dict[str, Any], **arguments: Any) -> dict[str, Any]:
        """Run the protocol: ``run(config, progress, stop)`` of its module, with
        ``folder`` and ``resume`` for experiments with `checkpoints`.

        ``stop`` (a `dinv.experiments.interrupts.StopRequests` or None) is
        looked at between updates; after a request the results are those of
        the work done, with ``interrupted`` (`StopRequests.report`).
        """
        return self.protocol.run(config, **arguments)

    def figure(self, results: dict[str, Any]) -> Any:
        """The experiment's matplotlib Figure of ``results``, with the models whose
        settles fell short marked on it (`dinv.analysis.figures.mark_unsettled`)."""
        from dinv.analysis.figures import mark_unsettled

        return mark_unsettled(self.protocol.figure(results), results.get("settling"))

    def extra_figures(self, results: dict[str, Any]) -> dict[str, Any]:
        """Figures beside figure.png, by file name (the protocol's ``FIGURES``: file name
        -> function of the results; most experiments have none)."""
        return {name: draw(results)
                for name, draw in getattr(self.protocol, "FIGURES", {}).items()}


DATA_OPTIONS = (
    Option("--dataset", "dataset", f"data set: {', '.join(DATASETS)}", str),
    Option("--data-dir", "data_dir", "folder holding the four IDX files", str),
    Option("--batch-size", "batch_size", "samples per update (1: online)", int),
    Option("--epochs", "epochs", "passes over the training set", int),
)

_SPIKING_OPTION = Option(
    "--spiking", "spiking_models", "also train DI with spiking populations (DI-SCN a=0.1, "
    "DI-LIF a=0.1, with NDI a=0.1): beyond the paper, and slower")

_REGRESSION_OPTIONS = (
    Option("--fixed-norm", "fixed_norm", "unit-norm updates (Fig. 3b)"),
    _SPIKING_OPTION,
)

EXPERIMENTS: dict[str, Experiment] = {experiment.name: experiment for experiment in (
    Experiment("linear-regression", "Fig. 3a-f: linear regression, 30-20-10 linear network",
               "dinv.experiments.linear_regression", _REGRESSION_OPTIONS),
    Experiment("nonlinear-regression",
               "Fig. 3g-k: nonlinear regression, 30-20-10-10 tanh network",
               "dinv.experiments.nonlinear_regression", _REGRESSION_OPTIONS),
    Experiment("mnist",
               "Fig. 4a: classification, 784-1000-10 tanh/softmax network, simulated DI",
               "dinv.experiments.classification", (*DATA_OPTIONS, _SPIKING_OPTION),
               checkpoints=True),
    Experiment("mnist-3x256",
               "beyond the paper: classification with the network of Deep Feedback Control, "
               "784-256-256-256-10 tanh/softmax, simulated DI",
               "dinv.experiments.classification_3x256", DATA_OPTIONS, checkpoints=True),
    Experiment("autoencoder",
               "Fig. 4b-d: autoencoder 784-500-250-30-250-500-784, simulated DI",
               "dinv.experiments.autoencoder", DATA_OPTIONS, checkpoints=True),
    Experiment("alpha-sweep", "Suppl. Fig. 1: accuracy of the inversion against alpha",
               "dinv.experiments.alpha_sweep"),
    Experiment("timescales", "Sec. 3.2/6.2: convergence against controller/system timescales",
               "dinv.experiments.timescales"),
    Experiment("spiking-inversion",
               "Sec. 6: spiking populations (scn, lif) against Eq. (10)",
               "dinv.experiments.spiking_inversion"),
    Experiment("second-order",
               "Sec. 4.3/6.3: every rule's updates against Gauss-Newton over training",
               "dinv.experiments.second_order"),
)}
"""Every experiment by name (``dinv list``)."""


def get_experiment(name: str) -> Experiment:
    """The registered experiment called ``name``."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise InputError(
            f"unknown experiment {name!r}; `dinv list` shows: {', '.join(EXPERIMENTS)}"
        ) from None


def _check_type(key: str, default: object, value: object) -> object:
    """An override must have the kind of value its default has; returns it (a
    whole-number float as an int)."""
    from dinv.validation import check_count

    def is_number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if default is None:
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        # Counts (steps, samples, epochs, ...): whole numbers, seeds >= 0, the others >= 1.
        if not is_number(value):
            raise InputError(f"setting {key} must be a whole number, got {value!r}")
        return check_count(f"setting {key}", value, minimum=0 if key.endswith("seed") else 1)
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif is_number(default):
        ok, kind = is_number(value), "a number"
    elif isinstance(default, (list, tuple)):
        ok, kind = isinstance(value, list), "a list, e.g. [1, 2]"
    elif isinstance(default, dict):
        ok, kind = isinstance(value, dict), 'a JSON object, e.g. {"lr": 0.5}'
    else:
        ok, kind = isinstance(value, type(default)), type(default).__name__
    if not ok:
        raise InputError(f"setting {key} must be {kind}, got {value!r}")
    return value


def make_config(experiment: Experiment, quick: bool = False,
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then ``--quick`` overrides, then user overrides (checked)."""
    config = dict(experiment.defaults)
    if quick:
        config.update(experiment.quick)
    for key, value in (overrides or {}).items():
        if key not in config:
            raise InputError(
                f"{experiment.name} has no setting {key!r}; settings: {', '.join(config)}"
            )
        config[key] = _check_type(key, config[key], value)
    models = config.get("models")
    if isinstance(models, list):
        twice = sorted({m for m in models if models.count(m) > 1}, key=models.index)
        if twice:
            raise InputError(f"models names {', '.join(map(repr, twice))} more than once; "
                             "name each model once")
    config["quick"] = bool(quick)
    return config
