"""Whether a circuit has settled, judged on its populations' readouts alone.

The measure needs no model equations, so it serves every population model
(rate or spiking) alike: at every check (every `CHECK_EVERY` steps, and at
the end of a run) each active block's readout is compared with its value at
the check before. Its **residual** is the largest change per unit of the
block's own time constant, relative to the size of the problem::

    residual = max |r(t) - r(t - T)| / (T / tau) / max(|r|, |target|)

per problem (the maxima run over samples, units and the blocks judged
together; |target| is the largest target of those blocks' controllers). For a
rate model this is the relative rate of change ``|dr/dt| tau / |r|``
averaged over the last interval T; it is near 0 once the circuit has
settled. It serves ``stop_tol`` (end a run early), ``on_unsettled`` (warn or
raise at the end) and the residual of every result.
"""

import warnings

import numpy as np

from dinv.errors import CircuitDivergedError, InputError, NotSettledWarning
from dinv.validation import check_on_unsettled

CHECK_EVERY = 50
"""Steps between checks for divergence and, with ``stop_tol``, convergence."""


class ReadoutChanges:
    """Snapshots of the blocks' readouts at the last two checks.

    Parameters
    ----------
    readouts : dict of str to ndarray
        Live (n, batch, d) views of each block's readout.
    step_size : dict of str to float
        One step in units of each block's own time constant.
    """

    def __init__(self, readouts, step_size):
        self._readouts = readouts
        self._step_size = step_size
        self._last = {name: np.empty_like(r) for name, r in readouts.items()}
        self._before = {name: np.empty_like(r) for name, r in readouts.items()}
        self._last_step = dict.fromkeys(readouts)
        self._before_step = dict.fromkeys(readouts)

    def restart(self, names, step):
        """Blocks ``names`` start (from rest) at ``step``: forget their history."""
        for name in names:
            np.copyto(self._last[name], self._readouts[name])
            self._last_step[name] = step
            self._before_step[name] = None

    def check(self, names, step):
        """Snapshot the readouts of ``names`` at ``step`` (a check)."""
        for name in names:
            if self._last_step[name] == step:
                continue
            self._before[name], self._last[name] = self._last[name], self._before[name]
            np.copyto(self._last[name], self._readouts[name])
            self._before_step[name] = self._last_step[name]
            self._last_step[name] = step

    def rate(self, name, step):
        """Largest change of a block's readout per unit of its tau, per problem (n,).

        Over the interval from the last check to ``step``; when ``step`` is
        that check, over the interval before it.
        """
        if self._last_step[name] is None:
            raise InputError(f"block {name!r} has not run yet: run the circuit first")
        if step != self._last_step[name]:
            new, old, span = self._readouts[name], self._last[name], step - self._last_step[name]
        elif self._before_step[name] is not None:
            new, old = self._last[name], self._before[name]
            span = self._last_step[name] - self._before_step[name]
        else:
            return np.zeros(self._readouts[name].shape[0])
        change = np.abs(new - old).max(axis=(1, 2))
        return change / (span * self._step_size[name])

    def residual(self, names, step, scales):
        """Residual per problem of the blocks ``names`` (all of one n), see the module.

        Parameters
        ----------
        names : collection of str
        step : int
            The step now.
        scales : ndarray, shape (n,)
            Size of each problem's input (the largest target).

        Returns
        -------
        ndarray, shape (n,)
        """
        worst = np.zeros_like(scales, dtype=float)
        size = np.array(scales, dtype=float)
        for name in names:
            worst = np.maximum(worst, self.rate(name, step))
            size = np.maximum(size, np.abs(self._readouts[name]).max(axis=(1, 2)))
        return worst / np.maximum(size, np.finfo(float).tiny)


def report_unsettled(worst, steps, settle_tol, on_unsettled):
    """Warn or raise, per ``on_unsettled``, when the residual ``worst`` exceeds ``settle_tol``."""
    check_on_unsettled(on_unsettled)
    if worst <= settle_tol or on_unsettled == "ignore":
        return
    message = (
        f"the circuit has not settled after {steps} steps (relative rate of change "
        f"{worst:.2g} > settle_tol={settle_tol:g}); run more steps, use a larger alpha "
        "or a slower controller, or pass on_unsettled='ignore'"
    )
    if on_unsettled == "raise":
        raise CircuitDivergedError(message)
    warnings.warn(message, NotSettledWarning, stacklevel=3)
