"""Linear stability of the dynamic-inversion circuit (Sec. 3.2, Eq. 13)."""

import numpy as np


def circuit_jacobian(W, B, alpha, tau_ratio=1.0):
    """Jacobian of the two-population circuit, time in units of tau_system.

    For ``tau_s d(delta)/dt = -delta + B u`` and
    ``tau_c du/dt = -alpha u + W delta - delta_l``, with ``r = tau_s / tau_c``::

        J = [[-I,   B      ],
             [r W, -r alpha I]]

    Parameters
    ----------
    W : ndarray, shape (d_l, d_{l-1})
    B : ndarray, shape (d_{l-1}, d_l)
    alpha : float
    tau_ratio : float
        tau_system / tau_controller (the paper: 1).

    Returns
    -------
    ndarray, shape (d_{l-1} + d_l, d_{l-1} + d_l)
    """
    d_out, d_in = W.shape
    return np.block([
        [-np.eye(d_in), B],
        [tau_ratio * W, -tau_ratio * alpha * np.eye(d_out)],
    ])


def jacobian_abscissa(W, B, alpha, tau_ratio=1.0):
    """Largest real part of the eigenvalues of `circuit_jacobian`.

    Negative means the circuit converges to its steady state (Eq. 10).
    """
    return float(np.linalg.eigvals(circuit_jacobian(W, B, alpha, tau_ratio)).real.max())


def reduced_abscissa(W, B, alpha):
    """Largest real part of the eigenvalues of ``W B - alpha I`` (Eq. 13).

    The controller's dynamics when the system is much faster than control.
    """
    W = np.asarray(W, dtype=float)
    return float(np.linalg.eigvals(W @ B - alpha * np.eye(W.shape[0])).real.max())


def loop_jacobian(weights, B, alpha):
    """Jacobian of the single-loop circuit (Fig. 2C), linearised at rest.

    States (h_1, .., h_{L-1}, u_L) with ``dh_1/dt = -h_1 + B u``,
    ``dh_l/dt = -h_l + W_l g(h_{l-1})`` and ``du/dt = -alpha u + W_L g(h_{L-1})``,
    all time constants equal, g'(0) = 1 (tanh, linear)::

        J = [[-I,   0,  ...,  B       ],
             [W_2, -I,  ...,  0       ],
             [ 0,  ...,  W_L, -alpha I]]

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L.
    B : ndarray, shape (d_1, d_L)
    alpha : float

    Returns
    -------
    ndarray
    """
    widths = [B.shape[0]] + [W.shape[0] for W in weights]
    offsets = np.concatenate([[0], np.cumsum(widths)])
    J = -np.eye(offsets[-1])
    last = len(widths) - 1
    J[offsets[last]:, offsets[last]:] *= alpha
    J[:widths[0], offsets[last]:] = B
    for k, W in enumerate(weights, start=1):
        J[offsets[k]:offsets[k + 1], offsets[k - 1]:offsets[k]] = W
    return J


def abscissa(J):
    """Largest real part of the eigenvalues of a square matrix."""
    return float(np.linalg.eigvals(J).real.max())
