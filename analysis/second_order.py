"""Second-order measures of weight updates, from plain arrays (no Brian2).

Is a backward rule a Gauss-Newton method? For a network on a batch, the
measures here compare, layer by layer, a rule's weight update with what
first- and second-order methods would do with the same weights and batch.

Conventions (those of `dinv.models`): W_l has shape (d_l, d_{l-1}), layer l
computes a_l = W_l h_{l-1} + b_l and h_l = g_l(a_l), activities are rows
(batch, d), and a rule's hidden errors delta_l (batch, d_l) make the update

    Delta W_l = sum over the batch of delta_l h_{l-1}^T

(the direction of the gradient, Eq. 2: weights move against it). The output
error delta_L = dL/da_L is the same for every rule. Per layer l:

``to_bp_deg``
    angle between the rule's Delta W_l and backpropagation's (delta_l^BP =
    D_l J_l^T delta_L, with D_l = diag(g'(a_l))).
``to_gnt_deg``
    angle to the Gauss-Newton-target update (Meulemans et al. 2020): the
    hidden error Delta h_l = J_l^T (J_l J_l^T + lambda I)^-1 delta_L per
    sample, with J_l = d a_L / d h_l, made a weight update as the rule makes
    its own: delta_l = D_l Delta h_l for rules whose errors carry g' (BP, FA,
    PBP, NDI, DI), delta_l = Delta h_l for the rules with g inside their loop
    (SLDI, DI of targets, DFC).
``to_gn_deg``
    angle to the W_l block of the damped Gauss-Newton update of all
    parameters (weights and biases) jointly on the batch,
    (G + lambda I)^-1 g with G = mean_n J_theta^T H J_theta, g = mean_n
    J_theta^T delta_L, J_theta = d a_L / d theta and H the loss's
    Gauss-Newton matrix in a_L (the identity for the squared error with a
    linear output, diag(g'(a_L))^2 with another output nonlinearity, the
    softmax's diag(p) - p p^T for the cross-entropy).
``to_lgn_deg``
    angle to the layer-wise (block-diagonal) Gauss-Newton update: each
    layer's (W_l, b_l) block of G alone, (G_ll + lambda I)^-1 g_l.
``null_share``
    the share of the squared norm of the rule's hidden errors (summed over
    the batch) in the null space of d a_L / d a_l = J_l D_l: the part of the
    error that moves a_l (as the update does) without moving the output at
    first order. 0 for the output layer.

Sizes: every measure is exact. The Gauss-Newton updates are solved densely
(a P x P matrix, P parameters) up to `DENSE_LIMIT` parameters and matrix-free
beyond, by conjugate gradients on products with J_theta and J_theta^T (two
passes through the network per product; `gauss_newton_update`), which is how
the 784-1000-10 network is measured.
"""

from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator, cg

DENSE_LIMIT = 4000
"""Most parameters (of the whole network, or of one layer for the layer-wise update)
that `gauss_newton_update` solves densely with ``method='auto'``."""

CG_TOL = 1e-10
"""Relative residual at which the conjugate gradients of `gauss_newton_update` stop."""


@dataclass(frozen=True)
class Linearisation:
    """A network linearised on a batch: what the measures need, as plain arrays.

    Attributes
    ----------
    weights : list of ndarray
        W_1 .. W_L, each (d_l, d_{l-1}).
    inputs : list of ndarray
        h_0 .. h_{L-1}, the input of every weight layer, each (batch, d_{l-1}).
    slopes : list of ndarray
        g'(a_1) .. g'(a_{L-1}) of the hidden layers, each (batch, d_l).
    output_metric : ndarray or None
        H per sample (batch, d_L, d_L), the loss's Gauss-Newton matrix in a_L
        (`output_metric`); None: the identity.
    biases : bool
        Whether the layers have biases (parameters of the Gauss-Newton updates).
    """

    weights: list
    inputs: list
    slopes: list
    output_metric: np.ndarray | None = None
    biases: bool = True

    @property
    def batch(self) -> int:
        """Samples of the batch."""
        return int(self.inputs[0].shape[0])

    @property
    def depth(self) -> int:
        """Weight layers L."""
        return len(self.weights)


def output_metric(loss: str, output: np.ndarray, output_slope: np.ndarray | None = None
                  ) -> np.ndarray | None:
    """H, the loss's Gauss-Newton matrix in the output pre-activation a_L, per sample.

    Parameters
    ----------
    loss : {'squared', 'cross-entropy'}
        Squared error 1/2 |y - t|^2 (y = g_L(a_L)) or softmax cross-entropy.
    output : ndarray, shape (batch, d_L)
        The network's output y (the softmax probabilities p for cross-entropy).
    output_slope : ndarray or None
        g_L'(a_L) for the squared error with an output nonlinearity; None: a
        linear output.

    Returns
    -------
    ndarray of shape (batch, d_L, d_L), or None for the identity
    """
    if loss == "cross-entropy":
        return np.einsum("ni,ij->nij", output, np.eye(output.shape[1])) \
            - output[:, :, None] * output[:, None, :]
    if loss != "squared":
        raise ValueError(f"loss must be 'squared' or 'cross-entropy', got {loss!r}")
    if output_slope is None:
        return None
    return np.einsum("ni,ij->nij", output_slope**2, np.eye(output.shape[1]))


