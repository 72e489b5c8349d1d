"""R-Init: stable random feedback by minimising the smoothed spectral abscissa."""

import numpy as np
import pytest

from dinv.analysis.stability import (
    circuit_jacobian,
    jacobian_abscissa,
    loop_abscissa,
    loop_jacobian,
)
from dinv.circuits import settle_layer
from dinv.errors import InputError
from dinv.models.network import FeedforwardNetwork
from dinv.models.rules import ndi
from dinv.models.stabilise import (
    StabilisationError,
    full_abscissa,
    repair_feedback,
    restabilise,
    smoothed_abscissa,
    stabilise_feedback,
    unstable_feedback,
)
from dinv.models.training import Learner


@pytest.mark.parametrize("shape", [(20, 10), (10, 20), (30, 30), (10, 1000)])
@pytest.mark.parametrize("seed", range(10))
def test_random_feedback_becomes_stable(shape, seed):
    """R-Init drives the full Jacobian's abscissa below -0.01 from random U(-0.5, 0.5) B."""
    rng = np.random.default_rng(seed)
    W = rng.uniform(-0.5, 0.5, shape) / np.sqrt(shape[1]) * 3
    B = rng.uniform(-0.5, 0.5, shape[::-1])
    alpha = 0.05 if shape[0] > shape[1] else 0.01
    result = stabilise_feedback(W, B, alpha, lr=0.5, max_iters=2000, min_iters=10)
    dense = jacobian_abscissa(W, result.B, alpha)
    assert dense <= -0.01 + 1e-9
    assert result.abscissa == pytest.approx(dense, abs=1e-9)
    assert result.B.shape == B.shape


def test_reduced_abscissa_equals_dense_eigenvalues():
    """full_abscissa (2r x 2r reduction via the SVD of W) and jacobian_abscissa (from the
    small product) equal the eigenvalues of the full Jacobian; so does loop_abscissa."""
    rng = np.random.default_rng(3)
    for shape in [(6, 9), (9, 6), (7, 7)]:
        W = rng.standard_normal(shape)
        B = rng.standard_normal(shape[::-1])
        for alpha in (0.0, 0.3):
            dense = np.linalg.eigvals(circuit_jacobian(W, B, alpha)).real.max()
            assert full_abscissa(W, B, alpha) == pytest.approx(dense, abs=1e-9)
            assert jacobian_abscissa(W, B, alpha) == pytest.approx(dense, abs=1e-9)
    for widths in [(20, 10, 10), (8, 6, 5, 7), (5, 12)]:
        weights = [rng.standard_normal((widths[i + 1], widths[i])) / 2
                   for i in range(len(widths) - 1)]
        B = rng.standard_normal((widths[0], widths[-1]))
        for alpha in (0.0, 0.05):
            dense = np.linalg.eigvals(loop_jacobian(weights, B, alpha)).real.max()
            assert loop_abscissa(weights, B, alpha) == pytest.approx(dense, abs=1e-9)


def test_stabilisation_is_deterministic():
    """Same inputs, same feedback (no randomness inside the optimisation)."""
    rng = np.random.default_rng(4)
    W, B = rng.standard_normal((8, 12)) / 3, rng.uniform(-0.5, 0.5, (12, 8))
    first = stabilise_feedback(W, B, 0.01, lr=0.5, max_iters=2000)
    second = stabilise_feedback(W, B, 0.01, lr=0.5, max_iters=2000)
    np.testing.assert_array_equal(first.B, second.B)


def test_stable_feedback_already_at_target_is_kept_after_min_iters():
    """B = -W^T is stable; zero min_iters leaves it unchanged."""
    rng = np.random.default_rng(5)
    W = rng.standard_normal((5, 8)) / 3
    result = stabilise_feedback(W, -W.T, 0.1, min_iters=0)
    np.testing.assert_array_equal(result.B, -W.T)
    assert result.iterations == 0


def test_smoothed_abscissa_bounds_the_abscissa_and_matches_finite_differences():
    """s_eps >= spectral abscissa, and dS/dJ = QP/tr(QP) matches central differences."""
    rng = np.random.default_rng(6)
    J = rng.standard_normal((6, 6)) / 2 - np.eye(6)
    s, grad = smoothed_abscissa(J, eps=0.05)
    assert s >= np.linalg.eigvals(J).real.max()
    h = 1e-6
    for i, j in [(0, 0), (1, 4), (5, 2)]:
        E = np.zeros_like(J)
        E[i, j] = h
        numeric = (smoothed_abscissa(J + E, 0.05)[0] - smoothed_abscissa(J - E, 0.05)[0]) / (2 * h)
        assert grad[i, j] == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_smoothed_abscissa_of_a_scaled_identity():
    """For J = -c I: (1/m) tr P = 1 / (2 (c + s)) = 1/eps, so s = eps/2 - c."""
    s, _ = smoothed_abscissa(-2.0 * np.eye(4), eps=0.1)
    assert s == pytest.approx(0.05 - 2.0, abs=1e-8)


