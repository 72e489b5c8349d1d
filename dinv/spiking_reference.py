"""A plain numpy Euler loop of one layer pair with rate or spiking populations.

The reference the Brian2 spiking circuits are checked against, and the
baseline their speed is measured against (``benchmarks/spiking_speed.py``).
No Brian2 here. One layer pair (Eqs. 5 and 8), one sample::

    tau_s d(delta)/dt = -delta + B u                   (system, width d_in)
    tau_c du/dt       = -alpha u + W delta - delta_l   (controller, width d_out)

where each population is a rate population (its state is its readout) or
a spiking one (`SCNPopulation`, `LIFPopulation`), as specified in the
docstring of `dinv.spiking`: it represents its variable by a readout
``xhat`` and sees the other population's readout as its input. Write a
population's own dynamics as ``tau dx/dt = f(x)`` with ``f = I - (leak x +
target)`` (system: leak 1, ``I = B xhat_c``, target 0; controller: leak
alpha, ``I = W xhat_s``, target delta_l).

Schedule of one Euler step of length dt, the order of Brian2's schedule
(``groups``, ``thresholds``, ``synapses``, ``resets``) in
`dinv.circuits.standalone`:

1. ``groups``: the controller's input ``W xhat_s`` (readouts at the end of the
   previous step), then the controller's neurons integrate (LIF: their
   current from the readout at the start of the step and this input; the
   neurons' group sorts before its representation group, see
   `dinv.circuits.spiking.scn_neurons`), then the controller integrates:
   per dimension, from the values at the start of the step, its readout
   decays and (SCN) its ideal state y integrates f. Then the system's input
   ``B xhat_c`` from the controller's readout as it now is (decayed, before
   this step's spikes: the semi-implicit order of the rate circuits), and the
   system integrates likewise.
2. ``thresholds``: SCN: the candidates, every neuron with ``V_i > (D_i**2 +
   mu) / 2``; LIF: every neuron with ``v > 1`` that is not refractory spikes.
3. ``synapses``: LIF: the readouts jump by the spikes' decoders. SCN: the
   candidates one after the other (by index), each checked once more
   against the readout that the spikes before it in this step have already
   moved, spike (readout jump ``R D_i``, ``r_i += 1``) only if still above
   threshold. A spike lowers the other neurons' voltages at once, as the
   fast connections of an SCN do; checking all candidates against the same
   readout instead lets several neurons of a dimension fire together, the
   readout overshoots past the opposite neurons' threshold and ON and OFF
   neurons fire in volleys: at 64 neurons per dimension and dt = 10 us that
   raised the rates from 11 to 300 Hz and the error fourfold, and the
   error no longer fell with K (the number of simultaneous crossings grows
   as dt K^2).
4. ``resets``: LIF ``v = 0``, refractory for ``tau_ref`` (Brian2's
   ``timestep`` rule: whole steps).

The arithmetic of each step follows the code Brian2 generates for the
equations of `dinv.circuits.spiking_equations` (which the circuits and
`dinv.circuits.standalone` share) operation by operation (``x + (-dt / tau)
x``, ``f = I - (leak x + target)``, ``V = D ((y - xhat) / R) - mu r``, the
LIF input ``bias + (s e) gain`` with ``s = ((1 - leak tau_syn / tau) xhat +
(tau_syn / tau) (I - target)) / R``, couplings summed in order over the
source's entries), so that the two give the same spikes.

Time averages and the moment-to-moment error use the readouts at the start
of each step of the final ``average_fraction`` of the run (what a Brian2
group integrating them sees).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dinv.errors import InputError
from dinv.hints import ArrayLike, FloatArray, IntArray
from dinv.spiking import LIFParameters, SCNParameters, lif_parameters, scn_parameters

KINDS = ("rate", "scn", "lif")
"""Population kinds: rate (Eqs. 5, 8), spike-coding network, LIF ensemble."""


# --------------------------------------------------------------------------
# population specifications (shared with the Brian2 standalone circuit)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RatePopulation:
    """A rate population: one unit per dimension, its state is its readout."""

    kind = "rate"

    def neurons(self, dims: int) -> int:
        """Number of units of the population for ``dims`` dimensions."""
        return dims


def _radius(radius: ArrayLike, dims: int) -> FloatArray:
    values = np.broadcast_to(np.asarray(radius, dtype=float), (dims,)).copy()
    if not np.all(np.isfinite(values) & (values > 0)):
        raise InputError(f"radius must be positive and finite, got {values!r}")
    return values


@dataclass(frozen=True)
class SCNPopulation:
    """A spike-coding population (`dinv.spiking`, ``scn``).

    Attributes
    ----------
    parameters : SCNParameters
    radius : ndarray, shape (d,)
        Per-dimension radius R_k (the readout jumps by ``R_k D_i``).
    tau_readout : float
        Decay time constant of the readout and of the rate-cost trace (second).
    tau_noise : float
        Correlation time of the Ornstein-Uhlenbeck voltage noise (second);
        unused when the parameters' noise is 0.
    """

    parameters: SCNParameters
    radius: FloatArray
    tau_readout: float = 0.02
    tau_noise: float = 0.002
    kind = "scn"

    def neurons(self, dims: int) -> int:
        return len(self.parameters.decoder)


@dataclass(frozen=True)
class LIFPopulation:
    """A LIF ensemble with decoders (`dinv.spiking`, ``lif``).

    Attributes
    ----------
    parameters : LIFParameters
    radius : ndarray, shape (d,)
    tau_synapse : float
        Time constant of the exponential synapse of the readout (second).
    """

    parameters: LIFParameters
    radius: FloatArray
    tau_synapse: float = 0.01
    kind = "lif"

    def neurons(self, dims: int) -> int:
        return len(self.parameters.decoder)


Population = RatePopulation | SCNPopulation | LIFPopulation
"""A population specification (`make_population`)."""


def make_population(kind: str, dims: int, neurons_per_dim: int = 16, radius: ArrayLike = 1.0,
                    rng: np.random.Generator | int | None = None, tau: float | None = None,
                    **parameters: Any) -> Population:
    """A population specification of ``kind`` for ``dims`` dimensions.

    Parameters
    ----------
    kind : {'rate', 'scn', 'lif'}
    dims : int
    neurons_per_dim : int
        Neurons per dimension K (spiking kinds).
    radius : float or array of shape (dims,)
        Per-dimension radius (spiking kinds).
    rng : numpy.random.Generator or int or None
        Draws the neuron parameters.
    tau : float or None
        ``tau_readout`` (scn) or ``tau_synapse`` (lif) in seconds; None: the default.
    **parameters
        Passed to `dinv.spiking.scn_parameters` or `dinv.spiking.lif_parameters`.
    """
    if kind == "rate":
        return RatePopulation()
    rng = np.random.default_rng(rng)
    timing = {} if tau is None else {"tau_readout" if kind == "scn" else "tau_synapse": tau}
    if kind == "scn":
        return SCNPopulation(scn_parameters(dims, neurons_per_dim, rng, **parameters),
                             _radius(radius, dims), **timing)
    if kind == "lif":
        return LIFPopulation(lif_parameters(dims, neurons_per_dim, rng, **parameters),
                             _radius(radius, dims), **timing)
    raise InputError(f"kind must be one of {KINDS}, got {kind!r}")


def steady_radius(steady: ArrayLike, margin: float = 1.5, per_dim: bool = False,
                  floor: float = 0.1) -> FloatArray:
    """A radius for a population whose steady state is ``steady`` (shape (d,)).

    ``margin`` times the largest |component| (one radius for every
    dimension), or with ``per_dim`` ``margin * |steady_k|`` floored at
    ``floor`` times the largest.
    """
    size = np.abs(np.asarray(steady, dtype=float).ravel())
    top = size.max()
    if not top > 0:
        raise InputError("the steady state is zero: give the radius explicitly")
    if per_dim:
        return margin * np.maximum(size, floor * top)
    return np.full(size.shape, margin * top)


# --------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------


@dataclass
class PopulationRun:
    """What one population did in a run.

    Attributes
    ----------
    mean : ndarray, shape (d,)
        Readout averaged over the final ``average_fraction`` of the run.
    final : ndarray, shape (d,)
        Readout at the end of the run.
    rms_error : float or None
        Moment-to-moment error over the same window, relative:
        ``sqrt(mean_t |xhat(t) - ref|^2) / |ref|``; None without a reference.
    spike_counts : ndarray of int, shape (N,) or None
        Spikes per neuron over the whole run (None for a rate population).
    duration : float
        Simulated time (second).
    trace : ndarray, shape (records, d) or None
        Readouts every ``record_every`` steps (at the start of those steps).
    """

    mean: FloatArray
    final: FloatArray
    rms_error: float | None = None
    spike_counts: IntArray | None = None
    duration: float = 0.0
    trace: FloatArray | None = None

    @property
    def rates(self) -> FloatArray | None:
        """Firing rate of every neuron over the run (Hz); None for a rate population."""
        return None if self.spike_counts is None else self.spike_counts / self.duration

    @property
    def mean_rate_hz(self) -> float | None:
        rates = self.rates
        return None if rates is None else float(rates.mean())

    @property
    def max_rate_hz(self) -> float | None:
        rates = self.rates
        return None if rates is None else float(rates.max())

    @property
    def spikes(self) -> int | None:
        return None if self.spike_counts is None else int(self.spike_counts.sum())


@dataclass
class PairRun:
    """Outcome of `simulate_pair`: the system (delta_{l-1}) and controller (u) runs."""

    system: PopulationRun
    controller: PopulationRun
    t: FloatArray | None = field(default=None)


# --------------------------------------------------------------------------
# the populations' states and their step
# --------------------------------------------------------------------------


class _State(Protocol):
    """The state of a population in the loop, and its step (`_Rate`, `_SCN`, `_LIF`)."""

    readout: FloatArray

    @property
    def spike_counts(self) -> IntArray | None:
        """Spikes per neuron so far (None: a rate population)."""

    def integrate(self, inputs: FloatArray, step: int) -> None:
        """Integrate one step with the other population's readout as input."""

    def threshold(self, step: int) -> IntArray | None:
        """The neurons that cross threshold (None: a rate population)."""

    def transmit(self, spikes: IntArray) -> None:
        """Move the readout by the spikes."""

    def reset(self, spikes: IntArray, step: int) -> None:
        """Reset the neurons that spiked."""


