"""The one forward pass (models.network.forward_layers) in its three uses."""

import numpy as np
import pytest

from dinv.errors import InputError
from dinv.experiments.errors import stacked_errors
from dinv.experiments.supervised import forward_output
from dinv.models.network import FeedforwardNetwork, forward_layers
from dinv.nonlinearities import get_nonlinearity

NONLINEARITIES = ["tanh", "relu", "logistic", "linear"]


def networks(rng, count=3, sizes=(5, 7, 6, 4, 3)):
    return [FeedforwardNetwork.create(sizes, NONLINEARITIES, rng, scale=0.8, bias_scale=0.3)
            for _ in range(count)]


def test_network_forward_is_eq1_by_hand():
    """a_l = W_l h_{l-1} + b_l and h_l = g_l(a_l), layer by layer."""
    rng = np.random.default_rng(0)
    net = networks(rng, 1)[0]
    x = rng.standard_normal((4, 5))
    fwd = net.forward(x)
    h = x
    for l, (W, b, name) in enumerate(zip(net.weights, net.biases, NONLINEARITIES)):
        a = h @ W.T + b
        h = get_nonlinearity(name).g(a)
        np.testing.assert_array_equal(fwd.a[l], a)
        np.testing.assert_array_equal(fwd.h[l + 1], h)


def test_a_stack_of_models_gives_each_models_own_pass():
    """Stacked operands (contiguous W^T, biases (M, 1, d)) and reused work arrays give
    every model's output; the work arrays hold the same numbers on the next call."""
    rng = np.random.default_rng(1)
    nets = networks(rng)
    x = rng.standard_normal((9, 5))
    transposed = [np.ascontiguousarray(np.stack([n.weights[l].T for n in nets]))
                  for l in range(4)]
    biases = [np.stack([n.biases[l] for n in nets])[:, None, :] for l in range(4)]
    transfers = nets[0].nonlinearities
    buffers = {}
    first = forward_layers(x, transposed, biases, transfers, buffers=buffers).copy()
    again = forward_layers(x, transposed, biases, transfers, buffers=buffers)
    np.testing.assert_array_equal(first, again)
    assert set(buffers) == {(layer, 9) for layer in range(4)}
    for k, net in enumerate(nets):
        np.testing.assert_allclose(first[k], net.forward(x).output, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_stacked_errors_sum_each_models_squared_error(dtype):
    rng = np.random.default_rng(2)
    nets = networks(rng)
    X = rng.standard_normal((2500, 5))  # three chunks of 1024
    Y = rng.standard_normal((2500, 3))
    weights = [np.stack([n.weights[l] for n in nets]) for l in range(4)]
    biases = [np.stack([n.biases[l] for n in nets]) for l in range(4)]
    errors = stacked_errors(X.astype(dtype), Y.astype(dtype), weights, biases, NONLINEARITIES)
    expected = [np.sum((n.forward(X).output - Y) ** 2) for n in nets]
    np.testing.assert_allclose(errors, expected, rtol=1e-12 if dtype == "float64" else 1e-4)


def test_forward_output_by_chunks_is_the_networks_pass():
    rng = np.random.default_rng(3)
    net = networks(rng, 1)[0]
    x = rng.standard_normal((11, 5))
    np.testing.assert_allclose(forward_output(net, x, np.float64, chunk=4),
                               net.forward(x).output, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(forward_output(net, x, np.float64, layer=2),
                                  net.forward(x).h[2])


def test_xavier_normal_init_has_glorots_variance():
    """N(0, 2 / (fan_in + fan_out)): the sample variances of the 256 x 784 and 256 x 256
    draws within 3 % of it (10 and 5 standard errors), their means within 3 standard
    errors of zero."""
    rng = np.random.default_rng(0)
    net = FeedforwardNetwork.create([784, 256, 256, 10], ["tanh", "tanh", "softmax"], rng,
                                    init="xavier-normal")
    for W in net.weights[:2]:
        assert W.var() == pytest.approx(2.0 / sum(W.shape), rel=0.03)
        assert abs(W.mean()) < 3 * np.sqrt(2.0 / sum(W.shape) / W.size)
    with pytest.raises(InputError, match="uniform, orthogonal, xavier-normal"):
        FeedforwardNetwork.create([3, 2], ["tanh"], rng, init="glorot")