def test_unreachable_target_names_the_fix():
    """An expanding layer keeps modes at -alpha: a target below it raises with the fix."""
    rng = np.random.default_rng(7)
    W = rng.standard_normal((12, 5))
    with pytest.raises(StabilisationError, match="use alpha > 0.01"):
        stabilise_feedback(W, rng.standard_normal((5, 12)), 0.005)


def test_too_few_iterations_raise_with_what_was_reached():
    """One step from a strongly unstable B cannot reach the target: a clear error, no crash."""
    rng = np.random.default_rng(8)
    W = rng.standard_normal((6, 9))
    B = W.T * 3  # W B positive definite: unstable
    with pytest.raises(StabilisationError,
                       match="reached a spectral abscissa of .* raise max_iters"):
        stabilise_feedback(W, B, 0.01, max_iters=1, min_iters=0)


def test_bad_input():
    """Wrong B shape, negative alpha or a non-negative target raise InputError."""
    W = np.ones((3, 4))
    with pytest.raises(InputError, match="B must have shape"):
        stabilise_feedback(W, np.ones((3, 4)), 0.1)
    with pytest.raises(InputError, match="alpha"):
        stabilise_feedback(W, np.ones((4, 3)), -0.1)
    with pytest.raises(InputError, match="target"):
        stabilise_feedback(W, np.ones((4, 3)), 0.1, target=0.0)


def test_stabilised_circuit_settles_to_ndi():
    """The Brian2 circuit with R-Init feedback settles to B (WB - alpha I)^-1 delta."""
    rng = np.random.default_rng(9)
    W = rng.standard_normal((6, 10)) / np.sqrt(10)
    B = stabilise_feedback(W, rng.uniform(-0.5, 0.5, (10, 6)), 0.1, target=-0.05, lr=0.5,
                           max_iters=2000).B
    delta = rng.standard_normal((4, 6))
    settled = settle_layer(W, B, delta, 0.1, steps=6000)
    np.testing.assert_allclose(settled, ndi(W, B, delta, 0.1), rtol=1e-6, atol=1e-9)


def _di_learner(rng, rule="di", feedback=None):
    net = FeedforwardNetwork.create([6, 8, 5, 4], ["tanh", "tanh", "linear"], rng, scale=0.5)
    if feedback is None:
        feedback = [-net.weights[1].T, -net.weights[2].T]
    return Learner("m", rule, net, feedback, 0.01)


def test_restabilise_repairs_only_the_unstable_layer():
    """A positive abscissa in layer 2 only: that B is replaced (now <= -0.01), layer 1 kept."""
    rng = np.random.default_rng(10)
    learner = _di_learner(rng)
    stable = learner.feedback[0].copy()
    learner.feedback[1] = learner.net.weights[2].T * 2.0  # W B positive definite
    assert jacobian_abscissa(learner.net.weights[2], learner.feedback[1], 0.01) > 0
    events = restabilise([learner], 7, lr=0.5, max_iters=2000)
    assert [(e["iteration"], e["layer"]) for e in events] == [(7, 2)]
    assert events[0]["before"] > 0 and events[0]["after"] <= -0.01
    np.testing.assert_array_equal(learner.feedback[0], stable)
    assert jacobian_abscissa(learner.net.weights[2], learner.feedback[1], 0.01) <= -0.01 + 1e-9
    assert restabilise([learner], 8) == []


def test_restabilise_single_loop():
    """An unstable SLDI loop (B = +(W_3 W_2)^T) is repaired below the target."""
    from dinv.analysis.stability import loop_abscissa
    rng = np.random.default_rng(11)
    learner = _di_learner(rng, "sldi", feedback=[np.zeros((8, 4))])
    W2, W3 = learner.net.weights[1], learner.net.weights[2]
    learner.feedback[0] = 3.0 * (W3 @ W2).T
    assert loop_abscissa([W2, W3], learner.feedback[0], 0.01) > 0
    events = restabilise([learner], 0, lr=0.5, max_iters=3000)
    assert events and events[0]["layer"] == "loop"
    assert loop_abscissa([W2, W3], learner.feedback[0], 0.01) <= -0.01 + 1e-9


