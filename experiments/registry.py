"""Registry of paper experiments: name -> protocol, quick overrides, figure."""

from collections.abc import Callable
from dataclasses import dataclass, field

from dinv.analysis.figures import (
    Panel,
    alpha_sweep_figure,
    autoencoder_figure,
    classification_figure,
    mark_unsettled,
    regression_figure,
    spiking_inversion_figure,
    timescales_figure,
)
from dinv.errors import InputError
from dinv.experiments import (
    alpha_sweep,
    autoencoder,
    classification,
    linear_regression,
    nonlinear_regression,
    spiking_inversion,
    timescales,
)
from dinv.experiments.datasets import DATASETS
from dinv.validation import check_count


@dataclass(frozen=True)
class Option:
    """An experiment-specific command-line flag setting one config key."""

    flag: str
    key: str
    help: str
    type: Callable = None  # None: a boolean switch


@dataclass(frozen=True)
class Experiment:
    """A paper experiment.

    Attributes
    ----------
    name : str
        Name used by ``dinv run NAME``.
    paper : str
        Figure panels it reproduces.
    defaults : dict
        The paper's protocol.
    quick : dict
        Overrides of ``--quick`` (a smoke run well under a minute).
    run : callable
        ``run(config, progress, stop) -> dict`` of results; with ``checkpoints``
        ``run(config, progress, folder, resume, stop)``. ``stop`` (a
        `dinv.experiments.interrupts.StopRequests` or None) is looked at
        between updates; after a request the results are those of the work
        done, with ``interrupted`` (`StopRequests.report`).
    figure : callable
        ``figure(results) -> matplotlib Figure``; the registered experiment
        marks on it the models whose settles fell short (`mark_unsettled`).
    options : tuple of Option
        Extra command-line flags.
    descriptions : dict
        One line per setting of ``defaults``: what it means (``dinv run NAME --help``).
    units : dict
        Unit of every quantity of the results, written into results.json as ``units``.
    checkpoints : bool
        Long runs that write checkpoints into their output folder and can be
        resumed (``dinv run NAME --resume DIR``).
    """

    name: str
    paper: str
    defaults: dict
    quick: dict
    run: Callable
    figure: Callable
    options: tuple = field(default_factory=tuple)
    checkpoints: bool = False
    descriptions: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)

    def __post_init__(self):
        draw = self.figure

        def figure(results):
            return mark_unsettled(draw(results), results.get("settling"))

        object.__setattr__(self, "figure", figure)


def _linear_figure(results):
    fixed = results["config"]["fixed_norm"]
    panels = (
        Panel("stability of DI: Jacobian abscissa (paper Fig. 3c)", "eigenvalue",
              "max real eigenvalue", frozenset({"di"}), zero_line=True),
        Panel("angle(delta_DI, delta_NDI) (Fig. 3d)", "angle_ndi",
              "angle (deg; below 1e-6, rounding: drawn at 1e-6)", frozenset({"di"}), log=True),
        Panel("angle(B, -W^T) (Fig. 3e)", "angle_B", "angle (deg)", frozenset({"di", "ndi"})),
        Panel("angle(delta_DI, delta_PBP) (Fig. 3f)", "angle_pbp", "angle (deg)",
              frozenset({"di"}), median=True),
    )
    return regression_figure(results["nmse"], results["curves"], results["rules"], panels,
                             "NMSE, fixed-norm updates (paper Fig. 3b)" if fixed
                             else "NMSE (paper Fig. 3a)")


def _nonlinear_figure(results):
    panels = (
        Panel("stability (DI: per layer; SLDI: loop) (paper Fig. 3h)", "eigenvalue",
              "max real eigenvalue", frozenset({"di", "sldi"}), zero_line=True),
        Panel("angle(delta_DI, delta_NDI) (Fig. 3i)", "angle_ndi", "angle (deg)",
              frozenset({"di"}), log=True, median=True),
        Panel("angle(B, -W^T) (Fig. 3j)", "angle_B", "angle (deg)", frozenset({"di", "ndi"})),
        Panel("angle(delta_SLDI, delta_NDI) (Fig. 3k)", "angle_ndi", "angle (deg)",
              frozenset({"sldi"}), log=True, median=True),
    )
    return regression_figure(results["nmse"], results["curves"], results["rules"], panels,
                             "NMSE (paper Fig. 3g)")


def _autoencoder_figure(results):
    config = results["config"]
    note = None
    if config.get("quick"):
        note = (f"--quick: a smoke test ({config['dataset']}, {config['epochs']} epochs, hidden "
                f"{'-'.join(map(str, config['hidden']))}, batches of {config['batch_size']}); "
                "the paper's protocol is 25 epochs of MNIST, 500-250-30-250-500")
    return autoencoder_figure(results["history"], results["models"], results["images"],
                              results["image_shape"], results["tsne"],
                              results["dataset"]["name"], note=note)


