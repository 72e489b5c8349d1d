"""Element-wise nonlinearities g and their derivatives g' (Eq. 1, Eq. 3)."""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from circuits.errors import InputError


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
    """

    name: str
    g: Callable
    derivative: Callable = None


def _logistic(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _softmax(a):
    shifted = np.exp(a - a.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


NONLINEARITIES = {
    "linear": Nonlinearity("linear", lambda a: a, np.ones_like),
    "tanh": Nonlinearity("tanh", np.tanh, lambda a: 1.0 - np.tanh(a) ** 2),
    "relu": Nonlinearity("relu", lambda a: np.maximum(a, 0.0), lambda a: (a > 0).astype(float)),
    "logistic": Nonlinearity(
        "logistic", _logistic, lambda a: _logistic(a) * (1.0 - _logistic(a))
    ),
    "softmax": Nonlinearity("softmax", _softmax),
}


def get_nonlinearity(name):
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
