"""Couplings: how one population's state drives another population's input.

A circuit holds ``n`` independent problems with ``batch`` samples each, so a
population of width ``d`` has ``n * batch * d`` neurons laid out as an array of
shape (n, batch, d). A coupling with matrix M of shape (n, d_post, d_pre) sets,
for every problem c and sample b::

    input_post[c, b, :] = M[c] @ state_pre[c, b, :]

Two implementations give the same numbers:

`DenseCoupling` (default)
    A ``network_operation`` doing one in-place batched matmul per step on the
    state arrays: no copy of M per sample, BLAS speed.
`SynapticCoupling`
    A Brian2 ``Synapses`` object with a summed variable, one synapse per matrix
    entry and sample: for small or sparse circuits, standalone devices and
    spiking variants.

Both update their target just before the target population integrates
(``when='groups'``, ``order = target.order - 1``), which makes the circuit's
update order semi-implicit: the controller integrates first and the system
then sees the new control signal.
"""

import numpy as np
from brian2 import NetworkOperation, Synapses


def state_view(group, variable, shape):
    """Return the live array of ``group.variable`` viewed with ``shape``.

    Parameters
    ----------
    group : brian2.NeuronGroup
        Population (runtime device: the array is the simulation's storage).
    variable : str
        Variable name.
    shape : tuple of int
        (n, batch, d) layout of the population.

    Returns
    -------
    numpy.ndarray
        A view: writing into it changes the simulation.
    """
    return group.variables[variable].get_value().reshape(shape)


def synapse_indices(n, batch, d_pre, d_post):
    """Presynaptic and postsynaptic indices of a block-dense connection.

    Synapses are ordered by (problem, sample, pre unit, post unit), the order
    used by `matrix_to_synapse_weights`.

    Returns
    -------
    i, j : ndarray of int
        Source and target neuron indices.
    """
    blocks = np.arange(n * batch)[:, None, None]
    i = blocks * d_pre + np.arange(d_pre)[None, :, None]
    j = blocks * d_post + np.arange(d_post)[None, None, :]
    i, j = np.broadcast_arrays(i, j)
    return i.ravel(), j.ravel()


def matrix_to_synapse_weights(M, batch):
    """Synaptic weights, in `synapse_indices` order, for matrices ``M``.

    Parameters
    ----------
    M : ndarray, shape (n, d_post, d_pre)
        ML-style (post, pre) matrices, one per problem.
    batch : int
        Samples per problem (each gets its own copy of the weights).

    Returns
    -------
    ndarray, shape (n * batch * d_pre * d_post,)
    """
    n, d_post, d_pre = M.shape
    per_problem = np.swapaxes(M, 1, 2)[:, None]
    return np.broadcast_to(per_problem, (n, batch, d_pre, d_post)).ravel()


def synapse_weights_to_matrix(w, n, batch, d_pre, d_post):
    """Inverse of `matrix_to_synapse_weights` (reads sample 0 of each problem)."""
    return np.swapaxes(np.asarray(w).reshape(n, batch, d_pre, d_post)[:, 0], 1, 2)


class DenseCoupling:
    """In-place batched matmul from ``pre.source`` into ``post.target``.

    Parameters
    ----------
    pre, post : brian2.NeuronGroup
        Source and target populations.
    source, target : str
        Source state variable and target input variable.
    pre_shape, post_shape : tuple of int
        (n, batch, d) layouts of the two populations.
    name : str
        Brian2 name of the network operation.
    """

    def __init__(self, pre, source, post, target, pre_shape, post_shape, name):
        self._pre = state_view(pre, source, pre_shape)
        self._post = state_view(post, target, post_shape)
        n, _, d_pre = pre_shape
        self._matrix_t = np.zeros((n, d_pre, post_shape[2]))
        self.brian_objects = [
            NetworkOperation(
                self._apply,
                when="groups",
                order=post.order - 1,
                clock=post.clock,
                name=name,
            )
        ]

    def set_matrix(self, M):
        """Use matrices ``M`` of shape (n, d_post, d_pre) from now on."""
        self._matrix_t[...] = np.swapaxes(M, 1, 2)

    def _apply(self):
        np.matmul(self._pre, self._matrix_t, out=self._post)


class SynapticCoupling:
    """Brian2 ``Synapses`` with a summed variable, one synapse per weight.

    Parameters are those of `DenseCoupling`, plus ``codeobj_class``.
    """

    def __init__(
        self, pre, source, post, target, pre_shape, post_shape, name, codeobj_class
    ):
        n, batch, d_pre = pre_shape
        d_post = post_shape[2]
        self._batch = batch
        self.synapses = Synapses(
            pre,
            post,
            model=f"w : 1\n{target}_post = w * {source}_pre : 1 (summed)",
            name=name,
            clock=post.clock,
            namespace={},
            codeobj_class=codeobj_class,
        )
        i, j = synapse_indices(n, batch, d_pre, d_post)
        self.synapses.connect(i=i, j=j)
        self._weights = self.synapses.variables["w"].get_value()
        self.brian_objects = [self.synapses]

    def set_matrix(self, M):
        """Use matrices ``M`` of shape (n, d_post, d_pre) from now on."""
        self._weights[:] = matrix_to_synapse_weights(M, self._batch)
