"""analysis.metrics and analysis.stability against hand-computed values."""

import numpy as np
import pytest

from dinv.analysis.metrics import (
    classification_error,
    matrix_angle,
    nmse,
    summed_squared_error,
    vector_angle,
)
from dinv.analysis.stability import circuit_jacobian, jacobian_abscissa, reduced_abscissa

# --------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "u, v, angle",
    [
        ((1, 0), (1, 1), 45.0),
        ((1, 0), (0, 3), 90.0),
        ((1, 2), (-2, -4), 180.0),
        ((2, 2), (5, 5), 0.0),
        ((1, 0), (-1, np.sqrt(3)), 120.0),
    ],
)
def test_vector_angle_hand_values(u, v, angle):
    """vector_angle = arccos(u.v / |u||v|) in degrees for hand-picked pairs."""
    # arccos near +-1 loses half the digits: ~1e-6 degrees.
    assert vector_angle(u, v) == pytest.approx(angle, abs=1e-5)


def test_vector_angle_batched_over_leading_axes():
    """Leading axes are a batch: one angle per row, last axis is the vector."""
    u = np.array([[[1, 0], [1, 0]], [[0, 1], [1, 1]]], dtype=float)
    v = np.array([[[1, 1], [-1, 0]], [[0, 2], [1, -1]]], dtype=float)
    np.testing.assert_allclose(vector_angle(u, v), [[45.0, 180.0], [0.0, 90.0]], atol=1e-5)


def test_vector_angle_zero_vector_is_nan():
    """A zero vector has no direction: the angle is NaN."""
    assert np.isnan(vector_angle([0.0, 0.0], [1.0, 2.0]))


def test_matrix_angle_feedback_alignment():
    """matrix_angle(B, -W^T) is 0 for B = -W^T, 180 for B = W^T, 90 for a Frobenius-orthogonal B."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 5))
    assert matrix_angle(-W.T, -W.T) == pytest.approx(0.0, abs=1e-5)
    assert matrix_angle(W.T, -W.T) == pytest.approx(180.0, abs=1e-5)
    R = rng.standard_normal((5, 3))
    ortho = R - np.sum(R * -W.T) / np.sum(W * W) * -W.T  # Gram-Schmidt step
    assert matrix_angle(ortho, -W.T) == pytest.approx(90.0, abs=1e-9)
    # Hand value: <A, B>_F = 1, |A| = 1, |B| = sqrt(2) -> 45 degrees.
    assert matrix_angle([[1.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]) == pytest.approx(45.0)


def test_nmse_normalises_by_global_max():
    """nmse divides every curve by the largest value over all curves."""
    out = nmse({"a": [1.0, 2.0, 4.0], "b": [8.0, 2.0]})
    assert set(out) == {"a", "b"}
    np.testing.assert_allclose(out["a"], [0.125, 0.25, 0.5])
    np.testing.assert_allclose(out["b"], [1.0, 0.25])


def test_summed_squared_error_keeps_leading_axes():
    """Sum of (y - t)^2 over samples and units; a leading model axis is kept."""
    y = np.array([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 1.0]]])
    t = np.array([[1.0, 0.0], [0.0, 4.0]])
    # model 0: 0 + 4 + 9 + 0 = 13; model 1: 1 + 0 + 0 + 9 = 10
    np.testing.assert_allclose(summed_squared_error(y, t), [13.0, 10.0])
    assert summed_squared_error(y[0], t) == pytest.approx(13.0)


def test_classification_error_fraction():
    """Fraction of rows whose argmax differs from the label."""
    outputs = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.0, 1.0, 0.0]])
    assert classification_error(outputs, [1, 1, 2, 0]) == pytest.approx(0.5)
    assert classification_error(outputs, [1, 0, 2, 1]) == 0.0


# --------------------------------------------------------------------------
# stability
# --------------------------------------------------------------------------


def quadratic_roots(w, b, a, r=1.0):
    """Eigenvalues of [[-1, b], [r w, -r a]] from the quadratic formula."""
    trace = -1.0 - r * a
    det = r * a - b * r * w
    disc = complex(trace**2 - 4 * det)
    return (trace + np.sqrt(disc)) / 2, (trace - np.sqrt(disc)) / 2


@pytest.mark.parametrize(
    "w, b, a, r",
    [
        (2.0, -1.0, 0.1, 1.0),  # complex pair, stable
        (0.5, -0.2, 0.3, 1.0),  # real pair, stable
        (1.0, 1.0, 0.0, 1.0),  # b w > 0, alpha 0: unstable saddle
        (2.0, -1.0, 0.1, 0.25),  # slow controller
        (1.0, 0.5, 0.2, 4.0),  # unstable, fast controller
    ],
)
def test_jacobian_1x1_matches_quadratic_formula(w, b, a, r):
    """1x1 circuit: J = [[-1, b], [r w, -r a]] and its abscissa from the quadratic formula."""
    J = circuit_jacobian(np.array([[w]]), np.array([[b]]), a, r)
    np.testing.assert_allclose(J, [[-1.0, b], [r * w, -r * a]])
    roots = quadratic_roots(w, b, a, r)
    expected = max(root.real for root in roots)
    assert jacobian_abscissa(np.array([[w]]), np.array([[b]]), a, r) == pytest.approx(
        expected, abs=1e-12
    )


def test_jacobian_tau_ratio_scales_controller_rows():
    """tau_ratio multiplies the controller rows [W, -alpha I] and leaves the system rows."""
    rng = np.random.default_rng(1)
    W = rng.standard_normal((2, 3))
    B = rng.standard_normal((3, 2))
    J1 = circuit_jacobian(W, B, 0.3, 1.0)
    J4 = circuit_jacobian(W, B, 0.3, 0.25)
    assert J1.shape == (5, 5)
    np.testing.assert_array_equal(J1[:3], J4[:3])
    np.testing.assert_allclose(J4[3:], 0.25 * J1[3:])
    np.testing.assert_array_equal(J1[:3, :3], -np.eye(3))
    np.testing.assert_array_equal(J1[:3, 3:], B)
    np.testing.assert_array_equal(J1[3:, :3], W)
    np.testing.assert_allclose(J1[3:, 3:], -0.3 * np.eye(2))


def test_reduced_abscissa_transpose_feedback_hand_value():
    """reduced_abscissa(W, -W^T, a) = -a - s_min^2: W = [[3,0,0],[0,2,0]] gives -a - 4."""
    W = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    assert reduced_abscissa(W, -W.T, 0.1) == pytest.approx(-4.1)


def test_reduced_abscissa_transpose_feedback_random():
    """reduced_abscissa(W, -W^T, a) = -a - (smallest singular value)^2 for contracting W."""
    rng = np.random.default_rng(2)
    W = rng.standard_normal((3, 6))
    s_min = np.linalg.svd(W, compute_uv=False).min()
    assert reduced_abscissa(W, -W.T, 0.05) == pytest.approx(-0.05 - s_min**2, rel=1e-10)
    # With B = +W^T the sign flips: largest eigenvalue s_max^2 - a.
    s_max = np.linalg.svd(W, compute_uv=False).max()
    assert reduced_abscissa(W, W.T, 0.05) == pytest.approx(s_max**2 - 0.05, rel=1e-10)
