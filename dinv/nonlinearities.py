"""Element-wise nonlinearities g and their derivatives g' (Eq. 1, Eq. 3): the one table.

Every user of a nonlinearity reads it here: the forward pass of the networks
(``g``), the backward rules (``derivative``), the data-set error pass and the
circuits' transfer functions (``g_into``, in place, and ``brian``, the same
function as a Brian2 expression for the nonlinear controller of Eq. 14).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.special import expit

from dinv.errors import InputError
from dinv.hints import FloatArray


class InPlace(Protocol):
    """A function that writes its value into ``out`` (a numpy ufunc, e.g. ``np.tanh``)."""

    def __call__(self, x: FloatArray, /, out: FloatArray) -> object: ...


@dataclass(frozen=True)
class Nonlinearity:
    """A transfer function and its derivative, both of the pre-activation.

    Attributes
    ----------
    name : str
    g : callable
        h = g(a).
    derivative : callable or None
        g'(a); None for softmax, used only as an output with cross-entropy.
    g_into : callable or None
        ``g_into(x, out)`` writes g(x) into ``out`` (no temporary); None for
        the identity, which a circuit skips. The circuits use it.
    brian : str or None
        g as a Brian2 expression of ``{x}``; None where a population cannot
        apply it element-wise (softmax).
    """

    name: str
    g: Callable[[FloatArray], FloatArray]
    derivative: Callable[[FloatArray], FloatArray] | None = None
    g_into: InPlace | None = None
    brian: str | None = None


def _logistic(a: FloatArray) -> FloatArray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _softmax(a: FloatArray) -> FloatArray:
    shifted = np.exp(a - a.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


NONLINEARITIES: dict[str, Nonlinearity] = {
    "linear": Nonlinearity("linear", lambda a: a, np.ones_like, None, "{x}"),
    "tanh": Nonlinearity("tanh", np.tanh, lambda a: 1.0 - np.tanh(a) ** 2, np.tanh,
                         "tanh({x})"),
    "relu": Nonlinearity("relu", lambda a: np.maximum(a, 0.0),
                         lambda a: (a > 0).astype(float),
                         lambda x, out: np.maximum(x, 0.0, out=out), "clip({x}, 0, inf)"),
    "logistic": Nonlinearity("logistic", _logistic,
                             lambda a: _logistic(a) * (1.0 - _logistic(a)), expit,
                             "1 / (1 + exp(-{x}))"),
    "softmax": Nonlinearity("softmax", _softmax),
}
"""Every nonlinearity by name."""

TRANSFERS = tuple(name for name, g in NONLINEARITIES.items() if g.brian is not None)
"""Names usable as a circuit's transfer function (element-wise ones)."""


def get_nonlinearity(name: str) -> Nonlinearity:
    """Return the `Nonlinearity` called ``name``.

    Raises
    ------
    InputError
        For an unknown name; the message lists the known ones.
    """
    try:
        return NONLINEARITIES[name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown nonlinearity {name!r}; choose one of {', '.join(NONLINEARITIES)}"
        ) from None


def get_transfer(name: str) -> Nonlinearity:
    """The element-wise `Nonlinearity` called ``name``, as a circuit's transfer g.

    Raises
    ------
    InputError
        For an unknown name or one a population cannot apply (softmax).
    """
    if name not in TRANSFERS:
        raise InputError(f"transfer must be one of {list(TRANSFERS)}, got {name!r}")
    return NONLINEARITIES[name]
