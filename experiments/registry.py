"""Registry of paper experiments: name -> protocol, quick overrides, figure."""

from dataclasses import dataclass, field
from typing import Callable

from analysis.figures import regression_figure
from circuits.errors import InputError
from experiments import linear_regression


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
        ``run(config, progress) -> dict`` of results.
    figure : callable
        ``figure(results) -> matplotlib Figure``.
    options : tuple of Option
        Extra command-line flags.
    """

    name: str
    paper: str
    defaults: dict
    quick: dict
    run: Callable
    figure: Callable
    options: tuple = field(default_factory=tuple)


def _regression_figure(results):
    fixed = results["config"]["fixed_norm"]
    dynamic = [name for name, rule in results["rules"].items() if rule == "di"]
    return regression_figure(
        results["nmse"], results["curves"], dynamic,
        "b  NMSE, fixed-norm updates" if fixed else "a  NMSE",
    )


EXPERIMENTS = {
    "linear-regression": Experiment(
        name="linear-regression",
        paper="Fig. 3a-f: linear regression, 30-20-10 linear network",
        defaults=linear_regression.DEFAULTS,
        quick=linear_regression.QUICK,
        run=linear_regression.run,
        figure=_regression_figure,
        options=(Option("--fixed-norm", "fixed_norm", "unit-norm updates (Fig. 3b)"),),
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
        config[key] = value
    config["quick"] = bool(quick)
    return config