def hidden_jacobians(lin: Linearisation) -> list[np.ndarray]:
    """J_l = d a_L / d h_l of every hidden layer, per sample.

    ::

        J_{L-1} = W_L,    J_{l-1} = J_l D_l W_l

    Returns
    -------
    list of ndarray
        J_1 .. J_{L-1}, each (batch, d_L, d_l).
    """
    jacobians: list[np.ndarray] = []        # J of h_l, l = L-1 .. 1
    J = np.broadcast_to(lin.weights[-1], (lin.batch,) + lin.weights[-1].shape)
    for l in range(lin.depth - 1, 0, -1):
        jacobians.append(J)
        if l > 1:
            J = (J * lin.slopes[l - 1][:, None, :]) @ lin.weights[l - 1]
    return jacobians[::-1]


def backprop_errors(lin: Linearisation, delta: np.ndarray) -> list[np.ndarray]:
    """Backpropagation's errors delta_1 .. delta_L (delta_L given), each (batch, d_l)."""
    errors = [delta]                        # delta_L .. delta_1
    for l in range(lin.depth - 1, 0, -1):
        errors.append((errors[-1] @ lin.weights[l]) * lin.slopes[l - 1])
    return errors[::-1]


def gnt_errors(lin: Linearisation, delta: np.ndarray, damping: float, slope: bool = True
               ) -> list[np.ndarray]:
    """The Gauss-Newton-target errors of every layer (Meulemans et al. 2020).

    Per sample and hidden layer, Delta h_l = J_l^T (J_l J_l^T + lambda I)^-1
    delta_L (`hidden_jacobians`), times g'(a_l) when ``slope``; the output
    layer's is delta_L.

    Parameters
    ----------
    lin : Linearisation
    delta : ndarray, shape (batch, d_L)
    damping : float
        lambda >= 0.
    slope : bool
        Multiply by g'(a_l), as the rules whose errors carry it (Eq. 3) do.

    Returns
    -------
    list of ndarray
        delta_1 .. delta_L, each (batch, d_l).
    """
    eye = np.eye(delta.shape[1])
    errors = []
    for l, J in enumerate(hidden_jacobians(lin)):
        solved = np.linalg.solve(J @ np.swapaxes(J, 1, 2) + damping * eye, delta[..., None])
        target = (np.swapaxes(J, 1, 2) @ solved)[..., 0]
        errors.append(target * lin.slopes[l] if slope else target)
    return errors + [delta]


def null_shares(lin: Linearisation, errors: list[np.ndarray]) -> list[float]:
    """The share of each layer's errors in the null space of d a_L / d a_l = J_l D_l.

    Parameters
    ----------
    lin : Linearisation
    errors : list of ndarray
        A rule's delta_1 .. delta_L (the output layer's share is 0).

    Returns
    -------
    list of float
        Per layer, |null-space part|^2 / |delta_l|^2 summed over the batch
        (NaN for an error of zero).
    """
    shares = []
    for l, J in enumerate(hidden_jacobians(lin)):
        A = J * lin.slopes[l][:, None, :]                       # (batch, d_L, d_l)
        row_space = np.linalg.pinv(A) @ A                        # projector on A's rows
        inside = (row_space @ errors[l][..., None])[..., 0]
        total = float(np.sum(errors[l] ** 2))
        shares.append(float(np.sum((errors[l] - inside) ** 2)) / total if total > 0
                      else float("nan"))
    return shares + [0.0]


def weight_updates(lin: Linearisation, errors: list[np.ndarray]) -> list[np.ndarray]:
    """Delta W_l = sum over the batch of delta_l h_{l-1}^T, per layer."""
    return [delta.T @ h for delta, h in zip(errors, lin.inputs)]


