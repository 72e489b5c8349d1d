"""Validation of one layer-inversion problem (W, B, delta, alpha).

Both the simulated circuits and the closed-form rules of ``models`` accept a
single problem (W of shape (d_l, d_{l-1})) or a stack of independent problems
(W of shape (n, d_l, d_{l-1})). `layer_problem` checks everything once and
returns the stacked form, so the numerics never see a bad array.
"""

from dataclasses import dataclass
from typing import TypeGuard

import numpy as np

from dinv.errors import InputError
from dinv.hints import ArrayLike, FloatArray


def real_array(name: str, value: object) -> FloatArray:
    """Return ``value`` as a float64 array of real numbers (no copy of one already).

    Refuses what a cast to float would silently change: complex numbers
    (their imaginary part), booleans, strings and values with physical units.

    Parameters
    ----------
    name : str
        Parameter name used in the error message.
    value : array_like

    Returns
    -------
    numpy.ndarray
    """
    dim = getattr(value, "dim", None)
    if dim is not None and not getattr(dim, "is_dimensionless", True):
        raise InputError(f"{name} has physical units ({dim}); pass plain numbers")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a numeric array ({exc})") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise InputError(f"{name} is complex; pass real numbers (a cast would drop the "
                         "imaginary part)")
    if kind == "b":
        raise InputError(f"{name} holds booleans; pass numbers")
    if kind not in "iuf":
        if kind == "O" and any(isinstance(v, complex) for v in arr.ravel().tolist()):
            raise InputError(f"{name} holds complex numbers; pass real numbers")
        if kind != "O":
            raise InputError(f"{name} must be a numeric array, got {arr.dtype} values")
    try:
        return np.asarray(arr, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a numeric array ({exc})") from None


def finite_array(name: str, value: object, ndims: tuple[int, ...]) -> FloatArray:
    """Return ``value`` as a float64 array, checking its type, rank and finiteness.

    Parameters
    ----------
    name : str
        Parameter name used in the error message.
    value : array_like
        The value to check: real numbers (see `real_array`).
    ndims : tuple of int
        Allowed numbers of dimensions.

    Returns
    -------
    numpy.ndarray
    """
    # A float64 array (the common case on hot paths) needs none of real_array's checks.
    arr = value if type(value) is np.ndarray and value.dtype == np.float64 \
        else real_array(name, value)
    if arr.ndim not in ndims:
        raise InputError(
            f"{name} must have {' or '.join(map(str, ndims))} dimensions, "
            f"got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise InputError(f"{name} contains NaN or infinite values; pass finite numbers")
    return arr


def _whole(value: object) -> TypeGuard[int | float | np.integer | np.floating]:
    """Whether ``value`` is an integer or an integral float (not a boolean)."""
    return (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))) \
        or (isinstance(value, (float, np.floating)) and bool(np.isfinite(value))
            and float(value).is_integer())


