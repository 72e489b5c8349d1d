"""Feedforward networks: weights, biases, nonlinearities and the forward pass.

`forward_layers` is the one forward pass (Eq. 1) of the package: the
networks' own (`FeedforwardNetwork.forward`), the evaluation passes of the
data-set experiments and the data-set error of many stacked models all run
it, each with the operands and work arrays that suit it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np

from dinv.errors import InputError
from dinv.hints import ArrayLike, FloatArray
from dinv.models.initialisation import init_weights
from dinv.nonlinearities import Nonlinearity, get_nonlinearity
from dinv.validation import finite_array


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

    a: list[FloatArray]
    h: list[FloatArray]

    @property
    def output(self) -> FloatArray:
        """Network output y = h_L."""
        return self.h[-1]


# Work arrays of `forward_layers`, by (layer, batch).
Buffers = dict[tuple[int, int], np.ndarray]


@overload
def forward_layers(h: np.ndarray, transposed: Sequence[np.ndarray],
                   biases: Sequence[np.ndarray] | None, nonlinearities: Sequence[Nonlinearity],
                   keep: Literal[True], buffers: Buffers | None = None) -> ForwardPass: ...


@overload
def forward_layers(h: np.ndarray, transposed: Sequence[np.ndarray],
                   biases: Sequence[np.ndarray] | None, nonlinearities: Sequence[Nonlinearity],
                   keep: Literal[False] = False, buffers: Buffers | None = None) -> np.ndarray: ...


def forward_layers(h: np.ndarray, transposed: Sequence[np.ndarray],
                   biases: Sequence[np.ndarray] | None, nonlinearities: Sequence[Nonlinearity],
                   keep: bool = False, buffers: Buffers | None = None) -> ForwardPass | np.ndarray:
    """The forward pass (Eq. 1): a_l = W_l h_{l-1} + b_l, h_l = g_l(a_l), layer by layer.

    In batch rows: ``a = h @ W_t`` with W_t = W_l^T, then ``a += b_l``, then g.
    One model or a stack of M models of one architecture: the arithmetic is
    the same, the operands decide which. The caller chooses the precision
    (the dtype of ``h`` and the operands).

    Parameters
    ----------
    h : ndarray, shape (batch, d_0) or (M, batch, d_0)
        Inputs h_0 (a stack's models may share one (batch, d_0) input).
    transposed : list of ndarray
        W_l^T per layer: (d_{l-1}, d_l) for one model (a transposed view
        suits BLAS), or (M, d_{l-1}, d_l) for a stack (contiguous: numpy's
        stacked matmul of a transposed view runs ~10x slower).
    biases : list of ndarray or None
        b_l per layer, broadcastable to (batch, d_l): (d_l,) for one model,
        (M, 1, d_l) for a stack; None without biases.
    nonlinearities : list of Nonlinearity
        g_l per layer.
    keep : bool
        Keep every a_l and h_l (training needs them; g then makes new
        arrays). Otherwise each layer's pre-activation is turned into its
        activity in place and only h_L is returned.
    buffers : dict or None
        Work arrays reused between calls (``keep=False`` only), keyed by
        (layer, batch): large temporaries are otherwise mapped and unmapped
        at every call. The returned h_L is then one of them.

    Returns
    -------
    ForwardPass or ndarray
        With ``keep``, the `ForwardPass` (a_1 .. a_L, h_0 .. h_L); else h_L.
    """
    a_list, h_list = [], [h]
    for layer, (W_t, g) in enumerate(zip(transposed, nonlinearities)):
        if buffers is None:
            a = h @ W_t
        else:
            key = (layer, h.shape[-2])
            if key not in buffers:
                buffers[key] = np.empty(W_t.shape[:-2] + (h.shape[-2], W_t.shape[-1]),
                                        dtype=h.dtype)
            a = buffers[key]
            np.matmul(h, W_t, out=a)
        if biases is not None:
            a += biases[layer]
        if keep:
            a_list.append(a)
            h = g.g(a)
            h_list.append(h)
        else:
            if g.name == "tanh":
                np.tanh(a, out=a)
            elif g.name != "linear":
                a[...] = g.g(a)
            h = a
    return ForwardPass(a_list, h_list) if keep else h


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

    def __init__(self, weights: Sequence[ArrayLike], biases: Sequence[ArrayLike] | None,
                 nonlinearities: Sequence[str]):
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
    def create(cls, sizes: Sequence[int], nonlinearities: Sequence[str], rng: np.random.Generator,
               init: str = "uniform", scale: float = 0.01, bias: bool = True,
               bias_scale: float = 0.0) -> "FeedforwardNetwork":
        """Build a network with freshly drawn weights and biases.

        Parameters
        ----------
        sizes : sequence of int
            Layer widths d_0 .. d_L.
        nonlinearities : sequence of str
            One per layer 1..L.
        rng : numpy.random.Generator
        init : {'uniform', 'orthogonal', 'xavier-normal'}
            See `dinv.models.initialisation.init_weights`.
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
    def sizes(self) -> list[int]:
        """Layer widths d_0 .. d_L."""
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @property
    def depth(self) -> int:
        """Number of weight layers L."""
        return len(self.weights)

    def copy(self) -> "FeedforwardNetwork":
        """An independent copy (same weights, biases, nonlinearities)."""
        return FeedforwardNetwork(
            self.weights, self.biases, [g.name for g in self.nonlinearities]
        )

    def forward(self, x: ArrayLike) -> ForwardPass:
        """Forward pass (Eq. 1) of a batch ``x`` of shape (batch, d_0)."""
        x = finite_array("x", x, (2,))
        if x.shape[1] != self.sizes[0]:
            raise InputError(f"x must have shape (batch, {self.sizes[0]}), got {x.shape}")
        return forward_layers(x, [W.T for W in self.weights], self.biases,
                              self.nonlinearities, keep=True)

    def output_delta(self, fwd: ForwardPass, t: ArrayLike) -> FloatArray:
        """Output error delta_L = dL/da_L for targets ``t`` (batch, d_L).

        Squared error L = 1/2 |y - t|^2 gives delta_L = (y - t) g'(a_L); a
        softmax output with cross-entropy gives delta_L = y - t.
        """
        t = finite_array("t", t, (2,))
        if t.shape != fwd.output.shape:
            raise InputError(f"targets must have shape {fwd.output.shape}, got {t.shape}")
        e = fwd.output - t
        g = self.nonlinearities[-1]
        # Softmax has no g' here; a linear output's g' = 1 changes nothing.
        return e if g.derivative is None or g.name == "linear" else e * g.derivative(fwd.a[-1])

    def loss(self, x: ArrayLike, t: FloatArray) -> float:
        """Summed loss over the batch (squared error, or cross-entropy for softmax)."""
        y = self.forward(x).output
        if self.nonlinearities[-1].derivative is None:
            return float(-np.sum(t * np.log(np.clip(y, 1e-300, None))))
        return float(0.5 * np.sum((y - t) ** 2))
