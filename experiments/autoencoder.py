"""Bottleneck autoencoder 784-500-250-30-250-500-784 (Fig. 4b-d).

Protocol (paper Sec. 5.2, ``shared/PROTOCOLS.md``): nonlinearities tanh,
tanh, linear, tanh, tanh, linear; pixels / 255 as inputs and targets; squared
error; batches of 100 with summed updates, eta = 1e-6, weight decay; 25
epochs. Every model is trained twice, from a uniform U(-0.01, 0.01) and from
an orthogonal weight initialisation. NDI and DI use R-Init feedback
(random, stabilised) with alpha 0.01, 0.1 for the last (expanding) layer; DI
is simulated, one sequential chain of Brian2 circuits per backward pass.

Besides the training error curves (Fig. 4b) the run keeps test images with
their reconstructions (Fig. 4c) and a t-SNE map of the 30-d code of test
images (Fig. 4d, scikit-learn's TSNE).
"""

import numpy as np

from dinv.errors import InputError
from dinv.experiments import classification
from dinv.experiments.datasets import load_dataset
from dinv.experiments.models_spec import (
    DIRECT_SETTINGS,
    ModelSpec,
    SharedFeedback,
    learners_of,
    select_models,
)
from dinv.experiments.settings import CIRCUIT_DEFAULTS
from dinv.experiments.supervised import (
    Evaluation,
    forward_output,
    hidden_widths,
    summary,
    train_epochs,
)
from dinv.models.network import FeedforwardNetwork

R_ALPHA = (0.01, 0.01, 0.01, 0.01, 0.1)
"""Leaks of the five layer pairs (the last, expanding layer needs a larger one)."""

INITS = ("uniform", "orthogonal")

MODELS = tuple(
    spec
    for init in INITS
    for spec in (
        ModelSpec(f"BP {init}", "bp"),
        ModelSpec(f"FA {init}", "fa", feedback="random"),
        ModelSpec(f"PBP {init}", "pbp"),
        ModelSpec(f"NDI {init}", "ndi", R_ALPHA, "stable-random"),
        ModelSpec(f"DI {init}", "di", R_ALPHA, "stable-random"),
        # Beyond the paper, run when named: inversion of targets (R-Init, shared with
        # NDI and DI) and direct feedback control (Q_l = J_l^T).
        ModelSpec(f"NDI-T {init}", "ndi-targets", R_ALPHA, "stable-random", optional=True),
        ModelSpec(f"DI-T {init}", "di-targets", R_ALPHA, "stable-random", optional=True),
        ModelSpec(f"NDFC {init}", "ndfc", 0.0015, "transpose", optional=True),
        ModelSpec(f"DFC {init}", "dfc", 0.0015, "transpose", optional=True),
    )
)

DEFAULTS = {
    "seed": 0,
    "dataset": "mnist",
    "data_dir": None,
    "split_seed": 0,
    "hidden": [500, 250, 30, 250, 500],
    "epochs": 25,
    "batch_size": 100,
    "train_samples": None,
    "lr": 1e-6,
    "lr_scaling": "none",  # the paper's summed updates of batches of 100
    # The release decays by 1e-10 per update; here W -= eta (dW + lambda W).
    "weight_decay": 1e-4,
    "init_scale": 0.01,
    "models": None,
    **CIRCUIT_DEFAULTS,
    "stop_tol": None,
    "eval_every": 10000,
    "eval_train_samples": 10000,
    "checkpoint_every": 5000,
    "restabilise": True,
    "second_order_every": None,
    "second_order_damping": 0.1,
    # SSA descent on 500-wide layers takes hours (2r x 2r Lyapunov solves);
    # the spectral shift reaches the same target in seconds.
    "rinit": {"target": -0.01, "method": "shift"},
    # DI of targets and DFC (optional models): Meulemans et al. (2021)'s toy settings.
    **DIRECT_SETTINGS,
    "images": 8,
    "tsne_samples": 2000,
    "tsne_models": ["BP orthogonal", "DI uniform"],
}
QUICK = {"dataset": "digits", "hidden": [100, 50, 10, 50, 100], "epochs": 3,
         "batch_size": 50, "lr": 1e-4, "eval_every": 750, "eval_train_samples": 1500,
         "steps": 300, "tsne_samples": 300}

DESCRIPTIONS = {
    # The classification's settings but its spiking DI models' (the autoencoder has none)
    # and its choice of initial weights (the autoencoder's are its models' own).
    **{key: text for key, text in classification.DESCRIPTIONS.items()
       if key != "init" and not key.startswith("spiking_")},
    "init_scale": "half-width of the uniform initial weights (the orthogonal ones have none)",
    "hidden": "widths of the five hidden layers (encoder, code, decoder)",
    "eval_train_samples": "training images whose reconstruction error is measured",
    "images": "test images shown with their reconstructions (Fig. 4c)",
    "tsne_samples": "test images in the t-SNE maps of the code (Fig. 4d)",
    "tsne_models": "models whose code gets a t-SNE map",
}
"""One line per setting (``dinv run autoencoder --help``)."""