class _Rate:
    """State of a rate population: x is its readout."""

    def __init__(self, spec: RatePopulation, dims: int, leak: float, target: FloatArray | float,
                 tau: float, dt: float, rng: np.random.Generator):
        self.readout = np.zeros(dims)
        self.leak, self.target, self.rate = leak, target, dt / tau
        self.spike_counts = None

    def integrate(self, inputs: FloatArray, step: int) -> None:
        x = self.readout
        x += self.rate * (inputs - (self.leak * x + self.target))

    def threshold(self, step: int) -> IntArray | None:
        return None

    def transmit(self, spikes: IntArray) -> None:
        pass

    def reset(self, spikes: IntArray, step: int) -> None:
        pass


class _SCN:
    """State of a spike-coding population (see `dinv.spiking`)."""

    def __init__(self, spec: SCNPopulation, dims: int, leak: float, target: FloatArray | float,
                 tau: float, dt: float, rng: np.random.Generator):
        p = spec.parameters
        if p.dim_index.max() + 1 != dims:
            raise InputError(f"the SCN parameters represent {p.dim_index.max() + 1} "
                             f"dimensions, the population has {dims}")
        n = len(p.decoder)
        self.readout, self.y = np.zeros(dims), np.zeros(dims)
        self.r, self.eta = np.zeros(n), np.zeros(n)
        self.leak, self.target, self.rate = leak, target, dt / tau
        self.decay = -dt / spec.tau_readout
        self.dim, self.decoder = p.dim_index, p.decoder
        self.radius = spec.radius
        self.jumps = spec.radius[p.dim_index] * p.decoder
        self.mu, self.sigma = p.mu, p.noise
        self.bound = (p.decoder ** 2 + p.mu) / 2
        self.noise_decay = dt / spec.tau_noise
        self.noise_kick = np.sqrt(2 * dt / spec.tau_noise)
        self.rng = rng
        self.spike_counts = np.zeros(n, dtype=np.int64)

    def integrate(self, inputs: FloatArray, step: int) -> None:
        xhat = self.readout
        self.y += self.rate * (inputs - (self.leak * xhat + self.target))
        xhat += self.decay * xhat
        self.r += self.decay * self.r
        if self.sigma:
            self.eta += -self.noise_decay * self.eta \
                + self.noise_kick * self.rng.standard_normal(len(self.eta))

    def _voltage(self, cells: IntArray | None = None) -> FloatArray:
        """V of ``cells`` (None: all), as Brian2 evaluates it: D ((y - xhat) / R) - mu r (+
        sigma eta), from the readout as it is now."""
        error = (self.y - self.readout) / self.radius  # coding_error, per dimension
        if cells is None:
            voltage = self.decoder * error[self.dim] - self.mu * self.r
            return voltage + self.sigma * self.eta if self.sigma else voltage
        voltage = self.decoder[cells] * error[self.dim[cells]] - self.mu * self.r[cells]
        return voltage + self.sigma * self.eta[cells] if self.sigma else voltage

    def threshold(self, step: int) -> IntArray | None:
        """Candidates: neurons above threshold with the readout at the start of the slot."""
        return np.flatnonzero(self._voltage() > self.bound)

    def transmit(self, candidates: IntArray) -> None:
        """One candidate after the other (index order), each checked again against the
        readout its predecessors in the step have moved: a spike moves V of the others
        at once, as the SCN's fast connections do.

        Vectorised over dimensions and candidates: each round evaluates every
        remaining candidate against the readout as it is; per dimension, the
        first one still above threshold spikes and those before it, below
        threshold at their turn, are done; a dimension without one is done.
        Rounds: the most spikes of one dimension in the step (not candidates).
        """
        dims = self.dim[candidates]
        position = np.arange(len(candidates))
        limit = np.empty(len(self.readout), dtype=np.int64)
        while len(candidates):
            above = self._voltage(candidates) > self.bound[candidates]
            limit[dims] = len(self.readout) + position.max() + 1  # a dimension without: done
            firing_dims, first = np.unique(dims[above], return_index=True)
            fired = candidates[above][first]
            limit[firing_dims] = position[above][first]
            self.readout[firing_dims] += self.jumps[fired]
            self.r[fired] += 1.0
            self.spike_counts[fired] += 1
            keep = position > limit[dims]
            candidates, dims, position = candidates[keep], dims[keep], position[keep]

    def reset(self, candidates: IntArray, step: int) -> None:
        pass


