"""Feedforward networks: weights, biases, nonlinearities and the forward pass."""

from dataclasses import dataclass

import numpy as np

from dinv.errors import InputError
from dinv.validation import finite_array
from dinv.models.initialisation import init_weights
from dinv.nonlinearities import get_nonlinearity


@dataclass
class ForwardPass:
    """Activities of one forward pass (Eq. 1), one row per sample.

    Attributes
    ----------
    a : list of ndarray
        Pre-activations a_1 .. a_L, each (batch, d_l).
    h : list of ndarray
        Activities h_0 = x .. h_L = y, each (batch, d_l).
    """

    a: list
    h: list

    @property
    def output(self):
        """Network output y = h_L."""
        return self.h[-1]


class FeedforwardNetwork:
    """A network h_l = g_l(W_l h_{l-1} + b_l) of any depth.

    Parameters
    ----------
    weights : list of ndarray
        W_l of shape (d_l, d_{l-1}), l = 1..L.
    biases : list of ndarray or None
        b_l of shape (d_l,); None for a network without biases.
    nonlinearities : list of str
        Name of g_l per layer ('linear', 'tanh', 'relu', 'logistic';
        'softmax' only for the output, trained with cross-entropy).
    """

    def __init__(self, weights, biases, nonlinearities):
        self.weights = [finite_array(f"W{i + 1}", w, (2,)).copy() for i, w in enumerate(weights)]
        if len(nonlinearities) != len(self.weights):
            raise InputError(
                f"need one nonlinearity per layer: {len(self.weights)} layers, "
                f"{len(nonlinearities)} nonlinearities"
            )
        for i in range(1, len(self.weights)):
            if self.weights[i].shape[1] != self.weights[i - 1].shape[0]:
                raise InputError(
                    f"W{i + 1} has shape {self.weights[i].shape} but layer {i} has "
                    f"{self.weights[i - 1].shape[0]} units"
                )
        self.biases = None if biases is None else [
            finite_array(f"b{i + 1}", b, (1,)).copy() for i, b in enumerate(biases)
        ]
        if self.biases is not None and [b.shape[0] for b in self.biases] != self.sizes[1:]:
            raise InputError(f"biases must have sizes {self.sizes[1:]}")
        self.nonlinearities = [get_nonlinearity(name) for name in nonlinearities]
        if any(g.name == "softmax" for g in self.nonlinearities[:-1]):
            raise InputError("softmax can only be the output nonlinearity")

    @classmethod
    def create(cls, sizes, nonlinearities, rng, init="uniform", scale=0.01, bias=True,
               bias_scale=0.0):
        """Build a network with freshly drawn weights and biases.

        Parameters
        ----------
        sizes : sequence of int
            Layer widths d_0 .. d_L.
        nonlinearities : sequence of str
            One per layer 1..L.
        rng : numpy.random.Generator
        init : {'uniform', 'orthogonal'}
        scale : float
            Half-width of the uniform init.
        bias : bool
            Whether the layers have biases.
        bias_scale : float
            Biases are U(-bias_scale, bias_scale) (zero by default).
        """
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise InputError(f"sizes must list at least two positive widths, got {sizes}")
        weights = [init_weights((sizes[i + 1], sizes[i]), init, rng, scale)
                   for i in range(len(sizes) - 1)]
        biases = [rng.uniform(-bias_scale, bias_scale, size=s) if bias_scale else np.zeros(s)
                  for s in sizes[1:]] if bias else None
        return cls(weights, biases, nonlinearities)

    @property
    def sizes(self):
        """Layer widths d_0 .. d_L."""
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @property
    def depth(self):
        """Number of weight layers L."""
        return len(self.weights)

    def copy(self):
        """An independent copy (same weights, biases, nonlinearities)."""
        return FeedforwardNetwork(
            self.weights, self.biases, [g.name for g in self.nonlinearities]
        )

    def forward(self, x):
        """Forward pass (Eq. 1) of a batch ``x`` of shape (batch, d_0)."""
        x = finite_array("x", x, (2,))
        if x.shape[1] != self.sizes[0]:
            raise InputError(f"x must have shape (batch, {self.sizes[0]}), got {x.shape}")
        a_list, h_list = [], [x]
        for l, (W, g) in enumerate(zip(self.weights, self.nonlinearities)):
            a = h_list[-1] @ W.T
            if self.biases is not None:
                a = a + self.biases[l]
            a_list.append(a)
            h_list.append(g.g(a))
        return ForwardPass(a_list, h_list)

    def output_delta(self, fwd, t):
        """Output error delta_L = dL/da_L for targets ``t`` (batch, d_L).

        Squared error L = 1/2 |y - t|^2 gives delta_L = (y - t) g'(a_L); a
        softmax output with cross-entropy gives delta_L = y - t.
        """
        t = finite_array("t", t, (2,))
        if t.shape != fwd.output.shape:
            raise InputError(f"targets must have shape {fwd.output.shape}, got {t.shape}")
        e = fwd.output - t
        g = self.nonlinearities[-1]
        return e if g.derivative is None else e * g.derivative(fwd.a[-1])

    def loss(self, x, t):
        """Summed loss over the batch (squared error, or cross-entropy for softmax)."""
        y = self.forward(x).output
        if self.nonlinearities[-1].derivative is None:
            return float(-np.sum(t * np.log(np.clip(y, 1e-300, None))))
        return float(0.5 * np.sum((y - t) ** 2))
