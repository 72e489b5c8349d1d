"""Training: backward passes of many models at once and Eq. (2) updates.

A training step runs the forward pass of every `Learner`, maps each output
error down through the layers with the learner's backward rule, and applies

    W_l <- W_l - eta * (delta_l^T h_{l-1} + lambda W_l),   b_l <- b_l - eta * sum(delta_l)

(Eq. 2, summed over the batch, with weight decay lambda). Learners that share
a rule propagate their errors together, as one stack: all DI learners of a
step settle their circuits in a single Brian2 run per layer.
"""

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.linalg.blas import dgemm

from dinv.circuits.chains import ChainProblem, ChainSpec, settle_chains
from dinv.circuits.options import SettleOptions
from dinv.circuits.spiking import chain_radii, direct_radii, target_radii
from dinv.errors import InputError
from dinv.hints import ArrayLike, FloatArray
from dinv.models.network import FeedforwardNetwork, ForwardPass
from dinv.models.rules import ChainArrays, Rule, get_rule
from dinv.theory import stack_c
from dinv.validation import check_leaks

ARCHITECTURES = ("sequential", "repeat")
CONTROLLERS = ("linear", "nonlinear")


@dataclass
class Learner:
    """One model being trained.

    Attributes
    ----------
    name : str
        Label used in results and figures.
    rule : str or Rule
        Backward rule, by name ('bp', 'fa', 'pbp', 'ndi', 'di', 'sldi',
        'ndi-targets', 'di-targets', 'ndfc', 'dfc'; see
        `dinv.models.rules.RULES`) or a `Rule` (e.g. with other settings,
        `Rule.with_settings`); stored as the `Rule`.
    net : FeedforwardNetwork
        The network; its weights change in place during training.
    feedback : list
        ``feedback[l]`` (shape (d_l, d_{l+1}), 0-based) carries errors from
        weight layer l+1 down to layer l; one per weight layer but the first.
        For a loop rule (SLDI) a single matrix of shape (d_1, d_L); for a
        direct rule (DFC) Q_1 .. Q_{L-1}, of shapes (d_l, d_L). Empty for
        rules without feedback.
    alpha : float or tuple of float
        Controller leak (NDI, DI, SLDI, DI of targets, DFC): one value for
        every layer pair, or one per pair (W_2, B_2) .. (W_L, B_L), e.g. a
        larger leak for an expanding output layer. SLDI and DFC (one
        controller) take one value.
    architecture : {'sequential', 'repeat'}
        DI only: chain of Fig. 2A or 2B (same steady state).
    controller : {'linear', 'nonlinear'}
        DI only: linear controller times g' (Eq. 17, the paper's DI) or the
        nonlinear controller of Eq. (14).
    circuit : SettleOptions or None
        DI and SLDI: this learner's own circuit settings (e.g. spiking
        populations, `dinv.experiments.models_spec.spiking_circuit`); None:
        those of the `UpdateConfig`. Spiking circuits get radii from the
        closed form of every problem (`dinv.circuits.chain_radii`,
        ``radius_margin`` x the largest steady-state component).
    radius_margin : float
        See ``circuit``.
    """

    name: str
    rule: Rule
    net: FeedforwardNetwork
    feedback: list[FloatArray] = field(default_factory=list)
    alpha: float | Sequence[float] = 0.0
    architecture: str = "sequential"
    controller: str = "linear"
    circuit: SettleOptions | None = None
    radius_margin: float = 1.5

    if TYPE_CHECKING:
        # The generated __init__ also takes a rule's name (stored as the Rule).
        def __init__(self, name: str, rule: str | Rule, net: FeedforwardNetwork,
                     feedback: list[FloatArray] = ..., alpha: float | Sequence[float] = ...,
                     architecture: str = ..., controller: str = ...,
                     circuit: SettleOptions | None = ..., radius_margin: float = ...) -> None:
            ...

    def __post_init__(self) -> None:
        self.rule = get_rule(self.rule)
        rule, sizes = self.rule, self.net.sizes
        needed = rule.feedback_count(self.net.depth)
        if len(self.feedback) != needed:
            raise InputError(
                f"learner {self.name!r} ({rule.name}) needs {needed} feedback "
                f"matrices, got {len(self.feedback)}"
            )
        if rule.feedback == "loop" and np.shape(self.feedback[0]) != (sizes[1], sizes[-1]):
            raise InputError(
                f"learner {self.name!r}: {rule.name.upper()} feedback must have shape "
                f"{(sizes[1], sizes[-1])} (d_1, d_L), got {np.shape(self.feedback[0])}"
            )
        shapes = {"layer": [(sizes[l], sizes[l + 1]) for l in range(1, len(sizes) - 1)],
                  "direct": [(sizes[l], sizes[-1]) for l in range(1, len(sizes) - 1)]}
        if rule.feedback in shapes and [np.shape(B) for B in self.feedback] != \
                shapes[rule.feedback]:
            what = "Q_1 .. Q_(L-1) of shapes (d_l, d_L)" if rule.feedback == "direct" else \
                "B_2 .. B_L of shapes (d_(l-1), d_l)"
            raise InputError(f"learner {self.name!r} ({rule.name}): feedback must be {what}: "
                             f"{shapes[rule.feedback]}, got "
                             f"{[np.shape(B) for B in self.feedback]}")
        self._alphas = check_leaks(self.alpha, (rule.leak_count(self.net.depth),),
                                   f"learner {self.name!r}: alpha")
        if self.architecture not in ARCHITECTURES:
            raise InputError(f"learner {self.name!r}: architecture must be one of "
                             f"{ARCHITECTURES}, got {self.architecture!r}")
        if self.controller not in CONTROLLERS:
            raise InputError(f"learner {self.name!r}: controller must be one of "
                             f"{CONTROLLERS}, got {self.controller!r}")
        if self.circuit is not None and not isinstance(self.circuit, SettleOptions):
            raise InputError(f"learner {self.name!r}: circuit must be a SettleOptions or "
                             f"None, got {self.circuit!r}")

    def layer_alpha(self, pair: int) -> float:
        """Leak of layer pair ``pair`` (0: W_2 with B_2; SLDI, DFC: its controller)."""
        return float(self._alphas[pair])

    @property
    def slope(self) -> bool:
        """Whether this learner's hidden errors carry g'(a_l) (Eq. 3): its rule's, and for
        DI the linear controller's (the nonlinear one of Eq. 14 has g inside its loop)."""
        return self.rule.slope and not (self.rule.circuit == "layer-pairs"
                                        and self.controller == "nonlinear")

    @property
    def circuit_key(self) -> tuple[Hashable, ...]:
        """Learners with equal keys propagate as one stack (and share one circuit)."""
        own = () if self.circuit is None else (self.circuit,)
        if self.rule.circuit in ("layer-pairs", "target-pairs"):
            return (self.rule, self.architecture, self.controller) + own
        return (self.rule,) + own


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
        scaled down to it after the backward pass.
    circuit : SettleOptions
        How the circuits of DI and SLDI are built and run (steps, time
        constants, population models, ...; `dinv.circuits.SettleOptions`).
    """

    lr: float
    weight_decay: float = 0.0
    fixed_norm: bool = False
    clip_hidden: float | None = None
    circuit: SettleOptions = field(default_factory=SettleOptions)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"lr must be a positive number, got {self.lr}")
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InputError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.clip_hidden is not None and not self.clip_hidden > 0:
            raise InputError(f"clip_hidden must be positive or None, got {self.clip_hidden}")
        if not isinstance(self.circuit, SettleOptions):
            raise InputError(f"circuit must be a SettleOptions, e.g. SettleOptions(steps=4000); "
                             f"got {self.circuit!r}")


@dataclass
class Step:
    """What one training step computed, per learner.

    Attributes
    ----------
    forward : list of ForwardPass
        Forward passes before the update.
    deltas : list of list of ndarray
        ``deltas[k][l]``: error delta_{l+1} of learner k, (batch, d_{l+1}).
    settle_steps : int
        Euler steps of the joint circuit run (0 without circuit learners).
    residuals : dict of int to float
        Per circuit learner (DI, SLDI; by index into the step's learners):
        the final residual of its circuit (`dinv.circuits.settling`); above
        ``circuit.settle_tol`` it fell short of settling.
    unstable : dict of int to bool
        Per circuit learner: its circuit ended unsettled because it is
        unstable.
    unsolved : dict of int to int
        Per learner of a closed form found by Newton's method (NDI of
        targets, NDFC): the samples whose exact steady state it did not find
        (their errors are its last iterate).
    """

    forward: list[ForwardPass]
    deltas: list[list[FloatArray]]
    settle_steps: int = 0
    residuals: dict[int, float] = field(default_factory=dict)
    unstable: dict[int, bool] = field(default_factory=dict)
    unsolved: dict[int, int] = field(default_factory=dict)

    def part(self, start: int, stop: int) -> "Step":
        """The `Step` of learners ``start`` .. ``stop - 1`` alone (indices from 0)."""
        inside = range(start, stop)
        return Step(self.forward[start:stop], self.deltas[start:stop], self.settle_steps,
                    {k - start: v for k, v in self.residuals.items() if k in inside},
                    {k - start: v for k, v in self.unstable.items() if k in inside},
                    {k - start: v for k, v in self.unsolved.items() if k in inside})


TINY = np.finfo(float).tiny
"""Smallest normal float: the norm of a zero row is taken as this (no division by 0)."""


def clip_rows(delta: FloatArray, max_norm: float) -> FloatArray:
    """Scale rows of ``delta`` longer than ``max_norm`` down to that norm."""
    norms = np.linalg.norm(delta, axis=-1, keepdims=True)
    with np.errstate(over="ignore"):  # a zero row: max_norm / TINY is inf, the scale 1
        return delta * np.minimum(1.0, max_norm / np.maximum(norms, TINY))


def backward(learners: Sequence[Learner], forwards: Sequence[ForwardPass],
             output_deltas: Sequence[FloatArray], config: UpdateConfig,
             report: dict[str, Any] | None = None) -> list[list[FloatArray]]:
    """Errors of every layer for every learner (Eq. 3 with the learner's rule).

    Learners with the same `Learner.circuit_key` are processed together as a
    stack: one closed-form call per layer for the numpy rules
    (`_layerwise_backward`); DI and SLDI learners settle the whole backward
    pass in one joint circuit (one Brian2 run per layer pair of the
    sequential chains). Hidden errors longer than ``config.clip_hidden`` are
    clipped after the pass (as the paper's protocol does).

    Parameters
    ----------
    learners : list of Learner
    forwards : list of ForwardPass
    output_deltas : list of ndarray
        delta_L per learner, (batch, d_L).
    config : UpdateConfig
    report : dict or None
        Receives ``'settle_steps'`` (the Euler steps of the circuit run) and,
        per circuit learner, ``'residuals'`` and ``'unstable'``, per learner of
        a closed form found by Newton's method ``'unsolved'`` (see `Step`).

    Returns
    -------
    list of list of ndarray
        ``deltas[k][l]`` as in `Step`.
    """
    depth = learners[0].net.depth
    deltas: list[list[Any]] = [[None] * (depth - 1) + [d] for d in output_deltas]  # filled below
    groups: dict[tuple[Hashable, ...], list[int]] = {}
    for k, learner in enumerate(learners):
        groups.setdefault(learner.circuit_key, []).append(k)
    chains = []
    for members in groups.values():
        rule = learners[members[0]].rule
        if depth < 2:
            continue
        if rule.circuit is not None:
            chains.append(members)
            continue
        group = [learners[k] for k in members]
        stacked = stack_c([output_deltas[k] for k in members])
        if rule.chainwise is None:
            hidden = _layerwise_backward(group, [forwards[k] for k in members], stacked, config)
        else:
            hidden, solved = _chainwise_backward(group, [forwards[k] for k in members],
                                                 stacked, config)
            if not np.all(solved):
                warnings.warn(f"{rule.name}: Newton's method did not find the exact steady "
                              "state of some samples; their errors are its last iterate "
                              "(Step.unsolved counts them)", RuntimeWarning, stacklevel=3)
            if report is not None:
                report.setdefault("unsolved", {}).update(
                    {k: int(np.size(ok) - np.count_nonzero(ok)) for k, ok in zip(members, solved)})
        for j, k in enumerate(members):
            deltas[k][:-1] = [h[j] for h in hidden]
    if chains:
        outcome = _chain_backward(learners, forwards, deltas, chains, config)
        if report is not None:
            report.update(outcome)
        if config.clip_hidden is not None:
            for k in (k for members in chains for k in members):
                deltas[k][:-1] = [clip_rows(d, config.clip_hidden) for d in deltas[k][:-1]]
    return deltas


def _layerwise_backward(group, forwards, delta, config):
    """Hidden errors of learners of one closed-form rule, from their stacked output
    errors ``delta`` (n, batch, d_L): one call of the rule per layer, g' and the
    clipping applied to the whole stack (row by row, as to each learner alone).

    Returns
    -------
    list of ndarray
        delta_1 .. delta_{L-1}, each (n, batch, d_l).
    """
    rule = group[0].rule
    hidden: list[Any] = [None] * (group[0].net.depth - 1)  # filled from the top down
    for layer in range(len(hidden), 0, -1):
        W = stack_c([lrn.net.weights[layer] for lrn in group])
        B = stack_c([lrn.feedback[layer - 1] for lrn in group]) if rule.feedback else None
        alpha = np.array([lrn.layer_alpha(layer - 1) for lrn in group])
        delta = rule.layerwise(W, B, delta, alpha)
        slopes = _slopes(group, forwards, layer - 1)
        if slopes is not None:
            delta = delta * slopes
        hidden[layer - 1] = delta
    if config.clip_hidden is not None:
        hidden = [clip_rows(h, config.clip_hidden) for h in hidden]
    return hidden


def _chainwise_backward(group, forwards, delta, config):
    """Hidden errors of learners of one closed-form rule that needs the whole network
    (NDI of targets, NDFC): one call of the rule's ``chainwise`` for the stack.

    Returns
    -------
    hidden : list of ndarray
        delta_1 .. delta_{L-1}, each (n, batch, d_l), clipped as configured.
    solved : ndarray of bool, shape (n, batch)
        Where the rule's exact steady state was found.
    """
    first = group[0]
    depth = first.net.depth
    arrays = ChainArrays(
        weights=[stack_c([lrn.net.weights[l] for lrn in group]) for l in range(1, depth)],
        feedback=[stack_c([lrn.feedback[j] for lrn in group]) for j in range(len(first.feedback))],
        delta=delta, alpha=np.array([lrn._alphas for lrn in group]),
        offsets=[stack_c([f.a[l] for f in forwards]) for l in range(depth - 1)],
        transfers=[g.name for g in first.net.nonlinearities[:-1]])
    hidden, solved = first.rule.chainwise(first.rule, arrays)
    if config.clip_hidden is not None:
        hidden = [clip_rows(h, config.clip_hidden) for h in hidden]
    return hidden, solved


def _slopes(learners, forwards, layer):
    """g'(a) of weight layer ``layer`` (0-based) of each learner, stacked; None when
    every g there is linear (g' = 1: multiplying by it changes nothing)."""
    transfers = [lrn.net.nonlinearities[layer] for lrn in learners]
    if all(g.name == "linear" for g in transfers):
        return None
    return stack_c([g.derivative(forward.a[layer]) for g, forward in zip(transfers, forwards)])


def _chain_backward(learners, forwards, deltas, chains, config):
    """Fill ``deltas`` of the circuit learners (DI, SLDI, DI of targets, DFC) from joint
    circuits.

    ``chains`` lists the learner indices of each circuit group; every group
    becomes one chain (layer pairs, DI: Eq. 17 or Eq. 14 per layer; the
    single loop, SLDI; layer pairs of targets; direct control, DFC: the last
    two around the forward pass's pre-activations, with the output target
    scaled by the rule's ``target_step`` and the settled errors divided by
    it), and all chains with the same circuit settings (the
    learners' own `Learner.circuit`, else ``config.circuit``) settle together
    (`settle_chains`), each problem labelled with its learner's name for the
    messages of ``on_unsettled``; chains of spiking circuits get radii from
    their closed form. Returns the Euler steps of the (first) run and the
    residual and stability of every learner's circuit (``settle_steps``,
    ``residuals``, ``unstable``).
    """
    parts: dict[SettleOptions, list[list[int]]] = {}
    for members in chains:
        options = learners[members[0]].circuit or config.circuit
        parts.setdefault(options, []).append(members)
    outcome: dict[str, Any] = {"settle_steps": None, "residuals": {}, "unstable": {}}
    for options, part in parts.items():
        specs, problems, scales = [], [], []
        spiking = _spiking(options)
        for members in part:
            group = [learners[k] for k in members]
            first = group[0]
            depth = first.net.depth
            names = tuple(g.name for g in first.net.nonlinearities[:-1])
            rule = first.rule
            loop = rule.circuit in ("single-loop", "direct")
            targets = rule.circuit == "target-pairs"
            nonlinear = loop or targets or first.controller == "nonlinear"
            architecture = {"single-loop": "single-loop", "direct": "direct"}.get(
                rule.circuit, first.architecture)
            # The rules of targets settle the output target a_L - beta delta_L (scale: beta).
            scale = rule.target_step or 1.0
            specs.append(ChainSpec(tuple(first.net.sizes), architecture,
                                   names if nonlinear else None, len(group), targets,
                                   rule.kp or 0.0))
            problem = dict(
                weights=[_stack([lrn.net.weights[l] for lrn in group]) for l in range(depth)],
                feedback=[_stack([lrn.feedback[j] for lrn in group])
                          for j in range(len(first.feedback))],
                delta=_stack([deltas[k][-1] * scale for k in members]),
                alpha=np.array([lrn._alphas for lrn in group]),
                gains=None if nonlinear else [
                    np.stack([lrn.net.nonlinearities[l].derivative(forwards[k].a[l])
                              for lrn, k in zip(group, members)])
                    for l in range(depth - 1)
                ],
                labels=[f"model {lrn.name!r}" for lrn in group],
                offsets=[np.stack([forwards[k].a[l] for k in members])
                         for l in range(depth - 1)] if loop or targets else None,
            )
            slopes = [np.stack([lrn.net.nonlinearities[l].derivative(forwards[k].a[l])
                                for lrn, k in zip(group, members)])
                      for l in range(depth - 1)] if spiking else None
            if spiking and architecture == "direct":
                problem["radius"] = direct_radii(
                    problem["weights"], problem["feedback"], problem["delta"],
                    problem["alpha"][:, 0], rule.kp or 0.0, slopes, margin=first.radius_margin)
            elif spiking and targets:
                problem["radius"] = target_radii(
                    problem["weights"], problem["feedback"], problem["delta"],
                    problem["alpha"], slopes, margin=first.radius_margin)
            elif spiking and not loop:
                problem["radius"] = chain_radii(
                    problem["weights"], problem["feedback"], problem["delta"],
                    problem["alpha"], problem["gains"], margin=first.radius_margin)
            problems.append(ChainProblem(**problem))
            scales.append(scale)
        settled = settle_chains(specs, problems, options)
        if outcome["settle_steps"] is None:
            outcome["settle_steps"] = settled[0].steps
        for members, result, scale in zip(part, settled, scales):
            for j, k in enumerate(members):
                deltas[k][:-1] = [h[j] / scale for h in result.deltas]
                outcome["residuals"][k] = float(result.residual[j])
                outcome["unstable"][k] = bool(result.unstable[j])
    return outcome


def _spiking(options):
    """Whether any population of ``options`` (a `SettleOptions`) is spiking."""
    models = []
    for value in (options.system, options.controller, options.relay):
        if value is not None:
            models += list(value) if isinstance(value, tuple) else [value]
    return any(model.spiking for model in models)


def _stack(arrays):
    """Stack along a new first axis; one array becomes a view (no copy of a wide W)."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


def weight_updates(net: FeedforwardNetwork, forward: ForwardPass, deltas: Sequence[FloatArray],
                   config: UpdateConfig) -> list[tuple[FloatArray, FloatArray | None]]:
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


def apply_updates(net: FeedforwardNetwork, forward: ForwardPass, deltas: Sequence[FloatArray],
                  config: UpdateConfig) -> None:
    """Apply the Eq. (2) updates of `weight_updates` to ``net`` in place, fused.

    Per layer, in one BLAS call (one pass over W instead of five)::

        W <- (1 - eta lambda) W - s delta^T h,    b <- b - s sum(delta)

    with s = eta, or eta / |(dW, db)|_F for fixed-norm updates (the norm from
    the small Gram matrices: |delta^T h|_F^2 = sum((delta delta^T) * (h h^T))).
    Equal to ``W - eta * dW`` with `weight_updates` (tested).
    """
    for l, delta in enumerate(deltas):
        h = forward.h[l]
        db = delta.sum(axis=0) if net.biases is not None else None
        scale = config.lr
        if config.fixed_norm:
            norm = np.sqrt(np.sum((delta @ delta.T) * (h @ h.T))
                           + (0.0 if db is None else np.sum(db**2)))
            if norm > 0:
                scale = config.lr / norm
        W = net.weights[l]
        decay = 1.0 - config.lr * config.weight_decay
        # On W^T (Fortran order for a C-ordered W): W^T <- decay W^T - s h^T delta.
        result = dgemm(-scale, h.T, delta.T, beta=decay, c=W.T, trans_b=1, overwrite_c=1)
        if not np.shares_memory(result, W):
            W[...] = result.T
        if db is not None and net.biases is not None:
            net.biases[l] -= scale * db


def replay_step(learners: Sequence[Learner], xs: Sequence[ArrayLike], ts: Sequence[ArrayLike],
                hidden: Sequence[Sequence[FloatArray]], config: UpdateConfig) -> Step:
    """Repeat an update of `train_step_each` from the hidden errors it used.

    For copies of learners whose backward pass ran elsewhere (a regression's
    DI circuits settle in the simulation's process; a companion process keeps
    copies of those learners): each learner's forward pass, output error and
    Eq. (2) update (`apply_updates`) with the hidden errors given. Copies of
    the step's learners, given its batches and hidden errors, end with
    exactly its weights (the same arithmetic on the same numbers).

    Parameters
    ----------
    learners : list of Learner
    xs, ts : sequence of ndarray
        Per learner, the (batch, d_0) inputs and (batch, d_L) targets of the step.
    hidden : sequence of list of ndarray
        Per learner, delta_1 .. delta_{L-1} as the step returned them (settled
        and clipped).
    config : UpdateConfig

    Returns
    -------
    Step
        The forward passes and errors (no settle statistics).
    """
    forwards = [learner.net.forward(x) for learner, x in zip(learners, xs)]
    deltas = [list(errors) + [learner.net.output_delta(forward, t)]
              for learner, forward, t, errors in zip(learners, forwards, ts, hidden)]
    for learner, forward, per_layer in zip(learners, forwards, deltas):
        apply_updates(learner.net, forward, per_layer, config)
    return Step(forwards, deltas)


def train_step(learners: Sequence[Learner], x: ArrayLike, t: ArrayLike,
               config: UpdateConfig) -> Step:
    """One step of every learner on the batch (x, t); weights change in place.

    Every error is computed and checked before any weight changes, so an
    error (bad input, a diverging circuit, non-finite errors) leaves every
    network as it was.

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
    return train_step_each(learners, [x] * len(learners), [t] * len(learners), config)


def train_step_each(learners: Sequence[Learner], xs: Sequence[ArrayLike], ts: Sequence[ArrayLike],
                    config: UpdateConfig) -> Step:
    """`train_step` with a batch of its own for every learner.

    Learner k trains on (``xs[k]``, ``ts[k]``); the learners of one rule still
    propagate together (one joint circuit run for DI and SLDI), so runs of
    several data sets (e.g. seeds) train side by side, each with exactly the
    numbers it gets alone (the circuits settle independent problems).

    Parameters
    ----------
    learners : list of Learner
        Models of one architecture.
    xs, ts : sequence of ndarray
        Per learner, (batch, d_0) inputs and (batch, d_L) targets.
    config : UpdateConfig

    Returns
    -------
    Step
        As `train_step` returns it, the learners' batches in their order.
    """
    if not learners:
        raise InputError("train_step needs at least one learner")
    if len(xs) != len(learners) or len(ts) != len(learners):
        raise InputError(f"need a batch per learner: {len(learners)} learners, "
                         f"{len(xs)} inputs, {len(ts)} targets")
    batches = {np.shape(x)[0] for x in xs}
    if len(batches) != 1:
        raise InputError(f"every learner's batch must have the same size, got {sorted(batches)}")
    forwards = [learner.net.forward(x) for learner, x in zip(learners, xs)]
    output_deltas = [lrn.net.output_delta(f, t) for lrn, f, t in zip(learners, forwards, ts)]
    report: dict[str, Any] = {"settle_steps": 0, "residuals": {}, "unstable": {}}
    deltas = backward(learners, forwards, output_deltas, config, report)
    batch = batches.pop()
    with np.errstate(over="ignore"):
        for learner, forward, per_layer in zip(learners, forwards, deltas):
            # |dW| <= batch max|delta| max|h| entrywise: finite and far from overflow,
            # or the step is refused before any weight changes (the test catches NaN).
            if not all(config.lr * batch * np.abs(d).max() * np.abs(h).max() < 1e300
                       for d, h in zip(per_layer, forward.h)):
                raise FloatingPointError(
                    f"learner {learner.name!r} produced non-finite or overflowing weight "
                    "updates; lower the learning rate or clip the errors (clip_hidden)"
                )
    for learner, forward, per_layer in zip(learners, forwards, deltas):
        apply_updates(learner.net, forward, per_layer, config)
    return Step(forwards, deltas, report["settle_steps"], report["residuals"],
                report["unstable"], report.get("unsolved", {}))
