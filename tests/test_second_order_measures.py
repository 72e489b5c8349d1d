"""Second-order measures (dinv.analysis.second_order) against independent references:
finite differences of the network, dense against matrix-free solves, known answers."""

import numpy as np
import pytest

from dinv.analysis import second_order as so
from dinv.models.network import FeedforwardNetwork


def case(nonlinearities=("tanh", "tanh", "linear"), sizes=(6, 5, 4, 3), batch=7, seed=0,
         bias=True):
    rng = np.random.default_rng(seed)
    net = FeedforwardNetwork.create(list(sizes), list(nonlinearities), rng, init="orthogonal",
                                    bias=bias, bias_scale=0.1 if bias else 0.0)
    x, t = rng.standard_normal((batch, sizes[0])), rng.standard_normal((batch, sizes[-1]))
    forward = net.forward(x)
    slopes = [g.derivative(a) for g, a in zip(net.nonlinearities[:-1], forward.a[:-1])]
    last = net.nonlinearities[-1]
    metric = None
    if last.name == "softmax":
        metric = so.output_metric("cross-entropy", forward.output)
    elif last.name != "linear":
        metric = so.output_metric("squared", forward.output, last.derivative(forward.a[-1]))
    lin = so.Linearisation(net.weights, forward.h[:-1], slopes, metric, bias)
    return net, x, t, lin, net.output_delta(forward, t)


def parameters(net):
    return np.concatenate([np.concatenate([W.ravel(), b]) for W, b in
                           zip(net.weights, net.biases)])


def set_parameters(net, theta):
    start = 0
    for W, b in zip(net.weights, net.biases):
        W[...] = theta[start:start + W.size].reshape(W.shape)
        start += W.size
        b[...] = theta[start:start + b.size]
        start += b.size


def finite_difference_gauss_newton(net, x, t, damping, loss="squared"):
    """(G + lambda I)^-1 g from a finite-difference J_theta of a_L and the loss's
    Hessian in a_L computed independently."""
    theta = parameters(net)
    probe = net.copy()

    def pre_output(values):
        set_parameters(probe, values)
        return probe.forward(x).a[-1].ravel()

    eps = 1e-6
    J = np.stack([(pre_output(theta + eps * e) - pre_output(theta - eps * e)) / (2 * eps)
                  for e in np.eye(theta.size)], axis=1)          # (batch * d_L, P)
    forward = net.forward(x)
    a, batch = forward.a[-1], x.shape[0]
    if loss == "cross-entropy":
        p = forward.output
        H = [np.diag(q) - np.outer(q, q) for q in p]
    else:
        slope = 1 - np.tanh(a) ** 2 if net.nonlinearities[-1].name == "tanh" else np.ones_like(a)
        H = [np.diag(s ** 2) for s in slope]
    d = a.shape[1]
    G = sum(J[n * d:(n + 1) * d].T @ H[n] @ J[n * d:(n + 1) * d] for n in range(batch)) / batch
    g = J.T @ net.output_delta(forward, t).ravel() / batch
    return np.linalg.solve(G + damping * np.eye(theta.size), g)


@pytest.mark.parametrize("nonlinearities", [("tanh", "tanh", "linear"),
                                            ("tanh", "tanh", "tanh"),
                                            ("tanh", "tanh", "softmax")])
def test_gauss_newton_update_against_finite_differences(nonlinearities):
    net, x, t, lin, delta = case(nonlinearities)
    loss = "cross-entropy" if nonlinearities[-1] == "softmax" else "squared"
    reference = finite_difference_gauss_newton(net, x, t, 0.1, loss)
    for method in ("dense", "cg"):
        gn = so.gauss_newton_update(lin, delta, 0.1, "joint", method)
        got = np.concatenate([np.concatenate([W.ravel(), b]) for W, b in gn.updates])
        np.testing.assert_allclose(got, reference, rtol=1e-6, atol=1e-8 * np.abs(reference).max())
        assert gn.method == method and gn.residual < 1e-9