def test_unstable_feedback_checks_each_learner_as_alone():
    """One batched check of learners (the linear regression's 30-20-10 layers) with
    transposed (B = -W^T, also unstable: W B positive definite) and C-ordered feedback, and
    an unstable loop, finds per learner exactly the circuits and abscissae (bit for bit)
    that a check of that learner alone finds: layer pairs first, then loops."""
    rng = np.random.default_rng(2)
    nets = [FeedforwardNetwork.create([30, 20, 10], ["linear", "linear"], rng, scale=0.3)
            for _ in range(4)]
    feedback = [[-nets[0].weights[1].T], [np.ascontiguousarray(-nets[1].weights[1].T)],
                [2.0 * nets[2].weights[1].T], [3.0 * nets[3].weights[1].T]]
    rules = ["di", "ndi", "di", "sldi"]
    learners = [Learner(f"m{k}", rule, net, B, 0.01)
                for k, (rule, net, B) in enumerate(zip(rules, nets, feedback))]
    found = unstable_feedback(learners)
    assert [(k, layer) for k, layer, _ in found] == [(2, 0), (3, "loop")]
    for k, layer, before in found:
        assert unstable_feedback([learners[k]]) == [(0, layer, before)]
    assert found[0][2] == pytest.approx(
        jacobian_abscissa(nets[2].weights[1], feedback[2][0], 0.01), rel=1e-14)
    event = repair_feedback(learners[2], 0, found[0][2], 5, lr=0.5, max_iters=2000)
    assert event == {"model": "m2", "iteration": 5, "layer": 1, "before": found[0][2],
                     "after": event["after"], "method": "descent"}
    assert event["after"] <= -0.01
    assert [(k, layer) for k, layer, _ in unstable_feedback(learners)] == [(3, "loop")]


def test_r_init_models_share_their_feedback():
    """NDI, DI and SLDI models with R-Init at one alpha start from the same stabilised B."""
    from dinv.experiments.models_spec import ModelSpec
    rng = np.random.default_rng(12)
    net = FeedforwardNetwork.create([6, 8, 5, 4], ["tanh", "tanh", "linear"], rng, scale=0.5)
    shared = {}
    options = {"lr": 0.5, "max_iters": 2000}
    ndi_l = ModelSpec("n", "ndi", 0.01, "stable-random").learner(net, 1, options, shared)
    di_l = ModelSpec("d", "di", 0.01, "stable-random").learner(net, 1, options, shared)
    loop = ModelSpec("s", "sldi", 0.01, "stable-random").learner(net, 1, options, shared)
    for a, b in zip(ndi_l.feedback, di_l.feedback):
        np.testing.assert_array_equal(a, b)
        assert a is not b
    for j, B in enumerate(di_l.feedback):
        assert jacobian_abscissa(net.weights[j + 1], B, 0.01) <= -0.01 + 1e-9
    np.testing.assert_allclose(loop.feedback[0], -di_l.feedback[0] @ di_l.feedback[1])


@pytest.mark.parametrize("shape, alpha", [((10, 40), 0.01), ((40, 10), 0.1), ((25, 25), 0.01)])
def test_spectral_shift_moves_every_eigenvalue_of_wb_by_the_same_amount(shape, alpha):
    """B - c W^+ shifts the nonzero spectrum of W B by -c and reaches the target
    abscissa (computed from the dense Jacobian) with the smallest such c."""
    rng = np.random.default_rng(4)
    W = rng.uniform(-0.3, 0.3, shape)
    B = rng.uniform(-0.3, 0.3, W.T.shape)
    assert jacobian_abscissa(W, B, alpha) > 0
    result = stabilise_feedback(W, B, alpha, method="shift")
    dense = np.linalg.eigvals(circuit_jacobian(W, result.B, alpha)).real.max()
    assert dense <= -0.01 + 1e-9 and dense == pytest.approx(-0.01, abs=1e-6)
    small = min(shape)
    product = (lambda M: W @ M) if shape[0] <= shape[1] else (lambda M: M @ W)
    before = np.sort_complex(np.linalg.eigvals(product(B)))
    after = np.sort_complex(np.linalg.eigvals(product(result.B)))
    shift = before - after
    assert before.size == small
    np.testing.assert_allclose(shift.imag, 0, atol=1e-8)
    np.testing.assert_allclose(shift.real, shift.real[0], rtol=1e-8)
    # Slightly less shift would leave the circuit above the target.
    c = shift.real[0]
    pinv = np.linalg.pinv(W)
    assert jacobian_abscissa(W, B - 0.999 * c * pinv, alpha) > -0.01