def check_count(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int, refusing booleans, fractions and values below ``minimum``.

    Integral floats (``2.0``, ``1e3``: what JSON gives for ``1e3``) are accepted.
    """
    if not _whole(value) or value < minimum:
        bound = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise InputError(f"{name} must be {bound}, got {value!r}")
    return int(value)


def check_number(name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a float, refusing booleans, non-numbers, NaN, infinities and values
    outside [``low``, ``high``] (a bound that is None is not checked; ``low_open`` and
    ``high_open`` exclude the bound itself).

    Raises
    ------
    InputError
        Naming ``name``, the range and the value given.
    """
    number = isinstance(value, (int, float, np.integer, np.floating)) \
        and not isinstance(value, (bool, np.bool_))
    if number and np.isfinite(value) \
            and (low is None or (value > low if low_open else value >= low)) \
            and (high is None or (value < high if high_open else value <= high)):
        return float(value)
    if low is not None and high is not None:
        bound = f"lie in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low == 0 and low_open:
        bound = "be a positive number"
    elif low is not None:
        bound = f"be a number {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        bound = f"be a number {'<' if high_open else '<='} {high:g}"
    else:
        bound = "be a finite number"
    raise InputError(f"{name} must {bound}, got {value!r}")


ON_UNSETTLED = ("warn", "raise", "ignore")
"""Reactions to a circuit that has not settled by the end of its run."""


def check_on_unsettled(value: object) -> str:
    """Raise `InputError` unless ``value`` is one of `ON_UNSETTLED`."""
    if not isinstance(value, str) or value not in ON_UNSETTLED:
        raise InputError(f"on_unsettled must be one of {ON_UNSETTLED}, got {value!r}")
    return value


def check_leaks(alpha: ArrayLike, shape: tuple[int, ...], name: str = "alpha",
                meaning: str | None = None) -> FloatArray:
    """Controller leaks alpha >= 0, broadcast to ``shape``.

    Parameters
    ----------
    alpha : float or array_like
        One value, or an array whose axes match the leading axes of ``shape``
        (e.g. one leak per problem, (n,), for ``shape`` (n, pairs)); size-1
        axes broadcast.
    shape : tuple of int
        The shape wanted, e.g. (n,) or (n, layer pairs).
    name : str
        Name in the error message.
    meaning : str or None
        What the accepted shapes mean, for the error message (e.g. "one per
        layer pair"); by default the shapes are listed.

    Returns
    -------
    ndarray of ``shape`` (a new array)
    """
    values = finite_array(name, alpha, tuple(range(len(shape) + 1)))
    values = values.reshape(values.shape + (1,) * (len(shape) - values.ndim))
    try:
        values = np.broadcast_to(values, shape).copy()
    except ValueError:
        options = " or ".join(str(tuple(shape[:k])) for k in range(1, len(shape) + 1))
        raise InputError(f"{name} must be {meaning or f'a scalar or have shape {options}'}, "
                         f"got shape {np.shape(alpha)}") from None
    if np.any(values < 0):
        raise InputError(f"{name} must be >= 0 (a negative leak makes the controller "
                         f"unstable), got {alpha!r}")
    return values


def check_invertible(alpha: ArrayLike, d_out: int, d_in: int, layer: str = "") -> None:
    """Refuse alpha = 0 for an expanding layer (d_l > d_{l-1}), whose W B is singular."""
    if d_out > d_in and np.any(np.asarray(alpha) == 0):
        where = f" {layer}" if layer else ""
        raise InputError(
            f"alpha = 0 makes the inversion of expanding layer{where} singular "
            f"(d_l = {d_out} > d_(l-1) = {d_in}, so W B has rank < {d_out}); "
            "use alpha > 0 (the paper uses 0.01)"
        )


@dataclass
class LayerProblem:
    """A validated stack of layer inversions.

    Attributes
    ----------
    W : ndarray, shape (n, d_l, d_{l-1})
        Forward weights.
    B : ndarray, shape (n, d_{l-1}, d_l)
        Feedback weights.
    delta : ndarray, shape (n, batch, d_l)
        Errors to invert, one row per sample.
    alpha : ndarray, shape (n,)
        Controller leak of each problem.
    stacked : bool
        Whether the caller passed a stack (leading ``n`` axis).
    vector : bool
        Whether the caller passed ``delta`` as a single vector.
    """

    W: FloatArray
    B: FloatArray | None
    delta: FloatArray
    alpha: FloatArray
    stacked: bool
    vector: bool

    @property
    def n(self) -> int:
        """Number of independent problems."""
        return self.W.shape[0]

    @property
    def batch(self) -> int:
        """Number of error vectors per problem."""
        return self.delta.shape[1]

    @property
    def d_out(self) -> int:
        """Width d_l of the layer whose error is inverted."""
        return self.W.shape[1]

    @property
    def d_in(self) -> int:
        """Width d_{l-1} of the layer that receives the inverted error."""
        return self.W.shape[2]

    def restore(self, result: FloatArray) -> FloatArray:
        """Give ``result`` of shape (n, batch, d) the caller's layout."""
        if not self.stacked:
            result = result[0]
            if self.vector:
                result = result[0]
        return result


def layer_problem(W: ArrayLike, B: ArrayLike | None, delta: ArrayLike, alpha: ArrayLike,
                  need_b: bool = True, inverts: bool = True) -> LayerProblem:
    """Validate one layer inversion (or a stack of them).

    Parameters
    ----------
    W : array_like, shape (d_l, d_{l-1}) or (n, d_l, d_{l-1})
        Forward weights of layer l.
    B : array_like or None, shape (d_{l-1}, d_l) or (n, d_{l-1}, d_l)
        Feedback weights; may be None only when ``need_b`` is False.
    delta : array_like, shape (d_l,), (batch, d_l) or (n, batch, d_l)
        Errors of layer l, one row per sample.
    alpha : float or array_like of shape (n,)
        Leak of the controller, >= 0.
    need_b : bool
        Whether the rule uses feedback weights.
    inverts : bool
        Whether the rule inverts W B (then alpha = 0 is refused for an
        expanding layer, whose W B is singular); False for feedback alignment.

    Returns
    -------
    LayerProblem
    """
    W = finite_array("W", W, (2, 3))
    stacked = W.ndim == 3
    W3 = W if stacked else W[None]
    n, d_out, d_in = W3.shape
    if B is None:
        if need_b:
            raise InputError("B (feedback weights) is required by this rule")
        B3 = None
    else:
        B = finite_array("B", B, (3,) if stacked else (2,))
        B3 = B if stacked else B[None]
        if B3.shape != (n, d_in, d_out):
            expected = str((n, d_in, d_out) if stacked else (d_in, d_out))
            raise InputError(
                f"B must have shape {expected} (W's {(d_out, d_in)} transposed), "
                f"got {B.shape}"
            )
    delta = finite_array("delta", delta, (3,) if stacked else (1, 2))
    vector = delta.ndim == 1
    delta3 = delta[None, None] if vector else (delta if stacked else delta[None])
    if delta3.shape[0] != n or delta3.shape[2] != d_out:
        expected = f"({n}, batch, {d_out})" if stacked else f"(batch, {d_out})"
        raise InputError(
            f"delta must have shape {expected} to match W of shape {W.shape}, "
            f"got {delta.shape}"
        )
    if delta3.shape[1] == 0:
        raise InputError("delta holds no error vectors (batch size 0)")
    alpha_arr = check_leaks(alpha, (n,))
    if need_b and inverts:
        check_invertible(alpha_arr, d_out, d_in)
    return LayerProblem(W3, B3, delta3, alpha_arr, stacked, vector)
