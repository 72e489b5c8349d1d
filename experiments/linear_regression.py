"""Linear regression with a 30-20-10 linear network (Fig. 3a-f).

Protocol (paper Sec. 5.1, ``shared/PROTOCOLS.md``): a teacher T ~ U(-1, 1) maps
inputs x ~ N(0, I) to targets T x; one pass over a fixed set of samples in
random order, one online update per sample (the first sample only measures);
weights U(-0.01, 0.01) shared by all models; eta = 1e-2; hidden errors clipped
at norm 10; ``fixed_norm`` scales each layer's update to unit norm (Fig. 3b).

Beyond the paper, with ``--spiking`` (setting ``spiking_models``) or when
``--models`` names them: ``DI-SCN a=0.1`` and ``DI-LIF a=0.1`` train with
spiking populations (both system and controller) in the DI circuit, their
settled (time-averaged) readouts as the backward pass, beside ``NDI a=0.1``,
their exact counterpart. Without them the run is the paper's nine models, a
few seconds of training; the spiking models add tens of milliseconds per
update each (``benchmarks/spiking_speed.py``). Settings (``spiking_*``,
`dinv.experiments.models_spec.SPIKING_SETTINGS`): alpha 0.1 and a fast
controller (tau_c 1 ms, tau_s 10 ms), so that the slowest mode of a circuit
with the tiny initial weights, rate alpha / (tau_c + alpha tau_s), takes
20 ms, and a settle of 100 ms (5 of them) costs 2500 steps (scn) or 1000 (lif);
radii per sample from the closed form (`chain_radii`). Each spiking model
trains in a pass of its own over the same samples in the same order, on the
first ``spiking_updates`` of them (default None: all; ``--quick``: 100), and its
errors are normalised like the others'.
"""

from typing import Any

import numpy as np

from dinv.errors import InputError
from dinv.experiments.models_spec import (
    DIRECT_DESCRIPTIONS,
    DIRECT_SETTINGS,
    SPIKING_DESCRIPTIONS,
    SPIKING_MODELS,
    SPIKING_SETTINGS,
    TARGET_MODELS,
    ModelSpec,
    paper_models,
)
from dinv.experiments.regression import RegressionRun, protocol_run
from dinv.experiments.settings import (
    CIRCUIT_DEFAULTS,
    CIRCUIT_DESCRIPTIONS,
    RINIT_DESCRIPTION,
    STOP_TOL_DESCRIPTION,
)
from dinv.models.network import FeedforwardNetwork

RATE_MODELS = paper_models((0.01, 0.001))
"""The paper's models of Fig. 3a-f (also those of the nonlinear regression)."""

MODELS = RATE_MODELS + SPIKING_MODELS + TARGET_MODELS

SIMULATED = frozenset({"di", "di-targets", "dfc"})
"""Rules whose curves of the circuit the figure draws."""
FEEDBACK = frozenset({"di", "ndi", "di-targets", "ndi-targets", "dfc", "ndfc"})
"""Rules whose feedback angle the figure draws (DFC: angle(Q_l, J_l^T))."""

DEFAULTS = {
    "seed": 0,
    "sizes": [30, 20, 10],
    "samples": 2000,
    "fixed_norm_samples": 4000,
    "lr": 1e-2,
    "init_scale": 0.01,
    "clip_hidden": 10.0,
    "fixed_norm": False,
    "models": None,
    "iterations": None,
    **CIRCUIT_DEFAULTS,
    # The paper runs every settle for all its steps; a tolerance ends each settle early
    # (its effect on the results: docs, Speed).
    "stop_tol": None,
    "parallel": True,
    "error_dtype": "float64",
    "restabilise": True,
    # R-Init: SSA gradient descent from random feedback. Each step's SSA gradient
    # comes from one eigendecomposition of the Jacobian ('eigen'), the same
    # gradient as the paper's Lyapunov solves to rounding (the R-Init feedback
    # agrees to 1e-14) at a tenth of the cost: 0.06 s per run instead of 0.6 s.
    "rinit": {"target": -0.01, "lr": 0.5, "max_iters": 2000, "min_iters": 100,
              "solver": "eigen"},
    # Re-stabilisation during training: the R-Init descent (``rinit``) with these
    # options on top, from the current feedback, with eigendecompositions, and no
    # minimum of steps (it ends as soon as the target abscissa is reached). The
    # spectral shift (method "shift") is cheaper still, but early in training W's
    # tiny singular values make the shifted B so large that the Euler circuit
    # diverges.
    "repair": {"min_iters": 0, "solver": "eigen"},
    # Spiking DI models (population 'scn' or 'lif'): trained with --spiking (or when
    # --models names them); neurons, time constants, steps, radii, and the updates they
    # train on (see dinv.experiments.models_spec): all of them in the full protocol, the
    # first 100 in --quick.
    "spiking_models": False,
    **SPIKING_SETTINGS,
    # DI of targets and DFC (optional models): Meulemans et al. (2021)'s toy settings.
    **DIRECT_SETTINGS,
}
QUICK = {"samples": 300, "fixed_norm_samples": 300, "spiking_updates": 100}

