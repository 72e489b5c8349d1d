"""Backward rules (models.rules) and training (models.training) against closed forms."""

import numpy as np
import pytest

from dinv.circuits import SettleOptions
from dinv.errors import CircuitDivergedError, InputError
from dinv.models.initialisation import init_feedback
from dinv.models.network import FeedforwardNetwork
from dinv.models.rules import bp, fa, ndi, pbp
from dinv.models.training import (
    Learner,
    UpdateConfig,
    apply_updates,
    backward,
    replay_step,
    train_step,
    train_step_each,
    weight_updates,
)


def rel_err(x, ref):
    """max |x - ref| / max |ref|."""
    return float(np.max(np.abs(np.asarray(x) - ref)) / np.max(np.abs(ref)))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# --------------------------------------------------------------------------
# BP, FA, PBP
# --------------------------------------------------------------------------


def test_bp_is_w_transpose_per_sample(rng):
    """bp: row b of the result is W^T delta_b; shape (batch, d_l) -> (batch, d_{l-1})."""
    W = rng.standard_normal((3, 5))
    delta = rng.standard_normal((4, 3))
    got = bp(W, None, delta, 0.0)
    assert got.shape == (4, 5)
    for b in range(4):
        np.testing.assert_allclose(got[b], W.T @ delta[b], rtol=1e-12, atol=1e-14)


def test_fa_is_b_per_sample(rng):
    """fa: row b of the result is B delta_b, whatever W is."""
    W = rng.standard_normal((3, 5))
    B = rng.standard_normal((5, 3))
    delta = rng.standard_normal((4, 3))
    got = fa(W, B, delta, 0.0)
    assert got.shape == (4, 5)
    for b in range(4):
        np.testing.assert_allclose(got[b], B @ delta[b], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fa(2 * W, B, delta, 0.0), got, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4)])
def test_pbp_is_pseudoinverse(rng, shape):
    """pbp: row b is W^+ delta_b, with W^+ = V S^-1 U^T from the SVD."""
    W = rng.standard_normal(shape)
    delta = rng.standard_normal((6, shape[0]))
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    W_pinv = Vt.T @ np.diag(1 / s) @ U.T
    got = pbp(W, None, delta, 0.0)
    assert got.shape == (6, shape[1])
    np.testing.assert_allclose(got, delta @ W_pinv.T, rtol=1e-10, atol=1e-12)
    if shape[0] <= shape[1]:  # full row rank: W W^+ = I
        np.testing.assert_allclose(got @ W.T, delta, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rule", [bp, fa, pbp, ndi])
def test_rules_accept_vectors_and_stacks(rng, rule):
    """A 1-D delta gives a 1-D result; a stack equals the per-problem results."""
    W = rng.standard_normal((3, 3, 5)) / np.sqrt(5)
    B = -W.transpose(0, 2, 1) + 0.1 * rng.standard_normal((3, 5, 3))
    delta = rng.standard_normal((3, 4, 3))
    alphas = np.array([0.1, 0.5, 1.0])
    stacked = rule(W, B, delta, alphas)
    assert stacked.shape == (3, 4, 5)
    for c in range(3):
        single = rule(W[c], B[c], delta[c], alphas[c])
        np.testing.assert_allclose(stacked[c], single, rtol=1e-12, atol=1e-14)
        vec = rule(W[c], B[c], delta[c, 0], alphas[c])
        assert vec.shape == (5,)
        np.testing.assert_allclose(vec, single[0], rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------
# NDI
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 5), (4, 4)], ids=["contracting", "square"])
def test_ndi_contracting_and_square_closed_form(rng, shape):
    """ndi = B (W B - alpha I)^-1 delta for d_l <= d_{l-1}."""
    d_out, d_in = shape
    W = rng.standard_normal(shape)
    B = rng.standard_normal((d_in, d_out))
    delta = rng.standard_normal((7, d_out))
    expected = (B @ np.linalg.inv(W @ B - 0.3 * np.eye(d_out)) @ delta.T).T
    np.testing.assert_allclose(ndi(W, B, delta, 0.3), expected, rtol=1e-9, atol=1e-12)


