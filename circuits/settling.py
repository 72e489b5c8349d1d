"""Whether a circuit has settled, judged on its populations' readouts alone.

The measure needs no model equations, so it serves every population model
(rate or spiking) alike: at every check (every `CHECK_EVERY` steps, and at
the end of a run) each active block's readout is compared with its value at
the check before. Its **residual** is the largest change per unit of the
block's own time constant, relative to the size of the problem (for a
spiking population the readout judged at checks is its slow copy, see
below)::

    residual = max |r(t) - r(t - T)| / (T / tau) / max(|r|, |target|)

per problem (the maxima run over samples, units and the blocks judged
together; |target| is the largest target of those blocks' controllers). For a
rate model this is the relative rate of change ``|dr/dt| tau / |r|``
averaged over the last interval T; it is near 0 once the circuit has
settled. It serves ``stop_tol`` (end a run early), ``on_unsettled`` (warn or
raise at the end) and the residual of every result.

A spiking population's readout jumps at every spike, so its change between
checks never vanishes. At the checks of a run its slow copy is judged (the
readout low-passed with `dinv.circuits.spiking.FILTER_READOUTS` readout time
constants); at the end, once its averaging window (the last
``average_fraction`` of the run) has closed, its residual is the **drift of
the time average beyond its noise**: per unit, a line fitted to the averages
over eight parts of the window, its change over half the window less four
standard errors (the parts' scatter about the line, i.e. spike noise), per
unit of the block's tau, relative to the size of the problem
(`dinv.circuits.runner.AveragingWindows.drifts`). A spiking circuit that has
settled in the average thus reports a residual near 0, one still drifting
slowly reports its drift. Rate blocks beside spiking ones are judged the
same way, from their readouts at the ends of the parts.
"""

import warnings

import numpy as np

from dinv.errors import CircuitUnstableError, InputError, NotSettledError, NotSettledWarning
from dinv.hints import FloatArray
from dinv.validation import check_on_unsettled

CHECK_EVERY = 50
"""Steps between checks for divergence and, with ``stop_tol``, convergence."""

GROWTH_CHECKS = 6
"""Checks a phase needs before its readouts can be judged to grow."""


class ReadoutChanges:
    """Snapshots of the blocks' readouts at the last two checks.

    Parameters
    ----------
    readouts : dict of str to ndarray
        Live (n, batch, d) views of each block's readout.
    step_size : dict of str to float
        One step in units of each block's own time constant.
    watch_growth : collection of str
        Blocks whose change per problem is kept at every check, for `grows`
        (one pass over their readouts per check).
    """

    def __init__(self, readouts, step_size, watch_growth=()):
        self._readouts = readouts
        self._step_size = step_size
        self.watch_growth = frozenset(watch_growth)
        self._history: dict[str, list[FloatArray]] = {name: [] for name in readouts}
        self._last = {name: np.empty_like(r) for name, r in readouts.items()}
        self._before = {name: np.empty_like(r) for name, r in readouts.items()}
        self._last_step: dict[str, int | None] = dict.fromkeys(readouts)
        self._before_step: dict[str, int | None] = dict.fromkeys(readouts)

    def restart(self, names, step):
        """Blocks ``names`` start (from rest) at ``step``: forget their history."""
        for name in names:
            np.copyto(self._last[name], self._readouts[name])
            self._last_step[name] = step
            self._before_step[name] = None
            self._history[name] = []

    def check(self, names, step):
        """Snapshot the readouts of ``names`` at ``step`` (a check)."""
        for name in names:
            if self._last_step[name] == step:
                continue
            self._before[name], self._last[name] = self._last[name], self._before[name]
            np.copyto(self._last[name], self._readouts[name])
            self._before_step[name] = self._last_step[name]
            self._last_step[name] = step
            if name in self.watch_growth:
                self._history[name].append(self.rate(name, step))

    def rate(self, name, step):
        """Largest change of a block's readout per unit of its tau, per problem (n,).

        Over the interval from the last check to ``step``; when ``step`` is
        that check, over the interval before it.
        """
        last, before = self._last_step[name], self._before_step[name]
        if last is None:
            raise InputError(f"block {name!r} has not run yet: run the circuit first")
        if step != last:
            new, old, span = self._readouts[name], self._last[name], step - last
        elif before is not None:
            new, old = self._last[name], self._before[name]
            span = last - before
        else:
            return np.zeros(self._readouts[name].shape[0])
        change = np.abs(new - old).max(axis=(1, 2))
        return change / (span * self._step_size[name])

    def residual(self, names, step, scales, drifts=None):
        """Residual per problem of the blocks ``names`` (all of one n), see the module.

        Parameters
        ----------
        names : collection of str
        step : int
            The step now.
        scales : ndarray, shape (n,)
            Size of each problem's input (the largest target).
        drifts : dict or None
            Spiking blocks with a closed averaging window: by name, their
            change per unit of tau (n,) and their averaged readout (used in
            place of the change of the judged readout and of the readout).

        Returns
        -------
        ndarray, shape (n,)
        """
        worst = np.zeros_like(scales, dtype=float)
        size = np.array(scales, dtype=float)
        drifts = drifts or {}
        for name in names:
            if name in drifts:
                rate, values = drifts[name]
            else:
                rate, values = self.rate(name, step), self._readouts[name]
            worst = np.maximum(worst, rate)
            size = np.maximum(size, np.abs(values).max(axis=(1, 2)))
        return worst / np.maximum(size, np.finfo(float).tiny)


    def grows(self, names, n):
        """Per problem (n,): whether a readout of ``names`` grows (see `growing`).

        Judges the blocks in ``watch_growth``; False for the others.
        """
        result = np.zeros(n, dtype=bool)
        for name in names:
            if self._history[name]:
                result |= growing(np.array(self._history[name]))
        return result


