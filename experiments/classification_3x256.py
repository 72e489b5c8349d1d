"""Classification with the network of Deep Feedback Control: 784-256-256-256-10.

Meulemans et al. (2021, "Credit assignment in neural networks through deep
feedback control", NeurIPS) compare their rule (DFC) with BP on MNIST and
Fashion-MNIST with three tanh hidden layers of 256 units and a softmax output,
Xavier-normal initial weights, trained with Adam on batches of 128 for 100
epochs (the test error at the epoch of best validation; their released
configurations). This experiment trains that network with the rules of this
package by the protocol of `dinv.experiments.classification` (stochastic
gradient descent, cross-entropy, z-scored inputs, weight decay, DI simulated
on every batch), and records the published errors of the data set beside its
own (`PUBLISHED`).

The models (`MODELS`): BP, FA, NDI and DI at alpha 0.01 with Tr-Init
feedback (B = -W^T), the inversion of targets (NDI-T, DI-T) and direct
feedback control (NDFC, DFC) with the settings of DFC's MNIST configuration
(`DEFAULTS`). PBP is left out: on square layers it is W^-1, and the 256 x 256
inverses of training blow its errors up. A backward pass of DI settles the circuits of the
three layer pairs one after the other (the sequential chain, paper Fig. 2a).
Another rule enters the comparison as one more entry of `MODELS` (its published
numbers, if any, in `PUBLISHED` under its rule's name in capitals).
"""

from typing import Any

from dinv.experiments import classification
from dinv.experiments.classification import classification_figure_of, train_classifier
from dinv.experiments.models_spec import ModelSpec

NAME = "mnist-3x256"

MODELS = (
    ModelSpec("BP", "bp"),
    ModelSpec("FA", "fa", feedback="random"),
    ModelSpec("NDI a=0.01", "ndi", 0.01, "transpose"),
    ModelSpec("DI a=0.01", "di", 0.01, "transpose"),
    ModelSpec("NDI-T a=0.01", "ndi-targets", 0.01, "transpose"),
    ModelSpec("DI-T a=0.01", "di-targets", 0.01, "transpose"),
    ModelSpec("NDFC a=0.00025", "ndfc", 0.00025, "transpose"),
    ModelSpec("DFC a=0.00025", "dfc", 0.00025, "transpose"),
)
"""The rules compared on the network: Tr-Init feedback for the inversions of errors and of
targets, Q = J^T for direct feedback control (DFC with fixed feedback, at the leak of
Meulemans et al.'s MNIST configuration of it); each simulated rule beside its exact steady
state (NDI, NDI-T, NDFC)."""

PUBLISHED = {
    "mnist": ({"BP": 1.83, "DFC": 2.20},
              "Deep Feedback Control (Meulemans et al. 2021), MNIST (60000 / 10000), "
              "784-256-256-256-10, Adam, best of 100 epochs"),
    "fashion-mnist": ({"BP": 10.60, "DFC": 11.30},
                      "Deep Feedback Control (Meulemans et al. 2021), Fashion-MNIST "
                      "(60000 / 10000), 784-256-256-256-10, Adam, best of 100 epochs"),
}
"""Published test errors (%) of the network by data set: 100 minus the test accuracies of
Meulemans et al. 2021 (MNIST: BP 98.17 %, DFC 97.80 %; Fashion-MNIST: BP 89.40 %,
DFC 88.70 %), with where they come from."""

FULL_SET = {"mnist-5k": "mnist"}
"""Data sets whose published numbers are those of another (a subset: the full set's)."""

DEFAULTS = {
    # The classification's settings but its spiking DI models' (not trained here).
    **{key: value for key, value in classification.DEFAULTS.items()
       if not key.startswith("spiking_")},
    "hidden": [256, 256, 256],
    "init": "xavier-normal",
    # Batches of 10 (rate 1e-3 / sqrt(10) for their summed update): a simulated DI pass
    # through 256-wide layers costs about as much per sample at batch 10 as at 100, and a
    # 4000-digit training set then still gets 400 updates an epoch.
    "batch_size": 10,
    # DI of targets and DFC: Meulemans et al. (2021)'s MNIST configuration of DFC with fixed
    # feedback (configs/configs_mnist/mnist_fixed_dfc.py of their release): k_p 2,
    # tau_v / tau_u 0.2, dt_di 0.02 tau_u (0.1 tau_v), tmax_di 500 steps, target
    # stepsize 0.1 (its leak 0.00025 is the models').
    "dfc_kp": 2.0,
    "dfc_tau_ratio": 0.2,
    "dfc_dt": 0.1,
    "dfc_steps": 500,
    "target_step": 0.1,
    # Every model's update against BP and Gauss-Newton, at the first batch and every
    # 4000 samples (each epoch of mnist-5k), damping 0.1 (Meulemans et al.'s).
    "second_order_every": 4000,
}
"""The protocol of `dinv.experiments.classification` (10 epochs, rate 1e-3, weight decay)
on the network of DFC (its widths and initial weights), in batches of 10."""

# Settles long enough for the small quick network's slow modes (DI and DI-T 1000 steps,
# DFC 1500).
QUICK = {"dataset": "digits", "hidden": [32, 32, 32], "epochs": 2, "train_samples": 300,
         "batch_size": 10, "lr": 1e-2, "eval_every": 150, "steps": 1000, "dfc_steps": 1500,
         "second_order_every": 600}

DESCRIPTIONS = {key: text for key, text in classification.DESCRIPTIONS.items()
                if key in DEFAULTS}
"""One line per setting (``dinv run mnist-3x256 --help``)."""

UNITS = classification.UNITS
"""Unit of every quantity of results.json (recorded in it as ``units``)."""


def published(dataset: str) -> tuple[dict[str, float], str]:
    """The published test errors (%) and their source for ``dataset`` (of its full set
    for a subset); none for a data set the publication did not use."""
    full = FULL_SET.get(dataset, dataset)
    errors, source = PUBLISHED.get(full, ({}, f"no published numbers for {dataset}"))
    if full != dataset:
        source = f"{source}; this run: {dataset}, a subset"
    return errors, source


def run(config: dict[str, Any], progress: bool = True, folder: Any = None,
        resume: Any = None, stop: Any = None) -> dict[str, Any]:
    """Train every model of `MODELS` on the network; see
    `dinv.experiments.classification.train_classifier`."""
    return train_classifier(NAME, MODELS, published(config["dataset"]), config, progress,
                            folder, resume, stop)


def figure(results: dict[str, Any]) -> Any:
    """Test error over training, beside the published final errors."""
    return classification_figure_of(results, "classification (network of DFC)")