def test_layerwise_gauss_newton_is_each_block_alone():
    """The layer-wise update of layer l is the joint update of a network whose other
    parameters cannot move: the l-th diagonal block of G alone; CG agrees with dense."""
    net, _x, _t, lin, delta = case()
    dense = so.gauss_newton_update(lin, delta, 0.1, "layer", "dense")
    cg = so.gauss_newton_update(lin, delta, 0.1, "layer", "cg")
    J = so._dense_jacobian(lin, list(range(3)))
    G = np.einsum("nkp,nkq->pq", J, J) / lin.batch
    g = so._gradient(lin, delta, list(range(3)))
    start = 0
    for l in range(3):
        size = net.weights[l].size + net.biases[l].size
        block = slice(start, start + size)
        expected = np.linalg.solve(G[block, block] + 0.1 * np.eye(size), g[block])
        got = np.concatenate([dense.updates[l][0].ravel(), dense.updates[l][1]])
        np.testing.assert_allclose(got, expected, rtol=1e-10)
        np.testing.assert_allclose(cg.updates[l][0], dense.updates[l][0], rtol=1e-7,
                                   atol=1e-10)
        start += size


def test_auto_switches_to_conjugate_gradients_beyond_the_dense_limit(monkeypatch):
    _net, _x, _t, lin, delta = case(sizes=(9, 8, 7, 3))
    dense = so.gauss_newton_update(lin, delta, 0.05, "joint", "dense")
    monkeypatch.setattr(so, "DENSE_LIMIT", 50)
    auto = so.gauss_newton_update(lin, delta, 0.05, "joint")
    assert auto.method == "cg" and auto.iterations > 0 and auto.residual < 1e-9
    for (a, _), (b, _) in zip(auto.updates, dense.updates):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)


def test_hidden_jacobians_against_finite_differences():
    net, x, _t, lin, _delta = case()
    J = so.hidden_jacobians(lin)
    forward = net.forward(x)
    n, eps = 2, 1e-6

    def from_h1(h):
        h2 = np.tanh(net.weights[1] @ h + net.biases[1])
        return net.weights[2] @ h2 + net.biases[2]

    h1 = forward.h[1][n]
    numeric = np.stack([(from_h1(h1 + eps * e) - from_h1(h1 - eps * e)) / (2 * eps)
                        for e in np.eye(5)], axis=1)
    np.testing.assert_allclose(J[0][n], numeric, atol=1e-8)
    np.testing.assert_allclose(J[1][n], net.weights[2], atol=0)


def test_gnt_errors_invert_square_linear_networks():
    """For invertible square layers the Gauss-Newton target is J^-1 delta (lambda -> 0)."""
    net, _x, _t, lin, delta = case(("linear",) * 3, sizes=(4, 4, 4, 4), bias=False)
    errors = so.gnt_errors(lin, delta, 1e-12)
    J1 = net.weights[2] @ net.weights[1]
    np.testing.assert_allclose(errors[0], np.linalg.solve(J1, delta.T).T, rtol=1e-8)
    assert errors[-1] is delta


def test_null_shares():
    """BP's errors have no null-space part; an error in the null space of the contracting
    layer's Jacobian is all null space; half and half gives half."""
    _net, _x, _t, lin, delta = case(sizes=(6, 5, 4, 2))
    assert max(so.null_shares(lin, so.backprop_errors(lin, delta))) < 1e-20
    A = so.hidden_jacobians(lin)[1] * lin.slopes[1][:, None, :]      # (batch, 2, 4)
    null = np.stack([np.linalg.svd(a)[2][-1] for a in A])           # unit, in null(A)
    row = np.stack([np.linalg.svd(a)[2][0] for a in A])             # unit, in rows(A)
    errors = so.backprop_errors(lin, delta)
    assert so.null_shares(lin, errors[:1] + [null] + errors[2:])[1] == pytest.approx(1.0)
    assert so.null_shares(lin, errors[:1] + [null + row] + errors[2:])[1] == pytest.approx(0.5)
    assert so.null_shares(lin, errors)[-1] == 0.0


def test_measures_of_backprop_and_of_the_gauss_newton_update():
    _net, _x, _t, lin, delta = case()
    bp = so.backprop_errors(lin, delta)
    measures = so.second_order_measures(lin, delta, so.weight_updates(lin, bp), 0.1, bp)
    assert [m["to_bp_deg"] for m in measures] == [0.0, 0.0, 0.0]
    assert all(m["null_share"] < 1e-20 for m in measures)
    joint = so.gauss_newton_update(lin, delta, 0.1)
    gn = so.second_order_measures(lin, delta, [W for W, _ in joint.updates], 0.1)
    assert [m["to_gn_deg"] for m in gn] == [0.0, 0.0, 0.0]
    assert all(np.isnan(m["null_share"]) for m in gn)
    assert so.update_angle(np.zeros(3), np.ones(3)) != so.update_angle(np.zeros(3), np.ones(3))
    assert so.update_angle([1.0, 0.0], [0.0, 2.0]) == pytest.approx(90.0)
