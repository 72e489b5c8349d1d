"""Initial forward weights and feedback weights."""

from collections.abc import Sequence

import numpy as np

from dinv.errors import InputError
from dinv.hints import FloatArray

WEIGHT_INITS = ("uniform", "orthogonal", "xavier-normal")
FEEDBACK_INITS = ("transpose", "random")


def init_weights(shape: tuple[int, int], kind: str, rng: np.random.Generator,
                 scale: float = 0.01) -> FloatArray:
    """Draw one forward weight matrix.

    Parameters
    ----------
    shape : tuple of int
        (d_l, d_{l-1}).
    kind : {'uniform', 'orthogonal', 'xavier-normal'}
        ``uniform``: U(-scale, scale) (the paper's default, scale 0.01).
        ``orthogonal``: orthonormal rows or columns (Saxe et al. 2013);
        ``scale`` is not used.
        ``xavier-normal``: N(0, 2 / (d_l + d_{l-1})) (Glorot and Bengio 2010;
        the initialisation of Deep Feedback Control, Meulemans et al. 2021);
        ``scale`` is not used.
    rng : numpy.random.Generator
    scale : float

    Returns
    -------
    ndarray
    """
    if kind == "uniform":
        return rng.uniform(-scale, scale, size=shape)
    if kind == "orthogonal":
        big, small = max(shape), min(shape)
        q, r = np.linalg.qr(rng.standard_normal((big, small)))
        q = q * np.sign(np.diag(r))
        return q if shape[0] >= shape[1] else q.T
    if kind == "xavier-normal":
        return rng.normal(0.0, np.sqrt(2.0 / (shape[0] + shape[1])), size=shape)
    raise InputError(f"unknown weight init {kind!r}; choose one of {', '.join(WEIGHT_INITS)}")


def init_feedback(W: FloatArray, kind: str, rng: np.random.Generator | None,
                  scale: float = 0.5) -> FloatArray:
    """Feedback weights B of shape (d_{l-1}, d_l) for forward weights W.

    Parameters
    ----------
    W : ndarray, shape (d_l, d_{l-1})
    kind : {'transpose', 'random'}
        ``transpose`` ("Tr-Init"): B = -W^T, which makes W B - alpha I negative
        definite (Sec. 3.2). ``random``: U(-scale, scale), the FA feedback.
    rng : numpy.random.Generator or None
        Draws random feedback (None: only ``transpose``).
    scale : float

    Returns
    -------
    ndarray
    """
    if kind == "transpose":
        return -np.array(W).T
    if kind == "random":
        if rng is None:
            raise InputError("random feedback needs a random generator (rng)")
        return rng.uniform(-scale, scale, size=W.T.shape)
    raise InputError(f"unknown feedback init {kind!r}; choose one of {', '.join(FEEDBACK_INITS)}")


def init_loop_feedback(weights: Sequence[FloatArray], kind: str,
                       rng: np.random.Generator | None, scale: float = 0.5) -> FloatArray:
    """Feedback B of shape (d_1, d_L) of single-loop DI (Fig. 2C).

    Parameters
    ----------
    weights : list of ndarray
        W_1 .. W_L of the network.
    kind : {'transpose', 'random'}
        ``transpose``: B = -(W_L ... W_2)^T = -W_2^T ... W_L^T, the negative
        transpose of the forward map from layer 1 to the output.
        ``random``: U(-scale, scale).
    rng, scale
        As in `init_feedback`.

    Returns
    -------
    ndarray, shape (d_1, d_L)
    """
    if kind == "transpose":
        forward = weights[1]
        for W in weights[2:]:
            forward = W @ forward
        return -forward.T
    if kind == "random":
        if rng is None:
            raise InputError("random feedback needs a random generator (rng)")
        return rng.uniform(-scale, scale, size=(weights[0].shape[0], weights[-1].shape[0]))
    raise InputError(f"unknown feedback init {kind!r}; choose one of {', '.join(FEEDBACK_INITS)}")


def init_direct_feedback(weights: list[np.ndarray], kind: str,
                         rng: np.random.Generator | None, scale: float = 0.5
                         ) -> list[np.ndarray]:
    """Feedback Q_1 .. Q_{L-1} of direct feedback control (DFC), Q_l of shape (d_l, d_L).

    Parameters
    ----------
    weights : list of ndarray
        W_1 .. W_L of the network.
    kind : {'transpose', 'random'}
        ``transpose`` (the Tr-Init analogue): Q_l = J_l^T, the transpose of
        the network's Jacobian d a_L / d a_l at the origin (g'(0) = 1 for tanh
        and linear), the product W_{l+1}^T ... W_L^T (Meulemans et al. 2021's
        'weight_product'), with which the controller is stable.
        ``random``: U(-scale, scale).
    rng : numpy.random.Generator
    scale : float

    Returns
    -------
    list of ndarray
    """
    if kind == "transpose":
        from dinv.theory import direct_jacobians

        return [np.array(J.T) for J in direct_jacobians(list(weights[1:]))]
    if kind == "random":
        if rng is None:
            raise InputError("random feedback needs a random generator (rng)")
        return [rng.uniform(-scale, scale, size=(W.shape[0], weights[-1].shape[0]))
                for W in weights[:-1]]
    raise InputError(f"unknown feedback init {kind!r}; choose one of {', '.join(FEEDBACK_INITS)}")