UNITS = {
    **classification.UNITS,
    "train_error": "dimensionless",
    "test_error": "dimensionless",
    "images": "dimensionless",
}
"""Unit of every quantity of results.json (recorded in it as ``units``): the errors are
the summed squared error per image of pixel intensities scaled to [0, 1]."""


def _networks(config, sizes):
    """The two initial networks (uniform, orthogonal) shared by the models."""
    nonlinearities = ["tanh", "tanh", "linear", "tanh", "tanh", "linear"]
    if len(sizes) != 7:
        raise InputError(f"hidden must list five widths (encoder, code, decoder), got "
                         f"{config['hidden']}")
    rng = np.random.default_rng(config["seed"])
    return {init: FeedforwardNetwork.create(sizes, nonlinearities, rng, init=init,
                                            scale=config["init_scale"])
            for init in INITS}


def _init_of(name):
    return next(init for init in INITS if name.endswith(init))


def run(config, progress=True, folder=None, resume=None, stop=None):
    """Train every model on reconstruction; record Fig. 4b-d.

    Returns
    -------
    dict
        ``models``, ``rules``, ``history`` (``train_error``: mean summed
        squared error per image on ``eval_train_samples`` training images;
        ``test_error`` on the test set), ``final``, ``images`` (test inputs
        and each model's reconstructions), ``tsne`` (2-d maps of the code of
        ``tsne_samples`` test images for ``tsne_models``, with labels),
        timings and re-stabilisation events. ``stop``: stop requests (see
        `dinv.experiments.supervised.train_epochs`; an interrupted run has no
        t-SNE maps).
    """
    specs = select_models(MODELS, config["models"])
    unknown = set(config["tsne_models"]) - {spec.name for spec in MODELS}
    if unknown:
        raise InputError(f"tsne_models: no models called {sorted(unknown)}; the models are "
                         f"{', '.join(spec.name for spec in MODELS)}")
    data = load_dataset(config["dataset"], config["data_dir"],
                        rng_seed=config.get("split_seed", 0))
    x_train, x_test = data.x_train / 255.0, data.x_test / 255.0
    sizes = [x_train.shape[1], *hidden_widths(config), x_train.shape[1]]
    bases = _networks(config, sizes)
    shared: dict[str, SharedFeedback] = {init: {} for init in INITS}
    learners = learners_of(specs, config, lambda spec: (bases[_init_of(spec.name)],
                                                        shared[_init_of(spec.name)]))
    eval_train = x_train[:int(config["eval_train_samples"])]

    def error(net, x):
        return float(np.mean(np.sum((forward_output(net, x) - x) ** 2, axis=1)))

    def measure(learners):
        return {"train_error": [error(lrn.net, eval_train) for lrn in learners],
                "test_error": [error(lrn.net, x_test) for lrn in learners]}

    evaluation = Evaluation(("train_error", "test_error"), measure, "train_error")
    trained = train_epochs("autoencoder", config, learners, (x_train, x_train), evaluation,
                           folder, resume, progress, stop)
    shown = x_test[:int(config["images"])]
    images = {"input": shown}
    for lrn in learners:
        images[lrn.name] = forward_output(lrn.net, shown, np.float64)
    return {**summary(specs, data, sizes, trained, evaluation.metrics),
            "image_shape": list(data.image_shape),
            "images": images,
            # An interrupted run leaves as soon as it can: no t-SNE maps.
            "tsne": ({"labels": [], "maps": {}} if "interrupted" in trained
                     else _tsne(config, learners, x_test, data.y_test))}


def _tsne(config, learners, x_test, labels):
    """2-d t-SNE maps of the 30-d code (layer 3) of test images."""
    from sklearn.manifold import TSNE

    count = min(int(config["tsne_samples"]), x_test.shape[0])
    maps = {}
    for lrn in learners:
        if lrn.name not in config["tsne_models"]:
            continue
        code = forward_output(lrn.net, x_test[:count], np.float64, layer=3)
        embedding = TSNE(n_components=2, init="pca", random_state=int(config["seed"]),
                         perplexity=min(30.0, (count - 1) / 3.0)).fit_transform(code)
        maps[lrn.name] = embedding
    return {"labels": labels[:count], "maps": maps}


def figure(results):
    """Fig. 4b-d: reconstruction error over training, reconstructions, t-SNE of the codes."""
    from dinv.analysis.figures import autoencoder_figure

    config = results["config"]
    note = None
    if config.get("quick"):
        note = (f"--quick: a smoke test ({config['dataset']}, {config['epochs']} epochs, hidden "
                f"{'-'.join(map(str, config['hidden']))}, batches of {config['batch_size']}); "
                "the paper's protocol is 25 epochs of MNIST, 500-250-30-250-500")
    return autoencoder_figure(results["history"], results["models"], results["images"],
                              results["image_shape"], results["tsne"],
                              results["dataset"]["name"], note=note)
