"""Parameters of the spiking populations, without Brian2: one place for both simulators.

A spiking population of a circuit represents a block of width d (for every
problem and sample) with ``neurons_per_dim`` neurons per represented
dimension: each neuron belongs to one dimension (``dim_index``) and has a
signed one-dimensional encoding or decoding direction, so a population's
per-step cost is linear in its neurons. Values are represented in units of a
per-dimension ``radius`` R (the range the population is built for): neuron
parameters below are in these normalised units.

Two families (Brian2 equations in ``dinv.circuits.spiking_equations``, built
by ``dinv.circuits.scn`` and ``dinv.circuits.nef`` and shared by the circuits
and the standalone pair; mirrored in numpy in ``dinv.spiking_reference``):

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
NEF ensembles (Neural Engineering Framework; ``lif`` and any neuron model)
    Per dimension k: a readout ``xhat_k`` through an exponential synapse,
    ``dxhat/dt = -xhat / tau_synapse``, jumping by ``R_k d_i / tau_synapse``
    when neuron i spikes (d_i in seconds: least-squares decoders of rates);
    the neurons encode ``s_k = (1 - tau_synapse / tau_s) xhat_k +
    (tau_synapse / tau_s) I_k`` (controller: ``(1 - alpha tau_synapse / tau_c)
    xhat_k + (tau_synapse / tau_c) e_k``), so that ``tau_s dxhat/dt = -xhat +
    I`` on average. Neuron i receives the input current ``J_i = gain_i e_i
    s_k / R_k + bias_i`` (e_i = +1 or -1). Its steady firing rate as a
    function of J is its *rate curve* (`LIFCurve`, closed form, for ``lif``:
    ``tau_rc dv/dt = -v + J``, spike at v > 1, reset to 0, refractory
    tau_ref; `MeasuredCurve` for any other neuron, measured by simulating
    it, `dinv.circuits.neurons`). Gains and biases put each neuron's
    threshold (its intercept) and its rate at ``x = e_i`` (its max rate)
    where the population asks (`nef_parameters`), and the decoders solve a
    regularised least-squares problem on the rates the curve gives.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dinv.errors import InputError
from dinv.hints import ArrayLike, FloatArray, IntArray
from dinv.validation import check_count, check_number


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
    dims = check_count("dims", dims)
    k = check_count("neurons_per_dim", neurons_per_dim, 2)
    scale = check_number("decoder_scale", decoder_scale, low=0, low_open=True) / k
    if not 0 <= spread < 1:
        raise InputError(f"spread must lie in [0, 1), got {spread!r}")
    if not (np.isfinite(cost) and cost >= 0) or not (np.isfinite(noise) and noise >= 0):
        raise InputError(f"cost and noise must be non-negative, got {cost!r} and {noise!r}")
    magnitude = scale * (1.0 + rng.uniform(-spread, spread, dims * k))
    return SCNParameters(decoder=_signs(dims, k) * magnitude,
                         dim_index=dimension_index(dims, k),
                         mu=float(cost) * scale ** 2, noise=float(noise) * scale)


# --------------------------------------------------------------------------
# rate curves: a neuron's steady firing rate against its input current
# --------------------------------------------------------------------------


def lif_rate(current: ArrayLike, tau_rc: float, tau_ref: float) -> FloatArray:
    """Steady firing rate (Hz) of a LIF neuron with threshold 1 for input ``current``."""
    current = np.asarray(current, dtype=float)
    rate = np.zeros_like(current)
    above = current > 1.0
    rate[above] = 1.0 / (tau_ref + tau_rc * np.log1p(1.0 / (current[above] - 1.0)))
    return rate


class RateCurve(Protocol):
    """A neuron's steady firing rate (Hz) against its input current, for the tuning
    (`nef_parameters`): `LIFCurve` (closed form) or `MeasuredCurve`."""

    @property
    def silent(self) -> float:
        """A current at which the neurons stay silent."""

    def threshold(self, neurons: IntArray) -> FloatArray:
        """The current at which each of ``neurons`` starts to fire."""

    def current_at(self, rate: FloatArray, neurons: IntArray) -> FloatArray:
        """The current at which each of ``neurons`` fires at ``rate``."""

    def rates_at(self, current: FloatArray, neurons: IntArray) -> FloatArray:
        """Rates of ``neurons`` (rows of ``current``) at ``current``."""

    def check(self, max_rates: tuple[float, float]) -> None:
        """Refuse max rates the curve cannot give, with one line that names the fix."""


@dataclass(frozen=True)
class LIFCurve:
    """The closed-form rate curve of a LIF neuron (threshold 1, reset 0).

    ``tau_rc dv/dt = -v + J``: no spikes for J <= 1, else the rate
    ``1 / (tau_ref + tau_rc log(1 + 1 / (J - 1)))`` (`lif_rate`).

    Attributes
    ----------
    tau_rc, tau_ref : float
        Membrane time constant and refractory period (second).
    """

    tau_rc: float
    tau_ref: float

    @property
    def max_rate(self) -> float:
        """The rate no current reaches (Hz): 1 / tau_ref."""
        return 1.0 / self.tau_ref

    silent = 0.0
    """A current at which the neuron stays silent."""

    def threshold(self, neurons: IntArray) -> FloatArray:
        """The current at which each of ``neurons`` starts to fire (1)."""
        return np.ones(len(neurons))

    def current_at(self, rate: FloatArray, neurons: IntArray) -> FloatArray:
        """The current at which each of ``neurons`` fires at ``rate`` (Hz, per neuron)."""
        return 1.0 / (1.0 - np.exp((self.tau_ref - 1.0 / rate) / self.tau_rc))

    def rates_at(self, current: FloatArray, neurons: IntArray | None) -> FloatArray:
        """Rates (Hz) of ``neurons`` (rows of ``current``) at ``current``."""
        return lif_rate(current, self.tau_rc, self.tau_ref)

    def check(self, max_rates: tuple[float, float]) -> None:
        """Refuse max rates the neuron cannot reach (1 / tau_ref or more)."""
        if not max_rates[1] < self.max_rate:
            raise InputError(f"max_rates must be 0 < low <= high < 1/tau_ref = "
                             f"{self.max_rate:g} Hz, got {max_rates!r}")


@dataclass(frozen=True)
class MeasuredCurve:
    """A rate curve measured by simulating a neuron at a grid of constant currents.

    Between grid points the curve is linear; below the grid the neuron is
    silent (the first grid point must be, `check`), above it the curve stays
    at its last rate. ``rates`` holds one curve for every neuron (one row) or
    one row per neuron (neurons whose parameters differ).

    Attributes
    ----------
    currents : ndarray, shape (G,)
        The grid, increasing, in SI units of the neuron's input current.
    rates : ndarray, shape (1, G) or (N, G)
        Steady firing rates (Hz).
    unit : str
        The current's unit, for messages (e.g. ``'nA'``).
    scale : float
        That unit in SI units (e.g. 1e-9): messages give currents in it.
    """

    currents: FloatArray
    rates: FloatArray
    unit: str = "1"
    scale: float = 1.0

    def __hash__(self) -> int:
        return hash((self.currents.tobytes(), self.rates.tobytes(), self.unit, self.scale))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MeasuredCurve) and self.unit == other.unit \
            and self.scale == other.scale and np.array_equal(self.currents, other.currents) \
            and np.array_equal(self.rates, other.rates)

    def label(self, current: float) -> str:
        """A current (SI) in the curve's unit, for messages."""
        return f"{current / self.scale:.4g}" + ("" if self.unit == "1" else f" {self.unit}")

    def _rows(self, neurons: IntArray) -> FloatArray:
        return self.rates[np.zeros(len(neurons), dtype=int) if len(self.rates) == 1
                          else neurons]

    @property
    def silent(self) -> float:
        """A current at which every neuron stays silent: the grid's first."""
        return float(self.currents[0])

    def threshold(self, neurons: IntArray) -> FloatArray:
        """Per neuron of ``neurons``: the last grid current at which it is silent
        before it starts to fire (the curve rises from there)."""
        rows = self._rows(neurons)
        first = np.argmax(rows > 0, axis=1)
        return self.currents[np.maximum(first - 1, 0)]

    def current_at(self, rate: ArrayLike, neurons: IntArray) -> FloatArray:
        """Per neuron: the smallest current at which its curve reaches ``rate`` (Hz)."""
        rows = np.maximum.accumulate(self._rows(neurons), axis=1)
        rate = np.broadcast_to(np.asarray(rate, dtype=float), (len(rows),))
        out = np.empty(len(rows))
        for k, (row, target) in enumerate(zip(rows, rate)):
            top = np.searchsorted(row, target)  # first point at or above the rate
            below = max(top - 1, 0)
            span = row[top] - row[below]
            share = 0.0 if span <= 0 else (target - row[below]) / span
            out[k] = self.currents[below] + share * (self.currents[top] - self.currents[below])
        return out

    def rates_at(self, current: FloatArray, neurons: IntArray) -> FloatArray:
        """Rates (Hz) of ``neurons`` (one row of ``current`` each) at ``current``."""
        current = np.asarray(current, dtype=float)
        rows = self._rows(neurons)
        return np.array([np.interp(c, self.currents, row, left=0.0, right=row[-1])
                         for c, row in zip(current, rows)])

    def check(self, max_rates: tuple[float, float]) -> None:
        """Refuse a curve the tuning cannot use, with one line that names the fix.

        The tuning needs, for every neuron: silence at the grid's first
        current (so that its threshold lies on the grid), a rate of at least
        ``max_rates[1]`` somewhere on the grid, and a curve that does not
        fall between its threshold and that rate.
        """
        high = max_rates[1]
        grid = f"from {self.label(self.currents[0])} to {self.label(self.currents[-1])}"
        for k, row in enumerate(self.rates):
            who = "the neuron" if len(self.rates) == 1 else f"neuron {k}"
            if not np.any(row > 0):
                raise InputError(f"{who} never fires over the current grid ({grid}): raise the "
                                 "grid's upper end (currents=) or check its threshold")
            if row[0] > 0:
                raise InputError(f"{who} already fires at {row[0]:.3g} Hz at the grid's "
                                 f"lowest current {self.label(self.currents[0])}: start the "
                                 "grid (currents=) where it is silent")
            if row.max() < high:
                raise InputError(f"{who} fires at most {row.max():.3g} Hz over the current "
                                 f"grid ({grid}), below the largest max rate {high:g} Hz: "
                                 "raise the grid's upper end or lower max_rates")
            top = int(np.argmax(row >= high))
            used = row[:top + 1]
            peak = np.maximum.accumulate(used)
            fall = peak - used
            tolerance = 0.01 * high + 0.5
            if fall.max() > tolerance:
                worst = int(np.argmax(fall))
                was = int(np.argmax(used[:worst + 1]))
                raise InputError(
                    f"{who}'s rate curve is not monotonic where the tuning needs it: it falls "
                    f"from {used[was]:.3g} Hz at {self.label(self.currents[was])} to "
                    f"{used[worst]:.3g} Hz at {self.label(self.currents[worst])}, below the "
                    f"largest max rate {high:g} Hz; lower max_rates below {used[was]:.3g} Hz "
                    "or change the model")


