"""dinv.theory against closed forms: right-hand sides, Jacobians and steady states."""

import numpy as np
import pytest
from scipy.optimize import fsolve

from dinv.errors import InputError
from dinv.models.rules import ndi
from dinv.theory import (
    chain_abscissa,
    chain_jacobian,
    chain_rhs,
    chain_steady_state,
    circuit_jacobian,
    controller_residual,
    full_abscissa,
    inversion_matrix,
    jacobian_abscissa,
    layer_rhs,
    layer_steady_state,
    loop_abscissa,
    loop_jacobian,
    loop_residual,
    loop_rhs,
    loop_steady_state,
    product_abscissa,
    range_svd,
    reduced_rhs,
    steady_control,
)

SHAPES = [(3, 5), (4, 4), (5, 3)]
"""(d_l, d_{l-1}): contracting, square, expanding."""


@pytest.fixture
def rng():
    return np.random.default_rng(2020)


def finite_difference(f, x, step=1e-6):
    """Central-difference Jacobian of f: R^m -> R^k at x."""
    columns = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = step
        columns.append((f(x + e) - f(x - e)) / (2 * step))
    return np.stack(columns, axis=1)


def stable_pair(rng, shape, n=None):
    """W and B = -W^T + small noise: a stable layer pair (Sec. 3.2)."""
    size = shape if n is None else (n,) + shape
    W = rng.standard_normal(size) / np.sqrt(shape[1])
    B = -np.swapaxes(W, -1, -2) + 0.1 * rng.standard_normal(size[:-2] + shape[::-1])
    return W, B


# --------------------------------------------------------------------------
# layer pair: Eq. 10, Eq. 11, Eq. 12, Eq. 13
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_rhs_is_zero_at_the_eq10_steady_state(rng, shape):
    """Eqs. 5 and 8 stand still at delta* = Eq. 10 and u* = (W B - alpha I)^-1 delta_l."""
    W, B = stable_pair(rng, shape, n=3)
    delta = rng.standard_normal((3, 4, shape[0]))
    alpha = np.array([0.01, 0.1, 0.5])
    settled = layer_steady_state(W, B, delta, alpha)
    u = steady_control(W, B, delta, alpha)
    d_system, d_control = layer_rhs(settled, u, W, B, delta, alpha, tau_ratio=0.3)
    assert np.abs(d_system).max() < 1e-10
    assert np.abs(d_control).max() < 1e-10
    assert np.abs(controller_residual(W, settled, delta, u, alpha)).max() < 1e-10
    # Eq. 13 at the same u: the reduced controller stands still too.
    assert np.abs(reduced_rhs(u, W, B, delta, alpha)).max() < 1e-10


@pytest.mark.parametrize("shape", SHAPES)
def test_both_forms_of_eq10_agree(rng, shape):
    """B (W B - alpha I)^-1 delta = (B W - alpha I)^-1 B delta whenever both are invertible."""
    W, B = stable_pair(rng, shape)
    delta = rng.standard_normal((6, shape[0]))
    wb = layer_steady_state(W, B, delta, 0.2, form="WB")
    bw = layer_steady_state(W, B, delta, 0.2, form="BW")
    np.testing.assert_allclose(wb, bw, rtol=1e-10, atol=1e-12)
    assert wb.shape == (6, shape[1])


def test_ndi_is_the_theory_steady_state(rng):
    """NDI is Eq. 10 of dinv.theory, bit for bit, in every layout."""
    W, B = stable_pair(rng, (3, 5), n=2)
    delta = rng.standard_normal((2, 4, 3))
    alpha = np.array([0.01, 0.2])
    np.testing.assert_array_equal(ndi(W, B, delta, alpha), layer_steady_state(W, B, delta, alpha))
    np.testing.assert_array_equal(ndi(W[0], B[0], delta[0], 0.01),
                                  layer_steady_state(W[0], B[0], delta[0], 0.01))


