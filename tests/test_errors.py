"""The data-set error of stacked models (`dinv.experiments.errors`)."""

import numpy as np
import pytest

from dinv.errors import InputError
from dinv.experiments.errors import (
    ForwardErrors,
    LinearErrors,
    error_measure,
    stacked_errors,
)


def linear_stack(rng, sizes, models, scale=1.0):
    """Per layer, (models, d_l, d_{l-1}) weights of linear networks of widths ``sizes``."""
    return [scale * rng.standard_normal((models, sizes[l + 1], sizes[l])) / np.sqrt(sizes[l])
            for l in range(len(sizes) - 1)]


def exact_errors(X, Y, weights):
    """|X M^T - Y|_F^2 per model in extended precision (64-bit mantissa on x86: a
    reference about 2000 times finer than float64)."""
    X, Y = X.astype(np.longdouble), Y.astype(np.longdouble)
    product = weights[0].astype(np.longdouble)
    for W in weights[1:]:
        product = W.astype(np.longdouble) @ product
    residual = X @ product.transpose(0, 2, 1) - Y
    return np.sum(residual * residual, axis=(1, 2))


def test_linear_errors_by_hand():
    """X = [[1, 0], [0, 1], [1, 1]], Y = [1, 2, 4]: M = [1, 1] predicts [1, 1, 2] (residuals
    0, 1, 2: error 5); M = [2, 1] predicts [2, 1, 3] (1, 1, 1: 3); two layers W_2 W_1 = [1, 1]
    give 5 again."""
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    Y = np.array([[1.0], [2.0], [4.0]])
    measure = LinearErrors(X, Y)
    one_layer = [np.array([[[1.0, 1.0]], [[2.0, 1.0]]])]
    np.testing.assert_allclose(measure(one_layer), [5.0, 3.0], rtol=1e-14)
    two_layers = [np.array([[[1.0, 1.0], [3.0, -1.0]]]), np.array([[[1.0, 0.0]]])]
    np.testing.assert_allclose(measure(two_layers), [5.0], rtol=1e-14)


@pytest.mark.parametrize("sizes", [(7, 3), (30, 20, 10), (12, 9, 15, 6, 4)])
def test_linear_errors_equal_the_direct_sum(sizes):
    """Random linear networks of depths 1, 2 and 4, 5 stacked models, targets with noise
    outside the inputs' range (the constant term matters): relative error below 1e-12."""
    rng = np.random.default_rng(len(sizes))
    X = rng.standard_normal((500, sizes[0]))
    Y = X @ rng.uniform(-1, 1, (sizes[-1], sizes[0])).T + 0.3 * rng.standard_normal(
        (500, sizes[-1]))
    weights = linear_stack(rng, sizes, 5)
    errors = LinearErrors(X, Y)(weights)
    np.testing.assert_allclose(errors, exact_errors(X, Y, weights).astype(float), rtol=1e-12)
    forward = stacked_errors(X, Y, weights, None, ["linear"] * (len(sizes) - 1))
    np.testing.assert_allclose(errors, forward, rtol=1e-12)


def test_linear_errors_stay_accurate_near_convergence():
    """The linear regression's task (Y = X T^T exactly): a student M = T + 1e-7 noise has an
    error ~3e-14 of the initial one, so any float64 method loses about 7 digits to the
    cancellation in X M^T - Y (Y itself is rounded). The closed form keeps 8 digits
    (within 1e-8 of the extended-precision reference: 2e-10 here, at most 2e-9 over other
    seeds); the direct float64 sum keeps about 10, its rounding errors averaging over the
    N d_L entries of X M^T - Y instead of the d_0 d_L of R M^T - Q^T Y."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((2000, 30))
    teacher = rng.uniform(-1, 1, (10, 30))
    Y = X @ teacher.T
    initial = [0.01 * rng.uniform(-1, 1, (3, 20, 30)), 0.01 * rng.uniform(-1, 1, (3, 10, 20))]
    # Two layers whose product is T + 1e-7 noise: W_1 = [T + noise; anything], W_2 = [I 0].
    W1 = np.concatenate([teacher + 1e-7 * rng.standard_normal((3, 10, 30)),
                         rng.standard_normal((3, 10, 30))], axis=1)
    W2 = np.broadcast_to(np.eye(10, 20), (3, 10, 20))
    converged = [W1, W2]
    measure = LinearErrors(X, Y)
    reference = exact_errors(X, Y, converged)
    ratio = reference / exact_errors(X, Y, initial)
    assert np.all((ratio > 1e-16) & (ratio < 1e-12))
    closed = measure(converged)
    direct = np.sum((X @ (W2 @ W1).transpose(0, 2, 1) - Y) ** 2, axis=(1, 2))
    closed_error = np.abs(closed - reference) / reference
    direct_error = np.abs(direct - reference) / reference
    assert np.all(closed_error < 1e-8), closed_error
    assert np.all(direct_error < 1e-9), direct_error
    np.testing.assert_allclose(measure(initial), exact_errors(X, Y, initial).astype(float),
                               rtol=1e-13)


def test_linear_errors_with_fewer_samples_than_inputs():
    """N < d_0: Q is (N, N), R (N, d_0), and every target lies in X's range."""
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((6, 10)), rng.standard_normal((6, 2))
    weights = linear_stack(rng, (10, 4, 2), 3)
    measure = LinearErrors(X, Y)
    assert measure.unfit < 1e-25
    np.testing.assert_allclose(measure(weights), exact_errors(X, Y, weights).astype(float),
                               rtol=1e-12)


def test_error_measure_takes_the_closed_form_for_linear_networks_only():
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((50, 4)), rng.standard_normal((50, 2))
    assert isinstance(error_measure(X, Y, ["linear", "linear"], False), LinearErrors)
    assert isinstance(error_measure(X, Y, ["linear", "linear"], True), ForwardErrors)
    assert isinstance(error_measure(X, Y, ["tanh", "linear"], False), ForwardErrors)
    float32 = error_measure(X, Y, ["linear", "linear"], False, "float32")
    assert isinstance(float32, ForwardErrors) and float32.X.dtype == np.float32
    with pytest.raises(InputError, match="error_dtype"):
        error_measure(X, Y, ["linear"], False, "float16")
    with pytest.raises(InputError, match="without biases"):
        LinearErrors(X, Y)([np.zeros((1, 2, 4))], [np.zeros((1, 2))])
    with pytest.raises(InputError, match="shapes"):
        LinearErrors(X, Y[:10])


def test_forward_errors_keep_their_precision_and_sum_in_float64():
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((300, 4)), rng.standard_normal((300, 2))
    weights = [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 2, 3))]
    biases = [rng.standard_normal((2, 3)), rng.standard_normal((2, 2))]
    names = ["tanh", "linear"]
    expected = stacked_errors(X, Y, weights, biases, names)
    measure = ForwardErrors(X, Y, names)
    np.testing.assert_array_equal(measure(weights, biases), expected)
    np.testing.assert_array_equal(measure(weights, biases), expected)  # reused work arrays
    single = ForwardErrors(X, Y, names, "float32")(weights, biases)
    assert single.dtype == np.float64
    np.testing.assert_allclose(single, expected, rtol=1e-5)