def growing(changes):
    """Whether the changes of a readout between checks keep rising, per problem.

    Parameters
    ----------
    changes : ndarray, shape (checks, n)
        Largest change per unit of tau over each check interval of a phase.

    Returns
    -------
    ndarray of bool, shape (n,)
        True where, after the first third of the phase (start-up transients),
        the last change is the largest, more than twice the smallest, and
        the last three rose one after the other: a mode that grows rather
        than decays. A settling circuit's changes fall.
    """
    changes = np.asarray(changes, dtype=float)
    if changes.shape[0] < GROWTH_CHECKS:
        return np.zeros(changes.shape[1:], dtype=bool)
    window = changes[changes.shape[0] // 3:]
    last = window[-1]
    return ((last >= window.max(axis=0)) & (last > 2.0 * window.min(axis=0))
            & (window[-1] > window[-2]) & (window[-2] > window[-3]))


def unsettled_message(residual, steps, settle_tol, abscissa=np.nan, grows=False):
    """One line saying why a run ended unsettled, and what to change.

    Parameters
    ----------
    residual : float
        The run's final residual (> ``settle_tol``).
    steps : int
        Steps of the run.
    settle_tol : float
    abscissa : float
        Largest real part of the eigenvalues of the circuit's Jacobian (units
        of 1 / tau_system); NaN where it was not computed.
    grows : bool
        Whether the readouts were seen to grow (`growing`).
    """
    if abscissa > 0:
        return (f"the circuit is unstable (largest real eigenvalue of its Jacobian "
                f"{abscissa:+.2g} > 0): its state grows instead of settling, and more steps "
                "make it worse; use a larger alpha or stable feedback (B = -W^T is always "
                "stable)")
    if grows:
        return (f"the readouts grow (relative rate of change {residual:.2g} after {steps} "
                "steps, rising at every recent check): the circuit looks unstable; use a "
                "larger alpha, stable feedback, a slower controller or a smaller dt")
    stable = (f"; it is stable (largest real eigenvalue {abscissa:.2g}), only slow"
              if np.isfinite(abscissa) else "")
    return (f"the circuit has not settled after {steps} steps (relative rate of change "
            f"{residual:.2g} > settle_tol={settle_tol:g}){stable}; run more steps, use a "
            "larger alpha or a slower controller")


def unstable_problems(residual, settle_tol, abscissa=None, grows=None):
    """Per problem: unsettled and found unstable (abscissa > 0, or growing readouts)."""
    residual = np.asarray(residual, dtype=float)
    found = np.zeros(residual.shape, dtype=bool)
    if abscissa is not None:
        found |= np.asarray(abscissa) > 0
    if grows is not None:
        found |= np.asarray(grows, dtype=bool)
    return found & (residual > settle_tol)


def report_unsettled(residual, steps, settle_tol, on_unsettled, abscissa=None, grows=None,
                     labels=None):
    """Warn or raise, per ``on_unsettled``, when a residual exceeds ``settle_tol``.

    Parameters
    ----------
    residual : float or ndarray, shape (n,)
        Final residual per problem.
    steps : int
    settle_tol : float
    on_unsettled : {'warn', 'raise', 'ignore'}
    abscissa, grows : ndarray of shape (n,) or None
        Per problem, as in `unsettled_message` (NaN / False where unknown).
    labels : sequence of str or None
        Per problem, the prefix of its message (e.g. the model's name).

    Raises
    ------
    CircuitUnstableError
        With 'raise', when the reported problem is unstable.
    NotSettledError
        With 'raise', when it has only not settled yet (both are
        `CircuitDivergedError`).
    """
    check_on_unsettled(on_unsettled)
    residual = np.atleast_1d(np.asarray(residual, dtype=float))
    short = residual > settle_tol
    if on_unsettled == "ignore" or not short.any():
        return
    abscissa = (np.full(residual.shape, np.nan) if abscissa is None
                else np.atleast_1d(np.asarray(abscissa, dtype=float)))
    grows = (np.zeros(residual.shape, dtype=bool) if grows is None
             else np.atleast_1d(np.asarray(grows, dtype=bool)))
    unstable = unstable_problems(residual, settle_tol, abscissa, grows)
    # Report an unstable problem first (the most unstable), else the least settled.
    if unstable.any():
        key = np.where(unstable, np.nan_to_num(abscissa, nan=0.0), -np.inf)
        k = int(np.argmax(np.where(key == key.max(), residual, -np.inf)))
    else:
        k = int(np.argmax(residual))
    message = unsettled_message(residual[k], steps, settle_tol, abscissa[k], grows[k])
    if labels is not None and labels[k]:
        message = f"{labels[k]}: {message}"
    if not unstable[k]:
        message += "; or accept unsettled circuits with on_unsettled='ignore'"
    if on_unsettled == "raise":
        raise (CircuitUnstableError if unstable[k] else NotSettledError)(message)
    warnings.warn(message, NotSettledWarning, stacklevel=3)