def test_eq10_refuses_a_singular_matrix_and_an_unknown_form(rng):
    W = rng.standard_normal((5, 3))
    B = -W.T
    with pytest.raises(InputError, match="alpha > 0"):
        layer_steady_state(W, B, np.ones((1, 5)), 0.0, form="WB")
    with pytest.raises(InputError, match="form"):
        layer_steady_state(W, B, np.ones((1, 5)), 0.1, form="BW^T")
    with pytest.raises(InputError, match="alpha > 0"):
        steady_control(W, np.zeros((3, 5)), np.ones((1, 5)), 0.0)


@pytest.mark.parametrize("shape", [(10, 20), (20, 10), (40, 60)])
def test_eq10_stacks_give_each_problem_its_numbers_alone(rng, shape):
    """Small systems (one batched solve for the whole stack) and large ones (40 x 40: one LU
    per problem): each problem of a stack gets exactly the numbers it gets alone, which solve
    W B - alpha I (or B W - alpha I) x = rhs; a near-singular problem anywhere in the stack
    is refused with its condition number."""
    n = 4
    W = rng.standard_normal((n, *shape)) / np.sqrt(shape[1])
    B = -W.transpose(0, 2, 1) + 0.1 * rng.standard_normal((n, shape[1], shape[0]))
    delta = rng.standard_normal((n, 3, shape[0]))
    alpha = np.array([0.01, 0.1, 0.02, 0.05])
    stacked = layer_steady_state(W, B, delta, alpha)
    for k in range(n):
        alone = layer_steady_state(W[k:k + 1], B[k:k + 1], delta[k:k + 1], alpha[k:k + 1])
        np.testing.assert_array_equal(stacked[k], alone[0])
        if shape[0] <= shape[1]:
            u = np.linalg.solve(W[k] @ B[k] - alpha[k] * np.eye(shape[0]), delta[k].T)
            np.testing.assert_allclose(stacked[k], (B[k] @ u).T, rtol=1e-10, atol=1e-12)
    singular = B.copy()  # problem 2: a rank-1 B with alpha = 0
    singular[2] = rng.standard_normal((shape[1], 1)) @ rng.standard_normal((1, shape[0]))
    with pytest.raises(InputError, match=r"alpha I is singular \(condition number"):
        layer_steady_state(W, singular, delta, np.array([0.01, 0.1, 0.0, 0.05]))


@pytest.mark.parametrize("shape", SHAPES)
def test_eq11_holds_at_the_steady_state(rng, shape):
    """delta_{l-1} = M^DI (delta_l + alpha u_l) with M^DI of Eq. 12, for alpha > 0."""
    W, B = stable_pair(rng, shape)
    delta = rng.standard_normal((4, shape[0]))
    alpha = 0.3
    settled = layer_steady_state(W, B, delta, alpha)
    u = steady_control(W, B, delta, alpha)
    M = inversion_matrix(W, B)
    np.testing.assert_allclose((delta + alpha * u) @ M.T, settled, rtol=1e-9, atol=1e-12)


