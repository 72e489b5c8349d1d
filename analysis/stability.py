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
    Computed exactly from the smaller product: lambda is an eigenvalue of J
    (other than -1) if and only if (lambda + 1)(lambda + r alpha) = r mu for
    an eigenvalue mu of W B, whose nonzero eigenvalues are those of B W; a
    zero mu gives -1 and -r alpha. Accepts stacks (leading axes) of W, B and
    alpha and returns one value per problem.

    Parameters
    ----------
    W : ndarray, shape (..., d_l, d_{l-1})
    B : ndarray, shape (..., d_{l-1}, d_l)
    alpha : float or ndarray of shape (...)
    tau_ratio : float
        tau_system / tau_controller.

    Returns
    -------
    float or ndarray
    """
    W, B = np.asarray(W, dtype=float), np.asarray(B, dtype=float)
    d_out, d_in = W.shape[-2:]
    mu = np.linalg.eigvals(W @ B if d_out <= d_in else B @ W)
    r = float(tau_ratio)
    a = np.asarray(alpha, dtype=float)[..., None] * r
    # lambda^2 + (1 + r alpha) lambda + r alpha - r mu = 0
    b = 1.0 + a
    disc = np.sqrt(b * b - 4.0 * (a - r * mu) + 0j)
    roots = np.maximum((-b + disc).real, (-b - disc).real) / 2.0
    worst = roots.max(axis=-1)
    if d_in != d_out:
        worst = np.maximum(worst, -1.0)
    if d_out > d_in:
        worst = np.maximum(worst, -a[..., 0])
    return float(worst) if np.ndim(worst) == 0 else worst


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


def loop_abscissa(weights, B, alpha):
    """Largest real part of the eigenvalues of `loop_jacobian`, from the small product.

    With M = W_L ... W_2 B (d_L x d_L), lambda (other than -1) is an eigenvalue
    of the loop if and only if (lambda + 1)^(L-1) (lambda + alpha) = mu for an
    eigenvalue mu of M; the other modes decay at rate 1. Accepts stacks
    (leading axis n) of the weights, B and alpha.

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L, each (..., d_l, d_{l-1}).
    B : ndarray, shape (..., d_1, d_L)
    alpha : float or ndarray of shape (...)

    Returns
    -------
    float or ndarray
    """
    M = np.asarray(B, dtype=float)
    for W in weights:
        M = np.asarray(W, dtype=float) @ M
    mu = np.linalg.eigvals(M)                          # (..., d_L)
    degree = len(weights) + 1                          # L
    alpha = np.asarray(alpha, dtype=float)
    # Coefficients of (lambda + 1)^(L-1) (lambda + alpha), highest power first.
    base = np.poly1d([1.0, 1.0]) ** (degree - 1)
    coefficients = np.multiply.outer(np.ones_like(alpha), base.coeffs)
    poly = np.zeros(alpha.shape + (degree + 1,))
    poly[..., :-1] += coefficients
    poly[..., 1:] += alpha[..., None] * coefficients
    # Companion matrices of poly - mu, one per eigenvalue mu.
    companion = np.zeros(mu.shape + (degree, degree), dtype=complex)
    lower = poly[..., None, 1:].astype(complex).repeat(mu.shape[-1], axis=-2)
    lower[..., -1] -= mu
    companion[..., 0, :] = -lower
    companion[..., np.arange(1, degree), np.arange(degree - 1)] = 1.0
    worst = np.linalg.eigvals(companion).real.max(axis=(-1, -2))
    total = B.shape[-2] + sum(np.shape(W)[-2] for W in weights)
    if total > degree * B.shape[-1]:
        worst = np.maximum(worst, -1.0)
    return float(worst) if np.ndim(worst) == 0 else worst