def test_ndi_expanding_closed_form(rng):
    """ndi = (B W - alpha I)^-1 B delta for d_l > d_{l-1}."""
    W = rng.standard_normal((5, 3))
    B = rng.standard_normal((3, 5))
    delta = rng.standard_normal((7, 5))
    expected = (np.linalg.inv(B @ W - 0.3 * np.eye(3)) @ B @ delta.T).T
    np.testing.assert_allclose(ndi(W, B, delta, 0.3), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4)])
def test_ndi_two_forms_agree_when_alpha_positive(rng, shape):
    """B (W B - aI)^-1 = (B W - aI)^-1 B (push-through identity) for alpha > 0."""
    d_out, d_in = shape
    W = rng.standard_normal(shape)
    B = rng.standard_normal((d_in, d_out))
    delta = rng.standard_normal((7, d_out))
    a = 0.4
    form_l = (B @ np.linalg.solve(W @ B - a * np.eye(d_out), delta.T)).T
    form_lm1 = np.linalg.solve(B @ W - a * np.eye(d_in), B @ delta.T).T
    np.testing.assert_allclose(form_l, form_lm1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ndi(W, B, delta, a), form_l, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 5), (5, 3)], ids=["contracting", "expanding"])
def test_ndi_transpose_feedback_small_alpha_is_pseudoinverse(rng, shape):
    """Eq. 12: with B = -W^T and alpha -> 0, ndi = W^+ delta."""
    W = rng.standard_normal(shape)
    delta = rng.standard_normal((7, shape[0]))
    got = ndi(W, -W.T, delta, 1e-9)
    expected = delta @ np.linalg.pinv(W).T
    assert rel_err(got, expected) < 1e-6


def test_ndi_square_small_alpha_is_inverse_for_any_b(rng):
    """Square W, random B, alpha -> 0: ndi = W^-1 delta (B drops out)."""
    W = rng.standard_normal((4, 4))
    delta = rng.standard_normal((7, 4))
    expected = np.linalg.solve(W, delta.T).T
    for _ in range(3):
        B = rng.standard_normal((4, 4))
        assert rel_err(ndi(W, B, delta, 1e-9), expected) < 1e-6


def test_ndi_contracting_random_b_alpha_zero_is_right_inverse(rng):
    """Contracting, random B, alpha = 0: ndi = B (W B)^-1 delta and W ndi = delta."""
    W = rng.standard_normal((3, 6))
    B = rng.standard_normal((6, 3))
    delta = rng.standard_normal((7, 3))
    got = ndi(W, B, delta, 0.0)
    expected = (B @ np.linalg.inv(W @ B) @ delta.T).T
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got @ W.T, delta, rtol=1e-9, atol=1e-12)
    # ... a right inverse that differs from the pseudoinverse when B != -W^T.
    assert rel_err(got, delta @ np.linalg.pinv(W).T) > 1e-3


def test_ndi_alpha_zero_expanding_raises(rng):
    """alpha = 0 on an expanding layer (W B rank deficient) raises InputError."""
    W = rng.standard_normal((5, 3))
    with pytest.raises(InputError, match="expanding layer"):
        ndi(W, -W.T, rng.standard_normal((2, 5)), 0.0)


def test_ndi_singular_product_raises(rng):
    """A rank-deficient B with alpha = 0 on a contracting layer raises InputError."""
    W = rng.standard_normal((3, 5))
    B = rng.standard_normal((5, 2)) @ rng.standard_normal((2, 3))  # rank 2 < 3
    with pytest.raises(InputError, match="singular"):
        ndi(W, B, rng.standard_normal((2, 3)), 0.0)


# --------------------------------------------------------------------------
# Backprop against finite differences
# --------------------------------------------------------------------------


