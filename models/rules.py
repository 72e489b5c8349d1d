"""Backward rules: how the error delta_l of layer l becomes delta_{l-1}.

Every rule maps errors of layer l to layer l-1 *before* the multiplication by
g'(a_{l-1}) (Eq. 3), in batch-row layout: ``delta`` has shape (batch, d_l) and
the result (batch, d_{l-1}); W has shape (d_l, d_{l-1}) and B (d_{l-1}, d_l).
All rules also take stacks (a leading axis of n independent layers), which is
how a trainer runs many models of one rule at once.

All rules share the signature ``rule(W, B, delta, alpha)``; rules that do not
use feedback weights or a leak ignore them.
"""

import numpy as np

from circuits import settle_layer
from circuits.errors import InputError
from circuits.problem import layer_problem


def bp(W, B, delta, alpha):
    """Backpropagation (Eq. 4): delta_{l-1} = W^T delta_l."""
    p = layer_problem(W, None, delta, 0.0, need_b=False)
    return p.restore(p.delta @ p.W)


def fa(W, B, delta, alpha):
    """Feedback alignment (Eq. 4): delta_{l-1} = B delta_l, with fixed B."""
    p = layer_problem(W, B, delta, 0.0, need_b=True)
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
    solves the smaller system.

    Raises
    ------
    InputError
        When the matrix to invert is singular (typically alpha = 0 with a
        rank-deficient product).
    """
    p = layer_problem(W, B, delta, alpha)
    contracting = p.d_out <= p.d_in
    A = p.W @ p.B if contracting else p.B @ p.W
    A = A - p.alpha[:, None, None] * np.eye(A.shape[-1])
    cond = np.linalg.cond(A)
    if not np.all(cond < 1e12):
        raise InputError(
            f"{'W B' if contracting else 'B W'} - alpha I is singular (condition number "
            f"{np.max(cond):.3g}); use alpha > 0 or feedback B of full rank"
        )
    rhs = p.delta.transpose(0, 2, 1)
    if contracting:
        solved = p.B @ np.linalg.solve(A, rhs)
    else:
        solved = np.linalg.solve(A, p.B @ rhs)
    return p.restore(solved.transpose(0, 2, 1))


def di(W, B, delta, alpha, **circuit_options):
    """Dynamic inversion: settle the Brian2 circuit of Eqs. (5) and (8).

    delta_{l-1} is the state of the system population after the simulation
    (by default 1000 Euler steps of dt = 0.5 from rest), which tends to the
    `ndi` solution B (W B - alpha I)^-1 delta_l (Eq. 10). ``circuit_options``
    go to `circuits.settle_layer`.
    """
    return settle_layer(W, B, delta, alpha, **circuit_options)


RULES = {"bp": bp, "fa": fa, "pbp": pbp, "ndi": ndi, "di": di}
"""Backward rules by name."""

FEEDBACK_RULES = ("fa", "ndi", "di")
"""Rules that use feedback weights B."""


def get_rule(name):
    """Return the backward rule called ``name`` (see `RULES`)."""
    try:
        return RULES[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown rule {name!r}; choose one of {', '.join(RULES)}") from None
