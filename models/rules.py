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

The circuit rules (DI, SLDI) import Brian2 only when called: the
closed-form rules work without it.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dinv.errors import InputError
from dinv.theory import layer_steady_state
from dinv.validation import layer_problem


def bp(W, B, delta, alpha):
    """Backpropagation (Eq. 4): delta_{l-1} = W^T delta_l."""
    p = layer_problem(W, None, delta, 0.0, need_b=False)
    return p.restore(p.delta @ p.W)


def fa(W, B, delta, alpha):
    """Feedback alignment (Eq. 4): delta_{l-1} = B delta_l, with fixed B."""
    p = layer_problem(W, B, delta, 0.0, need_b=True, inverts=False)
    return p.restore(p.delta @ p.B.transpose(0, 2, 1))


def pbp(W, B, delta, alpha):
    """Pseudobackprop (Eq. 4): delta_{l-1} = W^+ delta_l (Moore-Penrose)."""
    p = layer_problem(W, None, delta, 0.0, need_b=False)
    return p.restore(p.delta @ np.linalg.pinv(p.W).transpose(0, 2, 1))


def ndi(W, B, delta, alpha):
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
    return p.restore(layer_steady_state(p.W, p.B, p.delta, p.alpha))


def di(W, B, delta, alpha, **circuit_options):
    """Dynamic inversion: settle the Brian2 circuit of Eqs. (5) and (8).

    delta_{l-1} is the state of the system population after the simulation
    (by default 1000 Euler steps of dt = 0.5 from rest), which tends to the
    `ndi` solution B (W B - alpha I)^-1 delta_l (Eq. 10). ``circuit_options``
    go to `dinv.circuits.settle_layer`.
    """
    from dinv.circuits import settle_layer

    return settle_layer(W, B, delta, alpha, **circuit_options)


def di_chain(weights, feedback, delta, alpha, gains=None, transfers=None,
             architecture="sequential", **circuit_options):
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


def sldi(weights, feedback, delta, alpha, transfers, **circuit_options):
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


@dataclass(frozen=True)
class Rule:
    """What a backward rule is; how it computes is a function of this module.

    Attributes
    ----------
    name : str
        Registry name, used by learners, model lists and results.
    title : str
        What the rule is, in words (with the paper's equation).
    feedback : {None, 'layer', 'loop'}
        The feedback weights the rule uses: none; one B_l per layer pair
        (B_2 .. B_L, shape (d_{l-1}, d_l)); or one loop matrix B of shape
        (d_1, d_L) (SLDI).
    inverts : bool
        The rule inverts the forward weights with a leak alpha (NDI, DI,
        SLDI): its learners carry alpha, and its feedback must keep the
        inversion circuit stable (NDI is the steady state of that circuit).
    layerwise : callable or None
        ``layerwise(W, B, delta, alpha)``: delta_{l-1} before g', for rules
        computed layer by layer in closed form; None for simulated rules.
    circuit : {None, 'layer-pairs', 'single-loop'}
        Rules simulated in Brian2 settle a chain circuit: one controller per
        layer pair (Fig. 2A/B, DI) or the single loop (Fig. 2C, SLDI).
    """

    name: str
    title: str
    feedback: str = None
    inverts: bool = False
    layerwise: Callable = None
    circuit: str = None

    def feedback_count(self, depth):
        """Feedback matrices a network of ``depth`` weight layers needs."""
        return {None: 0, "layer": depth - 1, "loop": 1}[self.feedback]

    def leak_count(self, depth):
        """Leaks alpha of a network of ``depth`` weight layers: one per layer pair or loop."""
        return 1 if self.feedback == "loop" else max(depth - 1, 1)


RULES = {}
"""Every backward rule by name; `register` adds one."""


def register(rule):
    """Add ``rule`` (a `Rule`) to `RULES` and return it."""
    if rule.feedback not in (None, "layer", "loop"):
        raise InputError(f"rule {rule.name!r}: feedback must be None, 'layer' or 'loop'")
    if (rule.layerwise is None) == (rule.circuit is None):
        raise InputError(f"rule {rule.name!r} needs either a layer-wise function or a circuit")
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
                     feedback="loop", inverts=True, circuit="single-loop"))


def get_rule(rule):
    """The registered `Rule` called ``rule`` (a `Rule` is returned as it is)."""
    if isinstance(rule, Rule):
        return rule
    try:
        return RULES[rule]
    except (KeyError, TypeError):
        raise InputError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}") from None