def update_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two updates (flattened); NaN if either is zero, 0 for
    equal ones (not arccos of a rounded 1)."""
    a, b = np.ravel(a), np.ravel(b)
    if np.array_equal(a, b) and np.any(a):
        return 0.0
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if not norms > 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / norms, -1.0, 1.0))))


# --------------------------------------------------------------------------
# Gauss-Newton updates
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class GaussNewton:
    """A damped Gauss-Newton update and how it was solved.

    Attributes
    ----------
    updates : list of tuple
        (Delta W_l, Delta b_l or None) per layer: (G + lambda I)^-1 g, in the
        orientation of the gradient.
    method : str
        'dense' or 'cg' (of the joint system; of the layers' for layer-wise).
    iterations : int
        Conjugate-gradient iterations (the largest over the layers); 0 dense.
    residual : float
        Relative residual |(G + lambda I) x - g| / |g| of the solution (the
        largest over the layers).
    """

    updates: list
    method: str
    iterations: int
    residual: float


def _sizes(lin, l):
    d_out, d_in = lin.weights[l].shape
    return d_out * d_in + (d_out if lin.biases else 0)


def _unpack(lin, vector, layers):
    """(Delta W_l, Delta b_l) of ``layers`` from one parameter vector."""
    out, start = [], 0
    for l in layers:
        d_out, d_in = lin.weights[l].shape
        W = vector[start:start + d_out * d_in].reshape(d_out, d_in)
        start += d_out * d_in
        b = None
        if lin.biases:
            b = vector[start:start + d_out]
            start += d_out
        out.append((W, b))
    return out


def _pack(parts):
    return np.concatenate([np.concatenate([W.ravel()] + ([] if b is None else [b]))
                           for W, b in parts])


def _apply_metric(lin, R):
    """H R per sample (the identity when H is None)."""
    return R if lin.output_metric is None else (lin.output_metric @ R[..., None])[..., 0]


def _output_errors(lin, l):
    """E_l = d a_L / d a_l per sample (batch, d_L, d_l); the identity for the output."""
    if l == lin.depth - 1:
        return np.broadcast_to(np.eye(lin.weights[-1].shape[0]),
                               (lin.batch,) + (lin.weights[-1].shape[0],) * 2)
    return hidden_jacobians(lin)[l] * lin.slopes[l][:, None, :]


def _dense_jacobian(lin, layers):
    """J_theta of ``layers``' parameters, (batch, d_L, P)."""
    blocks = []
    for l in layers:
        E = _output_errors(lin, l)
        h = lin.inputs[l]
        blocks.append(np.einsum("nki,nj->nkij", E, h).reshape(lin.batch, E.shape[1], -1))
        if lin.biases:
            blocks.append(E)
    return np.concatenate(blocks, axis=2)


def _gradient(lin, delta, layers):
    """g = mean_n J_theta^T delta_L of ``layers``, as a vector."""
    errors = backprop_errors(lin, delta)
    return _pack([(errors[l].T @ lin.inputs[l] / lin.batch,
                   errors[l].mean(axis=0) if lin.biases else None) for l in layers])


def _forward_product(lin, parts, first):
    """J_theta v: the change of a_L (batch, d_L) when the layers from ``first`` on move
    by ``parts`` ((V_l, c_l) per layer)."""
    R = None
    for k, (V, c) in enumerate(parts):
        l = first + k
        own = lin.inputs[l] @ V.T + (0.0 if c is None else c)
        R = own if R is None else own + (R * lin.slopes[l - 1]) @ lin.weights[l].T
    for l in range(first + len(parts), lin.depth):
        R = (R * lin.slopes[l - 1]) @ lin.weights[l].T
    return R


def _backward_product(lin, w, layers):
    """J_theta^T w of ``layers`` (w: (batch, d_L)), as a vector."""
    errors = [None] * lin.depth
    errors[-1] = w
    for l in range(lin.depth - 1, min(layers), -1):
        errors[l - 1] = (errors[l] @ lin.weights[l]) * lin.slopes[l - 1]
    return _pack([(errors[l].T @ lin.inputs[l], errors[l].sum(axis=0) if lin.biases else None)
                  for l in layers])


def _solve(lin, delta, damping, layers, method, tol, max_iter):
    """(G + lambda I)^-1 g for the parameters of ``layers`` (consecutive)."""
    g = _gradient(lin, delta, layers)
    size = g.size
    norm = float(np.linalg.norm(g))
    if method == "auto":
        method = "dense" if size <= DENSE_LIMIT else "cg"
    if method == "dense":
        J = _dense_jacobian(lin, layers)
        HJ = J if lin.output_metric is None else lin.output_metric @ J
        G = np.einsum("nkp,nkq->pq", J, HJ) / lin.batch
        A = G + damping * np.eye(size)
        x = np.linalg.solve(A, g)
        residual = float(np.linalg.norm(A @ x - g)) / norm if norm > 0 else 0.0
        return _unpack(lin, x, layers), "dense", 0, residual
    if method != "cg":
        raise ValueError(f"method must be 'auto', 'dense' or 'cg', got {method!r}")
    first = layers[0]

    def product(v):
        R = _forward_product(lin, _unpack(lin, np.asarray(v, dtype=float), layers), first)
        return _backward_product(lin, _apply_metric(lin, R), layers) / lin.batch + damping * v

    operator = LinearOperator((size, size), matvec=product, dtype=float)
    count = [0]

    def callback(_):
        count[0] += 1

    x, _ = cg(operator, g, rtol=tol, atol=0.0, maxiter=max_iter, callback=callback)
    residual = float(np.linalg.norm(product(x) - g)) / norm if norm > 0 else 0.0
    return _unpack(lin, x, layers), "cg", count[0], residual


def gauss_newton_update(lin: Linearisation, delta: np.ndarray, damping: float,
                        blocks: str = "joint", method: str = "auto", tol: float = CG_TOL,
                        max_iter: int | None = None) -> GaussNewton:
    """The damped Gauss-Newton update (G + lambda I)^-1 g of a network on a batch.

    G = mean_n J_theta^T H J_theta and g = mean_n J_theta^T delta_L over the
    batch (see the module docstring), theta the weights and biases.

    Parameters
    ----------
    lin : Linearisation
    delta : ndarray, shape (batch, d_L)
        The output errors dL/da_L.
    damping : float
        lambda > 0 (with lambda = 0, G must be invertible).
    blocks : {'joint', 'layer'}
        All parameters at once, or each layer's block of G alone
        (block-diagonal: the layer-wise Gauss-Newton update).
    method : {'auto', 'dense', 'cg'}
        Dense solve of the P x P system, or matrix-free conjugate gradients
        on J_theta and J_theta^T products; 'auto': dense up to
        `DENSE_LIMIT` parameters (per system).
    tol : float
        Relative residual at which conjugate gradients stop.
    max_iter : int or None
        Most conjugate-gradient iterations (None: 10 times the parameters).

    Returns
    -------
    GaussNewton
    """
    if blocks not in ("joint", "layer"):
        raise ValueError(f"blocks must be 'joint' or 'layer', got {blocks!r}")
    if not (np.isfinite(damping) and damping >= 0):
        raise ValueError(f"damping must be >= 0, got {damping!r}")
    groups = [list(range(lin.depth))] if blocks == "joint" else [[l] for l in range(lin.depth)]
    updates, methods, iterations, residual = [], set(), 0, 0.0
    for layers in groups:
        size = sum(_sizes(lin, l) for l in layers)
        parts, used, count, res = _solve(lin, delta, damping, layers, method, tol,
                                         max_iter or 10 * size)
        updates += parts
        methods.add(used)
        iterations, residual = max(iterations, count), max(residual, res)
    return GaussNewton(updates, "cg" if "cg" in methods else "dense", iterations, residual)


# --------------------------------------------------------------------------
# the measures of one update
# --------------------------------------------------------------------------

MEASURES = ("to_bp_deg", "to_gnt_deg", "to_gn_deg", "to_lgn_deg", "null_share")
"""The measures `second_order_measures` gives per layer."""


def second_order_measures(lin: Linearisation, delta: np.ndarray, updates: list,
                          damping: float, errors: list | None = None, slope: bool = True,
                          joint: GaussNewton | None = None,
                          layerwise: GaussNewton | None = None) -> list[dict]:
    """The five measures of one rule's update, per weight layer.

    Parameters
    ----------
    lin : Linearisation
        The network (with the weights the update was computed for) on the batch.
    delta : ndarray, shape (batch, d_L)
        The output errors.
    updates : list of ndarray
        The rule's Delta W_1 .. Delta W_L (e.g. `weight_updates` of its errors).
    damping : float
        lambda of the Gauss-Newton target and updates.
    errors : list of ndarray or None
        The rule's hidden errors delta_1 .. delta_L, for ``null_share`` (None:
        NaN, e.g. for an optimiser without hidden errors).
    slope : bool
        Whether the rule's errors carry g'(a_l) (see `gnt_errors`).
    joint, layerwise : GaussNewton or None
        The Gauss-Newton updates when already computed (`gauss_newton_update`).

    Returns
    -------
    list of dict
        Per layer 1 .. L: the `MEASURES` (degrees and a share).
    """
    joint = joint or gauss_newton_update(lin, delta, damping, "joint")
    layerwise = layerwise or gauss_newton_update(lin, delta, damping, "layer")
    bp = weight_updates(lin, backprop_errors(lin, delta))
    gnt = weight_updates(lin, gnt_errors(lin, delta, damping, slope))
    shares = null_shares(lin, errors) if errors is not None else [float("nan")] * lin.depth
    return [{"to_bp_deg": update_angle(update, bp[l]),
             "to_gnt_deg": update_angle(update, gnt[l]),
             "to_gn_deg": update_angle(update, joint.updates[l][0]),
             "to_lgn_deg": update_angle(update, layerwise.updates[l][0]),
             "null_share": shares[l]}
            for l, update in enumerate(updates)]
