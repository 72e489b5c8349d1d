"""The theory of the dynamic-inversion circuits in plain numpy: the one home of its equations.

Podlaski & Machens (NeurIPS 2020), Sec. 3. Everything the simulations do in
Brian2 (`dinv.circuits`) is written here once more as plain functions of
arrays, and nowhere else: the right-hand sides of the circuits, their
Jacobians and spectral abscissae, and their steady states. The circuits
check their residuals and explain divergence with it, `dinv.models.rules`
computes NDI with it, `dinv.models.stabilise` optimises its abscissae and
`dinv.analysis.stability` re-exports it for analysis.

Conventions
-----------
- Batch rows, as in `dinv.models.rules`: a population's state has shape
  (..., batch, d); W_l has shape (..., d_l, d_{l-1}) and B_l (..., d_{l-1},
  d_l). Leading axes stack independent problems wherever that is cheap.
- Time is in units of tau_system; ``tau_ratio`` r = tau_system /
  tau_controller multiplies the controllers' right-hand sides (the paper:
  r = 1). All system (and relay) populations share tau_system.
- A chain's layer pairs are listed bottom-up: ``weights`` W_2 .. W_L,
  ``feedback`` B_2 .. B_L, pair j joins W_{j+2} with B_{j+2}. Per pair, a
  leak ``alpha`` is a float, an array over the stack axes (one per problem),
  or an array with one more, last, axis (one per problem and layer pair).

The circuits
------------
Layer pair (Fig. 1c): the system population delta_{l-1} and its
leaky-integral controller u_l (Eqs. 5 and 8; Eq. 14 with a nonlinear
readout)::

    d(delta_{l-1})/dt = -delta_{l-1} + B_l u_l
    du_l/dt          = r (-alpha u_l + W_l g(delta_{l-1}) - delta_l)

Sequential chain (Fig. 2A): one layer pair at a time, from the output down;
the settled delta_{l-1} times g'(a_{l-1}) is the target of the next pair
(Eq. 17), so its dynamics are those of the layer pair. Repeat-layer chain
(Fig. 2B): every pair at once, the controller u_l of a hidden layer l driven
towards ``g'(a_l) * delta_l`` (an identity relay with gain). Single loop
(Fig. 2C): the output controller drives layer 1 through B; the readout runs
forward through relays ``dh_l/dt = -h_l + W_l g(h_{l-1})``.
"""

from collections.abc import Callable, Sequence
from typing import NoReturn

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import lu_factor, lu_solve, solve
from scipy.linalg.lapack import dgecon as gecon
from scipy.optimize import root

from dinv.errors import InputError
from dinv.hints import ArrayLike, FloatArray
from dinv.nonlinearities import get_transfer

TauRatios = float | list[float] | tuple[float, ...]
"""tau_system / tau_controller of a chain: one value, or one per layer pair."""

FORMS = ("WB", "BW")
"""The two forms of Eq. (10): ``B (W B - alpha I)^-1`` and ``(B W - alpha I)^-1 B``."""


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def stack_c(arrays: Sequence[FloatArray]) -> FloatArray:
    """Stack float arrays along a new first axis, always in C order.

    `numpy.stack` keeps a layout that all the arrays share (e.g. the
    transposed one of B = -W^T), and BLAS rounds a product with a transposed
    operand differently: in C order every item is computed the same way
    whatever the other items are, so a problem stacked with others (another
    run's, in a stacked sweep) gets the numbers it gets alone.
    """
    return np.stack(arrays, out=np.empty((len(arrays),) + np.shape(arrays[0])))


def _apply(M: FloatArray, x: FloatArray) -> FloatArray:
    """M x for matrices M (..., d_out, d_in) and row vectors x (..., batch, d_in)."""
    return x @ np.swapaxes(M, -1, -2)


def _leak(alpha: ArrayLike) -> FloatArray:
    """A leak (float or one per problem) broadcast over (batch, d)."""
    return np.asarray(alpha, dtype=float)[..., None, None]


def _transfer(name: str | None) -> Callable[[FloatArray], FloatArray] | None:
    """g of a circuit's readout (`dinv.nonlinearities.TRANSFERS`); None for the identity."""
    return None if name in (None, "linear") else get_transfer(name).g


def _per_pair(value: ArrayLike, pairs: int, stack_ndim: int, name: str) -> list[FloatArray]:
    """One leak per layer pair: ``value`` as in the module's conventions."""
    value = np.asarray(value, dtype=float)
    if value.ndim <= stack_ndim:
        return [value] * pairs
    if value.ndim != stack_ndim + 1 or value.shape[-1] != pairs:
        raise InputError(f"{name} must be one value, one per problem or one per problem and "
                         f"layer pair (last axis {pairs}); got shape {value.shape}")
    return [value[..., j] for j in range(pairs)]


def _ratios(tau_ratio: TauRatios | FloatArray, pairs: int) -> list[float]:
    """tau_system / tau_controller per layer pair (one float, or one per pair)."""
    ratios = list(tau_ratio) if isinstance(tau_ratio, (list, tuple, np.ndarray)) \
        else [tau_ratio] * pairs
    if len(ratios) != pairs:
        raise InputError(f"tau_ratio needs one value per layer pair ({pairs}), "
                         f"got {len(ratios)}")
    return [float(r) for r in ratios]


# --------------------------------------------------------------------------
# right-hand sides
# --------------------------------------------------------------------------


def controller_residual(W: FloatArray, delta_prev: FloatArray, delta: FloatArray, u: FloatArray,
                        alpha: ArrayLike, transfer: str = "linear") -> FloatArray:
    """The controller's steady-state condition (Eq. 9; Eq. 15 with a nonlinear readout).

    ``-alpha u + W g(delta_{l-1}) - delta_l``: the controller's rate of change
    in units of tau_controller (Eqs. 8 and 14), zero exactly at its steady
    state ``W g(delta_{l-1}) = delta_l + alpha u``.

    Parameters
    ----------
    W : ndarray, shape (..., d_l, d_{l-1})
    delta_prev : ndarray, shape (..., batch, d_{l-1})
        State of the system population, delta_{l-1}.
    delta : ndarray, shape (..., batch, d_l)
        The target error delta_l.
    u : ndarray, shape (..., batch, d_l)
        Control signal.
    alpha : float or ndarray of shape (...)
        Leak.
    transfer : str
        g of the readout: 'linear' (Eq. 8) or a nonlinearity (Eq. 14).

    Returns
    -------
    ndarray, shape (..., batch, d_l)
    """
    g = _transfer(transfer)
    readout = _apply(W, delta_prev if g is None else g(delta_prev))
    return -_leak(alpha) * u + readout - delta


def layer_rhs(delta_prev: FloatArray, u: FloatArray, W: FloatArray, B: FloatArray,
              delta: FloatArray, alpha: ArrayLike, tau_ratio: float = 1.0,
              transfer: str = "linear") -> tuple[FloatArray, FloatArray]:
    """Right-hand side of the layer pair (Eqs. 5 and 8, or 14), time in units of tau_system.

    ::

        d(delta_{l-1})/dt = -delta_{l-1} + B u                   (Eq. 5)
        du/dt = r (-alpha u + W g(delta_{l-1}) - delta_l)        (Eq. 8; Eq. 14)

    Also the right-hand side of one phase of the sequential chain (Fig. 2A),
    whose target delta_l is the settled error of the pair above times its
    gain g'(a_l).

    Parameters
    ----------
    delta_prev : ndarray, shape (..., batch, d_{l-1})
        System state delta_{l-1}.
    u : ndarray, shape (..., batch, d_l)
        Control signal.
    W : ndarray, shape (..., d_l, d_{l-1})
    B : ndarray, shape (..., d_{l-1}, d_l)
    delta : ndarray, shape (..., batch, d_l)
        Target error delta_l.
    alpha : float or ndarray of shape (...)
    tau_ratio : float
        r = tau_system / tau_controller.
    transfer : str
        g of the controller's readout ('linear': Eq. 8).

    Returns
    -------
    d_delta_prev : ndarray, shape (..., batch, d_{l-1})
    d_u : ndarray, shape (..., batch, d_l)
    """
    system = -delta_prev + _apply(B, u)
    return system, controller_residual(W, delta_prev, delta, u, alpha, transfer) * tau_ratio


