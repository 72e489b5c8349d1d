"""Type aliases of the package's signatures: arrays and Brian2 quantities.

Arrays the package returns are float64, ``FloatArray`` (``NDArray[np.float64]``;
``BoolArray`` and ``IntArray`` likewise); arguments that accept anything numpy
turns into an array are ``ArrayLike`` (numpy's). Brian2 ships no type
information, so a quantity with a physical unit (``10 * ms``) is ``Any`` to a
type checker: `Quantity` and `Time` name what is meant, for the reader.
"""

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ArrayLike", "BoolArray", "FloatArray", "IntArray", "Quantity", "Time"]

# (The array aliases have comments, not docstrings: an alias of a class is callable
# as the class is, and the API reference would document it as a function.)

# A float64 array: weights, errors, settled states, metrics.
FloatArray = NDArray[np.float64]

# A boolean array (e.g. which problems of a stack are unstable).
BoolArray = NDArray[np.bool_]

# An integer array (e.g. labels, spike counts).
IntArray = NDArray[np.int_]

Quantity = Any
"""A ``brian2.Quantity``, a number or array with a physical unit (``Any``:
Brian2 has no type information)."""

Time = Any
"""A ``brian2.Quantity`` in seconds, e.g. ``10 * ms`` (``Any``: Brian2 has no
type information)."""
