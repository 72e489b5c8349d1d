"""Closed forms of the inversion of targets and of direct feedback control (dinv.theory)."""

import numpy as np
import pytest

from dinv.errors import InputError
from dinv.theory import (
    chain_steady_state,
    direct_abscissa,
    direct_forward,
    direct_jacobian,
    direct_jacobians,
    direct_leak,
    direct_rhs,
    direct_state,
    direct_steady_state,
    target_chain_linear,
    target_chain_state,
    target_layer_rhs,
    target_pair_state,
)

SIZES = (5, 4, 3, 2)


def network(seed=0, sizes=SIZES):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((sizes[i + 1], sizes[i])) / np.sqrt(sizes[i])
               for i in range(len(sizes) - 1)][1:]
    offsets = [rng.standard_normal((6, d)) for d in sizes[1:-1]]
    delta = rng.standard_normal((6, sizes[-1]))
    return weights, offsets, delta


def test_linear_target_chain_is_the_chain_of_errors():
    weights, _, delta = network()
    B = [-W.T for W in weights]
    assert all(np.array_equal(a, b) for a, b in zip(
        target_chain_linear(weights, B, delta, 0.01), chain_steady_state(weights, B, delta, 0.01)))
    exact, converged = target_chain_state(weights, B, delta, 0.01, [np.zeros((6, 4)),
                                          np.zeros((6, 3))], ["linear", "linear"])
    assert converged.all()
    for a, b in zip(exact, chain_steady_state(weights, B, delta, 0.01)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_target_pair_state_zeroes_the_right_hand_side():
    """The exact (Newton) steady state of every layer pair of a tanh network is a rest
    point of `target_layer_rhs` (the top pair's readout linear, the lower one's through
    g_2 at a_2); for tiny errors it is the linearised closed form."""
    weights, offsets, delta = network(1)
    B = [-W.T for W in weights]
    exact, converged = target_chain_state(weights, B, delta, 0.01, offsets, ["tanh", "tanh"])
    assert converged.all()
    target = delta
    for j, (offset, transfer) in ((1, (0.0, "linear")), (0, (offsets[1], "tanh"))):
        x, u, ok = target_pair_state(weights[j], B[j], target, 0.01, offset, transfer)
        assert ok.all()
        dx, du = target_layer_rhs(x, u, weights[j], B[j], target, 0.01, offset, transfer)
        assert np.abs(dx).max() < 1e-13 and np.abs(du).max() < 1e-12
        np.testing.assert_array_equal(x, exact[j])
        target = x
    slopes = [1 - np.tanh(a) ** 2 for a in offsets]
    small = 1e-7 * delta
    linear = target_chain_linear(weights, B, small, 0.01, slopes)
    exact, _ = target_chain_state(weights, B, small, 0.01, offsets, ["tanh", "tanh"])
    for a, b in zip(linear, exact):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=0)


def test_targets_of_square_layers_are_the_gauss_newton_target():
    """With B = -W^T, invertible square layers and alpha -> 0, the linearised targets are
    J_l^-1 delta_L, J_l = d a_L / d h_l = W_L D_{L-1} .. W_{l+1}: Meulemans et al. (2020)'s
    Gauss-Newton target."""
    rng = np.random.default_rng(7)
    weights = [np.linalg.qr(rng.standard_normal((4, 4)))[0] for _ in range(2)]
    slopes = [rng.uniform(0.3, 1.0, (5, 4)) for _ in range(2)]
    delta = rng.standard_normal((5, 4))
    x1 = target_chain_linear(weights, [-W.T for W in weights], delta, 1e-12, slopes)[0]
    for n in range(5):
        J1 = weights[1] @ np.diag(slopes[1][n]) @ weights[0]
        np.testing.assert_allclose(x1[n], np.linalg.solve(J1, delta[n]), rtol=1e-8)


def test_direct_steady_state_is_a_rest_point():
    """u = (J Q + alpha' I)^-1 delta, delta_l = Q_l u: linear and tanh networks."""
    weights, offsets, delta = network(2)
    Q = [J.T for J in direct_jacobians(weights)]
    alpha, kp = 0.01, 1.5
    deltas, u = direct_steady_state(weights, Q, delta, alpha, kp)
    JQ = sum(J @ q for J, q in zip(direct_jacobians(weights), Q))
    np.testing.assert_allclose(u @ (JQ + direct_leak(alpha, kp) * np.eye(2)).T, delta,
                               rtol=1e-12, atol=1e-13)
    for transfers, offs in ((None, None), (["tanh", "tanh"], offsets)):
        deltas, u, ok = direct_state(weights, Q, delta, alpha, kp, offs, transfers)
        assert ok.all()
        hidden, _, _ = direct_forward(weights, Q, u, offs, transfers)
        d_hidden, d_u = direct_rhs(hidden, u / (1 + alpha * kp), weights, Q, delta, alpha, kp,
                                   0.2, offs, transfers)
        assert max(np.abs(d).max() for d in d_hidden) < 1e-12 and np.abs(d_u).max() < 1e-12
        for d, q in zip(deltas, Q):
            np.testing.assert_allclose(d, u @ q.T, rtol=1e-12)
    slopes = [1 - np.tanh(a) ** 2 for a in offsets]
    linear, _ = direct_steady_state(weights, Q, 1e-7 * delta, alpha, kp, slopes)
    exact, _, _ = direct_state(weights, Q, 1e-7 * delta, alpha, kp, offsets, ["tanh", "tanh"])
    for a, b in zip(linear, exact):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=0)


def test_direct_jacobian_is_the_derivative_of_the_rhs():
    weights, _, _ = network(3)
    Q = [J.T for J in direct_jacobians(weights)]
    alpha, kp, r = 0.05, 1.5, 0.2
    J = direct_jacobian(weights, Q, alpha, kp, r)

    def rhs(z):
        hidden = [z[None, :4], z[None, 4:7]]
        d_hidden, d_u = direct_rhs(hidden, z[None, 7:], weights, Q, np.zeros((1, 2)), alpha,
                                   kp, r)
        return np.concatenate([d_hidden[0][0], d_hidden[1][0], d_u[0]])

    numeric = np.stack([(rhs(1e-6 * e) - rhs(-1e-6 * e)) / 2e-6 for e in np.eye(9)], axis=1)
    np.testing.assert_allclose(numeric, J, atol=1e-9)
    # Q = J^T (the Tr-Init analogue) is stable; -J^T is not.
    assert direct_abscissa(weights, Q, alpha, kp, r) < 0
    assert direct_abscissa(weights, [-q for q in Q], alpha, 0.0, r) > 0
    stacked = direct_abscissa([np.stack([W, W]) for W in weights],
                              [np.stack([q, -q]) for q in Q], np.array([alpha, alpha]), 0.0, r)
    assert stacked[0] < 0 < stacked[1]


def test_direct_singular_system_is_refused():
    weights, _, delta = network(4)
    Q = [np.zeros((4, 2)), np.zeros((3, 2))]
    with pytest.raises(InputError, match="singular"):
        direct_steady_state(weights, Q, delta, 0.0)