def chain_rhs(deltas: Sequence[FloatArray], controls: Sequence[FloatArray],
              weights: Sequence[FloatArray], feedback: Sequence[FloatArray], delta: FloatArray,
              alpha: ArrayLike, gains: Sequence[FloatArray] | None = None,
              tau_ratio: TauRatios = 1.0, transfers: Sequence[str] | None = None,
              ) -> tuple[list[FloatArray], list[FloatArray]]:
    """Right-hand side of the repeat-layer chain (Fig. 2B), in units of tau_system.

    Hidden layer l has a system population delta_l (driven by the controller
    above) and, for l >= 2, the controller u_l of the layer below, whose
    target is the relayed ``g'(a_l) * delta_l`` (the top controller's target
    is delta_L)::

        d(delta_{l-1})/dt = -delta_{l-1} + B_l u_l
        du_l/dt = r_l (-alpha_l u_l + W_l g_{l-1}(delta_{l-1}) - target_l)

    Its steady state is the sequential chain's (Eq. 17; `chain_steady_state`,
    whose hidden errors are ``gains * delta_l``).

    Parameters
    ----------
    deltas : list of ndarray
        System states delta_1 .. delta_{L-1}, each (..., batch, d_l).
    controls : list of ndarray
        Controllers u_2 .. u_L, each (..., batch, d_l).
    weights : list of ndarray
        W_2 .. W_L, each (..., d_l, d_{l-1}).
    feedback : list of ndarray
        B_2 .. B_L, each (..., d_{l-1}, d_l).
    delta : ndarray, shape (..., batch, d_L)
        Output error.
    alpha : float or ndarray
        Leaks (see the module's conventions).
    gains : list of ndarray or None
        g'(a_1) .. g'(a_{L-1}), each (..., batch, d_l); None: ones (the
        nonlinear controller, Eq. 16, relays without gain).
    tau_ratio : float or sequence of float
        r_l, one value or one per layer pair.
    transfers : sequence of str or None
        g_1 .. g_{L-1} of the readouts (Eq. 14); None: linear (Eq. 8).

    Returns
    -------
    d_deltas : list of ndarray
        Rates of delta_1 .. delta_{L-1}.
    d_controls : list of ndarray
        Rates of u_2 .. u_L.
    """
    pairs = len(weights)
    leaks = _per_pair(alpha, pairs, np.ndim(weights[0]) - 2, "alpha")
    ratios = _ratios(tau_ratio, pairs)
    transfers = ["linear"] * pairs if transfers is None else list(transfers)
    d_deltas, d_controls = [], []
    for j in range(pairs):
        if j == pairs - 1:
            target = delta
        else:
            target = deltas[j + 1] if gains is None else gains[j + 1] * deltas[j + 1]
        system, controller = layer_rhs(deltas[j], controls[j], weights[j], feedback[j], target,
                                       leaks[j], ratios[j], transfers[j])
        d_deltas.append(system)
        d_controls.append(controller)
    return d_deltas, d_controls


def loop_rhs(hidden: Sequence[FloatArray], u: FloatArray, weights: Sequence[FloatArray],
             B: FloatArray, delta: FloatArray, alpha: ArrayLike, tau_ratio: float = 1.0,
             transfers: Sequence[str] | None = None) -> tuple[list[FloatArray], FloatArray]:
    """Right-hand side of the single loop (Fig. 2C, Eq. 14), in units of tau_system.

    ::

        dh_1/dt = -h_1 + B u
        dh_l/dt = -h_l + W_l g_{l-1}(h_{l-1})                  (l = 2 .. L-1)
        du/dt   = r (-alpha u + W_L g_{L-1}(h_{L-1}) - delta_L)

    Zero exactly at a steady state of the loop: this is its steady-state
    condition (`loop_residual` reduces it to the control signal u).

    Parameters
    ----------
    hidden : list of ndarray
        h_1 .. h_{L-1}, each (..., batch, d_l).
    u : ndarray, shape (..., batch, d_L)
    weights : list of ndarray
        W_2 .. W_L.
    B : ndarray, shape (..., d_1, d_L)
    delta : ndarray, shape (..., batch, d_L)
        Output error delta_L.
    alpha : float or ndarray of shape (...)
    tau_ratio : float
    transfers : sequence of str or None
        g_1 .. g_{L-1}; None: linear.

    Returns
    -------
    d_hidden : list of ndarray
    d_u : ndarray
    """
    transfers = ["linear"] * len(weights) if transfers is None else list(transfers)
    d_hidden = [-hidden[0] + _apply(B, u)]
    for l in range(1, len(weights)):
        g = _transfer(transfers[l - 1])
        source = hidden[l - 1] if g is None else g(hidden[l - 1])
        d_hidden.append(-hidden[l] + _apply(weights[l - 1], source))
    d_u = controller_residual(weights[-1], hidden[-1], delta, u, alpha,
                              transfers[-1]) * tau_ratio
    return d_hidden, d_u


def reduced_rhs(u: FloatArray, W: FloatArray, B: FloatArray, delta: FloatArray,
                alpha: ArrayLike) -> FloatArray:
    """The controller when the system is much faster than control (Eq. 13).

    ``du/dt = (W B - alpha I) u - delta_l``, with the system at its steady
    state delta_{l-1} = B u, time in units of tau_controller.

    Parameters
    ----------
    u : ndarray, shape (..., batch, d_l)
    W, B : ndarray
    delta : ndarray, shape (..., batch, d_l)
    alpha : float or ndarray of shape (...)

    Returns
    -------
    ndarray, shape (..., batch, d_l)
    """
    return _apply(W @ B, u) - _leak(alpha) * u - delta


# --------------------------------------------------------------------------
# Jacobians and spectral abscissae
# --------------------------------------------------------------------------


def circuit_jacobian(W: FloatArray, B: FloatArray, alpha: float, tau_ratio: float = 1.0,
                     slopes: FloatArray | None = None) -> FloatArray:
    """Jacobian of the layer pair (`layer_rhs`), time in units of tau_system.

    For ``d(delta)/dt = -delta + B u`` and
    ``du/dt = r (-alpha u + W g(delta) - delta_l)``, states (delta, u)::

        J = [[-I,       B        ],
             [r W D,   -r alpha I]]

    with D = diag(g'(delta)) at the linearisation point (the identity for the
    linear controller of Eq. 8).

    Parameters
    ----------
    W : ndarray, shape (d_l, d_{l-1})
    B : ndarray, shape (d_{l-1}, d_l)
    alpha : float
    tau_ratio : float
        tau_system / tau_controller (the paper: 1).
    slopes : ndarray of shape (d_{l-1},) or None
        g'(delta_{l-1}) of a nonlinear readout (Eq. 14) where the circuit is
        linearised; None: linear.

    Returns
    -------
    ndarray, shape (d_{l-1} + d_l, d_{l-1} + d_l)
    """
    d_out, d_in = W.shape
    readout = W if slopes is None else W * slopes
    return np.block([
        [-np.eye(d_in), B],
        [tau_ratio * readout, -tau_ratio * alpha * np.eye(d_out)],
    ])


def jacobian_abscissa(W: ArrayLike, B: ArrayLike, alpha: ArrayLike,
                      tau_ratio: float = 1.0) -> float | FloatArray:
    """Largest real part of the eigenvalues of `circuit_jacobian` (linear controller).

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


def reduced_abscissa(W: ArrayLike, B: FloatArray, alpha: float) -> float:
    """Largest real part of the eigenvalues of ``W B - alpha I`` (Eq. 13).

    The controller's dynamics when the system is much faster than control
    (`reduced_rhs`).
    """
    W = np.asarray(W, dtype=float)
    return float(np.linalg.eigvals(W @ B - alpha * np.eye(W.shape[0])).real.max())


def range_svd(W: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Thin SVD W = U S V^T restricted to W's range (singular values above rounding).

    Returns
    -------
    U : ndarray, shape (d_l, r)
    S : ndarray, shape (r,)
    Vt : ndarray, shape (r, d_{l-1})
    """
    U, S, Vt = np.linalg.svd(W, full_matrices=False)
    keep = S.max() * max(W.shape) * np.finfo(float).eps < S
    return U[:, keep], S[keep], Vt[keep]


def reduced_jacobian(S: FloatArray, B_r: FloatArray, alpha: float) -> FloatArray:
    """The 2r x 2r block of the layer pair's Jacobian that depends on B (r = rank W).

    With W = U S V^T (`range_svd`), the components of the state outside
    range(V) (system) and range(U) (controller) decay at rates 1 and alpha
    whatever B is; the rest follows::

        J_r = [[-I_r, B_r], [diag(S), -alpha I_r]],    B_r = V^T B U.

    Parameters
    ----------
    S : ndarray, shape (r,)
        Nonzero singular values of W.
    B_r : ndarray, shape (r, r)
    alpha : float

    Returns
    -------
    ndarray, shape (2r, 2r)
    """
    r = S.size
    return np.block([[-np.eye(r), B_r], [np.diag(S), -alpha * np.eye(r)]])


def full_abscissa(W: FloatArray, B: FloatArray, alpha: float) -> float:
    """Spectral abscissa of J = [[-I, B], [W, -alpha I]], via `reduced_jacobian`.

    The modes outside the reduced block decay at rate 1 (system) and alpha
    (controller, when d_l > rank W).
    """
    U, S, Vt = range_svd(W)
    values = [float(np.linalg.eigvals(reduced_jacobian(S, Vt @ B @ U, alpha)).real.max())]
    if W.shape[1] > S.size:
        values.append(-1.0)
    if W.shape[0] > S.size:
        values.append(-float(alpha))
    return max(values)


