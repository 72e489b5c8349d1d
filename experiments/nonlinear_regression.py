"""Nonlinear regression with a 30-20-10-10 tanh network (Fig. 3g-k).

Protocol (paper Sec. 5.1, ``shared/PROTOCOLS.md``): a teacher network of the
same shape (tanh, tanh, linear; weights and biases U(-0.01, 0.01)) maps inputs
x ~ N(0, I) to targets; one online pass over the data set in random order;
students start from U(-0.01, 0.01) weights and biases shared by all models;
eta = 1e-2; hidden errors clipped at norm 1. Every rule multiplies by g'
exactly once (Eq. 3), unlike the authors' script, which applies g' twice to
BP, FA, PBP and NDI. SLDI uses B = -(W_3 W_2)^T and the nonlinear controller.

Beyond the paper, with ``--spiking`` (setting ``spiking_models``) or when
``--models`` names them: ``DI-SCN a=0.1`` and ``DI-LIF a=0.1`` settle both layer
pairs of the backward pass (20 <- 10 <- 10, gains g'(a_l) on the
pathways) with spiking populations, beside ``NDI a=0.1``, their exact
counterpart, as in `dinv.experiments.linear_regression` (settings
``spiking_*``, `dinv.experiments.models_spec.SPIKING_SETTINGS`); each trains
in a pass of its own on the first ``spiking_updates`` updates (1000 of the
9999; ``--quick``: 100).
"""

from typing import Any

import numpy as np

from dinv.experiments import linear_regression
from dinv.experiments.models_spec import SPIKING_MODELS, TARGET_MODELS, ModelSpec
from dinv.experiments.regression import RegressionRun, protocol_run
from dinv.models.network import FeedforwardNetwork

PAPER_MODELS = linear_regression.RATE_MODELS + (
    ModelSpec("SLDI a=0.01", "sldi", 0.01, "transpose"),
    ModelSpec("SLDI a=0.001", "sldi", 0.001, "transpose"),
    ModelSpec("SLDI R-Init a=0.01", "sldi", 0.01, "stable-random"),
)
"""The paper's models of Fig. 3g-k, the default run."""

MODELS = PAPER_MODELS + TARGET_MODELS + SPIKING_MODELS

DEFAULTS = {
    **{k: v for k, v in linear_regression.DEFAULTS.items() if k != "fixed_norm_samples"},
    "sizes": [30, 20, 10, 10],
    "samples": 10000,
    "teacher_scale": 0.01,
    "clip_hidden": 1.0,
    "error_dtype": "float32",
    # The spiking DI models train on the first 1000 updates (about 0.1 s each).
    "spiking_updates": 1000,
}
QUICK = {"samples": 300, "spiking_updates": 100}

DESCRIPTIONS = {
    **{k: v for k, v in linear_regression.DESCRIPTIONS.items() if k != "fixed_norm_samples"},
    "teacher_scale": "teacher weights and biases U(-teacher_scale, teacher_scale)",
}
"""One line per setting (``dinv run nonlinear-regression --help``)."""

UNITS = linear_regression.UNITS
"""Unit of every quantity of results.json (as `linear_regression.UNITS`)."""
NAME = "nonlinear regression"
"""Label of the progress bar."""


def prepare(config: dict[str, Any]) -> RegressionRun:
    """The data, initial network and generator of a run: the arguments of
    `dinv.experiments.regression.train_regression` after its name."""
    rng = np.random.default_rng(config["seed"])
    sizes = linear_regression.check_sizes(config["sizes"])
    nonlinearities = ["tanh"] * (len(sizes) - 2) + ["linear"]
    teacher = FeedforwardNetwork.create(sizes, nonlinearities, rng,
                                        scale=config["teacher_scale"],
                                        bias_scale=config["teacher_scale"])
    X = rng.standard_normal((config["samples"], sizes[0]))
    Y = teacher.forward(X).output
    base = FeedforwardNetwork.create(sizes, nonlinearities, rng, scale=config["init_scale"],
                                     bias_scale=config["init_scale"])
    return config, linear_regression.models(config, PAPER_MODELS, MODELS), X, Y, base, rng


run = protocol_run(NAME, prepare)
"""Train every model and record the curves of Fig. 3g-k (`train_regression`'s results)."""


def figure(results):
    """Fig. 3g-k: NMSE, stability, angles of DI and SLDI to NDI, angle of B to -W^T."""
    from dinv.analysis.figures import Panel, regression_figure

    panels = (
        Panel("stability (DI: per layer; SLDI, DFC: loop) (paper Fig. 3h)", "eigenvalue",
              "max real eigenvalue", linear_regression.SIMULATED | {"sldi"}, zero_line=True),
        Panel("angle(delta_DI, delta_NDI) (Fig. 3i)", "angle_ndi", "angle (deg)",
              linear_regression.SIMULATED, log=True, median=True),
        Panel("angle(B, -W^T) (Fig. 3j; DFC: Q, J^T)", "angle_B", "angle (deg)",
              linear_regression.FEEDBACK),
        Panel("angle(delta_SLDI, delta_NDI) (Fig. 3k)", "angle_ndi", "angle (deg)",
              frozenset({"sldi"}), log=True, median=True),
    )
    return regression_figure(results["nmse"], results["curves"], results["rules"], panels,
                             "NMSE (paper Fig. 3g)")
