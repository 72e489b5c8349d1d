"""A small least-recently-used cache of built circuits."""

from collections import OrderedDict


class CircuitCache:
    """Keep the most recently used circuits, keyed by shape and circuit options.

    Building a circuit costs Brian2 set-up time; reusing one costs nothing.
    An evicted circuit is an ordinary garbage object (its Brian2 objects form
    reference cycles, freed by the next full collection).

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
            circuit = build()
        self._items[key] = circuit
        return circuit