def test_spectral_shift_keeps_stable_feedback():
    rng = np.random.default_rng(0)
    W = rng.uniform(-0.3, 0.3, (10, 30))
    result = stabilise_feedback(W, -W.T, 0.1, method="shift")
    assert np.array_equal(result.B, -W.T)


def test_unknown_stabiliser_is_refused():
    W = np.eye(3)
    with pytest.raises(InputError, match="method"):
        stabilise_feedback(W, -W, 0.1, method="newton")


def test_restabilise_falls_back_to_the_shift_when_descent_falls_short():
    rng = np.random.default_rng(3)
    net = FeedforwardNetwork.create([6, 12, 5], ["tanh", "linear"], rng, scale=0.5)
    B = rng.uniform(-1.0, 1.0, (12, 5))
    learners = [Learner(name, name, net.copy(), [B.copy()], 0.01) for name in ("ndi", "di")]
    assert jacobian_abscissa(net.weights[1], B, 0.01) > 0
    events = restabilise(learners, 7, max_iters=1, min_iters=0)
    assert [e["model"] for e in events] == ["ndi", "di"]
    assert all(e["method"].startswith("shift") and e["after"] <= -0.01 + 1e-9
               for e in events)
    assert np.array_equal(learners[0].feedback[0], learners[1].feedback[0])


@pytest.mark.parametrize("m", [4, 20, 40])
def test_eigen_solver_matches_the_lyapunov_solves(m):
    """The SSA and its gradient from one eigendecomposition equal the Lyapunov ones."""
    rng = np.random.default_rng(m)
    J = rng.standard_normal((m, m)) / np.sqrt(m)
    s, gradient = smoothed_abscissa(J)
    s_eig, gradient_eig = smoothed_abscissa(J, solver="eigen")
    assert s_eig == pytest.approx(s, abs=1e-12)
    np.testing.assert_allclose(gradient_eig, gradient, atol=1e-10)


def test_eigen_solver_falls_back_on_a_defective_jacobian():
    """A Jordan block (eigenvectors not a basis) takes the Lyapunov path: same result."""
    J = np.array([[-1.0, 1.0], [0.0, -1.0]])
    np.testing.assert_array_equal(smoothed_abscissa(J, solver="eigen")[1],
                                  smoothed_abscissa(J)[1])
    with pytest.raises(InputError, match="solver"):
        smoothed_abscissa(J, solver="schur")


@pytest.mark.parametrize("shape", [(20, 10), (10, 20), (30, 30), (10, 1000)])
@pytest.mark.parametrize("seed", range(3))
def test_repair_from_current_feedback_reaches_the_target(shape, seed):
    """The re-stabilisation of the regressions (eigen solver, no minimum of steps),
    from the feedback as it is, reaches the target abscissa in few steps."""
    rng = np.random.default_rng(seed)
    W = rng.uniform(-0.5, 0.5, shape) / np.sqrt(shape[1]) * 3
    B = rng.uniform(-0.5, 0.5, shape[::-1])
    alpha = 0.05 if shape[0] > shape[1] else 0.01
    result = stabilise_feedback(W, B, alpha, lr=0.5, max_iters=2000, min_iters=0,
                                solver="eigen")
    assert jacobian_abscissa(W, result.B, alpha) <= -0.01 + 1e-9
    # As many steps as the Lyapunov descent, give or take rounding near the target
    # (the trajectories agree to rounding, amplified over many steps).
    reference = stabilise_feedback(W, B, alpha, lr=0.5, max_iters=2000, min_iters=0)
    assert abs(result.iterations - reference.iterations) <= max(2, reference.iterations // 10)


def test_restabilise_with_the_eigen_solver_repairs_only_the_unstable_layer():
    rng = np.random.default_rng(10)
    learner = _di_learner(rng)
    stable = learner.feedback[0].copy()
    learner.feedback[1] = learner.net.weights[2].T * 2.0
    events = restabilise([learner], 7, lr=0.5, max_iters=2000, min_iters=0, solver="eigen")
    assert [(e["iteration"], e["layer"], e["method"]) for e in events] == [(7, 2, "descent")]
    assert events[0]["after"] <= -0.01
    np.testing.assert_array_equal(learner.feedback[0], stable)