def numerical_gradients(net, x, t, eps=1e-6):
    """Central finite differences of net.loss w.r.t. every weight and bias."""
    grads = []
    for params in (net.weights, net.biases):
        layer_grads = []
        for p in params:
            g = np.zeros_like(p)
            for idx in np.ndindex(p.shape):
                old = p[idx]
                p[idx] = old + eps
                up = net.loss(x, t)
                p[idx] = old - eps
                down = net.loss(x, t)
                p[idx] = old
                g[idx] = (up - down) / (2 * eps)
            layer_grads.append(g)
        grads.append(layer_grads)
    return grads


def bp_updates(net, x, t):
    config = UpdateConfig(lr=1.0)
    learner = Learner("bp", "bp", net)
    fwd = net.forward(x)
    deltas = backward([learner], [fwd], [net.output_delta(fwd, t)], config)
    return weight_updates(net, fwd, deltas[0], config)


@pytest.mark.parametrize(
    "sizes, nonlinearities, output",
    [
        ([5, 4, 3, 2], ["tanh", "tanh", "linear"], "regression"),
        ([5, 4, 3, 2], ["tanh", "logistic", "tanh"], "regression"),
        ([4, 5, 3], ["tanh", "softmax"], "classification"),
    ],
)
def test_bp_updates_are_loss_gradients(rng, sizes, nonlinearities, output):
    """dW_l, db_l from bp equal central finite differences of the summed loss."""
    net = FeedforwardNetwork.create(sizes, nonlinearities, rng, scale=0.5)
    for b in net.biases:
        b[:] = rng.uniform(-0.5, 0.5, size=b.shape)
    x = rng.standard_normal((6, sizes[0]))
    if output == "regression":
        t = rng.standard_normal((6, sizes[-1]))
    else:
        t = np.eye(sizes[-1])[rng.integers(0, sizes[-1], size=6)]
    updates = bp_updates(net, x, t)
    grad_w, grad_b = numerical_gradients(net, x, t)
    for (dW, db), gW, gb in zip(updates, grad_w, grad_b):
        assert dW.shape == gW.shape and db.shape == gb.shape
        scale = max(np.max(np.abs(gW)), np.max(np.abs(gb)))
        np.testing.assert_allclose(dW, gW, rtol=1e-6, atol=1e-8 * scale)
        np.testing.assert_allclose(db, gb, rtol=1e-6, atol=1e-8 * scale)


# --------------------------------------------------------------------------
# train_step
# --------------------------------------------------------------------------


def snapshot(net):
    return [w.copy() for w in net.weights], [b.copy() for b in net.biases]


def assert_unchanged(net, snap):
    for w, w0 in zip(net.weights, snap[0]):
        np.testing.assert_array_equal(w, w0)
    for b, b0 in zip(net.biases, snap[1]):
        np.testing.assert_array_equal(b, b0)


def test_failed_ndi_learner_leaves_all_networks_unchanged(rng):
    """An InputError from the last learner's rule happens before any update is applied."""
    sizes, nl = [3, 2, 4], ["tanh", "linear"]  # layer 2 expands 2 -> 4
    net_bp = FeedforwardNetwork.create(sizes, nl, rng, scale=0.5)
    net_ndi = net_bp.copy()
    learners = [
        Learner("bp", "bp", net_bp),
        Learner("ndi", "ndi", net_ndi, feedback=[-net_ndi.weights[1].T], alpha=0.0),
    ]
    snaps = [snapshot(net_bp), snapshot(net_ndi)]
    x, t = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
    with pytest.raises(InputError, match="expanding layer"):
        train_step(learners, x, t, UpdateConfig(lr=0.1))
    assert_unchanged(net_bp, snaps[0])
    assert_unchanged(net_ndi, snaps[1])
    # Without the failing learner the same step does change the bp network.
    train_step(learners[:1], x, t, UpdateConfig(lr=0.1))
    assert np.max(np.abs(net_bp.weights[0] - snaps[0][0][0])) > 0