class _LIF:
    """State of a LIF ensemble with decoders (see `dinv.spiking`)."""

    def __init__(self, spec: LIFPopulation, dims: int, leak: float, target: FloatArray | float,
                 tau: float, dt: float, rng: np.random.Generator):
        p = spec.parameters
        if p.dim_index.max() + 1 != dims:
            raise InputError(f"the LIF parameters represent {p.dim_index.max() + 1} "
                             f"dimensions, the population has {dims}")
        n = len(p.decoder)
        self.readout = np.zeros(dims)
        self.v = np.zeros(n)
        self.leak, self.target = leak, target
        self.decay = -dt / spec.tau_synapse
        self.mix = spec.tau_synapse / tau
        self.dim = p.dim_index
        self.gain, self.encoder = p.gain, p.encoder
        self.radius = spec.radius
        self.bias = p.bias
        self.membrane = dt / p.tau_rc
        self.refractory_steps = int((p.tau_ref + 1e-3 * dt) / dt)  # Brian2's timestep()
        self.last = np.full(n, -(10 ** 9), dtype=np.int64)
        self.jumps = spec.radius[p.dim_index] * (p.decoder / spec.tau_synapse)
        self.active = np.ones(n, dtype=bool)
        self.spike_counts = np.zeros(n, dtype=np.int64)

    def integrate(self, inputs: FloatArray, step: int) -> None:
        xhat = self.readout
        encoded = ((1.0 - self.mix * self.leak) * xhat
                   + self.mix * (inputs - self.target)) / self.radius
        current = self.bias + (encoded[self.dim] * self.encoder) * self.gain
        np.greater_equal(step - self.last, self.refractory_steps, out=self.active)
        self.v += self.membrane * (current - self.v) * self.active
        xhat += self.decay * xhat

    def threshold(self, step: int) -> IntArray | None:
        return np.flatnonzero((self.v > 1.0) & self.active)

    def transmit(self, spikes: IntArray) -> None:
        np.add.at(self.readout, self.dim[spikes], self.jumps[spikes])

    def reset(self, spikes: IntArray, step: int) -> None:
        self.v[spikes] = 0.0
        self.last[spikes] = step
        self.spike_counts[spikes] += 1


