"""Type aliases of the package's signatures: arrays and Brian2 quantities.

Arrays the package returns are float64 (`FloatArray`); arguments that accept
anything numpy turns into an array are `ArrayLike`. Brian2 ships no type
information, so a quantity with a physical unit (``10 * ms``) is ``Any`` to a
type checker: `Quantity` and `Time` name what is meant, for the reader.
"""

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ArrayLike", "BoolArray", "FloatArray", "IntArray", "Quantity", "Time"]

FloatArray = NDArray[np.float64]
"""A float64 array: weights, errors, settled states, metrics."""

BoolArray = NDArray[np.bool_]
"""A boolean array (e.g. which problems of a stack are unstable)."""

IntArray = NDArray[np.int_]
"""An integer array (e.g. labels, spike counts)."""

Quantity = Any
"""A ``brian2.Quantity``, a number or array with a physical unit (``Any``:
Brian2 has no type information)."""

Time = Any
"""A ``brian2.Quantity`` in seconds, e.g. ``10 * ms`` (``Any``: Brian2 has no
type information)."""
