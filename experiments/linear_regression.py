"""Linear regression with a 30-20-10 linear network (Fig. 3a-f).

Protocol (paper Sec. 5.1, ``shared/PROTOCOLS.md``): a teacher T ~ U(-1, 1) maps
inputs x ~ N(0, I) to targets T x; one pass over a fixed set of samples in
random order, one online update per sample (the first sample only measures);
weights U(-0.01, 0.01) shared by all models; eta = 1e-2; hidden errors clipped
at norm 10; ``fixed_norm`` scales each layer's update to unit norm (Fig. 3b).
"""

import numpy as np
from tqdm import tqdm

from analysis.metrics import matrix_angle, nmse, vector_angle
from analysis.stability import jacobian_abscissa
from experiments.models_spec import ModelSpec, select_models
from models.network import FeedforwardNetwork
from models.rules import ndi, pbp
from models.training import UpdateConfig, train_step

MODELS = (
    ModelSpec("BP", "bp"),
    ModelSpec("FA", "fa", feedback="random"),
    ModelSpec("PBP", "pbp"),
    ModelSpec("NDI a=0.01", "ndi", 0.01, "transpose"),
    ModelSpec("NDI a=0.001", "ndi", 0.001, "transpose"),
    ModelSpec("DI a=0.01", "di", 0.01, "transpose"),
    ModelSpec("DI a=0.001", "di", 0.001, "transpose"),
)

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
    "steps": 1000,
    "dt": 0.5,
}
QUICK = {"samples": 300, "fixed_norm_samples": 300}


def run(config, progress=True):
    """Train every model and record the curves of Fig. 3a-f.

    Returns
    -------
    dict
        ``models`` (names), ``rules`` (rule per model), ``error`` (summed squared error over the data set
        before training and after every update, per model), ``nmse`` (the
        same normalised by the largest value), ``final`` (final/initial error
        and final NMSE per model), and per-iteration ``curves`` for the
        inversion models: ``eigenvalue`` (largest real part of the circuit
        Jacobian), ``angle_B`` (angle between B and -W^T), ``angle_ndi`` and
        ``angle_pbp`` (angle between the model's hidden error and the NDI and
        PBP errors computed from the same weights).
    """
    rng = np.random.default_rng(config["seed"])
    sizes = config["sizes"]
    n = config["fixed_norm_samples"] if config["fixed_norm"] else config["samples"]
    teacher = rng.uniform(-1.0, 1.0, size=(sizes[-1], sizes[0]))
    X = rng.standard_normal((n, sizes[0]))
    Y = X @ teacher.T
    base = FeedforwardNetwork.create(
        sizes, ["linear"] * (len(sizes) - 1), rng, scale=config["init_scale"], bias=False
    )
    specs = select_models(MODELS, config["models"])
    learners = [spec.learner(base, rng) for spec in specs]
    update = UpdateConfig(
        lr=config["lr"],
        fixed_norm=config["fixed_norm"],
        clip_hidden=config["clip_hidden"],
        circuit={"steps": config["steps"], "dt": config["dt"], "on_unsettled": "ignore"},
    )
    errors = np.empty((len(learners), n))
    errors[:, 0] = _errors(learners, X, Y)
    inverting = [k for k, s in enumerate(specs) if s.rule in ("ndi", "di")]
    curves = {key: np.full((len(inverting), n - 1), np.nan)
              for key in ("eigenvalue", "angle_B", "angle_ndi", "angle_pbp")}
    order = rng.permutation(n)[1:]
    for it, i in enumerate(tqdm(order, desc="linear regression", disable=not progress)):
        before = [(learners[k].net.weights[-1].copy(), learners[k].feedback[-1].copy())
                  for k in inverting]
        step = train_step(learners, X[i:i + 1], Y[i:i + 1], update)
        errors[:, it + 1] = _errors(learners, X, Y)
        for row, k in enumerate(inverting):
            W, B = before[row]
            learner = learners[k]
            hidden = step.deltas[k][-2][0]
            output = step.deltas[k][-1]
            curves["eigenvalue"][row, it] = jacobian_abscissa(W, B, learner.alpha)
            curves["angle_B"][row, it] = matrix_angle(learner.feedback[-1], -learner.net.weights[-1].T)
            curves["angle_ndi"][row, it] = vector_angle(hidden, ndi(W, B, output, learner.alpha)[0])
            curves["angle_pbp"][row, it] = vector_angle(hidden, pbp(W, None, output, 0.0)[0])
    names = [s.name for s in specs]
    normalised = nmse(dict(zip(names, errors)))
    return {
        "models": names,
        "rules": {s.name: s.rule for s in specs},
        "error": dict(zip(names, errors)),
        "nmse": normalised,
        "final": {
            name: {"error_ratio": float(err[-1] / err[0]), "nmse": float(normalised[name][-1])}
            for name, err in zip(names, errors)
        },
        "curves": {key: dict(zip((names[k] for k in inverting), value))
                   for key, value in curves.items()},
        "median_angle_ndi": {names[k]: float(np.nanmedian(curves["angle_ndi"][row]))
                             for row, k in enumerate(inverting)},
    }


def _errors(learners, X, Y):
    """Summed squared error of every learner on the whole data set."""
    return np.array([np.sum((lrn.net.forward(X).output - Y) ** 2) for lrn in learners])