# --------------------------------------------------------------------------
# NEF tuning: gains, biases and decoders from a rate curve
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class NEFParameters:
    """Neuron parameters of an NEF ensemble (normalised units).

    Attributes
    ----------
    encoder : ndarray, shape (N,)
        +1 or -1 (one-dimensional encoders: ON and OFF halves).
    gain, bias : ndarray, shape (N,)
        Input current ``J = gain * encoder * s / R + bias`` (in the units of
        the neuron's current; threshold 1 for LIF).
    decoder : ndarray, shape (N,)
        Least-squares decoders of the rates (second).
    dim_index : ndarray of int, shape (N,)
    """

    encoder: FloatArray
    gain: FloatArray
    bias: FloatArray
    decoder: FloatArray
    dim_index: IntArray


@dataclass(frozen=True)
class LIFParameters(NEFParameters):
    """`NEFParameters` of LIF neurons, with their time constants.

    Attributes
    ----------
    tau_rc, tau_ref : float
        Membrane time constant and refractory period (second).
    """

    tau_rc: float = 0.02
    tau_ref: float = 0.002


Solver = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A decoder solver: ``(rates (K, m), x (m,)) -> decoders (K,)``."""


def check_tuning(max_rates: Sequence[float],
                 intercepts: Sequence[float]) -> tuple[tuple[float, float], tuple[float, float]]:
    """``max_rates`` and ``intercepts`` as float pairs, checked (the curve checks the
    rest: `LIFCurve.check`, `MeasuredCurve.check`)."""
    try:
        low, high = (float(v) for v in max_rates)
        lo_x, hi_x = (float(v) for v in intercepts)
    except (TypeError, ValueError):
        raise InputError(f"max_rates and intercepts must be pairs of numbers (low, high), got "
                         f"{max_rates!r} and {intercepts!r}") from None
    if not 0 < low <= high or not np.isfinite(high):
        raise InputError(f"max_rates must be 0 < low <= high (Hz), got {max_rates!r}")
    if not -1.0 <= lo_x <= hi_x < 1.0:
        raise InputError(f"intercepts must lie in [-1, 1), got {intercepts!r}")
    return (low, high), (lo_x, hi_x)


def nef_parameters(dims: int, neurons_per_dim: int, rng: np.random.Generator,
                   curve: "RateCurve", max_rates: Sequence[float] = (100.0, 200.0),
                   intercepts: Sequence[float] = (-1.0, 0.9), regularisation: float = 0.1,
                   eval_points: int = 1000,
                   decoders: "Solver | ArrayLike | None" = None) -> NEFParameters:
    """Draw an NEF ensemble per dimension for a rate curve and solve its decoders.

    Per neuron i (encoder e_i = +1 or -1, alternating): a max rate r_i ~
    U(max_rates) and an intercept c_i ~ U(intercepts); with J_th its
    threshold current and J_max the current at which it fires at r_i
    (``curve``), ``gain_i = (J_max - J_th) / (1 - c_i)`` and ``bias_i = J_th -
    gain_i c_i``, so that it starts to fire at ``x = c_i e_i`` and fires at
    r_i at ``x = e_i``. Decoders: regularised least squares on the curve's
    rates at ``eval_points`` values evenly spaced in [-1, 1] (`least_squares`),
    or the user's.

    Parameters
    ----------
    dims, neurons_per_dim, rng
        As in `scn_parameters`.
    curve : LIFCurve or MeasuredCurve
        The neurons' rate curve (a `MeasuredCurve` of one row per neuron:
        neuron i of the ensemble is row i).
    max_rates : (float, float)
        Range (Hz) of the rates at |x| = radius, drawn uniformly.
    intercepts : (float, float)
        Range (units of the radius) of the values where neurons start to fire.
    regularisation : float
        L2 regularisation of the decoders, relative to the largest rate
        (Nengo's ``LstsqL2`` default 0.1).
    eval_points : int
        Evaluation points, evenly spaced in [-1, 1].
    decoders : callable, array_like or None
        None: least squares. A solver ``(rates (K, m), x (m,)) -> (K,)``
        (called per dimension), or decoders (second) of shape (K,) used for
        every dimension.

    Returns
    -------
    NEFParameters
    """
    dims = check_count("dims", dims)
    k = check_count("neurons_per_dim", neurons_per_dim, 2)
    max_rates, intercepts = check_tuning(max_rates, intercepts)
    curve.check(max_rates)
    n = dims * k
    neurons = np.arange(n)
    encoder = _signs(dims, k)
    rate_max = rng.uniform(*max_rates, n)
    intercept = rng.uniform(*intercepts, n)
    j_threshold = curve.threshold(neurons)
    j_max = curve.current_at(rate_max, neurons)
    gain = (j_max - j_threshold) / (1.0 - intercept)
    bias = j_threshold - gain * intercept
    x = np.linspace(-1.0, 1.0, check_count("eval_points", eval_points, 2))
    decoder = np.empty(n)
    fixed = None
    solver = decoders if callable(decoders) else None
    if decoders is not None and solver is None:
        fixed = np.asarray(decoders, dtype=float)
        if fixed.shape != (k,) or not np.all(np.isfinite(fixed)):
            raise InputError(f"decoders must be a solver (rates, x) -> decoders or finite "
                             f"decoders of shape (neurons_per_dim,) = ({k},), got "
                             f"{fixed.shape}")
    for dim in range(dims):
        cells = slice(dim * k, (dim + 1) * k)
        if fixed is not None:
            decoder[cells] = fixed
            continue
        rates = curve.rates_at(gain[cells, None] * encoder[cells, None] * x[None, :]
                               + bias[cells, None], neurons[cells])
        decoder[cells] = least_squares(rates, x, regularisation) if solver is None \
            else _solved(solver, rates, x)
    return NEFParameters(encoder=encoder, gain=gain, bias=bias, decoder=decoder,
                         dim_index=dimension_index(dims, k))


def _solved(solver: "Solver", rates: FloatArray, x: FloatArray) -> FloatArray:
    """A user solver's decoders, checked."""
    decoder = np.asarray(solver(rates, x), dtype=float)
    if decoder.shape != (rates.shape[0],) or not np.all(np.isfinite(decoder)):
        raise InputError(f"the decoder solver must return {rates.shape[0]} finite decoders, "
                         f"got shape {decoder.shape}")
    return decoder


def lif_parameters(dims: int, neurons_per_dim: int, rng: np.random.Generator,
                   max_rates: Sequence[float] = (100.0, 200.0),
                   intercepts: Sequence[float] = (-1.0, 0.9), tau_rc: float = 0.02,
                   tau_ref: float = 0.002, regularisation: float = 0.1,
                   eval_points: int = 1000) -> LIFParameters:
    """`nef_parameters` of LIF neurons (`LIFCurve`).

    Parameters
    ----------
    dims, neurons_per_dim, rng, max_rates, intercepts, regularisation, eval_points
        As in `nef_parameters`.
    tau_rc, tau_ref : float
        Membrane time constant and refractory period (second).

    Returns
    -------
    LIFParameters
    """
    curve = LIFCurve(check_number("tau_rc", tau_rc, low=0, low_open=True),
                     check_number("tau_ref", tau_ref, low=0, low_open=True))
    drawn = nef_parameters(dims, neurons_per_dim, rng, curve, max_rates, intercepts,
                           regularisation, eval_points)
    return LIFParameters(**vars(drawn), tau_rc=curve.tau_rc, tau_ref=curve.tau_ref)


def least_squares(rates: FloatArray, x: FloatArray, regularisation: float) -> FloatArray:
    """Decoders d minimising |d @ rates - x|^2 + m (sigma max rate)^2 |d|^2 (m points).

    Parameters
    ----------
    rates : ndarray, shape (K, m)
        Rates (Hz) of K neurons at m values.
    x : ndarray, shape (m,)
    regularisation : float
        sigma, relative to the largest rate.

    Returns
    -------
    ndarray, shape (K,)
        Decoders (second).
    """
    m = rates.shape[1]
    sigma = regularisation * rates.max()
    gram = rates @ rates.T + m * sigma ** 2 * np.eye(rates.shape[0])
    return np.linalg.solve(gram, rates @ x)
