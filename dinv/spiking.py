"""Parameters of the spiking populations, without Brian2: one place for both simulators.

A spiking population of a circuit represents a block of width d (for every
problem and sample) with ``neurons_per_dim`` neurons per represented
dimension: each neuron belongs to one dimension (``dim_index``) and has a
signed one-dimensional decoding direction, so a population's per-step cost is
linear in its neurons. Values are represented in units of a per-dimension
``radius`` R (the range the population is built for): neuron parameters
below are in these normalised units.

Two families (equations in ``dinv.circuits.spiking_equations`` for Brian2,
shared by the circuits and the standalone pair, and mirrored in numpy in
``dinv.spiking_reference``):

``scn`` (spike-coding network; Boerlin, Machens & Deneve 2013)
    Per dimension k: a readout ``xhat_k`` (decoded, filtered spikes) with
    ``dxhat/dt = -xhat / tau_readout`` that jumps by ``R_k D_i`` when neuron
    i spikes, and the ideal state ``y_k`` that integrates the population's
    own leaky dynamics evaluated at the readout (system:
    ``tau_s dy/dt = -xhat + I``; controller: ``tau_c dy/dt = -alpha xhat +
    e``). Neuron i's voltage is the projected coding error minus its rate
    cost, ``V_i = D_i (y_k - xhat_k) / R_k - mu r_i + sigma eta_i`` (r_i: its
    own spike train filtered with tau_readout; eta_i: unit Ornstein-Uhlenbeck
    noise). **Spike rule** (per step, after every population has
    integrated): every neuron with ``V_i > (D_i**2 + mu) / 2`` (and past its
    refractory period, 0 by default) is a *candidate*; the candidates are
    then taken one after the other, in neuron index order, and each is
    checked once more against the readout of its dimension as the spikes
    before it in this step have moved it. Only a candidate still above
    threshold spikes: xhat_k jumps by ``R_k D_i`` and r_i by 1 at once, so
    the next candidates see the lowered coding error. This is the greedy
    rule of SCN simulations, where a spike reaches the other neurons
    instantaneously through the fast connections; it is deterministic (no
    random choice), and it keeps neurons with nearby thresholds from firing
    together, overshooting past the opposite neurons' thresholds and setting
    off volleys of ON and OFF spikes. In Brian2 the threshold is the
    candidate test and the check is the ``on_pre`` code of the decoding
    synapses (`dinv.circuits.spiking_equations.SCN_ON_PRE`), run synapse by
    synapse.
``lif`` (LIF ensemble with decoders, Neural Engineering Framework)
    Per dimension k: a readout ``xhat_k`` through an exponential synapse,
    ``dxhat/dt = -xhat / tau_synapse``, jumping by ``R_k d_i / tau_synapse``
    when neuron i spikes (d_i in seconds: least-squares decoders of rates);
    the neurons encode ``s_k = (1 - tau_synapse / tau_s) xhat_k +
    (tau_synapse / tau_s) I_k`` (controller: ``(1 - alpha tau_synapse / tau_c)
    xhat_k + (tau_synapse / tau_c) e_k``), so that ``tau_s dxhat/dt = -xhat +
    I`` on average. Neuron i: ``tau_rc dv/dt = -v + J_i``, ``J_i = gain_i e_i
    s_k / R_k + bias_i``, spike at v > 1, reset to 0, refractory tau_ref.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dinv.errors import InputError
from dinv.hints import ArrayLike, FloatArray, IntArray


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not np.isfinite(value) or not value > 0:
        raise InputError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _count(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise InputError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return int(value)


def dimension_index(dims: int, neurons_per_dim: int) -> IntArray:
    """The represented dimension of every neuron: ``[0]*K + [1]*K + ...`` (length dims*K)."""
    return np.repeat(np.arange(dims), neurons_per_dim)


def _signs(dims: int, neurons_per_dim: int) -> FloatArray:
    """+1 and -1 alternating within each dimension (half ON, half OFF)."""
    one = np.where(np.arange(neurons_per_dim) % 2 == 0, 1.0, -1.0)
    return np.tile(one, dims)


@dataclass(frozen=True)
class SCNParameters:
    """Neuron parameters of a spike-coding population (normalised units).

    Attributes
    ----------
    decoder : ndarray, shape (N,)
        Signed decoding weight D_i of each neuron (in units of the radius).
    dim_index : ndarray of int, shape (N,)
        Represented dimension of each neuron.
    mu : float
        Quadratic rate cost (adds to the threshold and to the voltage as
        ``-mu r_i``).
    noise : float
        Standard deviation sigma of the voltage noise (units of the radius).
    """

    decoder: FloatArray
    dim_index: IntArray
    mu: float
    noise: float


def scn_parameters(dims: int, neurons_per_dim: int, rng: np.random.Generator,
                   decoder_scale: float = 1.0, spread: float = 0.25, cost: float = 0.5,
                   noise: float = 0.0) -> SCNParameters:
    """Draw the neurons of an SCN population representing ``dims`` dimensions.

    Parameters
    ----------
    dims : int
        Dimensions represented (d for each problem and sample; the caller
        repeats the draw or tiles it over problems and samples as it likes).
    neurons_per_dim : int
        Neurons per dimension K (half with positive, half with negative decoders).
    rng : numpy.random.Generator
    decoder_scale : float
        Decoder magnitude times K: ``|D_i| = decoder_scale / K * (1 + U(-spread, spread))``.
        The readout moves in steps of about 1/K of the radius.
    spread : float
        Heterogeneity of the decoder magnitudes (0 <= spread < 1), so that
        neurons of one sign do not all cross threshold in the same step.
    cost : float
        mu in units of the mean squared decoder: ``mu = cost * (decoder_scale / K)**2``.
    noise : float
        sigma in units of the mean decoder magnitude.

    Returns
    -------
    SCNParameters
    """
    dims = _count("dims", dims)
    k = _count("neurons_per_dim", neurons_per_dim, 2)
    scale = _positive("decoder_scale", decoder_scale) / k
    if not 0 <= spread < 1:
        raise InputError(f"spread must lie in [0, 1), got {spread!r}")
    if not (np.isfinite(cost) and cost >= 0) or not (np.isfinite(noise) and noise >= 0):
        raise InputError(f"cost and noise must be non-negative, got {cost!r} and {noise!r}")
    magnitude = scale * (1.0 + rng.uniform(-spread, spread, dims * k))
    return SCNParameters(decoder=_signs(dims, k) * magnitude,
                         dim_index=dimension_index(dims, k),
                         mu=float(cost) * scale ** 2, noise=float(noise) * scale)


@dataclass(frozen=True)
class LIFParameters:
    """Neuron parameters of a LIF ensemble (normalised units).

    Attributes
    ----------
    encoder : ndarray, shape (N,)
        +1 or -1 (one-dimensional encoders: ON and OFF halves).
    gain, bias : ndarray, shape (N,)
        Input current ``J = gain * encoder * s / R + bias`` (threshold 1).
    decoder : ndarray, shape (N,)
        Least-squares decoders of the rates (second).
    dim_index : ndarray of int, shape (N,)
    tau_rc, tau_ref : float
        Membrane time constant and refractory period (second).
    """

    encoder: FloatArray
    gain: FloatArray
    bias: FloatArray
    decoder: FloatArray
    dim_index: IntArray
    tau_rc: float
    tau_ref: float


def lif_rate(current: ArrayLike, tau_rc: float, tau_ref: float) -> FloatArray:
    """Steady firing rate (Hz) of a LIF neuron with threshold 1 for input ``current``."""
    current = np.asarray(current, dtype=float)
    rate = np.zeros_like(current)
    above = current > 1.0
    rate[above] = 1.0 / (tau_ref + tau_rc * np.log1p(1.0 / (current[above] - 1.0)))
    return rate


def lif_parameters(dims: int, neurons_per_dim: int, rng: np.random.Generator,
                   max_rates: Sequence[float] = (100.0, 200.0),
                   intercepts: Sequence[float] = (-1.0, 0.9), tau_rc: float = 0.02,
                   tau_ref: float = 0.002, regularisation: float = 0.1,
                   eval_points: int = 1000) -> LIFParameters:
    """Draw a LIF ensemble per dimension and solve its decoders (NEF style).

    Parameters
    ----------
    dims, neurons_per_dim, rng
        As in `scn_parameters`.
    max_rates : (float, float)
        Range (Hz) of the rates at |x| = radius, drawn uniformly.
    intercepts : (float, float)
        Range (units of the radius) of the values where neurons start to fire.
    tau_rc, tau_ref : float
        Membrane time constant and refractory period (second).
    regularisation : float
        L2 regularisation of the decoders, relative to the largest rate
        (Nengo's ``LstsqL2`` default 0.1).
    eval_points : int
        Evaluation points, evenly spaced in [-1, 1].

    Returns
    -------
    LIFParameters
    """
    dims = _count("dims", dims)
    k = _count("neurons_per_dim", neurons_per_dim, 2)
    tau_rc, tau_ref = _positive("tau_rc", tau_rc), _positive("tau_ref", tau_ref)
    low, high = max_rates
    if not 0 < low <= high < 1.0 / tau_ref:
        raise InputError(f"max_rates must be 0 < low <= high < 1/tau_ref, got {max_rates!r}")
    lo_x, hi_x = intercepts
    if not -1.0 <= lo_x <= hi_x < 1.0:
        raise InputError(f"intercepts must lie in [-1, 1), got {intercepts!r}")
    n = dims * k
    encoder = _signs(dims, k)
    rate_max = rng.uniform(low, high, n)
    intercept = rng.uniform(lo_x, hi_x, n)
    j_max = 1.0 / (1.0 - np.exp((tau_ref - 1.0 / rate_max) / tau_rc))
    gain = (j_max - 1.0) / (1.0 - intercept)
    bias = 1.0 - gain * intercept
    x = np.linspace(-1.0, 1.0, _count("eval_points", eval_points, 2))
    decoder = np.empty(n)
    for dim in range(dims):
        cells = slice(dim * k, (dim + 1) * k)
        rates = lif_rate(gain[cells, None] * encoder[cells, None] * x[None, :]
                         + bias[cells, None], tau_rc, tau_ref)
        decoder[cells] = _least_squares(rates, x, regularisation)
    return LIFParameters(encoder=encoder, gain=gain, bias=bias, decoder=decoder,
                         dim_index=dimension_index(dims, k), tau_rc=tau_rc, tau_ref=tau_ref)


def _least_squares(rates: FloatArray, x: FloatArray, regularisation: float) -> FloatArray:
    """Decoders d minimising |d @ rates - x|^2 + m (sigma max rate)^2 |d|^2 (m points)."""
    m = rates.shape[1]
    sigma = regularisation * rates.max()
    gram = rates @ rates.T + m * sigma ** 2 * np.eye(rates.shape[0])
    return np.linalg.solve(gram, rates @ x)