def product_abscissa(mu: NDArray[np.number], alpha: float) -> float:
    """Abscissa of `reduced_jacobian` from the eigenvalues mu of S B_r.

    The eigenvalues mu of S B_r are the nonzero eigenvalues of W B; every
    eigenvalue lambda of J_r solves (1 + lambda)(alpha + lambda) = mu
    (tau_ratio 1). The spectral shift of `dinv.models.stabilise` bisects on it.

    Parameters
    ----------
    mu : ndarray
    alpha : float

    Returns
    -------
    float
    """
    root = np.sqrt((1.0 - alpha) ** 2 + 4.0 * mu.astype(complex))
    return float(np.max((-(1.0 + alpha) + root).real / 2.0))


def _gain(k: ArrayLike, X: FloatArray) -> FloatArray:
    """A PID gain applied to X: k X for a scalar k, k @ X for a (d_l, d_l) matrix."""
    k = np.asarray(k, dtype=float)
    return k * X if k.ndim == 0 else k @ X


def _gained(k: ArrayLike, x: FloatArray) -> FloatArray:
    """A PID gain applied to row vectors x (..., batch, d_l): scalar or (d_l, d_l) matrix."""
    k = np.asarray(k, dtype=float)
    return k * x if k.ndim == 0 else _apply(k, x)


