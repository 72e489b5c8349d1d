"""Backward rules: how the error delta_l of layer l becomes delta_{l-1}.

Every rule maps errors of layer l to layer l-1 *before* the multiplication by
g'(a_{l-1}) (Eq. 3), in batch-row layout: ``delta`` has shape (batch, d_l) and
the result (batch, d_{l-1}); W has shape (d_l, d_{l-1}) and B (d_{l-1}, d_l).
All rules also take stacks (a leading axis of n independent layers), which is
how a trainer runs many models of one rule at once.

All rules share the signature ``rule(W, B, delta, alpha)``; rules that do not
use feedback weights or a leak ignore them. What a rule *is* (its feedback, its
leak, whether it is simulated) is a `Rule` in the registry `RULES`: adding a
rule is one function and one `register` call here.

Two rules act on targets, not on errors, and need the whole network at once
(the forward pass's pre-activations and nonlinearities): the inversion of
targets (`ndi_targets`, simulated: ``di-targets``) and direct feedback control
(`ndfc`, simulated: ``dfc``). Their closed forms are ``chainwise`` functions
of a `ChainArrays`; their hidden errors carry no further g'.

The circuit rules (DI, SLDI, DI of targets, DFC) import Brian2 only when
called: the closed-form rules work without it.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dinv.errors import InputError
from dinv.hints import ArrayLike, FloatArray
from dinv.theory import direct_state, layer_steady_state, target_chain_state
from dinv.validation import layer_problem


def bp(W: ArrayLike, B: ArrayLike | None, delta: ArrayLike, alpha: ArrayLike) -> FloatArray:
    """Backpropagation (Eq. 4): delta_{l-1} = W^T delta_l."""
    p = layer_problem(W, None, delta, 0.0, need_b=False)
    return p.restore(p.delta @ p.W)


def fa(W: ArrayLike, B: ArrayLike | None, delta: ArrayLike, alpha: ArrayLike) -> FloatArray:
    """Feedback alignment (Eq. 4): delta_{l-1} = B delta_l, with fixed B."""
    p = layer_problem(W, B, delta, 0.0, need_b=True, inverts=False)
    assert p.B is not None  # layer_problem refuses a missing B (need_b)
    return p.restore(p.delta @ p.B.transpose(0, 2, 1))


def pbp(W: ArrayLike, B: ArrayLike | None, delta: ArrayLike, alpha: ArrayLike) -> FloatArray:
    """Pseudobackprop (Eq. 4): delta_{l-1} = W^+ delta_l (Moore-Penrose)."""
    p = layer_problem(W, None, delta, 0.0, need_b=False)
    return p.restore(p.delta @ np.linalg.pinv(p.W).transpose(0, 2, 1))


def ndi(W: ArrayLike, B: ArrayLike | None, delta: ArrayLike, alpha: ArrayLike) -> FloatArray:
    """Non-dynamic inversion: the exact steady state of the circuit (Eq. 10).

    Contracting and square layers (d_l <= d_{l-1})::

        delta_{l-1} = B (W B - alpha I_l)^-1 delta_l

    Expanding layers (d_l > d_{l-1}, needs alpha > 0 for the circuit to have
    a steady state)::

        delta_{l-1} = (B W - alpha I_{l-1})^-1 B delta_l

    The two forms are equal whenever both matrices are invertible; each case
    solves the smaller system (`dinv.theory.layer_steady_state`).

    Raises
    ------
    InputError
        When the matrix to invert is singular (typically alpha = 0 with a
        rank-deficient product).
    """
    p = layer_problem(W, B, delta, alpha)
    assert p.B is not None  # layer_problem refuses a missing B (need_b)
    return p.restore(layer_steady_state(p.W, p.B, p.delta, p.alpha))


def di(W: ArrayLike, B: ArrayLike, delta: ArrayLike, alpha: ArrayLike,
       **circuit_options: Any) -> FloatArray:
    """Dynamic inversion: settle the Brian2 circuit of Eqs. (5) and (8).

    delta_{l-1} is the state of the system population after the simulation
    (by default 1000 Euler steps of dt = 0.5 from rest), which tends to the
    `ndi` solution B (W B - alpha I)^-1 delta_l (Eq. 10). ``circuit_options``
    go to `dinv.circuits.settle_layer`.
    """
    from dinv.circuits import settle_layer

    return settle_layer(W, B, delta, alpha, **circuit_options)


def di_chain(weights: Sequence[ArrayLike], feedback: Sequence[ArrayLike], delta: ArrayLike,
             alpha: ArrayLike, gains: Sequence[ArrayLike] | None = None,
             transfers: Sequence[str] | None = None, architecture: str = "sequential",
             **circuit_options: Any) -> list[FloatArray]:
    """Dynamic inversion through a whole network, in one chain circuit.

    Linear controller (``transfers`` None), per hidden layer (Eq. 17)::

        delta_{l-1} = B_l (W_l B_l - alpha I)^-1 delta_l * g'(a_{l-1})

    Nonlinear controller (``transfers`` = g_1 .. g_{L-1}), per layer (Eq. 14,
    steady state Eq. 15)::

        W_l g_{l-1}(delta_{l-1}) = delta_l + alpha u_l

    ``architecture`` 'sequential' (Fig. 2A) or 'repeat' (Fig. 2B); both
    settle to the same state. Arrays are stacks over n models: W_l of shape
    (n, d_l, d_{l-1}), B_l (n, d_{l-1}, d_l), delta (n, batch, d_L), gains
    g'(a_l) (n, batch, d_l). Returns [delta_1 .. delta_{L-1}]; their steady
    state is `dinv.theory.chain_steady_state`.
    """
    from dinv.circuits.chains import settle_chain

    return settle_chain(weights, feedback, delta, alpha, gains, architecture, transfers,
                        **circuit_options).deltas


def sldi(weights: Sequence[ArrayLike], feedback: Sequence[ArrayLike], delta: ArrayLike,
         alpha: ArrayLike, transfers: Sequence[str] | None,
         **circuit_options: Any) -> list[FloatArray]:
    """Single-loop dynamic inversion (Fig. 2C, Eqs. 14-15).

    The output controller drives layer 1 through one feedback matrix B of
    shape (n, d_1, d_L); its readout runs forward through every layer::

        tau du/dt = -alpha u + W_L g(h_{L-1}) - delta_L,
        h_l = W_l g(h_{l-1})  (relays, l = 2 .. L-1),  h_1 = B u at rest.

    The hidden errors are the settled states h_1 .. h_{L-1}, used without a
    further g' (the nonlinearity sits in the readout). Returns that list.
    """
    from dinv.circuits.chains import settle_chain

    return settle_chain(weights, feedback, delta, alpha, None, "single-loop", transfers,
                        **circuit_options).deltas


def di_targets(weights: Sequence[np.ndarray], feedback: Sequence[np.ndarray], delta: np.ndarray,
               alpha: ArrayLike, offsets: Sequence[np.ndarray], transfers: Sequence[str],
               architecture: str = "sequential", target_step: float = 1.0,
               **circuit_options: Any) -> list[np.ndarray]:
    """Dynamic inversion of targets: settle the Brian2 chain of layer pairs on targets.

    The circuit of `ndi_targets` (`dinv.circuits.chains`, ``targets=True``):
    per layer pair, the system population holds the deviation x_{l-1} =
    beta delta_{l-1} of layer l-1's activity from the forward pass, and its
    controller reads out the deviation it causes in layer l's activity::

        tau_s dx_{l-1}/dt = -x_{l-1} + B_l u_l
        tau_c du_l/dt     = -alpha u_l + g_l(a_l) - g_l(a_l - W_l x_{l-1}) - x_l

    (the output's readout W_L x_{L-1}, x_L = beta delta_L). Update: Eq. (2)
    with delta_{l-1} = x_{l-1} / beta, no further g'. Stacked arrays as in
    `di_chain` (weights W_1 .. W_L), ``offsets`` a_1 .. a_{L-1} (n, batch,
    d_l), ``transfers`` g_1 .. g_{L-1}. Returns [delta_1 .. delta_{L-1}].
    """
    from dinv.circuits.chains import ChainProblem, ChainSpec, settle_chains

    spec = ChainSpec(_widths(weights), architecture, tuple(transfers), np.shape(delta)[0],
                     targets=True)
    problem = ChainProblem(weights, feedback, np.asarray(delta) * target_step, alpha,
                           offsets=offsets)
    settled = settle_chains([spec], [problem], **circuit_options)[0]
    return [d / target_step for d in settled.deltas]


def dfc(weights: Sequence[np.ndarray], Q: Sequence[np.ndarray], delta: np.ndarray,
        alpha: ArrayLike, offsets: Sequence[np.ndarray], transfers: Sequence[str],
        kp: float = 1.5, target_step: float = 1.0, **circuit_options: Any
        ) -> list[np.ndarray]:
    """Direct feedback control (Meulemans et al. 2021): settle its Brian2 circuit.

    One output controller, tau_u du_i/dt = e - alpha u_i, u = u_i + k_p e,
    e = beta delta_L - y, feeds every hidden layer through Q_l while the
    forward dynamics run (`dinv.circuits.chains`, architecture 'direct')::

        tau_v dx_l/dt = -x_l + W_l [g(a_{l-1}) - g(a_{l-1} - x_{l-1})] + Q_l u

    Update: Eq. (2) with delta_l = Q_l u / beta (the feedback's part of the
    deviation at rest), no further g'. Stacked arrays (weights W_1 .. W_L, Q_l
    (n, d_l, d_L)). Returns [delta_1 .. delta_{L-1}].
    """
    from dinv.circuits.chains import ChainProblem, ChainSpec, settle_chains

    spec = ChainSpec(_widths(weights), "direct", tuple(transfers), np.shape(delta)[0], kp=kp)
    problem = ChainProblem(weights, Q, np.asarray(delta) * target_step, alpha,
                           offsets=offsets)
    settled = settle_chains([spec], [problem], **circuit_options)[0]
    return [d / target_step for d in settled.deltas]


def _widths(weights):
    """d_0 .. d_L of stacked weights W_1 .. W_L."""
    return (np.shape(weights[0])[-1],) + tuple(np.shape(W)[-2] for W in weights)


@dataclass(frozen=True)
class ChainArrays:
    """What a rule acting on the whole network needs: stacks over n models.

    Attributes
    ----------
    weights : list of ndarray
        W_2 .. W_L, each (n, d_l, d_{l-1}).
    feedback : list of ndarray
        B_2 .. B_L (DI of targets) or Q_1 .. Q_{L-1} (DFC), stacked.
    delta : ndarray, shape (n, batch, d_L)
        Output errors.
    alpha : ndarray, shape (n, leaks)
        Leaks per model (one per layer pair; DFC: one).
    offsets : list of ndarray
        a_1 .. a_{L-1} of the forward pass, each (n, batch, d_l).
    transfers : list of str
        g_1 .. g_{L-1}.
    """

    weights: list
    feedback: list
    delta: np.ndarray
    alpha: np.ndarray
    offsets: list
    transfers: list


def ndi_targets(rule: "Rule", arrays: ChainArrays) -> tuple[list[np.ndarray], np.ndarray]:
    """Non-dynamic inversion of targets: the exact steady state of ``di-targets``.

    Targets in the style of target propagation, on the activities: the
    output's is ``a_L - beta delta_L`` (beta: the rule's ``target_step``;
    with beta = 1, a linear output and the squared error, the data target t),
    and each layer pair's controller moves layer l-1's activity to the
    target whose forward pass reproduces layer l's target (up to the leak),
    the nonlinearity inside the loop. In deviations x_l = h_l - target_l
    (`dinv.theory.target_chain_state`, solved sample by sample)::

        g_l(a_l) - g_l(a_l - W_l x_{l-1}) = x_l + alpha u_l,   x_{l-1} = B_l u_l

    (the output pair's readout W_L x_{L-1}, x_L = beta delta_L). Returns the
    hidden errors and where Newton's method converged. The update is Eq. (2)
    with delta_l = x_l / beta and no further g'::

        Delta W_l = -eta delta_l h_{l-1}^T,  i.e. proportional to (target_l - h_l) h_{l-1}^T

    For a linear network it is NDI (Eq. 10 through every layer pair); with
    B = -W^T, square invertible layers and small alpha and beta, x_l is the
    Gauss-Newton target J_l^-1 delta_L.
    """
    beta = rule.target_step
    deltas, converged = target_chain_state(arrays.weights, arrays.feedback,
                                           beta * arrays.delta, arrays.alpha, arrays.offsets,
                                           arrays.transfers)
    return [d / beta for d in deltas], converged


def ndfc(rule: "Rule", arrays: ChainArrays) -> tuple[list[np.ndarray], np.ndarray]:
    """Non-dynamic direct feedback control: the exact steady state of ``dfc``.

    One controller at the output (u = u_i + k_p e, tau_u du_i/dt = e -
    alpha u_i, e = beta delta_L - y) feeds every hidden layer through Q_l
    while the forward dynamics run (Meulemans et al. 2021;
    `dinv.theory.direct_state`). To first order::

        u = (J Q + alpha' I)^-1 beta delta_L,   alpha' = alpha / (1 + alpha k_p),
        delta_l = Q_l u / beta

    and the update is Eq. (2) with these hidden errors and no further g'::

        Delta W_l = -eta delta_l h_{l-1}^T

    Returns the hidden errors and where Newton's method converged.
    """
    beta = rule.target_step
    deltas, _, converged = direct_state(arrays.weights, arrays.feedback, beta * arrays.delta,
                                        arrays.alpha[:, 0], rule.kp or 0.0, arrays.offsets,
                                        arrays.transfers)
    return [d / beta for d in deltas], converged


LayerwiseRule = Callable[[ArrayLike, ArrayLike | None, ArrayLike, ArrayLike], FloatArray]
"""``rule(W, B, delta, alpha)``: delta_{l-1} before g', in closed form (`bp`, `fa`, ...)."""


@dataclass(frozen=True)
class Rule:
    """What a backward rule is; how it computes is a function of this module.

    Attributes
    ----------
    name : str
        Registry name, used by learners, model lists and results.
    title : str
        What the rule is, in words (with the paper's equation).
    feedback : {None, 'layer', 'loop', 'direct'}
        The feedback weights the rule uses: none; one B_l per layer pair
        (B_2 .. B_L, shape (d_{l-1}, d_l)); one loop matrix B of shape
        (d_1, d_L) (SLDI); or one Q_l per hidden layer from the output
        (Q_1 .. Q_{L-1}, shape (d_l, d_L); DFC).
    inverts : bool
        The rule inverts the forward weights with a leak alpha (NDI, DI,
        SLDI, DI of targets, DFC): its learners carry alpha, and its feedback
        must keep the inversion circuit stable (the closed form is the steady
        state of that circuit).
    layerwise : callable or None
        ``layerwise(W, B, delta, alpha)``: delta_{l-1} before g', for rules
        computed layer by layer in closed form.
    circuit : {None, 'layer-pairs', 'single-loop', 'target-pairs', 'direct'}
        Rules simulated in Brian2 settle a chain circuit: one controller per
        layer pair (Fig. 2A/B, DI), the single loop (Fig. 2C, SLDI), layer
        pairs inverting targets (DI of targets) or one output controller
        feeding every hidden layer (DFC).
    chainwise : callable or None
        ``chainwise(rule, arrays)`` (a `ChainArrays`): delta_1 .. delta_{L-1}
        and, per model and sample (n, batch), whether the exact steady state
        was found (Newton's method; otherwise its last iterate), for
        closed-form rules that need the whole network (NDI of targets, NDFC).
    slope : bool
        Whether the rule's hidden errors carry g'(a_l) (Eq. 3); the rules of
        targets and SLDI have the nonlinearity inside their loop instead.
    kp : float or None
        DFC: the controller's proportional gain k_p (Meulemans et al. 2021's
        published toy configuration: 1.5).
    target_step : float or None
        Rules of targets: beta, the output target a_L - beta delta_L (DFC's
        published toy configuration: 0.05). The hidden errors are divided by
        it, so it matters for nonlinear networks only.
    """

    name: str
    title: str
    feedback: str | None = None
    inverts: bool = False
    layerwise: LayerwiseRule | None = None
    circuit: str | None = None
    chainwise: Callable[..., tuple[list[FloatArray], np.ndarray]] | None = None
    slope: bool = True
    kp: float | None = None
    target_step: float | None = None

    def feedback_count(self, depth: int) -> int:
        """Feedback matrices a network of ``depth`` weight layers needs."""
        return {None: 0, "layer": depth - 1, "loop": 1, "direct": depth - 1}[self.feedback]

    def leak_count(self, depth: int) -> int:
        """Leaks alpha of a network of ``depth`` weight layers: one per layer pair, or
        one for a single controller (loop, direct)."""
        return 1 if self.feedback in ("loop", "direct") else max(depth - 1, 1)

    def with_settings(self, **changes: float) -> "Rule":
        """This rule with other settings (``kp``, ``target_step``), checked; a rule of its
        own (the learners of each setting propagate apart)."""
        unknown = sorted(set(changes) - {"kp", "target_step"})
        if unknown:
            raise InputError(f"rule settings are kp and target_step, got {unknown}")
        for key, value in changes.items():
            if getattr(self, key) is None:
                raise InputError(f"rule {self.name!r} has no setting {key}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not np.isfinite(value) or value < 0 or (key == "target_step"
                                                               and value == 0):
                raise InputError(f"rule {self.name!r}: {key} must be a number "
                                 f"{'> 0' if key == 'target_step' else '>= 0'}, got {value!r}")
        kp, step = changes.get("kp", self.kp), changes.get("target_step", self.target_step)
        return replace(self, kp=None if kp is None else float(kp),
                       target_step=None if step is None else float(step))


RULES: dict[str, Rule] = {}
"""Every backward rule by name; `register` adds one."""


def register(rule: Rule) -> Rule:
    """Add ``rule`` (a `Rule`) to `RULES` and return it."""
    if rule.feedback not in (None, "layer", "loop", "direct"):
        raise InputError(f"rule {rule.name!r}: feedback must be None, 'layer', 'loop' or "
                         "'direct'")
    if sum(x is not None for x in (rule.layerwise, rule.chainwise, rule.circuit)) != 1:
        raise InputError(f"rule {rule.name!r} needs one of a layer-wise function, a chainwise "
                         "function or a circuit")
    RULES[rule.name] = rule
    return rule


BP = register(Rule("bp", "backpropagation: delta_{l-1} = W^T delta_l (Eq. 4)", layerwise=bp))
FA = register(Rule("fa", "feedback alignment: delta_{l-1} = B delta_l (Eq. 4)",
                   feedback="layer", layerwise=fa))
PBP = register(Rule("pbp", "pseudobackprop: delta_{l-1} = W^+ delta_l (Eq. 4)", layerwise=pbp))
NDI = register(Rule("ndi", "non-dynamic inversion: delta_{l-1} = B (W B - alpha I)^-1 delta_l "
                    "(Eq. 10)", feedback="layer", inverts=True, layerwise=ndi))
DI = register(Rule("di", "dynamic inversion: the settled Brian2 circuit of each layer pair "
                   "(Eqs. 5, 8, 17)", feedback="layer", inverts=True, circuit="layer-pairs"))
SLDI = register(Rule("sldi", "single-loop dynamic inversion (Fig. 2C, Eqs. 14-15)",
                     feedback="loop", inverts=True, circuit="single-loop", slope=False))
TARGET_STEP = 0.05
"""beta of the rules of targets: Meulemans et al. (2021)'s published toy configuration."""
NDI_TARGETS = register(Rule(
    "ndi-targets", "non-dynamic inversion of targets: the exact steady state of DI of targets",
    feedback="layer", inverts=True, chainwise=ndi_targets, slope=False,
    target_step=TARGET_STEP))
DI_TARGETS = register(Rule(
    "di-targets", "dynamic inversion of targets: the settled Brian2 circuit of each layer pair, "
    "the nonlinearity inside the loop", feedback="layer", inverts=True, circuit="target-pairs",
    slope=False, target_step=TARGET_STEP))
NDFC = register(Rule(
    "ndfc", "non-dynamic direct feedback control: the exact steady state of DFC",
    feedback="direct", inverts=True, chainwise=ndfc, slope=False, kp=1.5,
    target_step=TARGET_STEP))
DFC = register(Rule(
    "dfc", "direct feedback control (Meulemans et al. 2021): one output controller feeds "
    "every hidden layer, simulated in Brian2", feedback="direct", inverts=True,
    circuit="direct", slope=False, kp=1.5, target_step=TARGET_STEP))


def steady_rule(rule: "str | Rule") -> "Rule | None":
    """The closed-form counterpart of a rule, with its settings: NDI for DI, NDI of
    targets for DI of targets, NDFC for DFC (None for the others); a closed-form rule
    of targets or direct control is its own."""
    rule = get_rule(rule)
    counterparts = {"layer-pairs": "ndi", "target-pairs": "ndi-targets", "direct": "ndfc"}
    if rule.circuit is not None:
        name = counterparts.get(rule.circuit)
    else:
        name = rule.name if rule.chainwise is not None or rule.name == "ndi" else None
    if name is None:
        return None
    settings = {key: getattr(rule, key) for key in ("kp", "target_step")
                if getattr(rule, key) is not None}
    return RULES[name].with_settings(**settings) if settings else RULES[name]


def get_rule(rule: str | Rule) -> Rule:
    """The registered `Rule` called ``rule`` (a `Rule` is returned as it is)."""
    if isinstance(rule, Rule):
        return rule
    try:
        return RULES[rule]
    except (KeyError, TypeError):
        raise InputError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}") from None