def test_eq12_cases(rng):
    """M^DI is a right inverse of a contracting W, W^-1 for a square and W^+ for an
    expanding one; with B = -W^T the contracting case is W^+ as well."""
    W = rng.standard_normal((3, 6))
    B = rng.standard_normal((6, 3))
    np.testing.assert_allclose(W @ inversion_matrix(W, B), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(inversion_matrix(W, -W.T), np.linalg.pinv(W), atol=1e-12)
    square = rng.standard_normal((4, 4))
    np.testing.assert_allclose(inversion_matrix(square, B[:4, :4]), np.linalg.inv(square),
                               atol=1e-12)
    tall = rng.standard_normal((6, 3))
    np.testing.assert_allclose(inversion_matrix(tall, B.T), np.linalg.pinv(tall), atol=1e-12)
    # stacks
    stack = rng.standard_normal((2, 3, 6))
    feedback = rng.standard_normal((2, 6, 3))
    np.testing.assert_allclose(inversion_matrix(stack, feedback)[1],
                               inversion_matrix(stack[1], feedback[1]), atol=1e-12)


def test_eq12_is_the_small_leak_limit_for_contracting_layers(rng):
    """NDI tends to M^DI delta as alpha -> 0, linearly in alpha; to W^+ delta for B = -W^T."""
    W = rng.standard_normal((3, 6)) / np.sqrt(6)
    B = -W.T + 0.2 * rng.standard_normal((6, 3))
    delta = rng.standard_normal((5, 3))
    limit = delta @ inversion_matrix(W, B).T
    gaps = [np.abs(layer_steady_state(W, B, delta, a) - limit).max() for a in (1e-2, 1e-4, 1e-6)]
    assert gaps[1] / gaps[0] == pytest.approx(1e-2, rel=0.05)
    assert gaps[2] / gaps[0] == pytest.approx(1e-4, rel=0.05)
    pinv = delta @ np.linalg.pinv(W).T
    np.testing.assert_allclose(layer_steady_state(W, -W.T, delta, 1e-9), pinv, rtol=1e-6)


# --------------------------------------------------------------------------
# the nonlinear controller: Eqs. 14-16
# --------------------------------------------------------------------------


def test_nonlinear_controller_residual_is_zero_at_a_solved_steady_state(rng):
    """Solve Eq. 15 for u (with delta_{l-1} = B u): the circuit of Eq. 14 stands still,
    and for a square layer delta_{l-1} = g^-1(M^DI (delta_l + alpha u)) (Eq. 16)."""
    W, B = stable_pair(rng, (4, 4))
    delta = 0.3 * rng.standard_normal((1, 4))
    alpha = 0.05

    def condition(u):
        u = u[None]
        return controller_residual(W, u @ B.T, delta, u, alpha, "tanh")[0]

    u = fsolve(condition, np.zeros(4), xtol=1e-13)[None]
    settled = u @ B.T
    d_system, d_control = layer_rhs(settled, u, W, B, delta, alpha, 0.5, "tanh")
    assert np.abs(d_system).max() < 1e-12
    assert np.abs(d_control).max() < 1e-10
    eq16 = np.arctanh((delta + alpha * u) @ inversion_matrix(W, B).T)
    np.testing.assert_allclose(settled, eq16, rtol=1e-8)


# --------------------------------------------------------------------------
# Jacobians and abscissae
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("transfer", ["linear", "tanh"])
def test_layer_jacobian_is_the_derivative_of_the_rhs(rng, shape, transfer):
    d_out, d_in = shape
    W, B = rng.standard_normal(shape), rng.standard_normal(shape[::-1])
    delta = rng.standard_normal((1, d_out))
    alpha, ratio = 0.2, 0.4
    state = rng.standard_normal(d_in + d_out)

    def rhs(x):
        d, u = layer_rhs(x[None, :d_in], x[None, d_in:], W, B, delta, alpha, ratio, transfer)
        return np.concatenate([d[0], u[0]])

    slopes = None if transfer == "linear" else 1.0 - np.tanh(state[:d_in]) ** 2
    J = circuit_jacobian(W, B, alpha, ratio, slopes)
    np.testing.assert_allclose(J, finite_difference(rhs, state), atol=1e-8)


def test_layer_abscissa_equals_the_dense_eigenvalues_for_stacks(rng):
    for shape in SHAPES:
        W = rng.standard_normal((4,) + shape)
        B = rng.standard_normal((4,) + shape[::-1])
        alpha = np.array([0.0, 0.01, 0.3, 1.0]) + (shape[0] > shape[1]) * 0.1
        for ratio in (1.0, 0.25, 3.0):
            dense = [np.linalg.eigvals(circuit_jacobian(W[k], B[k], alpha[k], ratio)).real.max()
                     for k in range(4)]
            np.testing.assert_allclose(jacobian_abscissa(W, B, alpha, ratio), dense, atol=1e-9)
        for k in range(4):
            # The reduced 2r x 2r block (tau_ratio 1) gives the same abscissa.
            dense = np.linalg.eigvals(circuit_jacobian(W[k], B[k], alpha[k])).real.max()
            assert full_abscissa(W[k], B[k], alpha[k]) == pytest.approx(dense, abs=1e-9)


def test_product_abscissa_is_the_reduced_blocks(rng):
    """(1 + l)(alpha + l) = mu over the eigenvalues mu of S B_r gives J_r's abscissa."""
    W, B = rng.standard_normal((4, 7)), rng.standard_normal((7, 4))
    U, S, Vt = range_svd(W)
    mu = np.linalg.eigvals(S[:, None] * (Vt @ B @ U))
    assert product_abscissa(mu, 0.2) == pytest.approx(full_abscissa(W, B, 0.2), abs=1e-10)


def chain_problem(rng, widths, n=None):
    lead = () if n is None else (n,)
    weights = [rng.standard_normal(lead + (widths[l + 1], widths[l])) / np.sqrt(widths[l])
               for l in range(1, len(widths) - 1)]
    feedback = [-np.swapaxes(W, -1, -2) + 0.1 * rng.standard_normal(W.shape[:-2] + W.shape[:-3:-1])
                for W in weights]
    return weights, feedback


def test_chain_jacobian_is_the_derivative_of_the_repeat_chain_rhs(rng):
    widths = [7, 6, 4, 5, 3]
    weights, feedback = chain_problem(rng, widths)
    pairs = len(weights)
    gains = [rng.uniform(0.2, 1.0, (1, d)) for d in widths[1:-1]]
    alpha = np.array([0.01, 0.1, 0.2])
    ratios = [0.5, 1.0, 2.0]
    delta = rng.standard_normal((1, widths[-1]))
    systems, controls = widths[1:-1], widths[2:]

    def rhs(x):
        parts = np.split(x, np.cumsum(systems + controls)[:-1])
        d, u = chain_rhs([p[None] for p in parts[:pairs]], [p[None] for p in parts[pairs:]],
                         weights, feedback, delta, alpha, gains, ratios)
        return np.concatenate([r[0] for r in d + u])

    state = rng.standard_normal(sum(systems + controls))
    J = chain_jacobian(weights, feedback, alpha, [g[0] for g in gains], ratios)
    np.testing.assert_allclose(J, finite_difference(rhs, state), atol=1e-8)
    dense = np.linalg.eigvals(J).real.max()
    assert chain_abscissa(weights, feedback, alpha, ratios) == pytest.approx(dense, abs=1e-9)


def test_chain_abscissa_for_stacks_and_per_pair_leaks(rng):
    widths = [5, 4, 6, 3]
    weights, feedback = chain_problem(rng, widths, n=3)
    alpha = rng.uniform(0.05, 0.3, (3, 2))
    values = chain_abscissa(weights, feedback, alpha)
    for k in range(3):
        J = chain_jacobian([W[k] for W in weights], [B[k] for B in feedback], alpha[k])
        assert values[k] == pytest.approx(np.linalg.eigvals(J).real.max(), abs=1e-9)
    with pytest.raises(InputError, match="layer pair"):
        chain_abscissa(weights, feedback, np.zeros((3, 5)))
    with pytest.raises(InputError, match="tau_ratio"):
        chain_abscissa(weights, feedback, 0.1, tau_ratio=[1.0, 2.0, 3.0])


@pytest.mark.parametrize("widths", [(6, 5, 4), (8, 6, 5, 7), (5, 12)])
def test_loop_jacobian_is_the_derivative_of_the_loop_rhs(rng, widths):
    d_first, d_last = widths[0], widths[-1]
    weights = [rng.standard_normal((widths[i + 1], widths[i])) / 2
               for i in range(len(widths) - 1)]
    B = rng.standard_normal((d_first, d_last))
    transfers = ["tanh"] * len(weights)
    delta = rng.standard_normal((1, d_last))
    alpha, ratio = 0.05, 0.5
    hidden_widths = list(widths[:-1])

    def rhs(x):
        parts = np.split(x, np.cumsum(hidden_widths))
        d_hidden, d_u = loop_rhs([p[None] for p in parts[:-1]], parts[-1][None], weights, B,
                                 delta, alpha, ratio, transfers)
        return np.concatenate([h[0] for h in d_hidden] + [d_u[0]])

    state = rng.standard_normal(sum(widths))
    parts = np.split(state, np.cumsum(hidden_widths))
    slopes = [1.0 - np.tanh(h) ** 2 for h in parts[:-1]]
    J = loop_jacobian(weights, B, alpha, ratio, slopes)
    np.testing.assert_allclose(J, finite_difference(rhs, state), atol=1e-8)
    # At rest (g'(0) = 1) the abscissa of the small product is the dense one.
    for r in (1.0, ratio, 2.0):
        dense = np.linalg.eigvals(loop_jacobian(weights, B, alpha, r)).real.max()
        assert loop_abscissa(weights, B, alpha, r) == pytest.approx(dense, abs=1e-9)


# --------------------------------------------------------------------------
# chains (Eq. 17) and the single loop
# --------------------------------------------------------------------------


def test_chain_steady_state_is_eq10_layer_by_layer_with_gains(rng):
    """Eq. 17 by hand (np.linalg.solve per layer and problem), and the repeat chain's
    right-hand side is zero at it."""
    widths = [6, 5, 4, 6, 3]
    n, batch = 2, 3
    weights, feedback = chain_problem(rng, widths, n=n)
    gains = [rng.uniform(0.2, 1.0, (n, batch, d)) for d in widths[1:-1]]
    alpha = np.array([[0.01, 0.1, 0.3], [0.2, 0.05, 0.1]])
    delta = rng.standard_normal((n, batch, widths[-1]))
    deltas = chain_steady_state(weights, feedback, delta, alpha, gains)
    states, controls, target = [None] * 3, [None] * 3, delta
    for j in (2, 1, 0):
        for k in range(n):
            W, B = weights[j][k], feedback[j][k]
            u = np.linalg.solve(W @ B - alpha[k, j] * np.eye(W.shape[0]), target[k].T).T
            np.testing.assert_allclose(deltas[j][k], (u @ B.T) * gains[j][k], rtol=1e-9)
        states[j] = layer_steady_state(weights[j], feedback[j], target, alpha[:, j])
        controls[j] = steady_control(weights[j], feedback[j], target, alpha[:, j])
        target = states[j] * gains[j]
    d_states, d_controls = chain_rhs(states, controls, weights, feedback, delta, alpha, gains)
    assert max(np.abs(r).max() for r in d_states + d_controls) < 1e-10
    # One leak per problem for every pair.
    same = chain_steady_state(weights, feedback, delta, alpha[:, 0], gains)
    for d, s in zip(chain_steady_state(weights, feedback, delta,
                                       np.repeat(alpha[:, :1], 3, axis=1), gains), same):
        np.testing.assert_array_equal(d, s)


def test_linear_loop_steady_state(rng):
    """The closed form stands still, fills the residual with zeros, and its first layer
    is B u with u = (W_L .. W_2 B - alpha I)^-1 delta_L."""
    widths = [5, 4, 3]
    weights = [rng.standard_normal((widths[i + 1], widths[i])) for i in range(2)]
    B = -(weights[1] @ weights[0]).T
    delta = rng.standard_normal((2, 3))
    hidden, u = loop_steady_state(weights, B, delta, 0.1)
    d_hidden, d_u = loop_rhs(hidden, u, weights, B, delta, 0.1)
    assert max(np.abs(r).max() for r in d_hidden + [d_u]) < 1e-10
    assert np.abs(loop_residual(u, weights, B, delta, 0.1)[0]).max() < 1e-10
    M = weights[1] @ weights[0] @ B
    np.testing.assert_allclose(u, np.linalg.solve(M - 0.1 * np.eye(3), delta.T).T, rtol=1e-10)


def test_nonlinear_loop_stands_still_where_its_residual_vanishes(rng):
    widths = [4, 5, 4, 3]
    weights = [rng.standard_normal((widths[i + 1], widths[i])) / 2 for i in range(3)]
    forward = weights[2] @ weights[1] @ weights[0]
    B = -forward.T
    delta = 0.2 * rng.standard_normal((1, 3))
    transfers = ["tanh", "logistic", "tanh"]

    def condition(u):
        return loop_residual(u[None], weights, B, delta, 0.05, transfers)[0][0]

    u = fsolve(condition, np.zeros(3), xtol=1e-13)[None]
    residual, hidden = loop_residual(u, weights, B, delta, 0.05, transfers)
    assert np.abs(residual).max() < 1e-10
    d_hidden, d_u = loop_rhs(hidden, u, weights, B, delta, 0.05, 2.0, transfers)
    assert max(np.abs(r).max() for r in d_hidden + [d_u]) < 1e-10