def test_diverging_di_learner_leaves_all_networks_unchanged(rng):
    """A CircuitDivergedError from a DI learner happens before any update is applied."""
    sizes, nl = [4, 5, 3], ["tanh", "linear"]  # layer 2 contracts 5 -> 3
    net_bp = FeedforwardNetwork.create(sizes, nl, rng, init="orthogonal")
    net_di = net_bp.copy()
    learners = [
        Learner("bp", "bp", net_bp),
        # B = +W^T with alpha = 0: W B = I, the circuit is unstable.
        Learner("di", "di", net_di, feedback=[net_di.weights[1].T.copy()], alpha=0.0),
    ]
    snaps = [snapshot(net_bp), snapshot(net_di)]
    x, t = rng.standard_normal((64, 4)), rng.standard_normal((64, 3))
    with pytest.raises(CircuitDivergedError, match="unstable"):
        train_step(learners, x, t, UpdateConfig(lr=0.1, circuit=SettleOptions(steps=1000)))
    assert_unchanged(net_bp, snaps[0])
    assert_unchanged(net_di, snaps[1])


def test_fixed_norm_gives_unit_updates(rng):
    """fixed_norm: each layer's (dW, db) has Frobenius norm 1, so weights move by lr."""
    net = FeedforwardNetwork.create([5, 4, 3, 2], ["tanh", "tanh", "linear"], rng, scale=0.5)
    before = snapshot(net)
    x, t = rng.standard_normal((6, 5)), rng.standard_normal((6, 2))
    config = UpdateConfig(lr=0.05, fixed_norm=True)
    learner = Learner("bp", "bp", net)
    fwd = net.forward(x)
    deltas = backward([learner], [fwd], [net.output_delta(fwd, t)], config)
    plain = weight_updates(net, fwd, deltas[0], UpdateConfig(lr=0.05))
    for (dW, db), (pW, pb) in zip(weight_updates(net, fwd, deltas[0], config), plain):
        assert np.sqrt(np.sum(dW**2) + np.sum(db**2)) == pytest.approx(1.0, rel=1e-12)
        norm = np.sqrt(np.sum(pW**2) + np.sum(pb**2))
        np.testing.assert_allclose(dW, pW / norm, rtol=1e-12)
        np.testing.assert_allclose(db, pb / norm, rtol=1e-12)
    train_step([learner], x, t, config)
    for l in range(net.depth):
        moved = np.sqrt(np.sum((net.weights[l] - before[0][l]) ** 2)
                        + np.sum((net.biases[l] - before[1][l]) ** 2))
        assert moved == pytest.approx(0.05, rel=1e-9)


def test_clip_hidden_clips_per_sample_norms(rng):
    """clip_hidden: after the backward pass each hidden row becomes min(1, c/|row|) * row
    (lower layers are computed from the unclipped errors, as in the paper's protocol)."""
    net = FeedforwardNetwork.create([4, 5, 6, 3], ["tanh", "tanh", "linear"], rng, scale=1.0)
    x, t = rng.standard_normal((8, 4)), 10 * rng.standard_normal((8, 3))
    fwd = net.forward(x)
    d3 = net.output_delta(fwd, t)
    d2_raw = (d3 @ net.weights[2]) * (1 - np.tanh(fwd.a[1]) ** 2)
    clip = float(np.median(np.linalg.norm(d2_raw, axis=1)))

    def clip_by_hand(d):
        out = d.copy()
        for b in range(d.shape[0]):
            norm = np.linalg.norm(d[b])
            if norm > clip:
                out[b] = d[b] * clip / norm
        return out

    d2 = clip_by_hand(d2_raw)
    d1 = clip_by_hand((d2_raw @ net.weights[1]) * (1 - np.tanh(fwd.a[0]) ** 2))
    config = UpdateConfig(lr=0.1, clip_hidden=clip)
    step = train_step([Learner("bp", "bp", net)], x, t, config)
    got = step.deltas[0]
    assert np.sum(np.linalg.norm(d2_raw, axis=1) > clip * 1.01) >= 2  # some rows clipped
    np.testing.assert_allclose(got[2], d3, rtol=1e-12)  # the output error is not clipped
    np.testing.assert_allclose(got[1], d2, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got[0], d1, rtol=1e-10, atol=1e-14)
    assert np.all(np.linalg.norm(got[1], axis=1) <= clip * (1 + 1e-12))


