"""A spiking neuron written as Brian2 writes one, and its rate curve, measured.

`NeuronModel` holds what Brian2 needs to simulate a neuron (equations with
units, threshold, reset, refractory period, integration method, namespace)
and what the ensemble builder (`dinv.circuits.nef.neuron_population`) needs
beyond it: the name and unit of the variable that receives the input
current, the grid of constant currents over which its **rate curve** (steady
firing rate against current) is measured, its initial state and optional
per-neuron parameter distributions (`Uniform`, `Normal`).

`NeuronModel.rate_curve` measures the curve by simulating the neuron: one
neuron per grid current (and per parameter draw), ``warmup`` to let
adaptation settle, then the rate over ``window`` from its inter-spike
intervals ((spikes - 1) / (last - first spike)), in short Brian2 runs
(numpy target: no compilation; about 10 s on a 2-core machine). A second
run adds the currents at which the first curve reaches evenly spaced rates,
so the curve is fine where it rises steeply (at threshold). The ensemble
builder's measurement also runs the neuron at dt / 2 beside dt and refuses
a step too coarse. Curves are kept in memory
and on disk (``$XDG_CACHE_HOME/dynamic-inversion/rate-curves``, default
``~/.cache/...``), keyed by a hash of everything that defines the
measurement (equations, namespace values, grid, dt, parameter values, the
Brian2 version), so a model is simulated once per machine. A model with a
closed-form curve (``closed_form``, e.g. `dinv.spiking.LIFCurve`) is not
simulated at all.

A malformed model is refused with one line naming the fix
(`dinv.errors.InputError`), never a Brian2 traceback: no threshold; a
current variable missing from the equations, not a parameter, or of another
unit; names the builder needs taken; a neuron that never fires over the
grid, or already fires at its lowest current; a rate curve that does not
reach the requested max rates or falls where the tuning needs it
(`dinv.spiking.MeasuredCurve.check`); a step too coarse (the curves at dt
and dt / 2 are further apart than `DT_TOLERANCE`, or the state becomes
non-finite); any other error Brian2 raises when it builds or runs
the neuron (its first line).
"""

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import brian2
import numpy as np
from brian2 import Equations, Network, NeuronGroup, SpikeMonitor, ms, second
from brian2.units.fundamentalunits import DIMENSIONLESS, get_dimensions

from dinv.circuits.brian_internals import CODEGEN_TARGETS, discard_unrun
from dinv.circuits.populations import KeyedByValue, Settings, hashable
from dinv.circuits.spiking import check_time
from dinv.circuits.spiking_equations import NEF_RESERVED
from dinv.errors import InputError
from dinv.hints import FloatArray, Quantity, Time
from dinv.spiking import LIFCurve, MeasuredCurve
from dinv.validation import check_count

DT_TOLERANCE = 0.03
"""Largest distance of the rate curves at dt and dt / 2 that a model's ``dt`` may give:
per grid point the smaller of the rate difference (relative to the top rate) and the
current difference at that rate (relative to the grid's span)."""

CACHE_VERSION = 2
"""Part of every cache key: bump it when the measurement changes."""

NUMPY_LIMIT = 20000
"""Measurements of up to this many neurons run with Brian2's numpy target (no
compilation), larger ones with Cython."""

_RESERVED = (*NEF_RESERVED, "t", "dt", "i", "N", "lastspike", "not_refractory", "xi")


def _dimensions(value: object) -> Any:
    try:
        return get_dimensions(value)
    except Exception:  # noqa: BLE001 (not a number or quantity at all)
        raise InputError(f"{value!r} is not a number or a Brian2 quantity") from None


def _si(value: Quantity, dim: Any, label: str) -> FloatArray:
    """``value`` (a quantity of dimension ``dim``) as float(s) in SI units."""
    if _dimensions(value) is not dim:
        raise InputError(f"{label} must have the unit of {dim if dim is not DIMENSIONLESS else 1}"
                         f", got {value!r}")
    out = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(out)):
        raise InputError(f"{label} must be finite, got {value!r}")
    return out


