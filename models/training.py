"""Training: backward passes of many models at once and Eq. (2) updates.

A training step runs the forward pass of every `Learner`, maps each output
error down through the layers with the learner's backward rule, and applies

    W_l <- W_l - eta * (delta_l^T h_{l-1} + lambda W_l),   b_l <- b_l - eta * sum(delta_l)

(Eq. 2, summed over the batch, with weight decay lambda). Learners that share
a rule propagate their errors together, as one stack: all DI learners of a
step settle their circuits in a single Brian2 run per layer.
"""

from dataclasses import dataclass, field

import numpy as np

from circuits.errors import InputError
from models.rules import FEEDBACK_RULES, get_rule


@dataclass
class Learner:
    """One model being trained.

    Attributes
    ----------
    name : str
        Label used in results and figures.
    rule : str
        Backward rule ('bp', 'fa', 'pbp', 'ndi', 'di').
    net : FeedforwardNetwork
        The network; its weights change in place during training.
    feedback : list
        ``feedback[l]`` (shape (d_l, d_{l+1}), 0-based) carries errors from
        weight layer l+1 down to layer l; one per weight layer but the first.
        Empty for rules without feedback.
    alpha : float
        Controller leak (NDI, DI).
    """

    name: str
    rule: str
    net: object
    feedback: list = field(default_factory=list)
    alpha: float = 0.0

    def __post_init__(self):
        get_rule(self.rule)
        if self.rule in FEEDBACK_RULES and len(self.feedback) != self.net.depth - 1:
            raise InputError(
                f"learner {self.name!r} ({self.rule}) needs {self.net.depth - 1} feedback "
                f"matrices, got {len(self.feedback)}"
            )
        if not np.isfinite(self.alpha) or self.alpha < 0:
            raise InputError(f"learner {self.name!r}: alpha must be >= 0, got {self.alpha}")


@dataclass(frozen=True)
class UpdateConfig:
    """How errors become weight updates.

    Attributes
    ----------
    lr : float
        Learning rate eta > 0.
    weight_decay : float
        Weight decay lambda >= 0.
    fixed_norm : bool
        Scale each layer's update (weights and bias together) to unit
        Frobenius norm before the learning rate (Fig. 3b).
    clip_hidden : float or None
        Largest norm of a hidden error vector (per sample); longer ones are
        scaled down to it before being propagated further.
    circuit : dict
        Options for `circuits.settle_layer` (DI only).
    """

    lr: float
    weight_decay: float = 0.0
    fixed_norm: bool = False
    clip_hidden: float = None
    circuit: dict = field(default_factory=dict)

    def __post_init__(self):
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"lr must be a positive number, got {self.lr}")
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InputError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.clip_hidden is not None and not self.clip_hidden > 0:
            raise InputError(f"clip_hidden must be positive or None, got {self.clip_hidden}")


@dataclass
class Step:
    """What one training step computed, per learner.

    Attributes
    ----------
    forward : list of ForwardPass
        Forward passes before the update.
    deltas : list of list of ndarray
        ``deltas[k][l]``: error delta_{l+1} of learner k, (batch, d_{l+1}).
    """

    forward: list
    deltas: list


def clip_rows(delta, max_norm):
    """Scale rows of ``delta`` longer than ``max_norm`` down to that norm."""
    norms = np.linalg.norm(delta, axis=-1, keepdims=True)
    return delta * np.minimum(1.0, max_norm / np.maximum(norms, np.finfo(float).tiny))


def backward(learners, forwards, output_deltas, config):
    """Errors of every layer for every learner (Eq. 3 with the learner's rule).

    Parameters
    ----------
    learners : list of Learner
    forwards : list of ForwardPass
    output_deltas : list of ndarray
        delta_L per learner, (batch, d_L).
    config : UpdateConfig

    Returns
    -------
    list of list of ndarray
        ``deltas[k][l]`` as in `Step`.
    """
    depth = learners[0].net.depth
    deltas = [[None] * (depth - 1) + [d] for d in output_deltas]
    by_rule = {}
    for k, learner in enumerate(learners):
        by_rule.setdefault(learner.rule, []).append(k)
    for layer in range(depth - 1, 0, -1):
        for rule_name, members in by_rule.items():
            W = np.stack([learners[k].net.weights[layer] for k in members])
            B = (np.stack([learners[k].feedback[layer - 1] for k in members])
                 if rule_name in FEEDBACK_RULES else None)
            delta = np.stack([deltas[k][layer] for k in members])
            alpha = np.array([learners[k].alpha for k in members])
            options = config.circuit if rule_name == "di" else {}
            raw = get_rule(rule_name)(W, B, delta, alpha, **options)
            for j, k in enumerate(members):
                g = learners[k].net.nonlinearities[layer - 1]
                d = raw[j] * g.derivative(forwards[k].a[layer - 1])
                if config.clip_hidden is not None:
                    d = clip_rows(d, config.clip_hidden)
                deltas[k][layer - 1] = d
    return deltas


def weight_updates(net, forward, deltas, config):
    """Eq. (2) updates (dW_l, db_l) of one network, before the learning rate."""
    updates = []
    for l, delta in enumerate(deltas):
        dW = delta.T @ forward.h[l]
        db = delta.sum(axis=0) if net.biases is not None else None
        if config.fixed_norm:
            norm = np.sqrt(np.sum(dW**2) + (0.0 if db is None else np.sum(db**2)))
            if norm > 0:
                dW = dW / norm
                db = None if db is None else db / norm
        if config.weight_decay:
            dW = dW + config.weight_decay * net.weights[l]
        updates.append((dW, db))
    return updates


def train_step(learners, x, t, config):
    """One step of every learner on the batch (x, t); weights change in place.

    All updates are computed before any is applied, so an error (bad input,
    a diverging circuit) leaves every network as it was.

    Parameters
    ----------
    learners : list of Learner
        Models of one architecture.
    x : ndarray, shape (batch, d_0)
    t : ndarray, shape (batch, d_L)
    config : UpdateConfig

    Returns
    -------
    Step
    """
    if not learners:
        raise InputError("train_step needs at least one learner")
    forwards = [learner.net.forward(x) for learner in learners]
    output_deltas = [lrn.net.output_delta(f, t) for lrn, f in zip(learners, forwards)]
    deltas = backward(learners, forwards, output_deltas, config)
    all_updates = [weight_updates(lrn.net, f, d, config)
                   for lrn, f, d in zip(learners, forwards, deltas)]
    for learner, updates in zip(learners, all_updates):
        if not all(np.all(np.isfinite(dW)) for dW, _ in updates):
            raise FloatingPointError(
                f"learner {learner.name!r} produced non-finite weight updates; "
                "lower the learning rate or clip the errors (clip_hidden)"
            )
    for learner, updates in zip(learners, all_updates):
        net = learner.net
        for l, (dW, db) in enumerate(updates):
            net.weights[l] -= config.lr * dW
            if db is not None:
                net.biases[l] -= config.lr * db
    return Step(forwards, deltas)
