"""The summed squared error of many models on a whole data set, in one pass.

The regression protocols measure every model on the full data set after every
online update (10^4 samples x 10^4 updates in the nonlinear task): more
arithmetic than the simulation itself, hence one batched forward pass for all
models with reused work arrays.
"""

import numpy as np

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
