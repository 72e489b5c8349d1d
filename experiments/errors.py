"""The summed squared error of many models on a whole data set, after every update.

The regression protocols measure every model on the full data set after every
online update (10^4 samples x 10^4 updates in the nonlinear task): more
arithmetic than the simulation itself. `DatasetErrors` evaluates all models
in one batched forward pass, and by default in a worker process on the second
core, so the evaluation of update k overlaps the simulation of update k+1.
Both paths run the same function and give the same numbers.
"""

import multiprocessing

import numpy as np
from threadpoolctl import threadpool_limits

from models.nonlinearities import get_nonlinearity


def stacked_errors(X, Y, weights, biases, nonlinearities):
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

    Returns
    -------
    ndarray, shape (M,)
    """
    h = X
    for layer, name in enumerate(nonlinearities):
        # Contiguous (M, d_{l-1}, d_l) operands keep numpy's matmul on BLAS
        # (a transposed view runs ~10x slower).
        a = np.matmul(h, np.ascontiguousarray(weights[layer].transpose(0, 2, 1)))
        if biases is not None:
            a += biases[layer][:, None, :]
        h = get_nonlinearity(name).g(a)
    return np.sum((h - Y) ** 2, axis=(1, 2))


def _worker(connection, X, Y, nonlinearities):
    """Evaluate submitted parameter sets until told to stop (runs in a child)."""
    with threadpool_limits(limits=1):
        while True:
            item = connection.recv()
            if item is None:
                break
            weights, biases = item
            connection.send(stacked_errors(X, Y, weights, biases, nonlinearities))
    connection.close()


class DatasetErrors:
    """Evaluate many models' errors on (X, Y) after every update.

    Parameters
    ----------
    X, Y : ndarray
        The data set.
    nonlinearities : list of str
        The models' (shared) nonlinearities.
    parallel : bool
        Evaluate in a worker process (needs a second core to pay off).
    """

    def __init__(self, X, Y, nonlinearities, parallel=True):
        self.X, self.Y, self.nonlinearities = X, Y, list(nonlinearities)
        self._results, self._pending = [], 0
        self._process = None
        if parallel:
            context = multiprocessing.get_context("fork")
            self._connection, child = context.Pipe()
            self._process = context.Process(target=_worker, daemon=True,
                                            args=(child, X, Y, self.nonlinearities))
            self._process.start()
            child.close()

    def submit(self, learners):
        """Queue the current parameters of ``learners`` for evaluation."""
        weights = [np.stack([lrn.net.weights[l] for lrn in learners])
                   for l in range(learners[0].net.depth)]
        biases = None if learners[0].net.biases is None else [
            np.stack([lrn.net.biases[l] for lrn in learners])
            for l in range(learners[0].net.depth)]
        if self._process is None:
            self._results.append(stacked_errors(self.X, self.Y, weights, biases,
                                                self.nonlinearities))
            return
        self._drain(block=False)
        try:
            self._connection.send((weights, biases))
        except (BrokenPipeError, EOFError, OSError):
            raise RuntimeError("the error-evaluation worker process died; rerun with "
                               "parallel error evaluation off (--set parallel_errors=false)")
        self._pending += 1

    def _drain(self, block):
        while self._pending and (block or self._connection.poll()):
            if not self._process.is_alive() and not self._connection.poll():
                raise RuntimeError("the error-evaluation worker process died; rerun with "
                                   "parallel error evaluation off (--set parallel_errors=false)")
            self._results.append(self._connection.recv())
            self._pending -= 1

    def results(self):
        """All errors so far, shape (submissions, models); waits for pending ones."""
        if self._process is not None:
            self._drain(block=True)
        return np.array(self._results)

    def close(self):
        """Stop the worker process."""
        if self._process is not None and self._process.is_alive():
            self._connection.send(None)
            self._process.join(timeout=10)
        self._process = None