DATA_OPTIONS = (
    Option("--dataset", "dataset", f"data set: {', '.join(DATASETS)}", str),
    Option("--data-dir", "data_dir", "folder holding the four IDX files", str),
    Option("--batch-size", "batch_size", "samples per update (1: online)", int),
    Option("--epochs", "epochs", "passes over the training set", int),
)


EXPERIMENTS = {
    "linear-regression": Experiment(
        name="linear-regression",
        paper="Fig. 3a-f: linear regression, 30-20-10 linear network",
        defaults=linear_regression.DEFAULTS,
        quick=linear_regression.QUICK,
        run=linear_regression.run,
        descriptions=linear_regression.DESCRIPTIONS,
        units=linear_regression.UNITS,
        figure=_linear_figure,
        options=(Option("--fixed-norm", "fixed_norm", "unit-norm updates (Fig. 3b)"),),
    ),
    "nonlinear-regression": Experiment(
        name="nonlinear-regression",
        paper="Fig. 3g-k: nonlinear regression, 30-20-10-10 tanh network",
        defaults=nonlinear_regression.DEFAULTS,
        quick=nonlinear_regression.QUICK,
        run=nonlinear_regression.run,
        descriptions=nonlinear_regression.DESCRIPTIONS,
        units=nonlinear_regression.UNITS,
        figure=_nonlinear_figure,
        options=(Option("--fixed-norm", "fixed_norm", "unit-norm updates"),),
    ),
    "mnist": Experiment(
        name="mnist",
        paper="Fig. 4a: classification, 784-1000-10 tanh/softmax network, simulated DI",
        defaults=classification.DEFAULTS,
        quick=classification.QUICK,
        run=classification.run,
        descriptions=classification.DESCRIPTIONS,
        units=classification.UNITS,
        figure=lambda results: classification_figure(
            results["history"], results["models"], results["paper_test_error"],
            results["dataset"]["name"]),
        options=DATA_OPTIONS,
        checkpoints=True,
    ),
    "autoencoder": Experiment(
        name="autoencoder",
        paper="Fig. 4b-d: autoencoder 784-500-250-30-250-500-784, simulated DI",
        defaults=autoencoder.DEFAULTS,
        quick=autoencoder.QUICK,
        run=autoencoder.run,
        descriptions=autoencoder.DESCRIPTIONS,
        units=autoencoder.UNITS,
        figure=_autoencoder_figure,
        options=DATA_OPTIONS,
        checkpoints=True,
    ),
    "alpha-sweep": Experiment(
        name="alpha-sweep",
        paper="Suppl. Fig. 1: accuracy of the inversion against alpha",
        defaults=alpha_sweep.DEFAULTS,
        quick=alpha_sweep.QUICK,
        run=alpha_sweep.run,
        descriptions=alpha_sweep.DESCRIPTIONS,
        units=alpha_sweep.UNITS,
        figure=lambda results: alpha_sweep_figure(results["alphas"], results["layers"]),
    ),
    "timescales": Experiment(
        name="timescales",
        paper="Sec. 3.2/6.2: convergence against controller/system timescales",
        defaults=timescales.DEFAULTS,
        quick=timescales.QUICK,
        run=timescales.run,
        descriptions=timescales.DESCRIPTIONS,
        units=timescales.UNITS,
        figure=lambda results: timescales_figure(results["pair"], results["chains"],
                                                 results["config"]["tolerance"],
                                                 results.get("pid")),
    ),
    "spiking-inversion": Experiment(
        name="spiking-inversion",
        paper="Sec. 6 / issue 10: spiking populations (scn, lif) against Eq. (10)",
        defaults=spiking_inversion.DEFAULTS,
        quick=spiking_inversion.QUICK,
        run=spiking_inversion.run,
        descriptions=spiking_inversion.DESCRIPTIONS,
        units=spiking_inversion.UNITS,
        figure=lambda results: spiking_inversion_figure(
            results["scaling"], results["slopes"], results["tau_sweep"],
            results["duration_sweep"], results["silencing"]),
    ),
}


def get_experiment(name):
    """The registered experiment called ``name``."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise InputError(
            f"unknown experiment {name!r}; `dinv list` shows: {', '.join(EXPERIMENTS)}"
        ) from None


def _check_type(key, default, value):
    """An override must have the kind of value its default has; returns it (a
    whole-number float as an int)."""
    def is_number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if default is None:
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        # Counts (steps, samples, epochs, ...): whole numbers, the seed >= 0, the others >= 1.
        if not is_number(value):
            raise InputError(f"setting {key} must be a whole number, got {value!r}")
        return check_count(f"setting {key}", value, minimum=0 if key == "seed" else 1)
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


def make_config(experiment, quick=False, overrides=None):
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
    config["quick"] = bool(quick)
    return config
