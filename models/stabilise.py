"""Stable random feedback ("R-Init"): minimise the smoothed spectral abscissa.

The circuit of one layer pair is stable when every eigenvalue of its Jacobian

    J = [[-I, B], [W, -alpha I]]

has a negative real part. Starting from random B, `stabilise_feedback` runs
gradient descent on the *smoothed* spectral abscissa (SSA; Vanbiervliet et
al. 2009, as used by Hennequin et al. 2014) with respect to B only:

    s_eps(J) is the s with (1/m) trace P(s) = 1/eps, where
    (J - sI) P + P (J - sI)^T = -I,

an upper bound of the spectral abscissa that is smooth in J. Its gradient is
``dS/dJ = Q P / trace(Q P)`` with ``(J - sI)^T Q + Q (J - sI) = -I`` (two
Lyapunov solves). Descent stops once the true spectral abscissa is at or below
the target (after at least ``min_iters`` steps).

Only a 2r x 2r block of J matters, r = rank W (`dinv.theory.reduced_jacobian`):
the optimisation acts on ``V^T B U`` (r x r) and leaves the rest of B at its
random value, which keeps wide layers (10 x 1000) cheap. The Jacobians and
abscissae come from `dinv.theory`.

Under a PID controller (Eq. 7, `dinv.circuits.pid_controller`) a layer pair
is stabilised on the PID circuit's Jacobian instead (`stabilise_pid_feedback`,
`dinv.theory.pid_jacobian`): R-Init (`stable_random_feedback`) and the
re-stabilisation during training (`restabilise`) take the gains of each layer
pair as ``controllers``. A sequential chain is stabilised pair by pair, each
pair with the gains of its own controller; the single loop is stabilised for
the integral controller.

Direct feedback control (DFC) stabilises its feedback Q_1 .. Q_{L-1} the same
way, on the Jacobian of the whole circuit at rest
(`dinv.theory.direct_jacobian`, with the controller's proportional gain and
time-constant ratio; `stabilise_direct`). Its learners carry that ratio in
their own circuit settings (`Learner.circuit`).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy.linalg import solve_continuous_lyapunov
from scipy.optimize import brentq

from dinv.errors import InputError
from dinv.hints import ArrayLike, FloatArray
from dinv.theory import (
    direct_abscissa,
    direct_jacobian,
    full_abscissa,
    jacobian_abscissa,
    loop_abscissa,
    loop_jacobian,
    pid_abscissa,
    pid_jacobian,
    product_abscissa,
    range_svd,
    reduced_jacobian,
    stack_c,
)

if TYPE_CHECKING:  # training imports the circuits; this module needs only numpy
    from dinv.models.training import Learner


class StabilisationError(RuntimeError):
    """The optimisation ended above the target abscissa; the message says what to change."""


@dataclass
class Stabilised:
    """Outcome of `stabilise_feedback`.

    Attributes
    ----------
    B : ndarray
        The stabilised feedback.
    abscissa : float
        Largest real part of the eigenvalues of the full Jacobian with B.
    iterations : int
        Gradient steps taken.
    history : ndarray
        Spectral abscissa before each step and after the last one.
    """

    B: FloatArray
    abscissa: float
    iterations: int
    history: FloatArray


SOLVERS = ("lyapunov", "eigen")
"""How `smoothed_abscissa` solves its Lyapunov equations."""

EIGEN_CONDITION = 1e6
"""Largest (1-norm) condition number of J's eigenvectors for the ``'eigen'`` solver; beyond
it (J near a defective matrix) `smoothed_abscissa` falls back to the Lyapunov solves."""


def smoothed_abscissa(J: FloatArray, eps: float = 0.01,
                      solver: str = "lyapunov") -> tuple[float, FloatArray]:
    """Smoothed spectral abscissa s_eps(J) and its gradient with respect to J.

    Parameters
    ----------
    J : ndarray, shape (m, m)
    eps : float
        Smoothing; s_eps tends to the spectral abscissa as eps -> 0.
    solver : {'lyapunov', 'eigen'}
        'lyapunov' (the paper's): Brent's method on trace P(s), each
        evaluation one Lyapunov solve (a Schur decomposition). 'eigen': one
        eigendecomposition J = V diag(lambda) V^-1 gives P(s) in closed form,
        ``V^-1 P V^-H = -(V^-1 V^-H)_ij / (lambda_i + conj(lambda_j) - 2 s)``,
        so the root search costs O(m^2) per evaluation (`_eigen_ssa`); the
        same s and gradient to rounding when V is well conditioned, else the
        Lyapunov solves.

    Returns
    -------
    s : float
    gradient : ndarray, shape (m, m)
        dS/dJ = Q P / trace(Q P).
    """
    if solver not in SOLVERS:
        raise InputError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if solver == "eigen":
        found = _eigen_ssa(J, eps)
        if found is not None:
            return found
    m = J.shape[0]
    identity = np.eye(m)
    lower = float(np.linalg.eigvals(J).real.max())

    def trace_p(s):
        P = solve_continuous_lyapunov(J - s * identity, -identity)
        return np.trace(P) / m, P

    # f(s) = trace P(s) / m falls from +inf at the abscissa to 0: bracket, then
    # Brent's method on f(s) - 1/eps.
    step = max(1.0, abs(lower))
    upper = lower + step
    while trace_p(upper)[0] > 1.0 / eps:
        step *= 2.0
        upper = lower + step
    start = lower + 1e-9 * step
    for _ in range(5):  # the root may lie even closer to the abscissa
        if trace_p(start)[0] > 1.0 / eps:
            break
        start = lower + (start - lower) * 1e-3
    s = brentq(lambda x: trace_p(x)[0] - 1.0 / eps, start, upper, xtol=1e-15, rtol=1e-15,
               maxiter=200)
    P = trace_p(s)[1]
    Q = solve_continuous_lyapunov((J - s * identity).T, -identity)
    QP = Q @ P
    return s, QP / np.trace(QP)


def _eigen_ssa(J, eps, eig=None):
    """`smoothed_abscissa` from one eigendecomposition of J (None when V is ill conditioned).

    With J = V L V^-1, P(s) = V X V^H where X_ij = -C_ij / (l_i + conj(l_j) - 2s),
    C = V^-1 V^-H; Q(s) likewise from the eigenvectors V^-T of J^T. The trace
    of P is ``-sum_ij C_ij G_ji / (l_i + conj(l_j) - 2s)`` with G = V^H V.
    """
    m = J.shape[0]
    lam, V = np.linalg.eig(J) if eig is None else eig
    if not np.all(np.isfinite(V)):
        return None
    try:
        V_inv = np.linalg.inv(V)
    except np.linalg.LinAlgError:
        return None
    # 1-norm condition number of V (no SVD): large near a defective J.
    if np.abs(V).sum(axis=0).max() * np.abs(V_inv).sum(axis=0).max() > EIGEN_CONDITION:
        return None
    C = V_inv @ V_inv.conj().T
    weights = C * (V.conj().T @ V).T
    pair = lam[:, None] + lam.conj()[None, :]
    lower = float(lam.real.max())

    def excess(s):
        return -np.sum(weights / (pair - 2.0 * s)).real / m - 1.0 / eps

    step = max(1.0, abs(lower))
    upper = lower + step
    while excess(upper) > 0:
        step *= 2.0
        upper = lower + step
    start = lower + 1e-9 * step
    for _ in range(5):
        if excess(start) > 0:
            break
        start = lower + (start - lower) * 1e-3
    s = brentq(excess, start, upper, xtol=1e-15, rtol=1e-15, maxiter=200)
    kernel = 1.0 / (pair - 2.0 * s)
    P = (V @ (-C * kernel) @ V.conj().T).real
    # Q: the same for J^T, whose eigenvectors are V^-T (with V^-T's inverse V^T).
    U = V_inv.T
    D = V.T @ V.conj()
    Q = (U @ (-D * kernel) @ U.conj().T).real
    QP = Q @ P
    return s, QP / np.trace(QP)


def _descend(jacobian: Callable[[FloatArray], FloatArray],
             block: tuple[slice, slice] | Callable[[FloatArray], FloatArray],
             X: FloatArray, target: float, lr: float, max_iters: int, min_iters: int, eps: float,
             solver: str = "lyapunov") -> tuple[FloatArray, int, list[float]]:
    """Gradient descent of the SSA of ``jacobian(X)``, where X fills ``block`` of it
    (or ``block(dS/dJ)`` is the gradient with respect to X).

    Stops once the spectral abscissa is at or below ``target`` (after at least
    ``min_iters`` steps) or after ``max_iters`` steps. Returns the final X,
    the steps taken and the abscissa before each step and after the last.
    ``solver``: see `smoothed_abscissa` (``'eigen'`` reuses each step's
    eigendecomposition).
    """
    history = []
    for iteration in range(int(max_iters) + 1):
        J = jacobian(X)
        eig = np.linalg.eig(J) if solver == "eigen" else None
        lam = eig[0] if eig is not None else np.linalg.eigvals(J)
        history.append(float(lam.real.max()))
        if (history[-1] <= target and iteration >= min_iters) or iteration == max_iters:
            break
        found = _eigen_ssa(J, eps, eig) if eig is not None else None
        _, gradient = found if found is not None else smoothed_abscissa(J, eps)
        X = X - lr * (block(gradient) if callable(block) else gradient[block])
    return X, iteration, history


def stabilise_feedback(W: ArrayLike, B: ArrayLike, alpha: float, target: float = -0.01,
                       lr: float = 5e-2, max_iters: int = 200, min_iters: int = 10,
                       eps: float = 0.01, method: str = "descent",
                       solver: str = "lyapunov") -> Stabilised:
    """Gradient descent on the SSA of the layer-pair Jacobian with respect to B.

    ``method='shift'`` replaces the descent by the smallest uniform shift of
    the spectrum of W B along W's pseudoinverse (`shift_feedback`), which
    costs one r x r eigenvalue problem instead of hundreds of 2r x 2r
    Lyapunov solves (wide layers: 500 units take hours by descent).

    Parameters
    ----------
    W : ndarray, shape (d_l, d_{l-1})
        Forward weights.
    B : ndarray, shape (d_{l-1}, d_l)
        Initial feedback (e.g. random); not modified.
    alpha : float
        Controller leak, >= 0.
    target : float
        Spectral abscissa to reach (< 0).
    lr : float
        Step size of the descent.
    max_iters, min_iters : int
        Most and fewest gradient steps (the paper's release: 200 and 10).
    eps : float
        Smoothing of the spectral abscissa.
    method : {'descent', 'shift'}
        SSA gradient descent (the paper's) or the spectral shift.
    solver : {'lyapunov', 'eigen'}
        How each descent step computes the SSA gradient (`smoothed_abscissa`):
        the paper's Lyapunov solves, or one eigendecomposition (about 5-10x
        cheaper per step on 20 x 20 Jacobians; equal to rounding).

    Returns
    -------
    Stabilised

    Raises
    ------
    StabilisationError
        When ``max_iters`` steps end above ``target``, or the target is out of
        reach (an expanding layer keeps d_l - d_{l-1} controller modes at
        -alpha whatever B is).
    """
    W = np.asarray(W, dtype=float)
    B = np.array(B, dtype=float)
    if W.ndim != 2 or B.shape != W.T.shape:
        raise InputError(f"B must have shape {W.T.shape} (W's transpose), got {B.shape}")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(B))):
        raise InputError("W and B must be finite")
    if not (np.isfinite(alpha) and alpha >= 0):
        raise InputError(f"alpha must be >= 0, got {alpha}")
    if not target < 0:
        raise InputError(f"target must be negative (a stable circuit), got {target}")
    if not (lr > 0 and int(max_iters) == max_iters and max_iters >= min_iters >= 0):
        raise InputError("need lr > 0 and max_iters >= min_iters >= 0 (integers)")
    if method not in STABILISERS:
        raise InputError(f"method must be one of {STABILISERS}, got {method!r}")
    if solver not in SOLVERS:
        raise InputError(f"solver must be one of {SOLVERS}, got {solver!r}")
    U, S, Vt = range_svd(W)
    r = S.size
    if W.shape[0] > r and -alpha > target:
        raise StabilisationError(
            f"the target abscissa {target} is out of reach: W has {W.shape[0] - r} controller "
            f"modes outside its range that decay at -alpha = {-alpha}; use alpha > {-target} "
            "or a target above -alpha"
        )
    start = Vt @ B @ U
    if method == "shift":
        return shift_feedback(W, B, alpha, target, (U, S, Vt))
    B_r, iteration, history = _descend(_reduced_jacobians(S, start, alpha),
                                       (slice(None, r), slice(r, None)), start, target, lr,
                                       max_iters, min_iters, eps, solver)
    B_new = B + Vt.T @ (B_r - start) @ U.T
    achieved = full_abscissa(W, B_new, alpha)
    if achieved > target:
        raise StabilisationError(
            f"the feedback reached a spectral abscissa of {achieved:.3g} after {iteration} "
            f"steps, above the target {target}; raise max_iters (now {max_iters}) or lr "
            f"(now {lr}), use a larger alpha, or start from B = -W^T (always stable)"
        )
    return Stabilised(B_new, achieved, iteration, np.asarray(history))


def _reduced_jacobians(S, B_r, alpha):
    """``X -> reduced_jacobian(S, X, alpha)``, each a copy of one template with X
    written into its B block (the same entries, without `numpy.block` per step)."""
    template = reduced_jacobian(S, B_r, alpha)
    r = S.size

    def jacobian(X):
        J = template.copy()
        J[:r, r:] = X
        return J

    return jacobian


def shift_feedback(W: ArrayLike, B: ArrayLike, alpha: float, target: float = -0.01,
                   svd: tuple[FloatArray, FloatArray, FloatArray] | None = None) -> Stabilised:
    """Stabilise B by the smallest shift ``B - c W^+`` that reaches ``target``.

    With W = U S V^T the reduced feedback B_r = V^T B U moves to
    B_r - c S^-1, so every eigenvalue mu of S B_r (equal to the nonzero
    eigenvalues of W B) moves to mu - c, and each Jacobian eigenvalue solves
    (1 + lambda)(alpha + lambda) = mu - c, whose real part falls as c grows.
    One eigenvalue problem gives mu; bisection on c gives the smallest shift
    with abscissa <= ``target``. B is unchanged when it is stable enough.

    Parameters
    ----------
    W, B, alpha, target
        As in `stabilise_feedback`.
    svd : tuple or None
        (U, S, Vt) of W restricted to its range, when already computed.

    Returns
    -------
    Stabilised
        ``iterations`` 0 and ``history`` [abscissa before, after].
    """
    W = np.asarray(W, dtype=float)
    B = np.asarray(B, dtype=float)
    U, S, Vt = range_svd(W) if svd is None else svd
    mu = np.linalg.eigvals(S[:, None] * (Vt @ B @ U))
    before = full_abscissa(W, B, alpha)
    if product_abscissa(mu, alpha) <= target:
        return Stabilised(B.copy(), before, 0, np.array([before, before]))
    aim = target - 1e-9 * max(1.0, abs(target))  # rounding of the two eigensolvers
    low, high = 0.0, 1.0
    while product_abscissa(mu - high, alpha) > aim:
        low, high = high, 2.0 * high
    for _ in range(60):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if product_abscissa(mu - middle, alpha) > aim \
            else (low, middle)
    B_new = B - high * (Vt.T / S) @ U.T
    achieved = full_abscissa(W, B_new, alpha)
    if achieved > target + 1e-12:
        raise StabilisationError(
            f"the shifted feedback reached a spectral abscissa of {achieved:.3g}, above the "
            f"target {target}; W may have controller modes outside its range at -alpha = "
            f"{-alpha}: use alpha > {-target}"
        )
    return Stabilised(B_new, achieved, 0, np.array([before, achieved]))


STABILISERS = ("descent", "shift")
"""Methods of `stabilise_feedback`."""


def stabilise_loop(weights: Sequence[FloatArray], B: ArrayLike, alpha: float,
                   target: float = -0.01, lr: float = 5e-2, max_iters: int = 200,
                   min_iters: int = 10, eps: float = 0.01, method: str = "descent",
                   solver: str = "lyapunov") -> Stabilised:
    """`stabilise_feedback` for the single loop: descend the SSA of its Jacobian.

    Only ``method='descent'`` applies to the loop.

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L.
    B : ndarray, shape (d_1, d_L)
        Loop feedback; not modified.
    alpha, target, lr, max_iters, min_iters, eps, solver
        As in `stabilise_feedback`.

    Returns
    -------
    Stabilised
    """
    B = np.array(B, dtype=float)
    d_first, d_last = B.shape
    if method != "descent":
        raise InputError(f"the single loop is stabilised by method 'descent' only, "
                         f"got {method!r}")
    B, iteration, history = _descend(lambda X: loop_jacobian(weights, X, alpha),
                                     (slice(None, d_first), slice(-d_last, None)), B, target,
                                     lr, max_iters, min_iters, eps, solver)
    if history[-1] > target:
        raise StabilisationError(
            f"the loop feedback reached a spectral abscissa of {history[-1]:.3g} after "
            f"{iteration} steps, above the target {target}; raise max_iters or lr, use a "
            "larger alpha, or start from B = -(W_L ... W_2)^T"
        )
    return Stabilised(B, history[-1], iteration, np.asarray(history))


def stabilise_direct(weights: list[np.ndarray], Q: list[np.ndarray], alpha: float,
                     kp: float = 0.0, tau_ratio: float = 1.0, target: float = -0.01,
                     lr: float = 5e-2, max_iters: int = 200, min_iters: int = 10,
                     eps: float = 0.01, method: str = "descent",
                     solver: str = "lyapunov") -> Stabilised:
    """`stabilise_feedback` for direct feedback control: descend the SSA of its Jacobian.

    The Jacobian at rest (`dinv.theory.direct_jacobian`) holds the stacked
    feedback Q = [Q_1; ..; Q_{L-1}] in its control block and, through the
    proportional part, -k_p Q C in its system block; the gradient with respect
    to Q collects both. Only ``method='descent'`` applies.

    Parameters
    ----------
    weights : list of ndarray
        W_2 .. W_L.
    Q : list of ndarray
        Q_1 .. Q_{L-1}, each (d_l, d_L); not modified.
    alpha, target, lr, max_iters, min_iters, eps, solver
        As in `stabilise_feedback`.
    kp : float
        The controller's proportional gain.
    tau_ratio : float
        tau_system / tau_controller (Meulemans et al. 2021: 0.2).

    Returns
    -------
    Stabilised
        ``B``: the stabilised feedback stacked, [Q_1; ..; Q_{L-1}]
        (`split_direct` gives the Q_l).
    """
    if method != "descent":
        raise InputError(f"direct feedback control is stabilised by method 'descent' only, "
                         f"got {method!r}")
    if not target < 0:
        raise InputError(f"target must be negative (a stable circuit), got {target}")
    widths = [np.shape(q)[0] for q in Q]
    n = sum(widths)
    stacked = np.concatenate([np.asarray(q, dtype=float) for q in Q], axis=0)
    C = direct_jacobian(weights, Q, alpha, 0.0, 1.0)[n:, :n] * -1.0  # the readout W_L at rest

    def jacobian(X):
        return direct_jacobian(weights, np.split(X, np.cumsum(widths)[:-1]), alpha, kp,
                               tau_ratio)

    def gradient(G):
        return G[:n, n:] - float(kp) * G[:n, :n] @ C.T

    X, iteration, history = _descend(jacobian, gradient, stacked, target, lr, max_iters,
                                     min_iters, eps, solver)
    if history[-1] > target:
        raise StabilisationError(
            f"the direct feedback reached a spectral abscissa of {history[-1]:.3g} after "
            f"{iteration} steps, above the target {target}; raise max_iters or lr, use a "
            "larger alpha, or start from Q_l = J_l^T")
    return Stabilised(X, history[-1], iteration, np.asarray(history))


def split_direct(stacked: FloatArray, like: Sequence[FloatArray]) -> list[FloatArray]:
    """Q_1 .. Q_{L-1} of the stacked [Q_1; ..; Q_{L-1}], with the row counts of ``like``."""
    return np.split(stacked, np.cumsum([np.shape(q)[0] for q in like])[:-1])


def stable_random_direct_feedback(weights: list[np.ndarray], alpha: float,
                                  rng: np.random.Generator, scale: float = 0.01,
                                  kp: float = 0.0, tau_ratio: float = 1.0,
                                  **options: Any) -> list[np.ndarray]:
    """"R-Init" of direct feedback control: random U(-scale, scale) Q_l, then stabilised
    (`stabilise_direct`; ``options`` for it).

    Parameters
    ----------
    weights : list of ndarray
        W_1 .. W_L.
    alpha : float
    rng : numpy.random.Generator
    scale : float
    kp, tau_ratio : float
        The controller's proportional gain and tau_system / tau_controller.

    Returns
    -------
    list of ndarray
        Q_1 .. Q_{L-1}.
    """
    options.pop("controllers", None)
    if options.get("method") == "shift":  # the layer pairs' spectral shift has no analogue
        options = {**options, "method": "descent"}
    start = [rng.uniform(-scale, scale, size=(W.shape[0], weights[-1].shape[0]))
             for W in weights[:-1]]
    return split_direct(stabilise_direct(weights[1:], start, alpha, kp, tau_ratio,
                                         **options).B, start)


def tau_ratio_of(options: Any) -> float:
    """tau_system / tau_controller of a `SettleOptions` (of its first layer when the
    time constants are per layer); 1 for None."""
    if options is None:
        return 1.0
    times = [t[0] if isinstance(t, (tuple, list)) else t
             for t in (options.tau_system, options.tau_controller)]
    return float(times[0] / times[1])


def direct_settings(learner: "Learner") -> tuple[float, float]:
    """k_p and tau_system / tau_controller of a direct (DFC) learner's circuit."""
    return float(learner.rule.kp or 0.0), tau_ratio_of(learner.circuit)


def stabilise_pid_feedback(W: ArrayLike, B: ArrayLike, alpha: float, kp: ArrayLike = 0.0,
                           kd: ArrayLike = 0.0, tau_ratio: float = 1.0,
                           filter_ratio: float = 1.0, target: float = -0.01, lr: float = 5e-2,
                           max_iters: int = 200, min_iters: int = 10, eps: float = 0.01,
                           method: str = "descent", solver: str = "lyapunov") -> Stabilised:
    """`stabilise_feedback` for a layer pair under a PID controller (Eq. 7).

    SSA descent with respect to B on the full `dinv.theory.pid_jacobian`
    (states delta, u and the two derivative filters; B fills its
    (delta, u) block as in the integral circuit). No reduction to W's range:
    meant for layers of tens to hundreds of units. ``method='shift'``:
    `shift_pid_feedback` instead.

    Parameters
    ----------
    W, B, alpha, target, lr, max_iters, min_iters, eps, method, solver
        As in `stabilise_feedback`.
    kp, kd : float or ndarray, shape (d_l, d_l)
        The controller's gains, scalars or gain matrices.
    tau_ratio, filter_ratio : float
        tau_system / tau_controller and tau_d / tau_controller
        (`dinv.circuits.pid_controller`).

    Returns
    -------
    Stabilised
        ``abscissa`` of the PID circuit's Jacobian (continuous time; the Euler
        circuit's stability is `dinv.theory.pid_step_radius`).
    """
    W = np.asarray(W, dtype=float)
    B = np.array(B, dtype=float)
    if W.ndim != 2 or B.shape != W.T.shape:
        raise InputError(f"B must have shape {W.T.shape} (W's transpose), got {B.shape}")
    if not target < 0:
        raise InputError(f"target must be negative (a stable circuit), got {target}")
    d_out, d_in = W.shape
    for name, gain in (("kp", kp), ("kd", kd)):
        if np.ndim(gain) != 0 and np.shape(gain) != (d_out, d_out):
            raise InputError(f"{name} must be a number or a ({d_out}, {d_out}) matrix, got "
                             f"shape {np.shape(gain)}")
    if method not in STABILISERS:
        raise InputError(f"method must be one of {STABILISERS}, got {method!r}")
    if solver not in SOLVERS:
        raise InputError(f"solver must be one of {SOLVERS}, got {solver!r}")
    gains = (tau_ratio, kp, kd, filter_ratio)
    if method == "shift":
        return shift_pid_feedback(W, B, alpha, gains, target)
    B, iteration, history = _descend(
        lambda X: pid_jacobian(W, X, alpha, *gains),
        (slice(None, d_in), slice(d_in, d_in + d_out)), B, target, lr, max_iters, min_iters,
        eps, solver)
    if history[-1] > target:
        raise StabilisationError(
            f"the feedback reached a PID-circuit spectral abscissa of {history[-1]:.3g} after "
            f"{iteration} steps, above the target {target}; raise max_iters or lr, use a "
            "larger alpha, or start from B = -W^T")
    return Stabilised(B, history[-1], iteration, np.asarray(history))


SHIFT_LIMIT = 2.0**30
"""Largest shift c of `shift_pid_feedback` tried."""


def shift_pid_feedback(W: FloatArray, B: FloatArray, alpha: float,
                       gains: tuple[float, ArrayLike, ArrayLike, float],
                       target: float = -0.01) -> Stabilised:
    """`shift_feedback` for a PID controller: the smallest found ``B - c W^+`` that is stable.

    The shift moves every eigenvalue of W B by -c, but with PID gains the
    Jacobian's abscissa need not fall monotonically as c grows (negative
    gains destabilise a strong loop), so c doubles from 1 until the
    abscissa of `dinv.theory.pid_jacobian` is at or below ``target``, then
    bisection between the last two values keeps that property.

    Parameters
    ----------
    W, B, alpha, target
        As in `stabilise_feedback`.
    gains : tuple
        (tau_ratio, kp, kd, filter_ratio) as `dinv.theory.pid_jacobian` takes them.

    Returns
    -------
    Stabilised
        ``iterations`` 0 and ``history`` [abscissa before, after].

    Raises
    ------
    StabilisationError
        When no shift up to `SHIFT_LIMIT` reaches the target.
    """
    U, S, Vt = range_svd(W)
    inverse = (Vt.T / S) @ U.T

    def abscissa(c):
        return pid_abscissa(W, B - c * inverse, alpha, *gains)

    before = abscissa(0.0)
    if before <= target:
        return Stabilised(B.copy(), before, 0, np.array([before, before]))
    aim = target - 1e-9 * max(1.0, abs(target))
    low, high = 0.0, 1.0
    while abscissa(high) > aim:
        low, high = high, 2.0 * high
        if high > SHIFT_LIMIT:
            raise StabilisationError(
                f"no shift B - c W^+ (c up to {SHIFT_LIMIT:.3g}) brings the PID circuit's "
                f"abscissa to the target {target} (it stays above {abscissa(low):.3g}); use "
                "other gains (negative ones destabilise a strong loop), or method 'descent'")
    for _ in range(40):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if abscissa(middle) > aim else (low, middle)
    achieved = abscissa(high)
    return Stabilised(B - high * inverse, achieved, 0, np.array([before, achieved]))


def stabilise_pair(W: ArrayLike, B: ArrayLike, alpha: float, gains: dict[str, Any] | None = None,
                   **options: Any) -> Stabilised:
    """Stabilise one layer pair's feedback for its controller.

    Parameters
    ----------
    W, B, alpha
        As in `stabilise_feedback`.
    gains : dict or None
        None: the integral controller (`stabilise_feedback`); else the PID
        controller's ``kp``, ``kd``, ``filter_ratio`` and ``tau_ratio``
        (`stabilise_pid_feedback`).
    **options
        For `stabilise_feedback` (target, lr, max_iters, min_iters, eps, method).

    Returns
    -------
    Stabilised
    """
    if gains is None:
        return stabilise_feedback(W, B, alpha, **options)
    return stabilise_pid_feedback(W, B, alpha, **gains, **options)


def pair_abscissa(W: FloatArray, B: FloatArray, alpha: ArrayLike,
                  gains: dict[str, Any] | None = None) -> FloatArray:
    """Spectral abscissa of layer pairs, batched (n, ...) for the integral controller,
    one pair at a time under a PID controller (``gains`` as in `stabilise_pair`)."""
    if gains is None:
        return np.atleast_1d(jacobian_abscissa(W, B, alpha))
    return np.array([pid_abscissa(w, b, a, gains["tau_ratio"], gains["kp"], gains["kd"],
                                  gains["filter_ratio"])
                     for w, b, a in zip(W, B, np.broadcast_to(alpha, (len(W),)))])


def stable_random_feedback(weights: Sequence[FloatArray], alpha: float | Sequence[float],
                           rng: np.random.Generator, scale: float = 0.01,
                           controllers: Sequence[dict[str, Any] | None] | None = None,
                           **options: Any) -> list[FloatArray]:
    """"R-Init": random U(-scale, scale) feedback per layer pair, then stabilised.

    Parameters
    ----------
    weights : list of ndarray
        W_1 .. W_L.
    alpha : float or sequence of float
        Leak of the circuits the feedback will serve (one, or one per layer pair).
    rng : numpy.random.Generator
    scale : float
        Half-width of the random start (the authors' release: 0.01).
    controllers : sequence of (dict or None) or None
        Per layer pair (W_2, B_2) .. (W_L, B_L), the PID gains of its
        controller (as in `stabilise_pair`; each pair of a sequential chain
        with its own controller's gains) or None for the integral
        controller; None: integral controllers throughout.
    **options
        For `stabilise_feedback` (target, lr, max_iters, min_iters, eps, method).

    Returns
    -------
    list of ndarray
        B_2 .. B_L.
    """
    pairs = len(weights) - 1
    alphas = np.broadcast_to(np.asarray(alpha, dtype=float), (pairs,))
    controllers = [None] * pairs if controllers is None else controllers
    return [stabilise_pair(W, rng.uniform(-scale, scale, W.T.shape), a, gains, **options).B
            for W, a, gains in zip(weights[1:], alphas, controllers)]


def unstable_feedback(learners: Sequence["Learner"],
                      controllers: Sequence[dict[str, Any] | None] | None = None,
                      ) -> list[tuple[int, int | Literal["loop", "direct"], float]]:
    """The layer pairs and single loops of inversion learners whose circuit is unstable.

    Checks every layer pair (or single loop) of every learner with its current
    weights: all learners of one kind in one batched eigenvalue call per pair
    (under a PID controller one call per learner and pair). Each learner's
    abscissae are those it gets alone (`dinv.theory.stack_c`).

    Parameters
    ----------
    learners : list of dinv.models.training.Learner
        NDI ('ndi'), DI ('di') and SLDI ('sldi') learners of one architecture.
    controllers : sequence of (dict or None) or None
        Per layer pair, the PID gains of its controller (see
        `stable_random_feedback`); None: integral controllers. The single
        loop is checked for the integral controller.

    Returns
    -------
    list of tuple
        ``(k, layer, abscissa)`` per unstable circuit (positive spectral
        abscissa): the learner's index, the layer pair (0: W_2 with B_2),
        ``'loop'`` or ``'direct'`` (DFC, at rest, with its own circuit's
        k_p and time constants); direct control first, then the layer pairs,
        pair by pair, then the loops.
    """
    found: list[tuple[int, int | Literal["loop", "direct"], float]] = []
    pairs = [k for k, lrn in enumerate(learners) if lrn.rule.feedback == "layer"]
    loops = [k for k, lrn in enumerate(learners) if lrn.rule.feedback == "loop"]
    for k, lrn in enumerate(learners):
        if lrn.rule.feedback == "direct":
            value = direct_abscissa(lrn.net.weights[1:], lrn.feedback, lrn.layer_alpha(0),
                                    *direct_settings(lrn))
            if value > 0:
                found.append((k, "direct", float(value)))
    if pairs:
        count = len(learners[pairs[0]].feedback)
        controllers = [None] * count if controllers is None else controllers
        for j, gains in zip(range(count), controllers):
            alpha = np.array([learners[k].layer_alpha(j) for k in pairs])
            W = stack_c([learners[k].net.weights[j + 1] for k in pairs])
            B = stack_c([learners[k].feedback[j] for k in pairs])
            found += [(k, j, float(before))
                      for k, before in zip(pairs, pair_abscissa(W, B, alpha, gains)) if before > 0]
    if loops:
        depth = learners[loops[0]].net.depth
        current = loop_abscissa([stack_c([learners[k].net.weights[l] for k in loops])
                                 for l in range(1, depth)],
                                stack_c([learners[k].feedback[0] for k in loops]),
                                np.array([learners[k].layer_alpha(0) for k in loops]))
        found += [(k, "loop", float(before))
                  for k, before in zip(loops, np.atleast_1d(current)) if before > 0]
    return found


def repair_feedback(learner: "Learner", layer: int | Literal["loop", "direct"], before: float,
                    iteration: int,
                    controllers: Sequence[dict[str, Any] | None] | None = None,
                    **options: Any) -> dict[str, Any]:
    """Replace the unstable feedback of one layer pair or loop by a stabilised one.

    A layer pair whose descent falls short of the target is stabilised by the
    spectral shift instead (`shift_feedback`, `shift_pid_feedback`), so a
    long training run does not stop there; the event says so. A loop is
    always stabilised by descent (`stabilise_loop`).

    Parameters
    ----------
    learner : dinv.models.training.Learner
        Its feedback is replaced (in place).
    layer : int, 'loop' or 'direct'
        As `unstable_feedback` names it.
    before : float
        The spectral abscissa found.
    iteration : int
        Recorded with the event.
    controllers : sequence of (dict or None) or None
        As in `unstable_feedback`.
    **options
        For `stabilise_feedback` / `stabilise_loop` (``method='shift'`` applies
        to layer pairs only).

    Returns
    -------
    dict
        The event: model, iteration, layer (1-based pair or 'loop'), abscissa
        before and after, and (layer pairs) the method used.
    """
    if layer == "direct":
        kp, ratio = direct_settings(learner)
        options = {k: v for k, v in options.items() if k not in ("controllers", "method")}
        result = stabilise_direct(learner.net.weights[1:], learner.feedback,
                                  learner.layer_alpha(0), kp, ratio, **options)
        learner.feedback = split_direct(result.B, learner.feedback)
        return {"model": learner.name, "iteration": iteration, "layer": "direct",
                "before": before, "after": result.abscissa}
    if layer == "loop":
        result = stabilise_loop(learner.net.weights[1:], learner.feedback[0],
                                learner.layer_alpha(0), **{**options, "method": "descent"})
        learner.feedback[0] = result.B
        return {"model": learner.name, "iteration": iteration, "layer": "loop",
                "before": before, "after": result.abscissa}
    gains = None if controllers is None else controllers[layer]
    args = (learner.net.weights[layer + 1], learner.feedback[layer], learner.layer_alpha(layer),
            gains)
    method = options.get("method", "descent")
    try:
        result = stabilise_pair(*args, **options)
    except StabilisationError:
        if method == "shift":
            raise
        # The shift reaches any reachable target (a PID circuit: see
        # shift_pid_feedback): a long run goes on.
        method = "shift (descent fell short)"
        result = stabilise_pair(*args, **{**options, "method": "shift"})
    learner.feedback[layer] = result.B
    return {"model": learner.name, "iteration": iteration, "layer": layer + 1,
            "before": before, "after": result.abscissa, "method": method}


def restabilise(learners: Sequence["Learner"], iteration: int,
                controllers: Sequence[dict[str, Any] | None] | None = None,
                **options: Any) -> list[dict[str, Any]]:
    """Re-stabilise the feedback of inversion learners whose circuit turned unstable.

    Finds the unstable layer pairs and loops (`unstable_feedback`) and
    replaces each one's feedback (in place) by a stabilised one
    (`repair_feedback`).

    Parameters
    ----------
    learners : list of dinv.models.training.Learner
        NDI ('ndi'), DI ('di') and SLDI ('sldi') learners of one architecture.
    iteration : int
        Recorded with each event.
    controllers : sequence of (dict or None) or None
        Per layer pair, the PID gains of its controller (see
        `stable_random_feedback`); None: integral controllers. The single
        loop is checked and stabilised for the integral controller.
    **options
        For `stabilise_feedback` / `stabilise_loop` (a loop is always stabilised
        by descent: ``method='shift'`` applies to the layer pairs only).

    Returns
    -------
    list of dict
        One per repaired layer: model, iteration, layer, abscissa before and
        after, and (layer pairs) the method used.
    """
    return [repair_feedback(learners[k], layer, before, iteration, controllers, **options)
            for k, layer, before in unstable_feedback(learners, controllers)]
