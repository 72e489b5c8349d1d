"""The run controller of a circuit: phases, stop criterion, divergence, records.

A run integrates a circuit from rest through one or more phases in one Brian2
run. Phase k simulates its own active blocks for its steps; at the switch,
``end`` of the phase that finishes and then ``start`` of the next are called
(to read settled states and set the next targets) without leaving the run.
Bookkeeping (records, checks for divergence and settling, phase switches)
happens only at the steps that need it; the per-step cost is one comparison.

Spiking blocks (`AveragingWindows`): the last ``average_fraction`` of every
phase in which a spiking block is active is its averaging window. At the
window's start the run switches the block's running integral on, snapshots
it at the ends of the window's parts and reads it at the phase's end: the
block's settled state is its time-averaged readout over the window, its
residual the drift of the parts' averages beyond their scatter (spike noise),
and its spike counts since the phase began give its rates. Rate blocks
active beside spiking ones are judged over the same window, from their
readouts at the ends of its parts (the jitter their spiking inputs cause is
noise there too); their settled state is their readout at the end. These
are a few events per phase, none per step; circuits without spiking blocks
have none.
"""

from contextlib import contextmanager

import numpy as np
from brian2 import second
from brian2 import seed as brian_seed

from dinv.circuits.brian_internals import (
    LeanRun,
    direct_step_calls,
    lean_runs,
    reuse_code_objects,
    young_collection_only,
)
from dinv.circuits.settling import CHECK_EVERY, ReadoutChanges
from dinv.circuits.step_loop import run_steps
from dinv.circuits.traces import Traces
from dinv.errors import CircuitDivergedError, InputError
from dinv.hints import FloatArray


