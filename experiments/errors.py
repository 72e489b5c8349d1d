"""The summed squared error of many models on a whole data set, in one pass.

The regression protocols measure every model on the full data set after every
online update (10^4 samples x 10^4 updates in the nonlinear task): more
arithmetic than the simulation itself, hence one batched forward pass for all
models with reused work arrays.
"""

import numpy as np

from models.nonlinearities import get_nonlinearity


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
        Work arrays reused between calls (keyed by shape); large temporaries
        are otherwise mapped and unmapped at every call.

    The forward pass runs in the precision of X (float32 halves its cost;
    the squared errors are summed in float64).

    Returns
    -------
    ndarray, shape (M,)
    """
    buffers = {} if buffers is None else buffers

    def buffer(shape):
        if shape not in buffers:
            buffers[shape] = np.empty(shape, dtype=X.dtype)
        return buffers[shape]

    h = X
    for layer, name in enumerate(nonlinearities):
        W = weights[layer]
        a = buffer((W.shape[0], X.shape[0], W.shape[1]))
        # Contiguous (M, d_{l-1}, d_l) operands keep numpy's matmul on BLAS
        # (a transposed view runs ~10x slower).
        np.matmul(h, np.ascontiguousarray(W.transpose(0, 2, 1), dtype=X.dtype), out=a)
        if biases is not None:
            a += biases[layer][:, None, :].astype(X.dtype)
        g = get_nonlinearity(name).g
        if g is np.tanh:
            np.tanh(a, out=a)
        elif name != "linear":
            a[...] = g(a)
        h = a
    h -= Y
    np.square(h, out=h)
    return h.sum(axis=(1, 2), dtype=np.float64)