class _Distribution(KeyedByValue):
    """A distribution of per-neuron values given by two numbers or quantities of one
    unit (a dataclass's two fields), drawn with ``numpy.random.Generator.<sampler>``;
    draws are SI floats."""

    sampler: ClassVar[str]
    requirement: ClassVar[str]
    weights: ClassVar[tuple[float, float]]

    @staticmethod
    def valid(first: float, second_: float) -> bool:
        """Whether the two values (SI) make a distribution."""
        raise NotImplementedError

    def _fields(self) -> tuple[Any, Any]:
        first, second_ = (getattr(self, f) for f in self.__dataclass_fields__)
        return first, second_

    def __post_init__(self) -> None:
        first, second_ = self._fields()
        if _dimensions(first) is not _dimensions(second_) \
                or not self.valid(*self._parameters()):
            raise InputError(f"{type(self).__name__} needs {self.requirement} of one unit, "
                             f"got {first!r}, {second_!r}")

    def _parameters(self) -> tuple[float, float]:
        """The two values in SI units."""
        first, second_ = self._fields()
        return float(np.asarray(first, dtype=float)), float(np.asarray(second_, dtype=float))

    @property
    def dim(self) -> Any:
        """The values' physical dimensions."""
        return _dimensions(self._fields()[0])

    def middle(self) -> float:
        """The value a single neuron gets (the middle of a uniform range, the mean of a
        normal distribution), SI."""
        first, second_ = self._parameters()
        return self.weights[0] * first + self.weights[1] * second_

    def draw(self, rng: np.random.Generator, n: int) -> FloatArray:
        """``n`` values (SI floats)."""
        return getattr(rng, self.sampler)(*self._parameters(), n)


def _ordered(first: float, second_: float) -> bool:
    return first <= second_


def _spread(first: float, second_: float) -> bool:
    return second_ >= 0


@dataclass(frozen=True, eq=False)
class Uniform(_Distribution):
    """Values drawn uniformly in [low, high), one per neuron.

    ``low`` and ``high`` are numbers or quantities of one unit, e.g.
    ``Uniform(-65 * mV, -50 * mV)`` for membrane potentials spread at rest.
    """

    low: object
    high: object
    sampler, requirement, weights = "uniform", "low <= high", (0.5, 0.5)
    valid = staticmethod(_ordered)


@dataclass(frozen=True, eq=False)
class Normal(_Distribution):
    """Values drawn from a normal distribution of ``mean`` and ``std`` (numbers or
    quantities of one unit), one per neuron."""

    mean: object
    std: object
    sampler, requirement, weights = "normal", "a mean and a std >= 0", (1.0, 0.0)
    valid = staticmethod(_spread)


DISTRIBUTIONS = (Uniform, Normal)


def _value_of(value: object, rng: np.random.Generator, n: int) -> FloatArray:
    """SI floats: a distribution's draw, or a fixed value repeated."""
    if isinstance(value, DISTRIBUTIONS):
        return value.draw(rng, n)
    return np.full(n, float(np.asarray(value, dtype=float)))


def _middle(value: object) -> float:
    return value.middle() if isinstance(value, DISTRIBUTIONS) else float(
        np.asarray(value, dtype=float))


def _pairs(value: Settings, label: str) -> tuple[tuple[str, Any], ...]:
    items = value.items() if isinstance(value, dict) else value
    try:
        return tuple(sorted((str(k), v) for k, v in items))
    except (TypeError, ValueError):
        raise InputError(f"{label} must be a dict or (name, value) pairs, got {value!r}") from None