_STATES: dict[str, Callable[..., _State]] = {"rate": _Rate, "scn": _SCN, "lif": _LIF}


# --------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------


def _summed(M: FloatArray, x: FloatArray) -> FloatArray:
    """M x summed in order over x's entries, as Brian2's summed variables add synapses."""
    return np.cumsum(M * x, axis=1)[:, -1]


def _matrix(name: str, M: ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    M = np.asarray(M, dtype=float)
    if M.shape != shape or not np.all(np.isfinite(M)):
        raise InputError(f"{name} must be a finite array of shape {shape}, got {M.shape}")
    return M


def _reference(reference: ArrayLike | None, dims: int) -> FloatArray | None:
    if reference is None:
        return None
    reference = np.asarray(reference, dtype=float).ravel()
    if reference.shape != (dims,):
        raise InputError(f"a reference must have {dims} entries, got {reference.shape}")
    return reference


def simulate_pair(W: ArrayLike, B: ArrayLike, target: ArrayLike, alpha: float,
                  system: Population, controller: Population, tau_system: float = 0.01,
                  tau_controller: float = 0.01, dt: float = 1e-5, duration: float = 0.5,
                  average_fraction: float = 0.2,
                  reference: tuple[ArrayLike, ArrayLike] | None = None,
                  record_every: int | None = None,
                  seed: int | np.random.Generator | None = None) -> PairRun:
    """Simulate one layer pair (Eqs. 5, 8) with rate or spiking populations, in numpy.

    Parameters
    ----------
    W : ndarray, shape (d_out, d_in)
    B : ndarray, shape (d_in, d_out)
    target : ndarray, shape (d_out,) or (1, d_out)
        The error delta_l to invert.
    alpha : float
        Leak of the controller.
    system, controller : RatePopulation, SCNPopulation or LIFPopulation
        The populations (`make_population`).
    tau_system, tau_controller : float
        Time constants (second).
    dt : float
        Euler step (second).
    duration : float
        Simulated time (second); rounded to whole steps.
    average_fraction : float
        Final fraction of the run over which readouts are averaged.
    reference : (array, array) or None
        Reference readouts (delta_{l-1}, u), e.g. the closed form (Eq. 10),
        for the moment-to-moment error.
    record_every : int or None
        Record the readouts every this many steps.
    seed : int or numpy.random.Generator or None
        Voltage noise of SCN populations.

    Returns
    -------
    PairRun
    """
    W = np.asarray(W, dtype=float)
    if W.ndim != 2:
        raise InputError(f"W must be a matrix (d_out, d_in), got shape {W.shape}")
    d_out, d_in = W.shape
    W = _matrix("W", W, (d_out, d_in))
    B = _matrix("B", B, (d_in, d_out))
    target = _matrix("target", np.ravel(target), (d_out,))
    if not (np.isfinite(alpha) and alpha >= 0):
        raise InputError(f"alpha must be a non-negative number, got {alpha!r}")
    if not 0 < average_fraction <= 1:
        raise InputError(f"average_fraction must lie in (0, 1], got {average_fraction!r}")
    for name, spec in (("system", system), ("controller", controller)):
        if getattr(spec, "kind", None) not in _STATES:
            raise InputError(f"{name} must be a population from make_population, got {spec!r}")
    steps = int(round(duration / dt))
    if steps < 1:
        raise InputError(f"duration {duration!r} is shorter than one step dt={dt!r}")
    window = max(1, int(np.ceil(average_fraction * steps)))
    rng = np.random.default_rng(seed)
    pops = (_STATES[controller.kind](controller, d_out, float(alpha), target,
                                     tau_controller, dt, rng),
            _STATES[system.kind](system, d_in, 1.0, 0.0, tau_system, dt, rng))
    ctrl, sys_ = pops
    refs = (_reference(None if reference is None else reference[1], d_out),
            _reference(None if reference is None else reference[0], d_in))
    sums = [np.zeros(d_out), np.zeros(d_in)]
    squares = [0.0, 0.0]
    traces: tuple[list[FloatArray], list[FloatArray]] = ([], [])
    times: list[float] = []
    for step in range(steps):
        if step >= steps - window:
            for k, (pop, ref) in enumerate(zip(pops, refs)):
                sums[k] += pop.readout
                if ref is not None:
                    diff = pop.readout - ref
                    squares[k] += float(diff @ diff)
        if record_every and step % record_every == 0:
            times.append(step * dt)
            for k, pop in enumerate(pops):
                traces[k].append(pop.readout.copy())
        ctrl.integrate(_summed(W, sys_.readout), step)
        sys_.integrate(_summed(B, ctrl.readout), step)
        spikes = [pop.threshold(step) for pop in pops]
        for pop, fired in zip(pops, spikes):
            if fired is not None and len(fired):
                pop.transmit(fired)
        for pop, fired in zip(pops, spikes):
            if fired is not None and len(fired):
                pop.reset(fired, step)
    runs = []
    for k, (pop, ref) in enumerate(zip(pops, refs)):
        rms = None
        if ref is not None:
            rms = float(np.sqrt(squares[k] / window) / np.linalg.norm(ref))
        runs.append(PopulationRun(
            mean=sums[k] / window, final=pop.readout.copy(), rms_error=rms,
            spike_counts=pop.spike_counts, duration=steps * dt,
            trace=np.array(traces[k]) if record_every else None))
    return PairRun(system=runs[1], controller=runs[0],
                   t=np.array(times) if record_every else None)
