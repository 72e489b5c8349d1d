"""The summed squared error of many models on a whole data set, after every update.

The regression protocols measure every model on the full data set after every
online update (10^4 samples x 10^4 updates in the nonlinear task): more
arithmetic than the simulation itself. `error_measure` picks the cheapest
exact way for a data set and an architecture:

- linear networks without biases (the linear regression) are one matrix
  M = W_L ... W_1 each, and their error is a closed form in a thin QR
  factorisation of the inputs, computed once (`LinearErrors`): a few small
  products per update, whatever the number of samples;
- any other network takes one batched forward pass of all models with
  reused work arrays (`stacked_errors`, `ForwardErrors`).
"""

import numpy as np

from dinv.errors import InputError
from dinv.models.network import forward_layers
from dinv.nonlinearities import get_nonlinearity


def stacked_errors(X, Y, weights, biases, nonlinearities, buffers=None):
    """Summed squared error of M models of one architecture on (X, Y).

    Parameters
    ----------
    X : ndarray, shape (N, d_0)
    Y : ndarray, shape (N, d_L)
    weights : list of ndarray
        Per layer, the stacked weights of all models, (M, d_l, d_{l-1}).
    biases : list of ndarray or None
        Per layer, (M, d_l).
    nonlinearities : list of str
    buffers : dict or None
        Work arrays reused between calls; large temporaries are otherwise
        mapped and unmapped at every call.

    The forward pass (`dinv.models.network.forward_layers`) runs in the
    precision of X (float32 halves its cost; the squared errors are summed
    in float64), on contiguous transposed weights (M, d_{l-1}, d_l).

    Returns
    -------
    ndarray, shape (M,)
    """
    buffers = {} if buffers is None else buffers
    chunk = 1024  # samples per pass: the work arrays stay in the core's own cache
    transposed = [np.ascontiguousarray(W.transpose(0, 2, 1), dtype=X.dtype) for W in weights]
    offsets = None if biases is None else [b[:, None, :].astype(X.dtype) for b in biases]
    transfers = [get_nonlinearity(name) for name in nonlinearities]
    total = np.zeros(weights[0].shape[0])
    for start in range(0, X.shape[0], chunk):
        h = forward_layers(X[start:start + chunk], transposed, offsets, transfers,
                           buffers=buffers)
        h -= Y[start:start + chunk]
        np.square(h, out=h)
        total += h.sum(axis=(1, 2), dtype=np.float64)
    return total


class ForwardErrors:
    """`stacked_errors` on one data set, in the precision ``dtype`` ('float64' or
    'float32'), with its work arrays kept between calls.

    Parameters
    ----------
    X : ndarray, shape (N, d_0)
    Y : ndarray, shape (N, d_L)
    nonlinearities : list of str
    dtype : {'float64', 'float32'}
        Precision of the forward pass (the sums are float64).
    """

    def __init__(self, X, Y, nonlinearities, dtype="float64"):
        self.X, self.Y = X.astype(dtype), Y.astype(dtype)
        self.nonlinearities = list(nonlinearities)
        self._buffers = {}

    def __call__(self, weights, biases):
        """Summed squared error of the stacked models (`stacked_errors`), shape (M,)."""
        return stacked_errors(self.X, self.Y, weights, biases, self.nonlinearities,
                              self._buffers)


class LinearErrors:
    """Exact summed squared error of linear networks without biases on one data set.

    Such a network is one matrix M = W_L ... W_1, and with the thin QR
    factorisation X = Q R (computed once)::

        |X M^T - Y|_F^2 = |R M^T - Q^T Y|_F^2 + |Y - Q Q^T Y|_F^2

    (Q's columns are orthonormal and Y - Q Q^T Y is orthogonal to them). Per
    call this costs the product M and one (d_0 x d_0) by (d_0 x d_L) product
    per model, whatever the number of samples N. Orthogonal transformations
    keep it as accurate as the direct sum: the residual of the data set that
    no M can fit is computed once, explicitly (not as |Y|^2 - |Q^T Y|^2,
    which cancels).

    Parameters
    ----------
    X : ndarray, shape (N, d_0)
    Y : ndarray, shape (N, d_L)
    """

    def __init__(self, X, Y):
        X, Y = np.asarray(X, dtype=float), np.asarray(Y, dtype=float)
        if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
            raise InputError(f"X and Y must be (N, d_0) and (N, d_L) arrays, got shapes "
                             f"{X.shape} and {Y.shape}")
        Q, self.R = np.linalg.qr(X)
        self.QtY = Q.T @ Y
        self.unfit = float(np.sum((Y - Q @ self.QtY) ** 2))

    def __call__(self, weights, biases=None):
        """Summed squared error of the stacked models, shape (M,).

        Parameters
        ----------
        weights : list of ndarray
            Per layer, the stacked weights of all models, (M, d_l, d_{l-1}).
        biases : None
            Linear networks without biases only.
        """
        if biases is not None:
            raise InputError("LinearErrors measures networks without biases")
        product = weights[0]
        for W in weights[1:]:
            product = W @ product
        residual = self.R @ product.transpose(0, 2, 1) - self.QtY
        return np.sum(residual * residual, axis=(1, 2)) + self.unfit


def error_measure(X, Y, nonlinearities, biases, dtype="float64"):
    """The data-set error of stacked models of one architecture on (X, Y).

    Parameters
    ----------
    X : ndarray, shape (N, d_0)
    Y : ndarray, shape (N, d_L)
    nonlinearities : list of str
        g_l per layer.
    biases : bool
        Whether the networks have biases.
    dtype : {'float64', 'float32'}
        Precision of the batched forward pass. 'float32' always takes it
        (half its cost, about 1e-7 relative error).

    Returns
    -------
    LinearErrors or ForwardErrors
        Called as ``measure(weights, biases)`` with per-layer stacks (see
        `stacked_errors`): `LinearErrors` for linear networks without
        biases in float64, else `ForwardErrors`.
    """
    if dtype not in ("float64", "float32"):
        raise InputError(f"error_dtype must be 'float32' or 'float64', got {dtype!r}")
    if dtype == "float64" and not biases and all(name == "linear" for name in nonlinearities):
        return LinearErrors(X, Y)
    return ForwardErrors(X, Y, nonlinearities, dtype)
