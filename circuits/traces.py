"""Recorded states of a run: one type for every circuit and architecture."""

from dataclasses import dataclass

import numpy as np

from dinv.hints import FloatArray, IntArray


@dataclass(frozen=True)
class Traces:
    """Readouts recorded every ``record_every`` steps of one run.

    Item access gives the arrays by name: ``traces['t']``, ``traces['phase']``
    and ``traces[block]``. A run of several phases (a sequential chain)
    records twice at each switch: the end of one phase, then the start of the
    next; `phases` splits the records by phase.

    Attributes
    ----------
    t : ndarray, shape (records,)
        Time since the start of the run, in units of the circuit's reference
        time constant (tau_system of a layer; the fastest system of a chain).
    phase : ndarray of int, shape (records,)
        Index of the phase each record belongs to.
    states : dict of str to ndarray
        Per block, its readout, shape (records, n, batch, d); NaN in the
        records of phases in which the block is not simulated.
    active : tuple of tuple of str
        The blocks simulated in each phase.
    """

    t: FloatArray
    phase: IntArray
    states: dict[str, FloatArray]
    active: tuple[tuple[str, ...], ...]

    def __getitem__(self, key: str) -> FloatArray | IntArray:
        if key == "t":
            return self.t
        if key == "phase":
            return self.phase
        try:
            return self.states[key]
        except KeyError:
            raise KeyError(f"no traces of {key!r}; recorded: {sorted(self.states)}") from None

    def __contains__(self, key: object) -> bool:
        return key in ("t", "phase") or key in self.states

    def keys(self) -> list[str]:
        """``'t'``, ``'phase'`` and the recorded block names."""
        return ["t", "phase", *self.states]

    def phases(self) -> "list[Traces]":
        """One `Traces` per phase: its records, time from its start, its blocks only."""
        parts = []
        for index, names in enumerate(self.active):
            keep = np.flatnonzero(self.phase == index)
            t = self.t[keep]
            parts.append(Traces(t - t[0] if t.size else t, np.zeros(keep.size, dtype=int),
                                {name: self.states[name][keep] for name in names},
                                (tuple(names),)))
        return parts

    def select(self, names: dict[str, str], phases: int | None = None,
               time_scale: float = 1.0) -> "Traces":
        """The traces of some blocks, renamed, over the first ``phases`` phases.

        Parameters
        ----------
        names : dict of str to str
            New name to recorded block name.
        phases : int or None
            Keep the records of phases 0 .. phases - 1 (None: all).
        time_scale : float
            Factor applied to ``t`` (a change of time unit).

        Returns
        -------
        Traces
        """
        count = len(self.active) if phases is None else phases
        keep = np.flatnonzero(self.phase < count)
        renamed = {old: new for new, old in names.items()}
        active = tuple(tuple(renamed[b] for b in blocks if b in renamed)
                       for blocks in self.active[:count])
        return Traces(self.t[keep] * time_scale, self.phase[keep],
                      {new: self.states[old][keep] for new, old in names.items()}, active)