def pid_layer_rhs(delta_prev: FloatArray, u: FloatArray, e_f: FloatArray, rate_f: FloatArray,
                  W: FloatArray, B: FloatArray, delta: FloatArray, alpha: ArrayLike,
                  tau_ratio: float = 1.0, kp: ArrayLike = 0.0, kd: ArrayLike = 0.0,
                  filter_ratio: float = 1.0,
                  ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Right-hand side of the layer pair under a PID controller (Eq. 7), units of tau_system.

    The controller of `dinv.circuits.pid_controller`: Eq. (7) with K_i = I and
    K_u = -alpha I, the derivatives of the controller error
    ``e = W delta_{l-1} - delta_l`` estimated by two first-order filters of
    time constant tau_d = filter_ratio * tau_controller (in units of
    tau_system: filter_ratio / r)::

        D1 = (e - e_f) / tau_d          (de/dt, filtered: s / (1 + s tau_d))
        D2 = (D1 - rate_f) / tau_d      (d2e/dt2, filtered twice)
        d(delta_{l-1})/dt = -delta_{l-1} + B u                          (Eq. 5)
        du/dt = r (-alpha u + e) + K_p D1 + (K_d / r) D2                (Eq. 7)
        de_f/dt = D1,   d(rate_f)/dt = D2

    K_p is dimensionless and K_d in units of tau_controller (so that
    ``tau_c du/dt = -alpha u + e + K_p tau_c de/dt + K_d tau_c^2 d2e/dt2``).
    At rest e_f = e and rate_f = 0, so the steady state is Eq. (9)/(10)
    whatever the gains. K_p = K_d = 0 is Eq. (8) (`layer_rhs`).

    Parameters
    ----------
    delta_prev : ndarray, shape (..., batch, d_{l-1})
    u, e_f, rate_f : ndarray, shape (..., batch, d_l)
        Control signal, low-passed error, low-passed error derivative.
    W, B, delta, alpha, tau_ratio
        As in `layer_rhs`.
    kp, kd : float or ndarray of shape (d_l, d_l)
        Proportional and derivative gains (a scalar, or a gain matrix).
    filter_ratio : float
        tau_d / tau_controller.

    Returns
    -------
    tuple of ndarray
        d(delta_prev)/dt, du/dt, d(e_f)/dt, d(rate_f)/dt.
    """
    r = float(tau_ratio)
    g = r / float(filter_ratio)
    e = _apply(W, delta_prev) - delta
    rate = (e - e_f) * g
    accel = (rate - rate_f) * g
    system = -delta_prev + _apply(B, u)
    control = r * (-_leak(alpha) * u + e) + _gained(kp, rate) + _gained(kd, accel) / r
    return system, control, rate, accel


def pid_jacobian(W: ArrayLike, B: ArrayLike, alpha: float, tau_ratio: float = 1.0,
                 kp: ArrayLike = 0.0, kd: ArrayLike = 0.0,
                 filter_ratio: float = 1.0) -> FloatArray:
    """Jacobian of `pid_layer_rhs`, states (delta_{l-1}, u, e_f, rate_f), units of tau_system.

    With g = r / filter_ratio (1 / tau_d) and K = K_p g + K_d g^2 / r::

        J = [[-I,       B,        0,                    0           ],
             [(rI+K)W, -r alpha I, -K,                  -K_d g / r  ],
             [g W,      0,        -g I,                 0           ],
             [g^2 W,    0,        -g^2 I,               -g I        ]]

    Zero gains leave the (delta, u) block of `circuit_jacobian` and filter
    modes at -g.

    Parameters
    ----------
    W, B, alpha, tau_ratio
        As in `circuit_jacobian`.
    kp, kd : float or ndarray of shape (d_l, d_l)
    filter_ratio : float
        tau_d / tau_controller.

    Returns
    -------
    ndarray, shape (d_{l-1} + 3 d_l, d_{l-1} + 3 d_l)
    """
    W, B = np.asarray(W, dtype=float), np.asarray(B, dtype=float)
    d_out, d_in = W.shape
    r = float(tau_ratio)
    g = r / float(filter_ratio)
    I, Z = np.eye(d_out), np.zeros((d_out, d_out))
    K = _gain(kp, I) * g + _gain(kd, I) * g * g / r
    return np.block([
        [-np.eye(d_in), B, np.zeros((d_in, d_out)), np.zeros((d_in, d_out))],
        [r * W + K @ W, -r * alpha * I, -K, -_gain(kd, I) * g / r],
        [g * W, Z, -g * I, Z],
        [g * g * W, Z, -g * g * I, -g * I],
    ])


def pid_abscissa(W: ArrayLike, B: ArrayLike, alpha: float, tau_ratio: float = 1.0,
                 kp: ArrayLike = 0.0, kd: ArrayLike = 0.0, filter_ratio: float = 1.0) -> float:
    """Largest real part of the eigenvalues of `pid_jacobian` (negative: it converges)."""
    J = pid_jacobian(W, B, alpha, tau_ratio, kp, kd, filter_ratio)
    return float(np.linalg.eigvals(J).real.max())


def pid_step_matrix(W: ArrayLike, B: ArrayLike, alpha: float, dt: float, tau_ratio: float = 1.0,
                    kp: ArrayLike = 0.0, kd: ArrayLike = 0.0,
                    filter_ratio: float = 1.0) -> FloatArray:
    """The circuit's one Euler step as a matrix: x_{n+1} = M x_n (zero target).

    The semi-implicit Euler of the circuits (`dinv.circuits.coupling`): the
    controller's states (u, e_f, rate_f) move first, from the states at the
    start of the step; the system then moves with the new u. States and
    blocks as in `pid_jacobian`; ``dt`` in units of tau_system. The Euler
    circuit converges if and only if the spectral radius of M is below 1
    (`pid_step_radius`); for small dt, M ~ I + dt J.

    Returns
    -------
    ndarray, shape (d_{l-1} + 3 d_l, d_{l-1} + 3 d_l)
    """
    J = pid_jacobian(W, B, alpha, tau_ratio, kp, kd, filter_ratio)
    d_in = np.shape(W)[1]
    n = J.shape[0]
    control = np.eye(n)
    control[d_in:] += dt * J[d_in:]
    system = np.eye(n)
    system[:d_in] += dt * J[:d_in]
    return system @ control


def pid_step_radius(W: ArrayLike, B: ArrayLike, alpha: float, dt: float, tau_ratio: float = 1.0,
                    kp: ArrayLike = 0.0, kd: ArrayLike = 0.0, filter_ratio: float = 1.0) -> float:
    """Spectral radius of `pid_step_matrix` (below 1: the Euler circuit converges)."""
    M = pid_step_matrix(W, B, alpha, dt, tau_ratio, kp, kd, filter_ratio)
    return float(np.abs(np.linalg.eigvals(M)).max())


def chain_jacobian(weights: Sequence[FloatArray], feedback: Sequence[FloatArray], alpha: ArrayLike,
                   gains: Sequence[FloatArray] | None = None,
                   tau_ratio: TauRatios = 1.0) -> FloatArray:
    """Jacobian of the linear repeat-layer chain (`chain_rhs`) for one sample.

    States ordered (delta_1, .., delta_{L-1}, u_2, .., u_L). Per pair l, the
    block of (delta_{l-1}, u_l) is the layer pair's `circuit_jacobian`; the
    relay adds ``-r_l diag(g'(a_l))`` from delta_l (pair l+1) to u_l. Pair l
    depends only on pairs above it, so J is block triangular and its
    spectrum is the union of the pairs' spectra (`chain_abscissa`), whatever
    the gains.

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L, each (d_l, d_{l-1}).
    feedback : list of ndarray
        B_2 .. B_L, each (d_{l-1}, d_l).
    alpha : float or ndarray of shape (L-1,)
        One leak, or one per layer pair.
    gains : list of ndarray or None
        g'(a_1) .. g'(a_{L-1}) of the sample, each (d_l,); None: ones.
    tau_ratio : float or sequence of float
        r_l, one value or one per layer pair.

    Returns
    -------
    ndarray, shape (sum d_1..d_{L-1} + sum d_2..d_L, same)
    """
    pairs = len(weights)
    leaks = _per_pair(alpha, pairs, 0, "alpha")
    ratios = _ratios(tau_ratio, pairs)
    systems = [W.shape[1] for W in weights]                  # d_1 .. d_{L-1}
    controls = [W.shape[0] for W in weights]                 # d_2 .. d_L
    starts = np.concatenate([[0], np.cumsum(systems + controls)])
    J = np.zeros((starts[-1], starts[-1]))

    def block(i, j):
        return slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])

    for j in range(pairs):
        s, c = j, pairs + j                                  # delta_{j+1}, u_{j+2}
        J[block(s, s)] = -np.eye(systems[j])
        J[block(s, c)] = feedback[j]
        J[block(c, s)] = ratios[j] * weights[j]
        J[block(c, c)] = -ratios[j] * leaks[j] * np.eye(controls[j])
        if j < pairs - 1:
            relay = np.ones(systems[j + 1]) if gains is None else gains[j + 1]
            J[block(c, s + 1)] = -ratios[j] * np.diag(relay)
    return J


def chain_abscissa(weights: Sequence[FloatArray], feedback: Sequence[FloatArray], alpha: ArrayLike,
                   tau_ratio: TauRatios = 1.0) -> float | FloatArray:
    """Spectral abscissa of a linear chain: the largest over its layer pairs.

    The sequential chain (Fig. 2A) settles one layer pair at a time, each with
    the pair's `circuit_jacobian`; the repeat-layer chain's Jacobian
    (`chain_jacobian`) is block triangular in the pairs. Either converges if
    and only if every pair does. Accepts stacks.

    Parameters
    ----------
    weights, feedback : list of ndarray
        W_2 .. W_L and B_2 .. B_L, each with leading stack axes (...).
    alpha : float or ndarray
        Leaks (see the module's conventions).
    tau_ratio : float or sequence of float

    Returns
    -------
    float or ndarray of shape (...)
    """
    pairs = len(weights)
    leaks = _per_pair(alpha, pairs, np.ndim(weights[0]) - 2, "alpha")
    ratios = _ratios(tau_ratio, pairs)
    worst = jacobian_abscissa(weights[0], feedback[0], leaks[0], ratios[0])
    for W, B, a, r in zip(weights[1:], feedback[1:], leaks[1:], ratios[1:]):
        worst = np.maximum(worst, jacobian_abscissa(W, B, a, r))
    return float(worst) if np.ndim(worst) == 0 else worst


def loop_jacobian(weights: Sequence[FloatArray], B: FloatArray, alpha: float,
                  tau_ratio: float = 1.0,
                  slopes: Sequence[FloatArray] | None = None) -> FloatArray:
    """Jacobian of the single-loop circuit (Fig. 2C, `loop_rhs`).

    States (h_1, .., h_{L-1}, u_L); linearised at rest (g'(0) = 1 for tanh
    and linear) unless ``slopes`` give g'_l(h_l) elsewhere::

        J = [[-I,     0,   ...,  B         ],
             [W_2 D_1, -I, ...,  0         ],
             [ 0,  ..., r W_L D_{L-1}, -r alpha I]]

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L.
    B : ndarray, shape (d_1, d_L)
    alpha : float
    tau_ratio : float
        tau_system / tau_controller.
    slopes : list of ndarray or None
        g'_1(h_1) .. g'_{L-1}(h_{L-1}), each (d_l,); None: ones.

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
        J[offsets[k]:offsets[k + 1], offsets[k - 1]:offsets[k]] = \
            W if slopes is None else W * slopes[k - 1]
    J[offsets[last]:] *= tau_ratio
    return J


def loop_abscissa(weights: Sequence[ArrayLike], B: FloatArray, alpha: ArrayLike,
                  tau_ratio: float = 1.0) -> float | FloatArray:
    """Largest real part of the eigenvalues of `loop_jacobian`, from the small product.

    With M = W_L ... W_2 B (d_L x d_L), lambda (other than -1) is an eigenvalue
    of the loop if and only if (lambda + 1)^(L-1) (lambda + r alpha) = r mu for
    an eigenvalue mu of M; the other modes decay at rate 1. Accepts stacks
    (leading axis n) of the weights, B and alpha.

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L, each (..., d_l, d_{l-1}).
    B : ndarray, shape (..., d_1, d_L)
    alpha, tau_ratio
        As in `jacobian_abscissa`.

    Returns
    -------
    float or ndarray
        One abscissa per problem of the stack.
    """
    M = np.asarray(B, dtype=float)
    for W in weights:
        M = np.asarray(W, dtype=float) @ M
    r = float(tau_ratio)
    mu = r * np.linalg.eigvals(M)                      # (..., d_L)
    degree = len(weights) + 1                          # L
    leak = r * np.asarray(alpha, dtype=float)
    # Coefficients of (lambda + 1)^(L-1) (lambda + r alpha), highest power first.
    base = np.poly1d([1.0, 1.0]) ** (degree - 1)
    coefficients = np.multiply.outer(np.ones_like(leak), base.coeffs)
    poly = np.zeros(leak.shape + (degree + 1,))
    poly[..., :-1] += coefficients
    poly[..., 1:] += leak[..., None] * coefficients
    # Companion matrices of poly - r mu, one per eigenvalue mu.
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


# --------------------------------------------------------------------------
# steady states
# --------------------------------------------------------------------------


def layer_steady_state(W: FloatArray, B: FloatArray, delta: FloatArray, alpha: ArrayLike,
                       form: str | None = None) -> FloatArray:
    """The layer pair's steady state delta_{l-1} (Eq. 10): what NDI computes.

    ::

        delta_{l-1} = B (W B - alpha I_l)^-1 delta_l          (form 'WB')
                    = (B W - alpha I_{l-1})^-1 B delta_l      (form 'BW')

    The two forms are equal whenever both matrices are invertible. By
    default each problem solves the smaller system: 'WB' for contracting and
    square layers (d_l <= d_{l-1}), 'BW' for expanding ones (which need
    alpha > 0: W B then has rank < d_l). A matrix whose 1-norm condition
    number exceeds 1e12 is refused as singular (`_solve_conditioned`).

    Parameters
    ----------
    W : ndarray, shape (n, d_l, d_{l-1}) or (d_l, d_{l-1})
    B : ndarray, shape (n, d_{l-1}, d_l) or (d_{l-1}, d_l)
    delta : ndarray, shape (n, batch, d_l) or (batch, d_l)
        Errors delta_l, one row per sample.
    alpha : float or ndarray of shape (n,)
    form : {None, 'WB', 'BW'}
        Which form of Eq. (10) to solve; None: the smaller system.

    Returns
    -------
    ndarray, shape (n, batch, d_{l-1}) or (batch, d_{l-1})

    Raises
    ------
    InputError
        When the matrix to invert is singular (typically alpha = 0 with a
        rank-deficient product), or ``form`` is unknown.
    """
    single = np.ndim(W) == 2
    if single:
        W, B, delta = W[None], B[None], delta[None]
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), W.shape[:1])
    d_out, d_in = W.shape[1:]
    if form not in (None,) + FORMS:
        raise InputError(f"form must be None or one of {FORMS}, got {form!r}")
    contracting = d_out <= d_in if form is None else form == "WB"
    A = W @ B if contracting else B @ W
    A = A - alpha[:, None, None] * np.eye(A.shape[-1])
    rhs = delta.transpose(0, 2, 1)
    if not contracting:
        rhs = B @ rhs
    solved = _solve_conditioned(A, rhs, "W B" if contracting else "B W")
    if contracting:
        solved = B @ solved
    solved = solved.transpose(0, 2, 1)
    return solved[0] if single else solved


SMALL_SYSTEM = 32
"""Largest matrix that `_solve_conditioned` inverts, for all problems in one call."""


def _solve_conditioned(A: FloatArray, rhs: FloatArray, label: str) -> FloatArray:
    """Solve A_k x_k = rhs_k for a stack, refusing a matrix of condition number above 1e12.

    Each problem is solved by LU (LAPACK getrf and getrs, one problem at a
    time, so its numbers do not depend on the others). Up to `SMALL_SYSTEM`
    unknowns, where per-call costs dominate, all problems go in one batched
    call, and one batched inverse gives the exact 1-norm condition numbers;
    larger systems are factorised one at a time with LAPACK's O(n^2)
    condition estimate from the factors (an inverse costs far more).

    Parameters
    ----------
    A : ndarray, shape (n, m, m)
    rhs : ndarray, shape (n, m, k)
    label : str
        The matrix, for the error message ('W B' or 'B W').

    Returns
    -------
    ndarray, shape (n, m, k)
    """
    if A.shape[-1] <= SMALL_SYSTEM:
        try:
            inverse = np.linalg.inv(A)
        except np.linalg.LinAlgError:
            _refuse_singular(label, 0.0)
        rcond = 1.0 / (np.abs(A).sum(axis=-2).max(axis=-1)
                       * np.abs(inverse).sum(axis=-2).max(axis=-1))
        refused = ~(rcond > 1e-12)  # NaN too
        if refused.any():
            _refuse_singular(label, rcond[refused].min())
        return solve(A, rhs, assume_a="general", check_finite=False)
    solved = np.empty(rhs.shape)
    for k in range(A.shape[0]):
        lu, pivots = lu_factor(A[k], check_finite=False)
        rcond = gecon(lu, np.abs(A[k]).sum(axis=0).max(), norm="1")[0]
        if not rcond > 1e-12:
            _refuse_singular(label, rcond)
        solved[k] = lu_solve((lu, pivots), rhs[k], check_finite=False)
    return solved


def _refuse_singular(label: str, rcond: float) -> NoReturn:
    """Raise the `InputError` of a singular ``label`` - alpha I (reciprocal condition ``rcond``)."""
    raise InputError(f"{label} - alpha I is singular (condition number "
                     f"{1 / max(rcond, 1e-300):.3g}); use alpha > 0 or feedback B of full rank")


def steady_control(W: FloatArray, B: FloatArray, delta: FloatArray,
                   alpha: ArrayLike) -> FloatArray:
    """The controller's steady state u_l = (W B - alpha I)^-1 delta_l (Eqs. 10, 13).

    Parameters
    ----------
    W : ndarray, shape (..., d_l, d_{l-1})
    B : ndarray, shape (..., d_{l-1}, d_l)
    delta : ndarray, shape (..., batch, d_l)
    alpha : float or ndarray of shape (...)

    Returns
    -------
    ndarray, shape (..., batch, d_l)

    Raises
    ------
    InputError
        When W B - alpha I is singular.
    """
    A = W @ B
    A = A - _leak(alpha) * np.eye(A.shape[-1])
    try:
        return np.swapaxes(np.linalg.solve(A, np.swapaxes(delta, -1, -2)), -1, -2)
    except np.linalg.LinAlgError:
        raise InputError("W B - alpha I is singular: the controller has no steady state; "
                         "use alpha > 0 or feedback B of full rank") from None


def inversion_matrix(W: ArrayLike, B: ArrayLike) -> FloatArray:
    """M^DI of Eq. (12): the inverse of W that the circuit computes for small alpha.

    ::

        M^DI = B (W B)^-1     for d_l < d_{l-1}   (a right inverse of W)
             = W^-1           for d_l = d_{l-1}
             = W^+            for d_l > d_{l-1}   (alpha > 0)

    so that delta_{l-1} = M^DI (delta_l + alpha u_l) at the steady state
    (Eq. 11). For contracting and square layers, M^DI delta_l is also the
    alpha -> 0 limit of Eq. (10); with B = -W^T it is the pseudoinverse
    solution W^+ delta_l (pseudobackprop). For expanding layers Eq. (11)
    holds for any B (W^+ W = I), but the alpha -> 0 limit of Eq. (10) is
    (B W)^-1 B delta_l, which equals W^+ delta_l on range(W) only.

    Parameters
    ----------
    W : ndarray, shape (..., d_l, d_{l-1})
    B : ndarray, shape (..., d_{l-1}, d_l)

    Returns
    -------
    ndarray, shape (..., d_{l-1}, d_l)
    """
    W, B = np.asarray(W, dtype=float), np.asarray(B, dtype=float)
    d_out, d_in = W.shape[-2:]
    if d_out > d_in:
        return np.linalg.pinv(W)
    if d_out == d_in:
        return np.linalg.inv(W)
    # B (W B)^-1 = ((W B)^-T B^T)^T
    return np.swapaxes(np.linalg.solve(np.swapaxes(W @ B, -1, -2), np.swapaxes(B, -1, -2)),
                       -1, -2)


def chain_steady_state(weights: Sequence[FloatArray], feedback: Sequence[FloatArray],
                       delta: FloatArray, alpha: ArrayLike,
                       gains: Sequence[FloatArray] | None = None) -> list[FloatArray]:
    """Steady state of the linear chain with gains (Eq. 17): NDI through every layer.

    From the output down, per layer pair (Eq. 10 times g'(a_{l-1}))::

        delta_{l-1} = B_l (W_l B_l - alpha I)^-1 delta_l * g'(a_{l-1})

    the state that both the sequential and the repeat-layer chain settle to
    (their hidden errors). Without gains, the steady state of the linear
    network's chain.

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L, each (n, d_l, d_{l-1}) (or without the n axis).
    feedback : list of ndarray
        B_2 .. B_L, each (n, d_{l-1}, d_l).
    delta : ndarray, shape (n, batch, d_L)
        Output error.
    alpha : float or ndarray
        Leaks: (n,) one per problem or (n, L-1) one per problem and pair.
    gains : list of ndarray or None
        g'(a_1) .. g'(a_{L-1}), each (n, batch, d_l); None: ones.

    Returns
    -------
    list of ndarray
        delta_1 .. delta_{L-1}, each (n, batch, d_l).
    """
    pairs = len(weights)
    leaks = _per_pair(alpha, pairs, np.ndim(weights[0]) - 2, "alpha")
    deltas: list[FloatArray] = []  # from the top pair down
    for j in range(pairs - 1, -1, -1):
        delta = layer_steady_state(weights[j], feedback[j], delta, leaks[j])
        if gains is not None:
            delta = delta * gains[j]
        deltas.append(delta)
    return deltas[::-1]


def loop_residual(u: FloatArray, weights: Sequence[FloatArray], B: FloatArray, delta: FloatArray,
                  alpha: ArrayLike, transfers: Sequence[str] | None = None,
                  ) -> tuple[FloatArray, list[FloatArray]]:
    """The single loop's steady-state condition as a function of its control signal.

    At a steady state of `loop_rhs` the relays are fixed by u
    (h_1 = B u, h_l = W_l g_{l-1}(h_{l-1})) and the controller satisfies
    Eq. (15) through the whole loop::

        W_L g_{L-1}(h_{L-1}) - delta_L - alpha u = 0.

    Parameters
    ----------
    u : ndarray, shape (..., batch, d_L)
    weights : list of ndarray
        W_2 .. W_L.
    B : ndarray, shape (..., d_1, d_L)
    delta : ndarray, shape (..., batch, d_L)
    alpha : float or ndarray of shape (...)
    transfers : sequence of str or None
        g_1 .. g_{L-1}; None: linear.

    Returns
    -------
    residual : ndarray, shape (..., batch, d_L)
    hidden : list of ndarray
        h_1 .. h_{L-1} fixed by u (the hidden errors SLDI reads).
    """
    transfers = ["linear"] * len(weights) if transfers is None else list(transfers)
    hidden = [_apply(B, u)]
    for l in range(1, len(weights)):
        g = _transfer(transfers[l - 1])
        hidden.append(_apply(weights[l - 1], hidden[-1] if g is None else g(hidden[-1])))
    return controller_residual(weights[-1], hidden[-1], delta, u, alpha, transfers[-1]), hidden


def loop_steady_state(weights: Sequence[FloatArray], B: FloatArray, delta: FloatArray,
                      alpha: ArrayLike) -> tuple[list[FloatArray], FloatArray]:
    """Steady state of the linear single loop, in closed form.

    With M = W_L ... W_2 B, the control signal is u = (M - alpha I)^-1
    delta_L, the first layer h_1 = B u and the relays h_l = W_l h_{l-1}
    (`loop_residual` is zero there).

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L, each (..., d_l, d_{l-1}).
    B : ndarray, shape (..., d_1, d_L)
    delta : ndarray, shape (..., batch, d_L)
    alpha : float or ndarray of shape (...)

    Returns
    -------
    hidden : list of ndarray
        h_1 .. h_{L-1}, each (..., batch, d_l).
    u : ndarray, shape (..., batch, d_L)

    Raises
    ------
    InputError
        When M - alpha I is singular.
    """
    M = B
    for W in weights[:-1]:
        M = W @ M
    u = steady_control(weights[-1], M, delta, alpha)
    return loop_residual(u, weights, B, delta, alpha)[1], u


# --------------------------------------------------------------------------
# inversion of targets and direct feedback control
# --------------------------------------------------------------------------
#
# Both circuits act on deviations of the network's own activity from its
# forward pass, in the orientation of an error (target = forward - deviation),
# and carry them through the nonlinearity at the forward pass:
#
#     shifted(a, z) = g(a) - g(a - z)       (= g'(a) z to first order),
#
# the change of g(a) when a moves to a - z. For a linear g, shifted(a, z) = z:
# the circuits are then those of the errors.
#
# DI of targets: a layer pair's system holds x_{l-1} = h_{l-1} - target_{l-1},
# the deviation of layer l-1's *activity*; its forward pass moves layer l's
# activity by shifted(a_l, W_l x_{l-1}) (the output: by W_L x_{L-1}, the
# deviation of a_L). Direct feedback control: the hidden populations hold
# deviations x_l of the *pre-activations*, where the feedback enters, and
# layer l's moves by W_l shifted(a_{l-1}, x_{l-1}).


def shifted(transfer: str | None, offset: ArrayLike, x: FloatArray) -> FloatArray:
    """``g(offset) - g(offset - x)``: how g(a) changes when a moves by -x.

    Parameters
    ----------
    transfer : str
        g, a name of `dinv.nonlinearities.TRANSFERS`.
    offset : ndarray
        The forward pass's pre-activation a (broadcast against x).
    x : ndarray
        Deviation, in the orientation of an error (a moves to a - x).

    Returns
    -------
    ndarray
    """
    g = _transfer(transfer)
    if g is None:
        return x
    a = np.asarray(offset, dtype=float)
    return g(a) - g(a - x)


def _shifted_slope(transfer: str | None, offset: ArrayLike, x: FloatArray) -> FloatArray:
    """d shifted / dx = g'(offset - x) (ones for the identity)."""
    derivative = None if transfer in (None, "linear") else get_transfer(transfer).derivative
    if transfer is None or derivative is None:
        return np.ones(np.broadcast_shapes(np.shape(offset), np.shape(x)))
    return derivative(np.asarray(offset, dtype=float) - x)


def target_layer_rhs(x: np.ndarray, u: np.ndarray, W: np.ndarray, B: np.ndarray,
                     target: np.ndarray, alpha: ArrayLike, offset: ArrayLike = 0.0,
                     transfer: str = "linear", tau_ratio: float = 1.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Right-hand side of a layer pair inverting targets, in units of tau_system.

    The system population holds the deviation x = h_{l-1} - target_{l-1} of
    layer l-1's activity; the controller drives it until the forward pass of
    the target moves layer l's activity by its own deviation x_l (up to the
    leak)::

        dx/dt = -x + B u
        du/dt = r (-alpha u + g_l(a_l) - g_l(a_l - W x) - x_l)

    For a linear g_l (and for the output layer, whose deviation is that of
    a_L) it is `layer_rhs` (the circuit of errors) with delta_l = x_l.

    Parameters
    ----------
    x : ndarray, shape (..., batch, d_{l-1})
    u : ndarray, shape (..., batch, d_l)
    W : ndarray, shape (..., d_l, d_{l-1})
    B : ndarray, shape (..., d_{l-1}, d_l)
    target : ndarray, shape (..., batch, d_l)
        x_l.
    alpha : float or ndarray of shape (...)
    offset : ndarray, shape (..., batch, d_l)
        a_l, the forward pass's pre-activation of layer l.
    transfer : str
        g_l ('linear' for the output layer).
    tau_ratio : float
        r = tau_system / tau_controller.

    Returns
    -------
    d_x, d_u : ndarray
    """
    readout = shifted(transfer, offset, _apply(W, x))
    return -x + _apply(B, u), tau_ratio * (-_leak(alpha) * u + readout - target)


def _target_layers(pairs, offsets, transfers):
    """Per layer pair j (W_{j+2}): the offset a_{j+2} and transfer g_{j+2} of its upper
    layer; the output's (the last pair) is linear."""
    return [(offsets[j + 1], transfers[j + 1]) if j < pairs - 1 else (0.0, "linear")
            for j in range(pairs)]


def target_chain_linear(weights: Sequence[np.ndarray], feedback: Sequence[np.ndarray],
                        delta: np.ndarray, alpha: ArrayLike,
                        slopes: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """The linearised steady state of the chain inverting targets, from the output down.

    To first order in the deviations (g(a) - g(a - z) ~ D z, D_l =
    diag(g'(a_l)))::

        x_{L-1} = B_L (W_L B_L - alpha I)^-1 delta_L
        x_{l-1} = B_l (D_l W_l B_l - alpha I)^-1 x_l      (l < L)

    the hidden errors of `di-targets` for small errors: the slope of layer l
    sits inside the inversion of W_l, where DI of errors (Eq. 17)
    multiplies the inverted error by the slope of layer l-1 afterwards. With
    B_l = -W_l^T and invertible square layers, x_l = J_l^-1 delta_L with J_l =
    d a_L / d h_l: the Gauss-Newton target. Without slopes (a linear network)
    it is `chain_steady_state` without gains.

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L, each (..., d_l, d_{l-1}).
    feedback : list of ndarray
        B_2 .. B_L, each (..., d_{l-1}, d_l).
    delta : ndarray, shape (..., batch, d_L)
        The output's deviation (the output error).
    alpha : float or ndarray
        Leaks, as in the module's conventions.
    slopes : list of ndarray or None
        g'(a_1) .. g'(a_{L-1}), each (..., batch, d_l); None: ones.

    Returns
    -------
    list of ndarray
        x_1 .. x_{L-1} (delta_1 .. delta_{L-1}), each (..., batch, d_l).
    """
    if slopes is None:
        return chain_steady_state(weights, feedback, delta, alpha)
    pairs = len(weights)
    leaks = _per_pair(alpha, pairs, np.ndim(weights[0]) - 2, "alpha")
    deltas: list[np.ndarray] = []                  # from the top pair down
    for j in range(pairs - 1, -1, -1):
        if j == pairs - 1:
            delta = layer_steady_state(weights[j], feedback[j], delta, leaks[j])
        else:
            W, B = weights[j][..., None, :, :], feedback[j][..., None, :, :]
            A = (slopes[j + 1][..., :, None] * W) @ B             # (..., batch, d_l, d_l)
            A = A - np.asarray(leaks[j], dtype=float)[..., None, None, None] \
                * np.eye(A.shape[-1])
            delta = (B @ _solve_rows(A, delta, "D W B")[..., None])[..., 0]
        deltas.append(delta)
    return deltas[::-1]


def _solve_rows(A, rhs, label):
    """Solve A x = rhs for one matrix per row: A (..., batch, m, m), rhs (..., batch, m)."""
    try:
        return np.linalg.solve(A, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        raise InputError(f"{label} - alpha I is singular for a sample: the circuit has no "
                         "steady state there; use alpha > 0") from None


NEWTON_TOL = 1e-12
"""Relative residual at which `newton_rows` stops."""

NEWTON_ITERATIONS = 100
"""Most Newton steps of `newton_rows`."""


def newton_rows(function: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                u: np.ndarray, tol: float = NEWTON_TOL, max_iter: int = NEWTON_ITERATIONS,
                scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Solve F(u) = 0 row by row by Newton's method with backtracking.

    Rows (samples) that Newton's method leaves above the tolerance (e.g.
    where saturated units make the Jacobian nearly singular) are solved one
    at a time by MINPACK's hybrid Powell method (`scipy.optimize.root`,
    'hybr') from Newton's last iterate.

    Parameters
    ----------
    function : callable
        ``function(u) -> (F, dF)`` with F (..., batch, m) and its Jacobian
        dF (..., batch, m, m), every row (sample) independent.
    u : ndarray, shape (..., batch, m)
        Start (e.g. the linearised solution).
    tol : float
        Stop when every row's |F| is below tol times its ``scale``.
    max_iter : int
    scale : ndarray or None
        Per row, the size F is judged against (..., batch); None: 1.

    Returns
    -------
    u : ndarray
    converged : ndarray of bool, shape (..., batch)
    """
    F, dF = function(u)
    scale = np.ones(F.shape[:-1]) if scale is None else np.maximum(scale, np.finfo(float).tiny)
    norm = np.linalg.norm(F, axis=-1)
    for _ in range(max_iter):
        done = norm <= tol * scale
        if done.all():
            break
        try:
            step = np.linalg.solve(dF, F[..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        step[done] = 0.0
        size = np.ones(norm.shape)
        for _ in range(30):  # halve the step until the residual falls (per row)
            trial = u - size[..., None] * step
            new = np.linalg.norm(function(trial)[0], axis=-1)
            worse = ~(new < norm) & ~done
            if not worse.any():
                break
            size[worse] *= 0.5
        improved = (new < norm)[..., None]
        u = np.where(improved, trial, u)
        F, dF = function(u)
        norm = np.linalg.norm(F, axis=-1)
    converged = norm <= tol * scale
    u = u.copy()
    for index in zip(*np.nonzero(~converged)):
        start = u.copy()

        def row(v, index=index, start=start):
            trial = start.copy()
            trial[index] = v
            F_row, dF_row = function(trial)
            return F_row[index], dF_row[index]

        found = root(row, start[index], jac=True, method="hybr", options={"xtol": 1e-14})
        if np.linalg.norm(row(found.x)[0]) < norm[index]:
            u[index] = found.x
    norm = np.linalg.norm(function(u)[0], axis=-1)
    return u, norm <= tol * scale


def target_pair_state(W: np.ndarray, B: np.ndarray, delta: np.ndarray, alpha: ArrayLike,
                      offset: ArrayLike = 0.0, transfer: str = "linear",
                      start: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact steady state of one layer pair inverting targets (`target_layer_rhs`).

    Solves ``g(a_l) - g(a_l - W B u) = x_l + alpha u`` for u, sample by
    sample, by Newton's method (`newton_rows`) from ``start`` (default: the
    linearised solution); the deviation is x_{l-1} = B u.

    Parameters
    ----------
    W : ndarray, shape (..., d_l, d_{l-1})
    B : ndarray, shape (..., d_{l-1}, d_l)
    delta : ndarray, shape (..., batch, d_l)
        x_l, the deviation of layer l.
    alpha : float or ndarray of shape (...)
    offset : ndarray, shape (..., batch, d_l)
        a_l.
    transfer : str
        g_l.
    start : ndarray or None
        First guess of u.

    Returns
    -------
    x : ndarray, shape (..., batch, d_{l-1})
    u : ndarray, shape (..., batch, d_l)
    converged : ndarray of bool, shape (..., batch)
    """
    leak = np.asarray(alpha, dtype=float)[..., None, None, None]
    WB = (W @ B)[..., None, :, :]
    eye = np.eye(W.shape[-2])

    def function(u):
        z = _apply(W, _apply(B, u))
        F = shifted(transfer, offset, z) - delta - _leak(alpha) * u
        dF = _shifted_slope(transfer, offset, z)[..., :, None] * WB - leak * eye
        return F, dF

    if start is None:
        slopes = _shifted_slope(transfer, offset, np.zeros_like(delta))
        start = _solve_rows(slopes[..., :, None] * WB - leak * eye, delta, "D W B")
    u, converged = newton_rows(function, start, scale=np.linalg.norm(delta, axis=-1))
    return _apply(B, u), u, converged


def target_chain_state(weights: Sequence[np.ndarray], feedback: Sequence[np.ndarray],
                       delta: np.ndarray, alpha: ArrayLike, offsets: Sequence[np.ndarray],
                       transfers: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """The exact steady state of the chain inverting targets: `ndi-targets`.

    From the output down, each layer pair's `target_pair_state` (the top
    pair's linear: the output's deviation is that of a_L), whose settled
    deviation x_{l-1} is the deviation wanted of the pair below.

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L, each (..., d_l, d_{l-1}).
    feedback : list of ndarray
        B_2 .. B_L.
    delta : ndarray, shape (..., batch, d_L)
    alpha : float or ndarray
        Leaks, as in the module's conventions.
    offsets : list of ndarray
        a_1 .. a_{L-1}, each (..., batch, d_l).
    transfers : sequence of str
        g_1 .. g_{L-1}.

    Returns
    -------
    deltas : list of ndarray
        x_1 .. x_{L-1} (delta_1 .. delta_{L-1}).
    converged : ndarray of bool, shape (..., batch)
        Whether Newton's method converged for every layer of a sample.
    """
    pairs = len(weights)
    leaks = _per_pair(alpha, pairs, np.ndim(weights[0]) - 2, "alpha")
    layers = _target_layers(pairs, offsets, transfers)
    deltas: list[np.ndarray] = []                  # from the top pair down
    converged = np.ones(np.shape(delta)[:-1], dtype=bool)
    for j in range(pairs - 1, -1, -1):
        offset, transfer = layers[j]
        delta, _, ok = target_pair_state(weights[j], feedback[j], delta, leaks[j], offset,
                                         transfer)
        deltas.append(delta)
        converged &= ok
    return deltas[::-1], converged


def direct_leak(alpha: ArrayLike, kp: float) -> np.ndarray:
    """The effective leak alpha / (1 + alpha k_p) of a controller with a proportional part.

    With u = u_i + k_p e and tau du_i/dt = e - alpha u_i, the steady state
    e = alpha u_i gives u = (1 + alpha k_p) u_i, so e = alpha / (1 + alpha k_p) u.
    """
    alpha = np.asarray(alpha, dtype=float)
    return alpha / (1.0 + alpha * float(kp))


def direct_jacobians(weights: Sequence[np.ndarray],
                     slopes: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """J_l = d a_L / d a_l of the linearised forward chain: what Q_l is compared with.

    ::

        J_{L-1} = W_L D_{L-1},   J_{l-1} = J_l W_l D_{l-1}

    with D_l = diag(g'(a_l)) (ones without slopes, the Jacobian at the origin
    of a tanh network).

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L, each (..., d_l, d_{l-1}).
    slopes : list of ndarray or None
        g'(a_1) .. g'(a_{L-1}), each (..., batch, d_l); None: ones.

    Returns
    -------
    list of ndarray
        J_1 .. J_{L-1}, each (..., d_L, d_l), with a batch axis before the
        last two when ``slopes`` are given.
    """
    jacobians: list[np.ndarray] = []               # from the top layer down
    for j in range(len(weights) - 1, -1, -1):
        W = weights[j] if slopes is None else weights[j][..., None, :, :]
        J = W if not jacobians else jacobians[-1] @ W
        if slopes is not None:
            J = J * slopes[j][..., None, :]
        jacobians.append(J)
    return jacobians[::-1]


def direct_steady_state(weights: Sequence[np.ndarray], Q: Sequence[np.ndarray],
                        delta: np.ndarray, alpha: ArrayLike, kp: float = 0.0,
                        slopes: Sequence[np.ndarray] | None = None
                        ) -> tuple[list[np.ndarray], np.ndarray]:
    """The linearised steady state of direct feedback control (DFC): `ndfc` for small errors.

    One controller at the output, u = u_i + k_p e with tau_u du_i/dt =
    e - alpha u_i and e = delta_L - y, feeds every hidden layer through Q_l
    while the (linearised) forward dynamics run (`direct_rhs`). At rest
    (Meulemans et al. 2021)::

        u = (J Q + alpha' I)^-1 delta_L,   J Q = sum_l J_l Q_l,
        alpha' = alpha / (1 + alpha k_p)   (`direct_leak`),
        delta_l = Q_l u                    (the feedback's part of layer l)

    with J_l = d a_L / d a_l (`direct_jacobians`).

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L, each (..., d_l, d_{l-1}).
    Q : list of ndarray
        Q_1 .. Q_{L-1}, each (..., d_l, d_L).
    delta : ndarray, shape (..., batch, d_L)
    alpha : float or ndarray of shape (...)
    kp : float
        Proportional gain k_p.
    slopes : list of ndarray or None
        g'(a_1) .. g'(a_{L-1}), each (..., batch, d_l); None: ones.

    Returns
    -------
    deltas : list of ndarray
        delta_1 .. delta_{L-1}, each (..., batch, d_l).
    u : ndarray, shape (..., batch, d_L)

    Raises
    ------
    InputError
        When J Q + alpha' I is singular.
    """
    jacobians = direct_jacobians(weights, slopes)
    leak = direct_leak(alpha, kp)
    if slopes is None:
        A = sum(J @ q for J, q in zip(jacobians, Q))
        A = A + np.asarray(leak)[..., None, None] * np.eye(A.shape[-1])
        u = np.swapaxes(_solve_direct(A, np.swapaxes(delta, -1, -2)), -1, -2)
    else:
        A = sum(J @ q[..., None, :, :] for J, q in zip(jacobians, Q))
        A = A + np.asarray(leak)[..., None, None, None] * np.eye(A.shape[-1])
        u = _solve_direct(A, delta[..., None])[..., 0]
    return [_apply(q, u) for q in Q], u


def _solve_direct(A, rhs):
    try:
        return np.linalg.solve(A, rhs)
    except np.linalg.LinAlgError:
        raise InputError("J Q + alpha I is singular: direct feedback control has no steady "
                         "state; use alpha > 0 or feedback Q of full rank") from None


def direct_forward(weights: Sequence[np.ndarray], Q: Sequence[np.ndarray], u: np.ndarray,
                   offsets: Sequence[np.ndarray] | None = None,
                   transfers: Sequence[str] | None = None
                   ) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """The deviations and the output that a control signal u holds at rest.

    ::

        x_1 = Q_1 u,   x_l = W_l [g(a_{l-1}) - g(a_{l-1} - x_{l-1})] + Q_l u,
        y = W_L [g(a_{L-1}) - g(a_{L-1} - x_{L-1})]

    (linear g: x_l = W_l x_{l-1} + Q_l u).

    Returns
    -------
    hidden : list of ndarray
        x_1 .. x_{L-1}.
    y : ndarray
    sensitivity : list of ndarray
        d x_l / d u per sample, (..., batch, d_l, d_L), and last d y / d u.
    """
    transfers = ["linear"] * len(Q) if transfers is None else list(transfers)
    offsets = [np.zeros(1)] * len(Q) if offsets is None else offsets
    hidden: list[np.ndarray] = []
    sensitivity: list[np.ndarray] = []
    x = dx = own = eye = np.zeros(0)
    for l in range(len(weights) + 1):
        if l < len(Q):
            own = _apply(Q[l], u)
            eye = np.broadcast_to(Q[l][..., None, :, :], u.shape[:-1] + Q[l].shape[-2:])
        if l == 0:
            x, dx = own, eye
        else:
            W = weights[l - 1]
            slope = _shifted_slope(transfers[l - 1], offsets[l - 1], x)
            drive = _apply(W, shifted(transfers[l - 1], offsets[l - 1], x))
            ddrive = W[..., None, :, :] @ (slope[..., :, None] * dx)
            if l == len(Q):
                return hidden, drive, sensitivity + [ddrive]
            x, dx = drive + own, ddrive + eye
        hidden.append(x)
        sensitivity.append(dx)
    raise InputError("direct feedback control needs at least one hidden layer")


def direct_state(weights: Sequence[np.ndarray], Q: Sequence[np.ndarray], delta: np.ndarray,
                 alpha: ArrayLike, kp: float = 0.0,
                 offsets: Sequence[np.ndarray] | None = None,
                 transfers: Sequence[str] | None = None
                 ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The exact steady state of direct feedback control with the forward nonlinearity: `ndfc`.

    Solves ``delta_L - y(u) = alpha' u`` (`direct_forward`, `direct_leak`)
    for the control signal, sample by sample, by Newton's method from the
    linearised solution (`direct_steady_state` with slopes g'(a_l)). The
    hidden errors are the feedback's part Q_l u of every layer's deviation.

    Parameters
    ----------
    weights, Q, delta, alpha, kp
        As in `direct_steady_state`.
    offsets : list of ndarray or None
        a_1 .. a_{L-1}, each (..., batch, d_l).
    transfers : sequence of str or None
        g_1 .. g_{L-1}; None: linear.

    Returns
    -------
    deltas : list of ndarray
        delta_1 .. delta_{L-1} = Q_l u.
    u : ndarray
    converged : ndarray of bool, shape (..., batch)
    """
    if transfers is None or all(t == "linear" for t in transfers):
        deltas, u = direct_steady_state(weights, Q, delta, alpha, kp)
        return deltas, u, np.ones(np.shape(delta)[:-1], dtype=bool)
    if offsets is None:
        raise InputError("a nonlinear network's direct control needs the offsets a_1 .. a_(L-1)")
    slopes = [_shifted_slope(t, a, np.zeros_like(a)) for t, a in zip(transfers, offsets)]
    _, start = direct_steady_state(weights, Q, delta, alpha, kp, slopes)
    leak = direct_leak(alpha, kp)
    eye = np.eye(np.shape(delta)[-1])

    def function(u):
        _, y, sensitivity = direct_forward(weights, Q, u, offsets, transfers)
        F = y + _leak(leak) * u - delta
        return F, sensitivity[-1] + np.asarray(leak)[..., None, None, None] * eye

    u, converged = newton_rows(function, start, scale=np.linalg.norm(delta, axis=-1))
    return [_apply(q, u) for q in Q], u, converged


def direct_rhs(hidden: Sequence[np.ndarray], u_i: np.ndarray, weights: Sequence[np.ndarray],
               Q: Sequence[np.ndarray], delta: np.ndarray, alpha: ArrayLike, kp: float = 0.0,
               tau_ratio: float = 1.0, offsets: Sequence[np.ndarray] | None = None,
               transfers: Sequence[str] | None = None
               ) -> tuple[list[np.ndarray], np.ndarray]:
    """Right-hand side of direct feedback control, in units of tau_system (tau_v).

    In the orientation of errors (deviations x_l = a_l - target_l, Meulemans
    et al. 2021's controller and sign conventions)::

        dx_1/dt = -x_1 + Q_1 u
        dx_l/dt = -x_l + W_l [g(a_{l-1}) - g(a_{l-1} - x_{l-1})] + Q_l u
        e = delta_L - W_L [g(a_{L-1}) - g(a_{L-1} - x_{L-1})]
        u = u_i + k_p e,     du_i/dt = r (e - alpha u_i)

    with r = tau_v / tau_u. Zero exactly at the steady state of `direct_state`.

    Parameters
    ----------
    hidden : list of ndarray
        x_1 .. x_{L-1}, each (..., batch, d_l).
    u_i : ndarray, shape (..., batch, d_L)
        The controller's integral part.
    weights, Q, delta, alpha, kp
        As in `direct_steady_state`.
    tau_ratio : float
        r.
    offsets, transfers
        As in `direct_state`.

    Returns
    -------
    d_hidden : list of ndarray
    d_u_i : ndarray
    """
    transfers = ["linear"] * len(Q) if transfers is None else list(transfers)
    offsets = [np.zeros(1)] * len(Q) if offsets is None else offsets
    error = delta - _apply(weights[-1], shifted(transfers[-1], offsets[-1], hidden[-1]))
    u = u_i + kp * error
    d_hidden = [-hidden[0] + _apply(Q[0], u)]
    for l in range(1, len(Q)):
        forward = _apply(weights[l - 1], shifted(transfers[l - 1], offsets[l - 1], hidden[l - 1]))
        d_hidden.append(-hidden[l] + forward + _apply(Q[l], u))
    return d_hidden, tau_ratio * (error - _leak(alpha) * u_i)


def direct_jacobian(weights: Sequence[np.ndarray], Q: Sequence[np.ndarray], alpha: float,
                    kp: float = 0.0, tau_ratio: float = 1.0,
                    slopes: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Jacobian of `direct_rhs` (linearised), states (x_1, .., x_{L-1}, u_i).

    With the forward shift A (blocks W_l D_{l-1} below the diagonal), the
    readout C x = W_L D_{L-1} x_{L-1} and Q = [Q_1; ..; Q_{L-1}]::

        J = [[-I + A - k_p Q C,   Q      ],
             [-r C,               -r alpha I]]

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L, each (d_l, d_{l-1}).
    Q : list of ndarray
        Q_1 .. Q_{L-1}, each (d_l, d_L).
    alpha, kp, tau_ratio : float
    slopes : list of ndarray or None
        g'(a_1) .. g'(a_{L-1}) of one sample, each (d_l,); None: ones (at rest).

    Returns
    -------
    ndarray
    """
    widths = [q.shape[0] for q in Q]
    d_out = Q[0].shape[1]
    starts = np.concatenate([[0], np.cumsum(widths)])
    n = starts[-1]
    J = np.zeros((n + d_out, n + d_out))
    J[:n, :n] = -np.eye(n)
    for l in range(1, len(Q)):
        W = weights[l - 1] if slopes is None else weights[l - 1] * slopes[l - 1]
        J[starts[l]:starts[l + 1], starts[l - 1]:starts[l]] = W
    C = np.zeros((d_out, n))
    C[:, starts[-2]:] = weights[-1] if slopes is None else weights[-1] * slopes[-1]
    stacked = np.concatenate(Q, axis=0)
    J[:n, :n] -= float(kp) * stacked @ C
    J[:n, n:] = stacked
    J[n:, :n] = -tau_ratio * C
    J[n:, n:] = -tau_ratio * float(alpha) * np.eye(d_out)
    return J


def direct_abscissa(weights: Sequence[np.ndarray], Q: Sequence[np.ndarray], alpha: ArrayLike,
                    kp: float = 0.0, tau_ratio: float = 1.0) -> float | np.ndarray:
    """Largest real part of the eigenvalues of `direct_jacobian` at rest (negative: stable).

    Accepts stacks: W_l (n, d_l, d_{l-1}), Q_l (n, d_l, d_L) and alpha (n,)
    give one value per problem.
    """
    if np.ndim(Q[0]) == 2:
        J = direct_jacobian(weights, Q, float(np.asarray(alpha)), kp, tau_ratio)
        return float(np.linalg.eigvals(J).real.max())
    alphas = np.broadcast_to(np.asarray(alpha, dtype=float), (np.shape(Q[0])[0],))
    return np.array([direct_abscissa([W[k] for W in weights], [q[k] for q in Q], alphas[k],
                                     kp, tau_ratio) for k in range(len(alphas))])
