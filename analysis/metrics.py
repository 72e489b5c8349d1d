"""Metrics of training runs, from plain arrays."""

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from dinv.hints import ArrayLike, FloatArray


def _unit(name: str, value: ArrayLike) -> FloatArray:
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def vector_angle(u: ArrayLike, v: ArrayLike) -> float | FloatArray:
    """Angle in degrees between vectors ``u`` and ``v`` (last axis).

    ``arccos(u . v / (|u| |v|))``; batched over leading axes. A zero vector
    has no direction: the angle is NaN.
    """
    u, v = _unit("u", u), _unit("v", v)
    if u.shape[-1] != v.shape[-1]:
        raise ValueError(f"vectors differ in length: {u.shape} and {v.shape}")
    norms = np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.sum(u * v, axis=-1) / norms
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def matrix_angle(A: ArrayLike, B: ArrayLike) -> float:
    """Angle in degrees between matrices under the Frobenius inner product.

    ``arccos(<A, B>_F / (|A|_F |B|_F))``. The paper's feedback alignment
    measure is ``matrix_angle(B, -W.T)``.
    """
    A, B = _unit("A", A), _unit("B", B)
    if A.shape != B.shape:
        raise ValueError(f"matrices differ in shape: {A.shape} and {B.shape}")
    return float(vector_angle(A.ravel(), B.ravel()))


def nmse(errors: Mapping[str, ArrayLike]) -> dict[str, FloatArray]:
    """Normalised error curves: every value divided by the largest of all.

    Parameters
    ----------
    errors : dict of str to array_like
        Summed squared error per model and iteration.

    Returns
    -------
    dict of str to ndarray
        Same keys; the largest value over all models and iterations is 1.
    """
    arrays = {k: _unit(k, v) for k, v in errors.items()}
    peak = max(float(np.max(v)) for v in arrays.values())
    if peak <= 0:
        raise ValueError("all errors are zero; NMSE is undefined")
    return {k: v / peak for k, v in arrays.items()}


def summed_squared_error(outputs: ArrayLike, targets: ArrayLike) -> float | FloatArray:
    """Sum over samples and units of (y - t)^2; leading axes are kept."""
    outputs, targets = _unit("outputs", outputs), _unit("targets", targets)
    return np.sum((outputs - targets) ** 2, axis=(-2, -1))


def classification_error(outputs: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of samples whose largest output is not the label."""
    outputs = _unit("outputs", outputs)
    labels = np.asarray(labels)
    return float(np.mean(np.argmax(outputs, axis=-1) != labels))


def running_quantiles(values: ArrayLike, window: int,
                      quantiles: Sequence[float] = (0.25, 0.5, 0.75),
                      ) -> tuple[FloatArray, FloatArray]:
    """Quantiles of a trace over a sliding window.

    Parameters
    ----------
    values : array_like
        1-D trace (e.g. a per-sample angle); NaNs are ignored.
    window : int
        Samples per window (at least 1; shrunk to the trace's length).
    quantiles : sequence of float
        Quantiles in [0, 1].

    Returns
    -------
    centres : ndarray
        Index of the middle sample of every full window, shape (n - window + 1,).
    values : ndarray
        Shape (len(quantiles), n - window + 1): the quantiles of every window.
    """
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        return np.zeros(0), np.zeros((len(quantiles), 0))
    window = int(min(max(window, 1), values.size))
    windows = np.lib.stride_tricks.sliding_window_view(values, window)
    if not np.isnan(values).any():
        result = np.quantile(windows, quantiles, axis=1)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN window gives NaN
            result = np.nanquantile(windows, quantiles, axis=1)
    centres = np.arange(windows.shape[0], dtype=float) + (window - 1) / 2.0
    return centres, result


def input_variation(inputs: ArrayLike, outputs: ArrayLike) -> float:
    """How much a model's outputs vary across inputs, relative to the inputs.

    Mean over pixels of the standard deviation across images of ``outputs``,
    divided by the same of ``inputs``: about 1 for a good autoencoder, near 0
    for one that returns the same (mean) image for every input.

    Parameters
    ----------
    inputs, outputs : array_like, shape (images, pixels)

    Returns
    -------
    float
        NaN when the inputs do not vary.
    """
    spread = np.mean(np.std(np.asarray(inputs, dtype=float), axis=0))
    if not spread > 0:
        return float("nan")
    return float(np.mean(np.std(np.asarray(outputs, dtype=float), axis=0)) / spread)