DESCRIPTIONS = {
    **CIRCUIT_DESCRIPTIONS,
    "sizes": "layer widths of the student and the teacher, input first",
    "samples": "size of the data set: one online pass, one update per sample after the "
               "first (which only measures)",
    "fixed_norm_samples": "size of the data set with fixed_norm (Fig. 3b)",
    "lr": "learning rate eta of the online updates",
    "init_scale": "initial weights U(-init_scale, init_scale), shared by all models",
    "clip_hidden": "hidden errors clipped to this norm",
    "fixed_norm": "scale every layer's update to unit Frobenius norm (Fig. 3b)",
    "iterations": "stop after this many updates (null: one pass over the data set)",
    "parallel": "run the closed-form models, curves and errors in a companion process",
    "error_dtype": "precision of the forward pass of the data-set error: 'float64' or "
                   "'float32'",
    "restabilise": "re-stabilise DI/SLDI feedback whenever a circuit turns unstable",
    "stop_tol": STOP_TOL_DESCRIPTION,
    "rinit": RINIT_DESCRIPTION,
    "repair": "options over rinit for re-stabilisation during training",
    "spiking_models": "also train DI with spiking populations (DI-SCN a=0.1, DI-LIF a=0.1) "
                      "and NDI a=0.1, their exact counterpart (--spiking); --models may "
                      "name them too",
    **SPIKING_DESCRIPTIONS,
    **DIRECT_DESCRIPTIONS,
}
"""One line per setting (``dinv run linear-regression --help``)."""

UNITS = {
    "error": "dimensionless",
    "nmse": "dimensionless",
    "error_ratio": "dimensionless",
    "eigenvalue": "1/tau_system",
    "angle_B": "degrees",
    "angle_ndi": "degrees",
    "angle_pbp": "degrees",
    "median_angle_ndi": "degrees",
    "updates": "updates",
    "wall_seconds": "s",
    "angle_ndi_deg": "degrees",
    "seconds_per_update": "s",
    "seconds": "s",
    "tau_system_ms": "ms",
    "tau_controller_ms": "ms",
}
"""Unit of every quantity of results.json (recorded in it as ``units``): ``error`` is the
summed squared error over the data set, ``nmse`` the error over the largest of any model,
``eigenvalue`` the Jacobian's spectral abscissa (time in units of tau_system)."""
NAME = "linear regression"
"""Label of the progress bar."""


def check_sizes(sizes):
    """``sizes`` (input, hidden layers, output), refused with the fix when there is no
    hidden layer: the inversion models and their curves send errors into one."""
    if len(sizes) < 3:
        raise InputError(f"sizes needs at least three widths (input, a hidden layer, "
                         f"output), got {list(sizes)}; e.g. --set sizes=[30,20,10]")
    return sizes


def prepare(config: dict[str, Any]) -> RegressionRun:
    """The data, initial network and generator of a run: the arguments of
    `dinv.experiments.regression.train_regression` after its name."""
    rng = np.random.default_rng(config["seed"])
    sizes = check_sizes(config["sizes"])
    n = config["fixed_norm_samples"] if config["fixed_norm"] else config["samples"]
    teacher = rng.uniform(-1.0, 1.0, size=(sizes[-1], sizes[0]))
    X = rng.standard_normal((n, sizes[0]))
    Y = X @ teacher.T
    base = FeedforwardNetwork.create(
        sizes, ["linear"] * (len(sizes) - 1), rng, scale=config["init_scale"], bias=False
    )
    return config, models(config), X, Y, base, rng


def models(config: dict, paper: tuple[ModelSpec, ...] = RATE_MODELS,
           everything: tuple[ModelSpec, ...] | None = None) -> tuple[ModelSpec, ...]:
    """The models a regression run may train: the paper's (``paper``, default
    `RATE_MODELS`), and all of ``everything`` (default `MODELS`: with the spiking ones,
    and the optional ones, which run only when named) with the setting
    ``spiking_models`` (``--spiking``) or when ``models`` names models."""
    if config.get("spiking_models") or config.get("models") is not None:
        return MODELS if everything is None else everything
    return paper


run = protocol_run(NAME, prepare)
"""Train every model and record the curves of Fig. 3a-f (`train_regression`'s results)."""


def figure(results):
    """Fig. 3a-f: NMSE, stability, angles to NDI, to -W^T and to PBP."""
    from dinv.analysis.figures import Panel, regression_figure

    fixed = results["config"]["fixed_norm"]
    panels = (
        Panel("stability of DI: Jacobian abscissa (paper Fig. 3c)", "eigenvalue",
              "max real eigenvalue", SIMULATED, zero_line=True),
        Panel("angle(delta_DI, delta_NDI) (Fig. 3d)", "angle_ndi",
              "angle (deg; below 1e-6, rounding: drawn at 1e-6)", SIMULATED, log=True),
        Panel("angle(B, -W^T) (Fig. 3e; DFC: Q, J^T)", "angle_B", "angle (deg)", FEEDBACK),
        Panel("angle(delta_DI, delta_PBP) (Fig. 3f)", "angle_pbp", "angle (deg)",
              SIMULATED, median=True),
    )
    return regression_figure(results["nmse"], results["curves"], results["rules"], panels,
                             "NMSE, fixed-norm updates (paper Fig. 3b)" if fixed
                             else "NMSE (paper Fig. 3a)")
