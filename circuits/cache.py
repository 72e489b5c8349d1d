"""A small least-recently-used cache of built circuits."""

import gc
from collections import OrderedDict


class CircuitCache:
    """Keep the most recently used circuits, keyed by shape and options.

    Building a circuit costs Brian2 set-up time; reusing one costs nothing.
    Circuits are frozen out of the garbage collector's view when built (see
    `dinv.circuits.assembly.CircuitAssembly`), so evicting one unfreezes, collects
    and refreezes to free its memory.

    Parameters
    ----------
    size : int
        Circuits kept.
    """

    def __init__(self, size=8):
        self.size = size
        self._items = OrderedDict()

    def get(self, key, build):
        """The circuit for ``key``, built with ``build()`` if not cached."""
        circuit = self._items.pop(key, None)
        if circuit is None:
            if len(self._items) >= self.size:
                self._items.popitem(last=False)
                gc.unfreeze()
                gc.collect()
                gc.freeze()
            circuit = build()
        self._items[key] = circuit
        return circuit