def test_weight_decay_adds_lambda_w(rng):
    """weight_decay: dW gains lambda * W_l; db is unchanged; the step subtracts lr * dW."""
    net = FeedforwardNetwork.create([5, 4, 2], ["tanh", "linear"], rng, scale=0.5)
    x, t = rng.standard_normal((6, 5)), rng.standard_normal((6, 2))
    lam, lr = 0.3, 0.01
    fwd = net.forward(x)
    learner = Learner("bp", "bp", net)
    deltas = backward([learner], [fwd], [net.output_delta(fwd, t)], UpdateConfig(lr=lr))[0]
    plain = weight_updates(net, fwd, deltas, UpdateConfig(lr=lr))
    decayed = weight_updates(net, fwd, deltas, UpdateConfig(lr=lr, weight_decay=lam))
    for l, ((pW, pb), (dW, db)) in enumerate(zip(plain, decayed)):
        np.testing.assert_allclose(dW - pW, lam * net.weights[l], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(db, pb)
    before = snapshot(net)
    train_step([learner], x, t, UpdateConfig(lr=lr, weight_decay=lam))
    for l, (dW, db) in enumerate(decayed):
        np.testing.assert_allclose(net.weights[l], before[0][l] - lr * dW, rtol=1e-12)
        np.testing.assert_allclose(net.biases[l], before[1][l] - lr * db, rtol=1e-12)


def test_di_and_ndi_learners_agree(rng):
    """A DI learner's settled hidden deltas equal an identical NDI learner's (Eq. 10)."""
    # Layer 2 expands 3 -> 5, layer 3 contracts 5 -> 3 (circuit shapes shared with
    # test_circuit_closed_form, so a warm process reuses them).
    sizes, nl = [4, 3, 5, 3], ["tanh", "tanh", "linear"]
    net = FeedforwardNetwork.create(sizes, nl, rng, init="orthogonal")
    feedback = [init_feedback(net.weights[l], "transpose", rng) for l in (1, 2)]
    learners = [
        Learner("di", "di", net.copy(), feedback=feedback, alpha=0.1),
        Learner("ndi", "ndi", net.copy(), feedback=feedback, alpha=0.1),
    ]
    x, t = rng.standard_normal((64, 4)), rng.standard_normal((64, 3))
    step = train_step(learners, x, t, UpdateConfig(lr=0.1, circuit=SettleOptions(steps=3000)))
    for l in (0, 1):
        assert rel_err(step.deltas[0][l], step.deltas[1][l]) < 1e-6
    for w_di, w_ndi in zip(learners[0].net.weights, learners[1].net.weights):
        np.testing.assert_allclose(w_di, w_ndi, rtol=1e-6, atol=1e-9)
    # ... and NDI is not BP here (alpha = 0.1 and an expanding layer).
    bp_learner = Learner("bp", "bp", net.copy())
    fwd = bp_learner.net.forward(x)
    bp_deltas = backward([bp_learner], [fwd], [bp_learner.net.output_delta(fwd, t)],
                         UpdateConfig(lr=0.1))[0]
    assert rel_err(step.deltas[1][0], bp_deltas[0]) > 1e-3


def test_replay_step_repeats_an_update_from_its_hidden_errors(rng):
    """Copies of a step's learners (DI, NDI, FA, BP; tanh, biases, clipped errors, one
    batch each), given the step's batches and its hidden errors, end with exactly the
    step's weights and biases; the repeated forward passes and errors are the step's."""
    sizes, nl = [4, 6, 5, 3], ["tanh", "tanh", "linear"]
    net = FeedforwardNetwork.create(sizes, nl, rng, scale=0.5, bias_scale=0.2)
    feedback = [init_feedback(net.weights[l], "transpose", rng) for l in (1, 2)]
    learners = [Learner("di", "di", net.copy(), feedback=feedback, alpha=0.1),
                Learner("ndi", "ndi", net.copy(), feedback=feedback, alpha=0.1),
                Learner("fa", "fa", net.copy(), feedback=[init_feedback(net.weights[l], "random",
                                                                        rng) for l in (1, 2)]),
                Learner("bp", "bp", net.copy())]
    copies = [Learner(lrn.name, lrn.rule, lrn.net.copy(), list(lrn.feedback), lrn.alpha)
              for lrn in learners]
    xs = [rng.standard_normal((3, 4)) for _ in learners]
    ts = [5 * rng.standard_normal((3, 3)) for _ in learners]
    config = UpdateConfig(lr=0.1, clip_hidden=1.0, circuit=SettleOptions(steps=300))
    step = train_step_each(learners, xs, ts, config)
    repeated = replay_step(copies, xs, ts, [deltas[:-1] for deltas in step.deltas], config)
    for learner, copy, original, again in zip(learners, copies, step.deltas, repeated.deltas):
        for mine, theirs in zip(learner.net.weights + learner.net.biases,
                                copy.net.weights + copy.net.biases):
            np.testing.assert_array_equal(mine, theirs)
        for a, b in zip(original, again):
            np.testing.assert_array_equal(a, b)
    for forward, again in zip(step.forward, repeated.forward):
        for a, b in zip(forward.a + forward.h, again.a + again.h):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(learners[0].net.weights[0], net.weights[0])


@pytest.mark.parametrize("stacked", [False, True])
def test_wrong_b_shape_message_names_expected_shape(rng, stacked):
    """A B of the wrong shape names the expected shape (d_{l-1}, d_l), with n if stacked."""
    W = rng.standard_normal((2, 3, 5)) if stacked else rng.standard_normal((3, 5))
    bad_B = np.swapaxes(W, -1, -2).copy()[..., :4, :]  # (.., 4, 3) instead of (.., 5, 3)
    delta = rng.standard_normal((2, 4, 3)) if stacked else rng.standard_normal((4, 3))
    expected = r"\(2, 5, 3\)" if stacked else r"\(5, 3\)"
    with pytest.raises(InputError, match=rf"B must have shape {expected} "):
        fa(W, bad_B, delta, 0.0)


@pytest.mark.parametrize("options", [{}, {"weight_decay": 0.3}, {"fixed_norm": True},
                                     {"fixed_norm": True, "weight_decay": 0.1}])
@pytest.mark.parametrize("batch", [1, 7])
def test_fused_update_equals_eq2(options, batch):
    """apply_updates (one in-place BLAS call per layer) equals W - eta * dW of
    weight_updates, biases included, also for weights that are not C-ordered."""
    rng = np.random.default_rng(batch)
    net = FeedforwardNetwork.create([6, 9, 4], ["tanh", "linear"], rng, scale=0.5,
                                    bias_scale=0.2)
    x, t = rng.standard_normal((batch, 6)), rng.standard_normal((batch, 4))
    config = UpdateConfig(lr=0.05, **options)
    fwd = net.forward(x)
    deltas = [rng.standard_normal((batch, 9)), net.output_delta(fwd, t)]
    expected = [(W - 0.05 * dW, b - 0.05 * db) for (dW, db), W, b in
                zip(weight_updates(net, fwd, deltas, config), net.weights, net.biases)]
    net.weights[1] = np.asfortranarray(net.weights[1])
    apply_updates(net, fwd, deltas, config)
    for (W, b), W_new, b_new in zip(expected, net.weights, net.biases):
        np.testing.assert_allclose(W_new, W, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b_new, b, rtol=1e-12, atol=1e-14)


def test_overflowing_update_is_refused_before_any_change():
    rng = np.random.default_rng(0)
    net = FeedforwardNetwork.create([3, 4, 2], ["tanh", "linear"], rng, scale=0.5)
    learner = Learner("BP", "bp", net)
    before = [W.copy() for W in net.weights]
    with pytest.raises(FloatingPointError, match="learning rate"):
        train_step([learner], np.full((1, 3), 1e200), np.full((1, 2), 1e200),
                   UpdateConfig(lr=1e200))
    for W, W0 in zip(net.weights, before):
        assert np.array_equal(W, W0)