def _first_line(exc: BaseException) -> str:
    """The first line of the innermost cause of a Brian2 error."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


@dataclass(frozen=True, eq=False)
class NeuronModel(KeyedByValue):
    """A spiking neuron model as Brian2 writes one, with its input current.

    Parameters
    ----------
    equations : str
        Brian2 equations of one neuron, every line with its unit. The input
        current is a parameter line, e.g. ``I : amp``; the ensemble builder
        replaces it by ``I = gain * encoder * s + bias`` (s: the value the
        neuron's population represents, in units of its radius).
    threshold : str
        Brian2 spike condition, e.g. ``'v > 30*mV'``.
    reset : str
        Statements run at each spike ('' for none).
    refractory : brian2.Quantity, str or None
        Refractory period (a time or a Brian2 condition; None: none).
    current : str
        The variable that receives the input current.
    current_unit : brian2.Unit or float
        Its unit, e.g. ``nA``, ``mV/ms``, or 1 for a dimensionless current;
        it must be the unit of the variable's line.
    currents : (brian2.Quantity, brian2.Quantity) or None
        The range of constant currents the rate curve is measured over: from
        a current at which the neuron is silent to one at which it fires
        faster than the largest max rate it is tuned to. Needed unless
        ``closed_form`` is given.
    method : str
        Brian2 integration method (``'euler'``).
    namespace : dict
        Constants of the equations, threshold and reset.
    initial : dict
        State at rest, by variable: a value or a distribution (`Uniform`,
        `Normal`) drawn once per neuron (e.g. membrane potentials spread so
        that neurons do not all fire at once at the start of a run).
        Variables not given start at 0.
    parameters : dict
        Per-neuron parameters of the equations (lines ``a : unit
        (constant)``): a value or a distribution drawn once per neuron. A
        distribution makes every neuron's rate curve its own, measured for
        every neuron of a population when its circuit is built
        (neurons x ``grid_points`` neurons simulated; cached).
    dt : brian2.Quantity
        The step the rate curve is measured at, and the largest step of a
        circuit the model may run in (`dinv.circuits.populations.Ensemble.max_dt`).
    grid_points : int
        Currents of the grid, evenly spaced over ``currents``.
    warmup, window : brian2.Quantity
        Simulated time before the rates are measured (adaptation settles),
        and the time they are measured over.
    closed_form : object or None
        A rate curve in closed form (`dinv.spiking.LIFCurve`): the fast
        path, no simulation.
    description : str
        A name for listings (e.g. ``'Izhikevich, regular spiking'``).
    """

    equations: str
    threshold: str
    reset: str = ""
    refractory: Time | str | None = None
    current: str = "I"
    current_unit: Quantity = 1
    currents: tuple[Quantity, Quantity] | None = None
    method: str = "euler"
    namespace: Settings = ()
    initial: Settings = ()
    parameters: Settings = ()
    dt: Time = field(default_factory=lambda: 0.02 * ms)
    grid_points: int = 200
    warmup: Time = field(default_factory=lambda: 200 * ms)
    window: Time = field(default_factory=lambda: 300 * ms)
    closed_form: LIFCurve | None = None
    description: str = "neuron"

    def __post_init__(self) -> None:
        for label in ("namespace", "initial", "parameters"):
            object.__setattr__(self, label, _pairs(getattr(self, label), label))
        if not isinstance(self.equations, str):
            raise InputError(f"the neuron model's equations must be a string, got "
                             f"{type(self.equations).__name__}")
        try:
            equations = Equations(self.equations)
        except Exception as exc:  # noqa: BLE001 (Brian2 raises several types)
            raise InputError(f"the neuron model's equations do not parse: "
                             f"{_first_line(exc)}") from None
        if not isinstance(self.threshold, str) or not self.threshold.strip():
            raise InputError("the neuron model has no threshold: a spiking neuron needs one, "
                             "e.g. threshold='v > -50*mV'")
        if not isinstance(self.reset, str):
            raise InputError(f"reset must be a string of statements ('' for none), got "
                             f"{self.reset!r}")
        taken = sorted((set(equations.names) | set(dict(self.namespace))) & set(_RESERVED))
        if taken:
            raise InputError(f"the neuron model's equations use {taken}, names the ensemble "
                             f"builder needs; rename them")
        self._check_current(equations)
        self._check_values(equations)
        object.__setattr__(self, "dt", check_time("dt", self.dt) * second)
        object.__setattr__(self, "warmup", check_time("warmup", self.warmup, True) * second)
        object.__setattr__(self, "window", check_time("window", self.window) * second)
        check_count("grid_points", self.grid_points, 8)
        if self.refractory is not None and not isinstance(self.refractory, str):
            check_time("refractory", self.refractory, allow_zero=True)

    def _check_current(self, equations: Any) -> None:
        name = self.current
        if name not in equations.names:
            raise InputError(f"the current variable {name!r} is not in the neuron model's "
                             f"equations (variables: {sorted(equations.names)})")
        line = equations[name]
        if line.type != "parameter" or "shared" in line.flags:
            raise InputError(f"the current variable {name!r} must be a per-neuron parameter, "
                             f"a line '{name} : unit' (the builder makes it gain * encoder * "
                             f"s + bias)")
        unit = _dimensions(self.current_unit)
        if line.dim is not unit:
            raise InputError(f"the current variable {name!r} has the unit of "
                             f"{line.unit!r} in the equations, not of current_unit="
                             f"{self.current_unit!r}; make them agree")
        if self.currents is None:
            if self.closed_form is None:
                raise InputError("give currents=(low, high): the range of constant currents "
                                 "the rate curve is measured over")
            return
        try:
            low, high = self.currents
        except (TypeError, ValueError):
            raise InputError(f"currents must be a pair (low, high), got "
                             f"{self.currents!r}") from None
        low, high = (_si(v, unit, "currents") for v in (low, high))
        if not low < high:
            raise InputError(f"currents must be (low, high) with low < high, got "
                             f"{self.currents!r}")

    def _check_values(self, equations: Any) -> None:
        for label, values in (("initial", self.initial), ("parameters", self.parameters)):
            for name, value in dict(values).items():
                if name not in equations.names or name == self.current:
                    raise InputError(f"{label}: {name!r} is not a variable of the neuron "
                                     f"model's equations (other than its current)")
                line = equations[name]
                if label == "parameters" and (line.type != "parameter"
                                              or "shared" in line.flags):
                    raise InputError(f"parameters: {name!r} must be a per-neuron parameter "
                                     f"line '{name} : unit (constant)'")
                dim = value.dim if isinstance(value, DISTRIBUTIONS) else _dimensions(value)
                if dim is not line.dim:
                    raise InputError(f"{label}: {name!r} has the unit of {line.unit!r}, got "
                                     f"{value!r}")

    # ----------------------------------------------------------- accessors
    @property
    def heterogeneous(self) -> bool:
        """Whether a parameter is drawn per neuron (each neuron its own curve)."""
        return any(isinstance(v, DISTRIBUTIONS) for v in dict(self.parameters).values())

    def current_line_unit(self) -> str:
        """The unit of the current as written in the equations (e.g. ``'amp'``)."""
        match = re.search(rf"^\s*{re.escape(self.current)}\s*:\s*([^(#\n]+)",
                          self.equations, flags=re.MULTILINE)
        if match is None:  # __post_init__ found the line as Brian2 parses it
            raise InputError(f"the current variable {self.current!r} has no line "
                             f"'{self.current} : unit' of its own in the equations")
        return match.group(1).strip()

    def unit_label(self) -> tuple[str, float]:
        """The current's unit for messages, and that unit in SI units."""
        if _dimensions(self.current_unit) is DIMENSIONLESS:
            return "1", float(self.current_unit)
        return str(self.current_unit), float(np.asarray(self.current_unit, dtype=float))

    def grid(self) -> FloatArray:
        """The currents of the rate curve's grid (SI floats)."""
        if self.currents is None:
            raise InputError("this neuron model has a closed-form curve and no current grid")
        dim = _dimensions(self.current_unit)
        low, high = (_si(v, dim, "currents") for v in self.currents)
        return np.linspace(float(low), float(high), self.grid_points)

    def draw_parameters(self, rng: np.random.Generator, n: int) -> dict[str, FloatArray]:
        """Per-neuron parameter values (SI floats, name -> (n,)) drawn from ``rng``."""
        return {name: _value_of(value, rng, n)
                for name, value in dict(self.parameters).items()}

    def draw_initial(self, rng: np.random.Generator, n: int) -> dict[str, FloatArray]:
        """Initial state (SI floats, name -> (n,)), drawn from ``rng`` in name order."""
        return {name: _value_of(value, rng, n) for name, value in dict(self.initial).items()}

    def max_dt(self) -> float:
        """The model's step in seconds."""
        return float(self.dt / second)

    # ---------------------------------------------------------- rate curve
    def rate_curve(self, parameters: dict[str, FloatArray] | None = None,
                   check_dt: bool = False) -> LIFCurve | MeasuredCurve:
        """The neuron's rate curve: its closed form, or measured (cached).

        Parameters
        ----------
        parameters : dict of str to ndarray or None
            Per-neuron parameter values (SI floats, one per neuron, from
            `draw_parameters`): one curve per neuron. None: every neuron
            with the model's fixed parameters (a distribution's middle).
        check_dt : bool
            Also simulate at dt / 2 and refuse a dt too coarse (the ensemble
            builder does, once per model).

        Returns
        -------
        dinv.spiking.LIFCurve or dinv.spiking.MeasuredCurve

        Raises
        ------
        InputError
            When Brian2 cannot build or run the neuron, its state becomes
            non-finite, or (first measurement) dt is too coarse.
        """
        if self.closed_form is not None:
            return self.closed_form
        values = None if parameters is None else {
            name: np.ascontiguousarray(parameters[name], dtype=float)
            for name in dict(self.parameters)}
        key = _cache_key(self, values)
        if key not in _CURVES or (check_dt and not _CURVES[key][1]):
            found = _read_cache(key)
            if found is None or (check_dt and not found[1]):
                found = _measure(self, values, check_dt), check_dt
                _write_cache(key, *found)
            _CURVES[key] = found
        return _CURVES[key][0]


_CURVES: dict[str, tuple[Any, bool]] = {}
"""Rate curves measured in this process, by cache key: (curve, whether dt was checked)."""


def cache_dir() -> Path:
    """Where measured rate curves are kept: ``$XDG_CACHE_HOME/dynamic-inversion/rate-curves``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dynamic-inversion" / "rate-curves"


def _cache_key(neuron: NeuronModel, values: dict[str, FloatArray] | None) -> str:
    fields = tuple(hashable(getattr(neuron, f)) for f in neuron.__dataclass_fields__
                   if f not in ("description", "closed_form"))
    draws = None if values is None else tuple(
        (name, hashlib.sha256(v.tobytes()).hexdigest()) for name, v in values.items())
    text = repr((CACHE_VERSION, brian2.__version__, fields, draws))
    return hashlib.sha256(text.encode()).hexdigest()


def _read_cache(key: str) -> tuple[MeasuredCurve, bool] | None:
    """(curve, whether dt was checked) from the disk cache, or None."""
    path = cache_dir() / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            return (MeasuredCurve(data["currents"], data["rates"], str(data["unit"]),
                                  float(data["scale"])), bool(data["checked"]))
    except (OSError, ValueError, KeyError, EOFError):  # absent or damaged: measure again
        return None


def _write_cache(key: str, curve: MeasuredCurve, checked: bool) -> None:
    """Write a curve atomically; a cache that cannot be written is skipped."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as handle:
            np.savez(handle, currents=curve.currents, rates=curve.rates, unit=curve.unit,
                     scale=curve.scale, checked=checked)
        os.replace(handle.name, folder / f"{key}.npz")
    except OSError:
        pass


def _spike_rates(monitor: Any, size: int, start: float, window: float) -> FloatArray:
    """Per neuron: its rate over [start, start + window] from its inter-spike intervals."""
    i, t = np.asarray(monitor.i[:]), np.asarray(monitor.t_[:])
    late = t >= start
    i, t = i[late], t[late]
    counts = np.bincount(i, minlength=size)
    first = np.full(size, np.inf)
    last = np.full(size, -np.inf)
    np.minimum.at(first, i, t)
    np.maximum.at(last, i, t)
    span = np.where(counts >= 2, last - first, 1.0)
    return np.where(counts >= 2, (counts - 1) / np.maximum(span, 1e-300), counts / window)


def _measure(neuron: NeuronModel, values: dict[str, FloatArray] | None,
             check_dt: bool) -> MeasuredCurve:
    """The rate curve of the neuron (per parameter draw); see the module.

    One neuron per grid current (per draw); for a single neuron model, a
    second run at currents where the first curve reaches evenly spaced
    rates, so that the curve is fine where it rises steeply (at threshold).
    """
    grid = neuron.grid()
    steps = [neuron.max_dt()] + ([neuron.max_dt() / 2] if check_dt else [])
    measured = _simulate(neuron, grid, values, steps)
    unit = neuron.unit_label()
    if check_dt:
        _check_step(neuron, MeasuredCurve(grid, measured[0], *unit),
                    MeasuredCurve(grid, measured[1], *unit))
    rates = measured[0]
    extra = _refined(grid, rates[0], neuron.grid_points) if values is None else np.empty(0)
    if extra.size:
        more = _simulate(neuron, extra, values, steps[:1])[0]
        grid, order = np.unique(np.concatenate([grid, extra]), return_index=True)
        rates = np.concatenate([rates, more], axis=1)[:, order]
    return MeasuredCurve(grid, rates, *unit)


def _refined(grid: FloatArray, row: FloatArray, points: int) -> FloatArray:
    """``points`` currents at which the curve ``row`` (over ``grid``) reaches evenly
    spaced rates between 0 and its top (linear between grid points)."""
    envelope = np.maximum.accumulate(row)
    if envelope[-1] <= 0:
        return np.empty(0)
    targets = np.linspace(0.0, envelope[-1], points + 1)[1:]
    curve = MeasuredCurve(grid, envelope[None])
    return curve.current_at(targets, np.zeros(points, dtype=int))


def _check_step(neuron: NeuronModel, coarse: MeasuredCurve, fine: MeasuredCurve) -> None:
    """Refuse a dt at which the rate curve differs from that at dt / 2.

    Per grid point, the distance of the two curves is the smaller of the
    rate difference (relative to the top rate) and the current difference at
    that rate (relative to the grid's span), so that a steep rise at
    threshold shifted a little does not count as a large rate difference.
    """
    top = max(fine.rates.max(), 1.0)
    span = coarse.currents[-1] - coarse.currents[0]
    row, other = coarse.rates[0], fine.rates[0]
    vertical = np.abs(row - other) / top
    horizontal = np.full(row.shape, np.inf)
    firing = (row > 0) & (row <= other.max())
    if firing.any():
        at = fine.current_at(row[firing], np.zeros(int(firing.sum()), dtype=int))
        horizontal[firing] = np.abs(at - coarse.currents[firing]) / span
    gap = np.minimum(vertical, horizontal)
    worst = int(np.argmax(gap))
    if gap[worst] > DT_TOLERANCE:
        raise InputError(
            f"dt = {neuron.max_dt() * 1e3:g} ms is too coarse for the neuron model: its rate "
            f"at {coarse.label(coarse.currents[worst])} is {row[worst]:.4g} Hz at dt and "
            f"{other[worst]:.4g} Hz at dt / 2 (off by {100 * gap[worst]:.2g} % of its top "
            f"rate {top:.4g} Hz and of the grid; at most {100 * DT_TOLERANCE:g} %); pass a "
            f"smaller dt, e.g. dt={neuron.max_dt() * 1e3 / 2:g}*ms")


def _simulate(neuron: NeuronModel, currents: FloatArray, values: dict[str, FloatArray] | None,
              steps: list[float]) -> list[FloatArray]:
    """Rates (Hz) of one neuron per current (per draw in ``values``) at each step of
    ``steps`` (second): a list of (draws, currents) arrays."""
    draws = 1 if values is None else len(next(iter(values.values())))
    size = draws * len(currents)
    target = CODEGEN_TARGETS["numpy" if size * len(steps) <= NUMPY_LIMIT else "cython"]
    warmup, window = float(neuron.warmup / second), float(neuron.window / second)
    groups: list[Any] = []
    monitors: list[Any] = []
    try:
        network = Network()
        for step in steps:
            group = NeuronGroup(size, neuron.equations, threshold=neuron.threshold,
                                reset=neuron.reset or None,
                                refractory=False if neuron.refractory is None
                                else neuron.refractory,
                                method=neuron.method, namespace=dict(neuron.namespace),
                                dt=step * second, codeobj_class=target, name="rate_curve*")
            for name, value in dict(neuron.initial).items():
                setattr(group, f"{name}_", _middle(value))
            for name, value in dict(neuron.parameters).items():
                setattr(group, f"{name}_", _middle(value) if values is None
                        else np.repeat(values[name], len(currents)))
            setattr(group, f"{neuron.current}_", np.tile(currents, draws))
            groups.append(group)
            monitors.append(SpikeMonitor(group, name="rate_curve_spikes*", codeobj_class=target))
            network.add(group, monitors[-1])
        with np.errstate(all="ignore"):
            network.run((warmup + window) * second)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 (Brian2 raises many types as it builds and runs)
        message = _first_line(exc)
        failed = True
    else:
        failed = False
    if failed:
        # The objects Brian2 could not prepare would each log, when collected, that they
        # never ran: the one line is the error below.
        discard_unrun([*groups, *monitors])
        raise InputError(f"Brian2 cannot simulate the neuron model: {message}")
    finite = [_finite(group, neuron) for group in groups]
    if not finite[0]:
        problem = ("it stays finite at dt / 2: the step is too coarse" if len(steps) > 1
                   and finite[1] else "check its threshold and reset, or pass a smaller dt")
        raise InputError(f"the neuron model's state becomes non-finite at dt = "
                         f"{steps[0] * 1e3:g} ms ({problem})")
    return [_spike_rates(m, size, warmup, window).reshape(draws, len(currents))
            for m in monitors]


def _finite(group: Any, neuron: NeuronModel) -> bool:
    """Whether every state variable of the neuron stayed finite."""
    equations = Equations(neuron.equations)
    return all(np.all(np.isfinite(np.asarray(getattr(group, f"{name}_")[:])))
               for name in equations.diff_eq_names)
