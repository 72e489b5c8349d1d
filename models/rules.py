"""Backward rules: how the error delta_l of layer l becomes delta_{l-1}.

Every rule maps errors of layer l to layer l-1 *before* the multiplication by
g'(a_{l-1}) (Eq. 3), in batch-row layout: ``delta`` has shape (batch, d_l) and
the result (batch, d_{l-1}); W has shape (d_l, d_{l-1}) and B (d_{l-1}, d_l).
All rules also take stacks (a leading axis of n independent layers), which is
how a trainer runs many models of one rule at once.

All rules share the signature ``rule(W, B, delta, alpha)``; rules that do not
use feedback weights or a leak ignore them.

The circuit rules (DI, SLDI) import Brian2 only when called: the
closed-form rules work without it.
"""

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


RULES = {"bp": bp, "fa": fa, "pbp": pbp, "ndi": ndi, "di": di}
"""Layer-wise backward rules by name."""

CHAIN_RULES = {"di": di_chain, "sldi": sldi}
"""Rules that settle the whole backward pass as one circuit (used in training)."""

FEEDBACK_RULES = ("fa", "ndi", "di", "sldi")
"""Rules that use feedback weights B."""


def get_rule(name):
    """Return the backward rule called ``name`` (see `RULES` and `CHAIN_RULES`)."""
    try:
        return RULES[name] if name in RULES else CHAIN_RULES[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown rule {name!r}; choose one of "
                         f"{', '.join(list(RULES) + ['sldi'])}") from None