class RunController:
    """Runs the phases of a `dinv.circuits.assembly.CircuitAssembly`.

    Parameters
    ----------
    assembly : CircuitAssembly
        The circuit run: its blocks, readouts, targets, coupling and Network.
    watch_growth : collection of str
        Blocks whose readout change is kept at every check, so that `grows`
        can tell an unstable circuit (see `dinv.circuits.settling`).

    Attributes
    ----------
    steps_run : int
        Euler steps of the last run (fewer than asked when ``stop_tol`` ended
        it early).
    """

    def __init__(self, assembly, watch_growth=()):
        self._asm = assembly
        blocks = assembly.structure.blocks
        self._blocks = blocks
        step_size = {name: assembly.dt * float(assembly.tau_unit / b.tau)
                     for name, b in blocks.items()}
        self.changes = ReadoutChanges(assembly.judged, step_size, watch_growth)
        self._step_size = step_size
        self.windows = AveragingWindows(assembly) if assembly.ensembles else None
        self.steps_run = 0
        self._now = 0
        self._count = 0
        self._next_event = 1
        self._active: frozenset[str] = frozenset()
        self._phases, self._phase_ends, self._all_phases = [], [], []
        self._phase_index = 0
        self._record: tuple[str, ...] = ()
        self._records: list[tuple[int, int, list[FloatArray]]] = []
        self._record_every = 0
        self._stop_tol = self._stopped_at = self._diverged_at = None
        self._limit = np.inf
        self._code_kept = False
        self._lean: LeanRun | None = None

    # ----------------------------------------------------------------- public
    def run_phases(self, phases, record=(), record_every=0, stop_tol=None,
                   average_fraction=0.2):
        """Integrate several phases in one Brian2 run, from rest.

        Parameters
        ----------
        phases : sequence of Phase
        record : collection of str
            Blocks whose readouts are recorded every ``record_every`` steps.
        record_every : int
            0: no traces.
        stop_tol : float or None
            Convergence criterion (None: every phase runs all its steps).
            Every `CHECK_EVERY` steps the residual of the active blocks (see
            `dinv.circuits.settling`) is computed per problem; once it is
            below ``stop_tol`` for every problem the phase ends there and the
            next one starts. Not with spiking blocks (their settled value is
            an average over the end of a phase of known length).
        average_fraction : float
            Spiking blocks: the share (0, 1] of each phase, at its end, over
            which the readout is averaged.

        Returns
        -------
        Traces or None
            Time in units of the circuit's fastest time constant.
        """
        if self.windows is not None:
            self.windows.prepare(stop_tol, average_fraction)
        self._start_run(phases, record, record_every, stop_tol)
        total = int(self._phase_ends[-1])
        asm = self._asm
        with young_collection_only(), seeded_noise(asm):
            if self._lean is None:
                asm.network.run(total * asm.clock.dt, namespace={})
            else:
                self._run_chunks(total)
        if self._count < total and self._stopped_at is None and self._diverged_at is None:
            # Brian2's Ctrl-C handler ends a run after the current step: its
            # state is cut short, not settled, so it is never returned.
            raise KeyboardInterrupt(f"the circuit's run was stopped after {self._count} of "
                                    f"{total} steps (Ctrl-C); its state has not settled")
        self._finish_run(total)
        if self.windows is not None and self._diverged_at is None:
            self.windows.close(self.steps_run)
        if self._diverged_at is not None:
            raise CircuitDivergedError(f"circuit diverged after {self._diverged_at} steps")
        if phases[-1].end is not None:
            phases[-1].end()
        return self._traces() if self._record_every else None

    def residual(self, names):
        """Residual per problem (n,) of the blocks ``names`` (of one n) now.

        See `dinv.circuits.settling`; the scale is the largest target of the
        controllers among ``names``.
        """
        targets = self._asm.targets
        n = {self._blocks[name].n for name in names}
        if len(n) != 1:
            raise InputError(f"a residual is per problem: blocks {sorted(names)} have "
                             f"different numbers of problems {sorted(n)}")
        scales = np.zeros(n.pop())
        for name in names:
            if name in targets:
                scales = np.maximum(scales, np.abs(targets[name]).max(axis=(1, 2)))
        drifts = None if self.windows is None else self.windows.drifts(names, self._step_size)
        return self.changes.residual(names, self._now, scales, drifts)

    def average(self, name):
        """Spiking block ``name``: its time-averaged readout over the last window
        (n, batch, d), or None (a rate block, or no window completed)."""
        return None if self.windows is None else self.windows.average(name)

    def statistics(self, names):
        """Spike statistics of the spiking blocks among ``names`` (`AveragingWindows`)."""
        if self.windows is None:
            return {}
        return {name: self.windows.statistics[name] for name in names
                if name in self.windows.statistics}

    def grows(self, names):
        """Per problem (n,): whether a readout of ``names`` (of one n) grew to the end."""
        n = {self._blocks[name].n for name in names}
        if len(n) != 1:
            raise InputError(f"growth is per problem: blocks {sorted(names)} have "
                             f"different numbers of problems {sorted(n)}")
        return self.changes.grows(names, n.pop())

    def step_started(self):
        """Called at the start of every step (dense coupling): bookkeeping of the step before."""
        self._count += 1
        if self._count > self._next_event:
            self._completed(self._count - 1)

    def step_ended(self):
        """Called at the end of every step (when the coupling does not call `step_started`)."""
        self._count += 1
        if self._count >= self._next_event:
            self._completed(self._count)

    # ------------------------------------------------------------------ steps
    def _run_chunks(self, total):
        """The run after the first: chunks of steps in one compiled loop each
        (`dinv.circuits.step_loop`), the books kept between them, at the steps
        that need it (`_next_event`), as `step_started` / `step_ended` keep them
        at every step of a ``Network.run``.

        With a dense coupling (``marks_steps``) the books of step s were kept
        at the start of step s + 1, before its first pathway: a stop there let
        the populations complete step s + 1, which the chunks reproduce; the
        books of the last step are `_finish_run`'s. Ctrl-C ends the run after
        the chunk it arrives in (at most `CHECK_EVERY` steps).
        """
        lean = self._lean
        assert lean is not None  # chunks run after the first run (run_phases)
        marks = self._asm.coupling.marks_steps
        lean.begin()
        try:
            step = 0
            while step < total:
                chunk = min(self._next_event, total) - step
                run_steps(lean.calls(), chunk, lean.timestep, lean.t, lean.dt)
                step += chunk
                self._count = step
                if lean.stopped():  # Ctrl-C
                    break
                if step < total or not marks:
                    self._completed(step)
                if self._stopped_at is not None or self._diverged_at is not None:
                    if marks and step < total:
                        run_steps(lean.calls(), 1, lean.timestep, lean.t, lean.dt)
                        self._count = step + 1
                    break
        finally:
            lean.end()

    def _start_run(self, phases, record, record_every, stop_tol):
        if not phases:
            raise InputError("run_phases needs at least one phase")
        for phase in phases:
            if int(phase.steps) != phase.steps or phase.steps < 1:
                raise InputError(f"steps must be a positive integer, got {phase.steps!r}")
        if stop_tol is not None and not (np.isfinite(stop_tol) and stop_tol > 0):
            raise InputError(f"stop_tol must be a positive number or None, got {stop_tol!r}")
        used = frozenset().union(*(frozenset(p.active) for p in phases))
        unknown = used - set(self._blocks)
        if unknown:
            raise InputError(f"no blocks called {sorted(unknown)}")
        self._stop_tol = stop_tol
        self._stopped_at = None
        self._asm.rest(used)
        self._phases = list(phases)
        self._all_phases = list(phases)
        self._phase_ends = list(np.cumsum([int(p.steps) for p in phases]))
        self._now = 0
        self._start_phase(0)
        self.changes.restart(self._active, 0)
        self._record, self._record_every = tuple(record), int(record_every)
        self._records = []
        self._phase_index = 0
        self._take_record(0)
        self._count = 0
        self._next_event = 1
        self._diverged_at = None

    def _finish_run(self, total):
        marks = self._asm.coupling.marks_steps
        if self._stopped_at is not None:
            # Dense coupling stops from the first operation of a step, which
            # the populations then complete.
            self.steps_run = self._stopped_at + int(marks)
        else:
            self.steps_run = total
            if marks and self._diverged_at is None:
                self._completed(total)
        if not self._code_kept:
            reuse_code_objects(self._asm.network)
            direct_step_calls(self._asm.network)
            self._lean = lean_runs(self._asm.network, self._asm.step_expansions)
            self._code_kept = True
        self._now = self.steps_run

    def _schedule_after(self, step):
        events = [(step // CHECK_EVERY + 1) * CHECK_EVERY]
        if self.windows is not None and self.windows.pending:
            events.append(self.windows.pending[0][0])
        if self._record_every:
            events.append((step // self._record_every + 1) * self._record_every)
        if len(self._phase_ends) > 1:
            events.append(self._phase_ends[0])
        self._next_event = min(e for e in events if e > step)

    def _take_record(self, step):
        if self._record_every and step % self._record_every == 0:
            readouts = self._asm.readouts
            self._records.append((step, self._phase_index,
                                  [readouts[b].copy() for b in self._record]))

    def _start_phase(self, index):
        phase = self._phases[index]
        active = frozenset(phase.active)
        # A block joining the run starts from rest (while inactive it may
        # have drifted under an old target).
        joining = active - self._active
        self._asm.rest(joining)
        if active != self._active:
            self._asm.coupling.activate(active)
            self._active = active
        self.changes.restart(joining, self._now)
        if phase.start is not None:
            phase.start()
        targets = self._asm.targets
        sizes = [np.abs(targets[b]).max() for b in active if b in targets]
        self._limit = self._asm.divergence_limit * max([1.0] + sizes)
        if self.windows is not None:
            self.windows.plan(active, self._now, self._phase_ends[0])

    def _completed(self, step):
        """Bookkeeping once ``step`` steps are done: traces, checks, phase switches.

        Runs only at the steps that need it (`_next_event`).
        """
        if self._diverged_at is not None:
            return
        self._now = step
        if self.windows is not None:
            self.windows.at(step)
        self._take_record(step)
        if step % CHECK_EVERY == 0 or step == 1:
            readouts = self._asm.readouts
            for name in self._active:
                size = np.abs(readouts[name]).max()
                if not size <= self._limit:  # also catches NaN
                    self._diverged_at = step
                    self._asm.network.stop()
                    return
        if step % CHECK_EVERY == 0:
            # Without stop_tol or watched growth only a phase's last two checks matter
            # (its residual is the change between them): the copies before are skipped.
            if (self._stop_tol is not None or self.changes.watch_growth
                    or step >= self._phase_ends[0] - CHECK_EVERY):
                self.changes.check(self._active, step)
            if (self._stop_tol is not None and step < self._phase_ends[0]
                    and self._settled()):
                if len(self._phase_ends) == 1:
                    self._stopped_at = step
                    self._asm.network.stop()
                    return
                saved = self._phase_ends[0] - step
                self._phase_ends = [end - saved for end in self._phase_ends]
        if len(self._phase_ends) > 1 and step == self._phase_ends[0]:
            finished = self._phases.pop(0)
            self._phase_ends.pop(0)
            if self.windows is not None:
                self.windows.close(step)
            if finished.end is not None:
                finished.end()
            self._start_phase(0)
            self._phase_index += 1
            self._take_record(step)  # the new phase's blocks, from rest
        self._schedule_after(step)

    def _settled(self):
        """Whether every problem's active blocks have stopped changing (`stop_tol`)."""
        # Blocks of one problem stack (same n) are judged together, problem by problem.
        for n in {self._blocks[name].n for name in self._active}:
            names = [name for name in self._active if self._blocks[name].n == n]
            if not np.all(self.residual(names) < self._stop_tol):
                return False
        return True

    def _traces(self):
        steps_done, phase_index, states = zip(*self._records)
        phase = np.asarray(phase_index)
        active = tuple(tuple(sorted(p.active)) for p in self._all_phases)
        traces = {}
        for k, name in enumerate(self._record):
            values = np.stack([s[k] for s in states])
            idle = [i for i, names in enumerate(active) if name not in names]
            values[np.isin(phase, idle)] = np.nan
            traces[name] = values
        return Traces(np.asarray(steps_done) * self._asm.dt, phase, traces, active)


class AveragingWindows:
    """Averaging windows and spike statistics of a circuit's spiking blocks.

    Parameters
    ----------
    assembly : CircuitAssembly
        With ``ensembles`` (the neurons by block), ``averages`` (running
        integrals), ``windows`` (their switches) and the clock.

    Attributes
    ----------
    pending : list of (int, str, frozenset)
        Events of the current phase still to come: (step, 'open' or 'mark',
        blocks); marks snapshot the running integral at the ends of the
        window's parts.
    statistics : dict of str to dict
        Per spiking block, over the last phase it was active in: ``spikes``
        (total), ``mean_rate_hz`` and ``max_rate_hz`` (over its neurons that
        are not silenced), ``neurons``, ``silenced``, ``duration_s`` and
        ``counts`` (spikes per neuron, (n, batch, d, neurons_per_dim)).
    """

    def __init__(self, assembly):
        self._asm = assembly
        self.names = frozenset(assembly.ensembles)
        self.fraction = 0.2
        self.pending = []
        self.statistics = {}
        self._phase: tuple[frozenset[str], int] = (frozenset(), 0)
        self._open = {}
        self._averages = {}

    def prepare(self, stop_tol, fraction):
        """Check the run's settings and forget the last run's averages."""
        if stop_tol is not None:
            raise InputError("stop_tol does not apply to circuits with spiking populations "
                             "(their settled value is the average over the last "
                             "average_fraction of a run of fixed length); set steps and "
                             "leave stop_tol=None")
        if not (np.isfinite(fraction) and 0 < fraction <= 1):
            raise InputError(f"average_fraction must lie in (0, 1], got {fraction!r}")
        self.fraction = float(fraction)
        self._averages, self.statistics, self._open, self.pending = {}, {}, {}, []

    def plan(self, active, start, end):
        """A phase of steps [start, end) begins with the blocks ``active``."""
        active = frozenset(active)
        names = active if active & self.names else frozenset()
        self._phase = (names, start)
        self.pending = []
        if not names:
            return
        length = end - start
        width = min(length, max(PARTS, int(round(self.fraction * length))))
        opening = end - width
        for name in names:
            self._averages.pop(name, None)
            self.statistics.pop(name, None)
        # Snapshots at the window's quarters: of the running integral of the
        # spiking blocks, of the readout of the rate blocks beside them.
        marks = sorted({opening + (width * k) // PARTS for k in range(1, PARTS)}
                       - {opening, end})
        self.pending = [(mark, "mark", names) for mark in marks]
        if opening <= start:
            self._start(names, start)
        else:
            self.pending.insert(0, (opening, "open", names))

    def _snapshot(self, name):
        if name in self.names:
            return self._asm.averages[name].copy()
        return self._asm.readouts[name].copy()

    def _start(self, names, step):
        for name in names:
            if name in self.names:
                self._asm.averages[name][...] = 0.0
                self._asm.windows[name][...] = 1.0
            self._open[name] = [(step, self._snapshot(name))]

    def at(self, step):
        """Handle the events due at ``step``."""
        while self.pending and self.pending[0][0] <= step:
            _, what, names = self.pending.pop(0)
            if what == "open":
                self._start(names, step)
            else:
                for name in names:
                    self._open[name].append((step, self._snapshot(name)))

    def close(self, step):
        """The phase ends after ``step`` steps: averages and statistics of its blocks."""
        names, start = self._phase
        dt = float(self._asm.clock.dt / second)
        for name in names:
            marks = self._open.pop(name, None)
            complete = marks is not None and step > marks[0][0]
            if complete:
                marks.append((step, self._snapshot(name)))
            if name not in self.names:
                if complete and len(marks) == PARTS + 1:
                    # A rate block beside spiking ones: its readout at the ends
                    # of the parts stands in for the parts' averages.
                    self._averages[name] = (marks[-1][1], (np.stack([m[1] for m in marks[1:]]),
                                                           (marks[-1][0] - marks[0][0]) / 2))
                continue
            self._asm.windows[name][...] = 0.0
            if complete:
                first = marks[0][0]
                total = marks[-1][1] / ((step - first) * dt)
                self._averages[name] = (total, _parts(marks, dt)
                                        if len(marks) == PARTS + 1 else None)
            self.statistics[name] = self._statistics(name, (step - start) * dt)
        self.pending = []
        self._phase = (frozenset(), step)

    def _statistics(self, name, duration):
        ensemble = self._asm.ensembles[name]
        counts = ensemble.counts(name)
        active = ensemble.active(name)
        live = max(int(active.sum()), 1)
        rates = counts / max(duration, np.finfo(float).tiny)
        return {"spikes": int(counts.sum()), "mean_rate_hz": float(rates[active].sum() / live),
                "max_rate_hz": float(rates.max()), "neurons": int(counts.size),
                "silenced": int(counts.size - active.sum()), "duration_s": float(duration),
                "counts": counts}

    def average(self, name):
        """Time-averaged readout of ``name`` over its last window, or None."""
        found = self._averages.get(name)
        return None if found is None else found[0].copy()

    def drifts(self, names, step_size):
        """For the blocks of ``names`` with a closed window: per problem, the drift of
        the average beyond its noise, per unit of the block's tau, and the average
        (for the residual's scale).

        The window is cut into `PARTS` parts; per unit a straight line is
        fitted to the parts' averages. Its change over half the window, less
        `DRIFT_SIGMAS` standard errors of that change (from the scatter of
        the parts about the line: spike noise), is the drift; a readout still
        settling slowly drifts along the line, spike noise scatters about it.
        Rate blocks beside spiking ones: the same with their readouts at the
        ends of the parts in place of the parts' averages.
        """
        found = {}
        k = np.arange(PARTS) - (PARTS - 1) / 2
        for name in names:
            entry = self._averages.get(name)
            if entry is None or entry[1] is None:
                continue
            parts, half_steps = entry[1]
            slope = np.tensordot(k, parts, axes=1) / (k @ k)
            scatter = parts - parts.mean(axis=0) - k[:, None, None, None] * slope
            sigma = np.sqrt((scatter ** 2).sum(axis=0) / (PARTS - 2) / (k @ k))
            change = (PARTS / 2) * np.maximum(np.abs(slope) - DRIFT_SIGMAS * sigma, 0.0)
            found[name] = (change.max(axis=(1, 2)) / (half_steps * step_size[name]), entry[0])
        return found


PARTS = 8
"""Parts of an averaging window whose averages judge its drift (`AveragingWindows`)."""

DRIFT_SIGMAS = 4.0
"""Standard errors of the fitted drift attributed to spike noise (`AveragingWindows`)."""


def _parts(marks, dt):
    """Averages over the `PARTS` parts of a window from snapshots of its running
    integral ((step, integral) pairs), stacked, and half the window's steps."""
    parts = np.stack([(marks[k + 1][1] - marks[k][1]) / ((marks[k + 1][0] - marks[k][0]) * dt)
                      for k in range(PARTS)])
    return parts, (marks[-1][0] - marks[0][0]) / 2


@contextmanager
def seeded_noise(assembly):
    """Within the block Brian2's random numbers come from the circuit's seed.

    Spike-coding populations with voltage noise draw random numbers from
    Brian2's generator, which the runtime device takes from numpy's global
    one. Each run seeds it with the
    seed of the circuit's first such population (so the same seed gives the
    same spikes, run after run) and gives the caller's numpy state back
    afterwards. Circuits without them leave everything alone.
    """
    seeds = [b.model.ensemble.seed for b in assembly.blocks.values()
             if getattr(b.model.ensemble, "random", False)]
    if not seeds:
        yield
        return
    state = np.random.get_state()
    brian_seed(int(seeds[0]))
    try:
        yield
    finally:
        np.random.set_state(state)
