"""Circuits assembled from blocks of rate populations joined by pathways.

Every circuit of the package (one layer, a sequential chain, the repeat-layer
and the single-loop architectures) is a `CircuitAssembly`:

- a **block** is one population of width d for n independent problems and
  ``batch`` samples each, an array of shape (n, batch, d). Blocks of one kind
  share one Brian2 ``NeuronGroup`` (all systems in one, all controllers in
  another), so a step costs two state updates however many blocks there are;
  blocks with another time constant get a group of their own;
- a **pathway** writes into a block's input (or a controller's target) from
  another block's state, either through matrices M of shape (n, d_dst, d_src)
  (``matrix``: ``input = M g(source)``, with an optional transfer function g,
  Eq. 14) or element-wise with per-sample gains (``gain``:
  ``input = gain * source``, the identity relay of the repeat layer).

Pathways into controllers are computed just before the controllers integrate
and pathways into systems just before the systems integrate, after the
controllers (``when='groups'``): the controller moves first and the system
sees the new control signal (semi-implicit Euler, as the authors simulate).

A run activates a set of blocks: their pathways are computed, the others are
skipped (their inputs are held at zero; their populations still integrate, at
the cost of an element-wise update), so the phases of a sequential chain share
one Network and one Brian2 run.
"""

import gc
import warnings
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from brian2 import Clock, Network, NetworkOperation, Quantity, Synapses, have_same_dimensions
from brian2 import ms, second
from brian2.codegen.runtime.cython_rt import CythonCodeObject
from brian2.codegen.runtime.numpy_rt import NumpyCodeObject

from dinv.errors import CircuitDivergedError, InputError, NotSettledWarning
from dinv.nonlinearities import TRANSFERS, get_transfer
from dinv.circuits.populations import CONTROLLER, SYSTEM

CODE_TARGETS = {"cython": CythonCodeObject, "numpy": NumpyCodeObject}
COUPLINGS = ("dense", "synapses")
ON_UNSETTLED = ("warn", "raise", "ignore")
KINDS = ("system", "controller")
SCHEDULE = ("start", "groups", "thresholds", "synapses", "resets", "end")
"""Brian2's default schedule, set explicitly on every circuit's Network."""

# Brian2 writes object names into generated code; fixed names let every
# assembly reuse the Cython code compiled for the first one (names need only be
# unique within one Network).
TAG = "dinv"
CHECK_EVERY = 50
"""Steps between checks for divergence and, with ``stop_tol``, convergence."""


@dataclass(frozen=True)
class Block:
    """One population of a circuit, for n problems and a batch of samples.

    Attributes
    ----------
    name : str
    kind : {'system', 'controller'}
        Fast rate population (Eq. 5) or leaky-integral controller (Eq. 8).
    width : int
        Units per sample, d.
    n : int
        Independent problems (models) settled side by side.
    tau : brian2.Quantity
        Time constant (second).
    """

    name: str
    kind: str
    width: int
    n: int = 1
    tau: Quantity = field(default_factory=lambda: 10 * ms)


@dataclass(frozen=True)
class Pathway:
    """A coupling from one block's state into another block's input.

    Attributes
    ----------
    name : str
    source, target : str
        Block names.
    kind : {'matrix', 'gain'}
        ``target = M g(source)`` with M of shape (n, d_target, d_source), or
        ``target = gain * source`` element-wise, gain of shape (n, batch, d).
    transfer : str
        g, one of `dinv.nonlinearities.TRANSFERS` (matrix pathways only).
    variable : {'input', 'target'}
        Which variable of the target block is written: its input, or (for a
        controller) its target, the error it drives its readout towards.
    """

    name: str
    source: str
    target: str
    kind: str = "matrix"
    transfer: str = "linear"
    variable: str = "input"


@dataclass
class Phase:
    """One phase of a run: which blocks move, and what happens at its edges.

    Attributes
    ----------
    steps : int
        Euler steps of the phase.
    active : collection of str
        Blocks simulated (the others keep zero input).
    start : callable or None
        Called before the phase's first step (e.g. to set targets).
    end : callable or None
        Called after its last step, while its pathways are still active (e.g.
        to read settled states and rates).
    """

    steps: int
    active: object
    start: object = None
    end: object = None


def check_time(value, name):
    """Raise `InputError` unless ``value`` is one positive finite time."""
    ok = (
        isinstance(value, Quantity)
        and have_same_dimensions(value, second)
        and np.size(value) == 1
        and bool(np.isfinite(float(value / ms)) and float(value / ms) > 0)
    )
    if not ok:
        raise InputError(f"{name} must be a positive time, e.g. 10*ms; got {value!r}")


class _Slot:
    """Where a block lives: its group and its (n, batch, d) views."""

    def __init__(self, block, group, model, start, batch):
        size = block.n * batch * block.width
        self.block = block
        self.group = group
        self.model = model
        self.shape = (block.n, batch, block.width)
        self.range = (start, start + size)

    def view(self, variable):
        start, stop = self.range
        return self.group.variables[variable].get_value()[start:stop].reshape(self.shape)


class CircuitAssembly:
    """Blocks and pathways built into one named Brian2 ``Network``.

    Parameters
    ----------
    blocks : sequence of Block
    pathways : sequence of Pathway
    batch : int
        Samples per problem.
    dt : float
        Euler step in units of the smallest time constant of any population
        (the paper: 0.5, with equal time constants).
    coupling : {'dense', 'synapses'}
        Pathways as in-place matmuls in network operations (default), or as
        Brian2 ``Synapses`` with summed variables.
    target : {'cython', 'numpy'}
        Brian2 code-generation target of the populations.
    system_model, controller_model : PopulationModel
        Neuron models of the two kinds of population.
    divergence_limit : float
        A state larger than this times the largest target is divergence.
    """

    def __init__(self, blocks, pathways, batch=1, dt=0.5, coupling="dense", target="cython",
                 system_model=SYSTEM, controller_model=CONTROLLER, divergence_limit=1e8):
        if int(batch) != batch or batch < 1:
            raise InputError(f"batch must be a positive integer, got {batch!r}")
        if coupling not in COUPLINGS:
            raise InputError(f"coupling must be one of {list(COUPLINGS)}, got {coupling!r}")
        if target not in CODE_TARGETS:
            raise InputError(f"target must be one of {sorted(CODE_TARGETS)}, got {target!r}")
        if not (np.isfinite(dt) and dt > 0):
            raise InputError(f"dt must be a positive number (in units of tau), got {dt!r}")
        self.batch = int(batch)
        self.divergence_limit = float(divergence_limit)
        self.blocks = {}
        for block in blocks:
            self._check_block(block)
            self.blocks[block.name] = block
        self.pathways = {}
        for pathway in pathways:
            self._check_pathway(pathway)
            self.pathways[pathway.name] = pathway
        self.models = {"system": system_model, "controller": controller_model}
        codeobj = CODE_TARGETS[target]
        # The Euler step is a fraction of the fastest population's time
        # constant: a faster controller needs a finer step to stay stable.
        fastest = min((b.tau for b in blocks), key=lambda tau: float(tau / ms))
        self.dt = float(dt)
        self.tau_unit = fastest
        self.clock = Clock(dt=self.dt * fastest, name=f"{TAG}_clock")
        # One NeuronGroup per kind and time constant: a shared tau keeps the
        # generated update a multiplication (a per-neuron tau costs a division
        # per neuron and step, measured 2x slower at 10^5 neurons).
        self.groups, self.slots = {}, {}
        for order, kind in ((0, "controller"), (2, "system")):
            model = self.models[kind]
            taus = sorted({float(b.tau / second) for b in blocks if b.kind == kind})
            for index, tau in enumerate(taus):
                members = [b for b in blocks if b.kind == kind and float(b.tau / second) == tau]
                size = sum(b.n * self.batch * b.width for b in members)
                group = model.make_group(size, f"{TAG}_{kind}_{index}", self.clock, order,
                                         codeobj)
                setattr(group, model.tau, tau * second)
                self.groups[(kind, index)] = group
                start = 0
                for b in members:
                    self.slots[b.name] = _Slot(b, group, model, start, self.batch)
                    start += b.n * self.batch * b.width
        self._states = {name: s.view(s.model.state) for name, s in self.slots.items()}
        self._targets = {name: s.view("target") for name, s in self.slots.items()
                         if s.block.kind == "controller"}
        self._alphas = {name: s.view("alpha") for name, s in self.slots.items()
                        if s.block.kind == "controller"}
        self._matrices, self._gains = {}, {}
        self._record, self._records = (), []
        self._record_every = 0
        self._step = 0
        self.steps_run = 0
        self._stop_tol = None
        self._stopped_at = None
        self._limit = np.inf
        self._diverged_at = None
        self._active = frozenset()
        self._frozen_code = False
        self._phases, self._phase_ends = [], []
        self._bank_count = 0
        self._next_event = 1
        objects = list(self.groups.values())
        if coupling == "dense":
            self._build_dense()
            objects += self._banks
        else:
            self._build_synapses(codeobj)
            objects += list(self.synapses.values())
        # Bookkeeping after every step (traces, divergence, phase switches).
        # With dense coupling it rides on the first network operation of each
        # step, which saves one Python call per step; otherwise it has its own.
        self._watched_by_bank = coupling == "dense" and "controller" in {k for k, _ in
                                                                         self.groups}
        if not self._watched_by_bank:
            objects.append(NetworkOperation(self._watch, when="end", clock=self.clock,
                                            name=f"{TAG}_watch"))
        self.network = Network(*objects, name=f"{TAG}_network")
        # An explicit schedule (the default one): Brian2 otherwise reads it from
        # its preferences several times per run, a measurable cost per run.
        self.network.schedule = list(SCHEDULE)
        # Each Network.run calls gc.collect(), which costs tens of ms per run
        # (measured: 97 ms against 12 ms per short run in a process holding
        # Brian2, scipy and matplotlib). Objects alive now are long-lived, so
        # move them out of the collector's view; an assembly dropped later is
        # only freed after gc.unfreeze() (the circuit caches do this).
        gc.collect()
        gc.freeze()

    # ----------------------------------------------------------------- checks
    def _check_block(self, block):
        if block.kind not in KINDS:
            raise InputError(f"block {block.name!r}: kind must be one of {KINDS}")
        for label in ("width", "n"):
            value = getattr(block, label)
            if int(value) != value or value < 1:
                raise InputError(f"block {block.name!r}: {label} must be a positive integer, "
                                 f"got {value!r}")
        check_time(block.tau, f"block {block.name!r}: tau")
        if block.name in self.blocks:
            raise InputError(f"two blocks are called {block.name!r}")

    def _check_pathway(self, pathway):
        for end in (pathway.source, pathway.target):
            if end not in self.blocks:
                raise InputError(f"pathway {pathway.name!r}: no block called {end!r}")
        src, dst = self.blocks[pathway.source], self.blocks[pathway.target]
        if src.n != dst.n:
            raise InputError(f"pathway {pathway.name!r} joins blocks with different n")
        if pathway.kind not in ("matrix", "gain"):
            raise InputError(f"pathway {pathway.name!r}: kind must be 'matrix' or 'gain'")
        if pathway.kind == "gain" and src.width != dst.width:
            raise InputError(f"gain pathway {pathway.name!r} joins blocks of different widths")
        if pathway.transfer not in TRANSFERS:
            raise InputError(f"pathway {pathway.name!r}: transfer must be one of "
                             f"{list(TRANSFERS)}, got {pathway.transfer!r}")
        if pathway.variable == "target" and dst.kind != "controller":
            raise InputError(f"pathway {pathway.name!r}: only controllers have a target")
        if pathway.variable not in ("input", "target"):
            raise InputError(f"pathway {pathway.name!r}: variable must be 'input' or 'target'")
        key = (pathway.target, pathway.variable)
        for other in self.pathways.values():
            if (other.target, other.variable) == key:
                raise InputError(f"pathways {other.name!r} and {pathway.name!r} both write "
                                 f"the {pathway.variable} of block {pathway.target!r}")

    def _variable(self, pathway):
        slot = self.slots[pathway.target]
        return "target" if pathway.variable == "target" else slot.model.input

    # --------------------------------------------------------------- couplings
    def _build_dense(self):
        self._apply = {}
        self._inputs = {}
        for p in self.pathways.values():
            src = self._states[p.source]
            dst = self.slots[p.target].view(self._variable(p))
            self._inputs[p.name] = dst
            if p.kind == "gain":
                gain = np.zeros(self.slots[p.target].shape)
                self._gains[p.name] = gain
                self._apply[p.name] = [partial(np.multiply, src, gain, out=dst)]
                continue
            src_block, dst_block = self.blocks[p.source], self.blocks[p.target]
            matrix_t = np.zeros((src_block.n, src_block.width, dst_block.width))
            self._matrices[p.name] = matrix_t
            fn = get_transfer(p.transfer).g_into
            # partial() of numpy functions: no Python frame per call and step.
            if fn is None:
                self._apply[p.name] = [partial(np.matmul, src, matrix_t, out=dst)]
            else:
                tmp = np.empty_like(src)
                self._apply[p.name] = [partial(fn, src, out=tmp),
                                       partial(np.matmul, tmp, matrix_t, out=dst)]
        self._bank_calls = {"controller": [], "system": []}
        self._banks = []
        kinds = {kind for kind, _ in self.groups}
        for kind, order in (("controller", -1), ("system", 1)):
            if kind not in kinds:
                continue
            # Brian2 passes t to a network operation with one argument, so
            # the banks are functions without parameters.
            function = self._controller_bank if kind == "controller" else \
                _bank(self._bank_calls[kind])
            self._banks.append(NetworkOperation(function, when="groups", order=order,
                                                clock=self.clock, name=f"{TAG}_to_{kind}"))

    def _build_synapses(self, codeobj):
        self.synapses = {}
        for p in self.pathways.values():
            src_slot, dst_slot = self.slots[p.source], self.slots[p.target]
            n, batch, d_src = src_slot.shape
            d_dst = dst_slot.shape[2]
            pre = src_slot.group[src_slot.range[0]:src_slot.range[1]]
            post = dst_slot.group[dst_slot.range[0]:dst_slot.range[1]]
            expression = get_transfer(p.transfer).brian.format(x=f"{src_slot.model.state}_pre")
            syn = Synapses(
                pre, post,
                model=f"w : 1\n{self._variable(p)}_post = w * {expression} : 1 (summed)",
                name=f"{TAG}_{p.name}", clock=self.clock, namespace={},
                codeobj_class=codeobj,
            )
            if p.kind == "gain":
                syn.connect(j="i")
            else:
                i, j = synapse_indices(n, batch, d_src, d_dst)
                syn.connect(i=i, j=j)
            # The summed updater must run just before its target group
            # integrates; Brian2 derives its order from the target, which for
            # a Subgroup ties with the group's own update.
            for updater in syn.summed_updaters.values():
                updater.order = dst_slot.group.order - 1
            self.synapses[p.name] = syn
            weights = syn.variables["w"].get_value()
            if p.kind == "gain":
                self._gains[p.name] = weights.reshape(dst_slot.shape)
            else:
                self._matrices[p.name] = weights.reshape(n, batch, d_src, d_dst)

    # ------------------------------------------------------------- parameters
    def set_matrix(self, pathway, M):
        """Use matrices M of shape (n, d_target, d_source) on a matrix pathway."""
        store = self._matrices[pathway]
        M = np.asarray(M, dtype=float)
        expected = (store.shape[0], store.shape[-1], store.shape[-2])
        if M.shape != expected:
            raise InputError(f"pathway {pathway!r} needs matrices of shape {expected}, "
                             f"got {M.shape}")
        if store.ndim == 4:  # synapses: one copy per sample
            store.reshape(-1)[...] = matrix_to_synapse_weights(M, store.shape[1])
        else:
            store[...] = np.swapaxes(M, 1, 2)

    def set_gain(self, pathway, gain):
        """Use per-sample gains of shape (n, batch, d) on a gain pathway."""
        store = self._gains[pathway]
        gain = np.asarray(gain, dtype=float)
        if gain.shape != store.shape:
            raise InputError(f"pathway {pathway!r} needs gains of shape {store.shape}, "
                             f"got {gain.shape}")
        store[...] = gain

    def set_target(self, block, values):
        """Fix the target (the error delta_l to invert) of a controller block."""
        self._targets[block][...] = values

    def set_alpha(self, block, alpha):
        """Set the leak of each of a controller block's n problems."""
        self._alphas[block][...] = np.asarray(alpha, dtype=float)[:, None, None]

    def state(self, block):
        """A copy of a block's state, shape (n, batch, d)."""
        return self._states[block].copy()

    # -------------------------------------------------------------------- run
    def run(self, steps, active, record=(), record_every=0, stop_tol=None):
        """Reset the active blocks to rest and integrate them for ``steps``.

        Parameters
        ----------
        steps : int
            Euler steps.
        active : collection of str
            Blocks simulated in this run; pathways into other blocks are
            skipped and those blocks' inputs held at zero.
        record : collection of str
            Blocks whose states are recorded every ``record_every`` steps.
        record_every : int
            0: no traces.
        stop_tol : float or None
            End early once the circuit has settled (see `run_phases`).

        Returns
        -------
        dict or None
            Traces: ``'t'`` (in units of the fastest population's tau),
            ``'phase'`` (index of the phase of each record; a phase switch
            records twice: the end of one phase, the start of the next) and
            one array of shape (records, n, batch, d) per recorded block.
        """
        return self.run_phases([Phase(steps, active)], record, record_every, stop_tol)

    def run_phases(self, phases, record=(), record_every=0, stop_tol=None):
        """Integrate several phases in one Brian2 run, from rest.

        Every block active in any phase starts at rest. Phase k simulates its
        own active blocks for its steps; at the switch, ``end`` of the phase
        that finishes and then ``start`` of the next one are called (to read
        settled states and set the next targets), without leaving the run.

        Parameters
        ----------
        phases : sequence of Phase
        record, record_every
            As in `run`.
        stop_tol : float or None
            Convergence criterion (None, the default: every phase runs all its
            steps). Every `CHECK_EVERY` steps the relative rate of change of
            the active blocks (`residual`: the largest |d state/dt| times the
            block's tau over the size of the states and targets, per problem)
            is computed; once it is below ``stop_tol`` for every problem the
            phase ends there and the next one starts. `steps_run` then tells
            how many steps the run took.

        Returns
        -------
        dict or None
            Traces as in `run`, over the whole run.
        """
        if not phases:
            raise InputError("run_phases needs at least one phase")
        for phase in phases:
            if int(phase.steps) != phase.steps or phase.steps < 1:
                raise InputError(f"steps must be a positive integer, got {phase.steps!r}")
        if stop_tol is not None and not (np.isfinite(stop_tol) and stop_tol > 0):
            raise InputError(f"stop_tol must be a positive number or None, got {stop_tol!r}")
        self._stop_tol = stop_tol
        self._stopped_at = None
        used = frozenset().union(*(frozenset(p.active) for p in phases))
        unknown = used - set(self.blocks)
        if unknown:
            raise InputError(f"no blocks called {sorted(unknown)}")
        for name in used:
            self._states[name][...] = 0.0
        self._phases = list(phases)
        self._phase_ends = list(np.cumsum([int(p.steps) for p in phases]))
        self._start_phase(0)
        self._record, self._record_every = tuple(record), int(record_every)
        self._records = []
        self._phase_index = 0
        self._take_record(0)
        self._step = 0
        self._bank_count = 0
        self._next_event = 1
        self._diverged_at = None
        total = int(self._phase_ends[-1])
        self.network.run(total * self.clock.dt, namespace={})
        if self._stopped_at is not None:
            # Dense coupling stops from the first operation of a step, which
            # the populations then complete.
            self.steps_run = self._stopped_at + int(self._watched_by_bank)
        else:
            self.steps_run = total
            if self._watched_by_bank and self._diverged_at is None:
                self._completed(total)
        if not self._frozen_code:
            _reuse_code_objects(self.network)
            self._frozen_code = True
        if self._diverged_at is not None:
            raise CircuitDivergedError(f"circuit diverged after {self._diverged_at} steps")
        if phases[-1].end is not None:
            phases[-1].end()
        if not self._record_every:
            return None
        steps_done, phase_index, states = zip(*self._records)
        traces = {"t": np.asarray(steps_done) * self.dt, "phase": np.asarray(phase_index)}
        for k, b in enumerate(self._record):
            traces[b] = np.stack([s[k] for s in states])
        return traces

    def _schedule_after(self, step):
        events = [(step // CHECK_EVERY + 1) * CHECK_EVERY]
        if self._record_every:
            events.append((step // self._record_every + 1) * self._record_every)
        if len(self._phase_ends) > 1:
            events.append(self._phase_ends[0])
        self._next_event = min(e for e in events if e > step)

    def _take_record(self, step):
        if self._record_every and step % self._record_every == 0:
            self._records.append((step, self._phase_index,
                                  [self._states[b].copy() for b in self._record]))

    def _start_phase(self, index):
        phase = self._phases[index]
        active = frozenset(phase.active)
        # A block joining the run starts from rest (while inactive it may
        # have drifted under an old target).
        for name in active - self._active:
            self._states[name][...] = 0.0
        if active != self._active:
            self._activate(active)
        if phase.start is not None:
            phase.start()
        targets = [np.abs(self._targets[b]).max() for b in active if b in self._targets]
        self._limit = self.divergence_limit * max([1.0] + targets)

    def _activate(self, active):
        live = [p for p in self.pathways.values() if p.target in active]
        if hasattr(self, "_bank_calls"):
            for kind, calls in self._bank_calls.items():
                calls[:] = [call for p in live if self.blocks[p.target].kind == kind
                            for call in self._apply[p.name]]
            for p in self.pathways.values():
                if p.target not in active:
                    self._inputs[p.name][...] = 0.0
        else:
            for p in self.pathways.values():
                self.synapses[p.name].active = p.target in active
                if p.target not in active:
                    self.slots[p.target].view(self._variable(p))[...] = 0.0
        self._active = active

    def _controller_bank(self):
        """Couplings into the controllers; first, the bookkeeping of the step before."""
        self._bank_count += 1
        if self._bank_count > self._next_event:
            self._completed(self._bank_count - 1)
        for call in self._bank_calls["controller"]:
            call()

    def _watch(self):
        self._step += 1
        if self._step >= self._next_event:
            self._completed(self._step)

    def _completed(self, step):
        """Bookkeeping once ``step`` steps are done: traces, divergence, phases.

        Runs only at the steps that need it (`_next_event`); the per-step cost
        is one comparison.
        """
        if self._diverged_at is not None:
            return
        self._take_record(step)
        if step % CHECK_EVERY == 0 or step == 1:
            for name in self._active:
                size = np.abs(self._states[name]).max()
                if not size <= self._limit:  # also catches NaN
                    self._diverged_at = step
                    self.network.stop()
                    return
        if (self._stop_tol is not None and step % CHECK_EVERY == 0
                and step < self._phase_ends[0] and self._settled()):
            if len(self._phase_ends) == 1:
                self._stopped_at = step
                self.network.stop()
                return
            saved = self._phase_ends[0] - step
            self._phase_ends = [end - saved for end in self._phase_ends]
        if len(self._phase_ends) > 1 and step == self._phase_ends[0]:
            finished = self._phases.pop(0)
            self._phase_ends.pop(0)
            if finished.end is not None:
                finished.end()
            self._start_phase(0)
            self._phase_index += 1
            self._take_record(step)  # the new phase's blocks, from rest
        self._schedule_after(step)

    def _settled(self):
        """Whether every problem's active blocks have stopped changing (`stop_tol`)."""
        rates = self.rates()
        # Blocks of one problem stack (same n) are judged together, problem by problem.
        for n in {self.blocks[name].n for name in rates}:
            names = [name for name in rates if self.blocks[name].n == n]
            scales = np.zeros(n)
            for name in names:
                if name in self._targets:
                    scales = np.maximum(scales, np.abs(self._targets[name]).max(axis=(1, 2)))
            worst = residual({name: rates[name] for name in names},
                             {name: self._states[name] for name in names}, scales)
            if not np.all(worst < self._stop_tol):
                return False
        return True

    def rates(self):
        """Time derivatives (times each block's tau) of the active blocks now.

        Recomputes every active pathway from the current states first, so the
        result is the right-hand side of the equations at this state.
        """
        if hasattr(self, "_apply"):
            for p in self.pathways.values():
                if p.target in self._active:
                    for call in self._apply[p.name]:
                        call()
            inputs = {p.target + ":" + p.variable: self._inputs[p.name]
                      for p in self.pathways.values()}
        else:
            inputs = {}
            for p in self.pathways.values():
                slot = self.slots[p.target]
                view = slot.view(self._variable(p))
                src = self._states[p.source]
                fn = get_transfer(p.transfer).g_into
                src = src if fn is None else fn(src, out=np.empty_like(src))
                if p.kind == "gain":
                    view[...] = src * self._gains[p.name]
                else:
                    view[...] = np.matmul(src, self._matrices[p.name][:, 0])
                inputs[p.target + ":" + p.variable] = view
        rates = {}
        for name in self._active:
            block, state = self.blocks[name], self._states[name]
            drive = inputs.get(name + ":input", 0.0)
            if block.kind == "system":
                rates[name] = -state + drive
            else:
                rates[name] = (-self._alphas[name] * state + drive
                               - self._targets[name])
        return rates


def _bank(calls):
    """A function running every coupling in ``calls`` (a list kept up to date)."""

    def run_all():
        for call in calls:
            call()

    return run_all


def synapse_indices(n, batch, d_pre, d_post):
    """Presynaptic and postsynaptic indices of a block-dense connection.

    Synapses are ordered by (problem, sample, pre unit, post unit), the order
    used by `matrix_to_synapse_weights`.

    Returns
    -------
    i, j : ndarray of int
        Source and target neuron indices, relative to the two blocks.
    """
    blocks = np.arange(n * batch)[:, None, None]
    i = blocks * d_pre + np.arange(d_pre)[None, :, None]
    j = blocks * d_post + np.arange(d_post)[None, None, :]
    i, j = np.broadcast_arrays(i, j)
    return i.ravel(), j.ravel()


def matrix_to_synapse_weights(M, batch):
    """Synaptic weights, in `synapse_indices` order, for matrices ``M``.

    Parameters
    ----------
    M : ndarray, shape (n, d_post, d_pre)
        ML-style (post, pre) matrices, one per problem.
    batch : int
        Samples per problem (each gets its own copy of the weights).

    Returns
    -------
    ndarray, shape (n * batch * d_pre * d_post,)
    """
    n, d_post, d_pre = M.shape
    per_problem = np.swapaxes(M, 1, 2)[:, None]
    return np.broadcast_to(per_problem, (n, batch, d_pre, d_post)).ravel()


def synapse_weights_to_matrix(w, n, batch, d_pre, d_post):
    """Inverse of `matrix_to_synapse_weights` (reads sample 0 of each problem)."""
    return np.swapaxes(np.asarray(w).reshape(n, batch, d_pre, d_post)[:, 0], 1, 2)


def _reuse_code_objects(network):
    """Keep the generated code objects of a network's state updaters.

    Brian2 regenerates every code object at the start of each run (about 3 ms
    per object). An assembly never changes its equations, namespace or
    variables between runs, so after the first run the objects are reused.
    """
    for obj in network.objects:
        for contained in [obj] + list(getattr(obj, "contained_objects", [])):
            if getattr(contained, "code_objects", None) and hasattr(contained,
                                                                     "create_code_objects"):
                contained.create_code_objects = _keep_code_objects


def _keep_code_objects(run_namespace):
    """Replacement of ``CodeRunner.create_code_objects`` that keeps the old ones."""


def residual(rates, states, scales):
    """Largest relative rate of change per problem over several blocks.

    Parameters
    ----------
    rates, states : dict of str to ndarray (n, batch, d)
    scales : ndarray, shape (n,)
        Size of the problem's input (e.g. the largest target), compared with
        the size of the states.

    Returns
    -------
    ndarray, shape (n,)
    """
    worst = np.zeros_like(scales)
    size = np.array(scales, dtype=float)
    for name, rate in rates.items():
        worst = np.maximum(worst, np.abs(rate).max(axis=(1, 2)))
        size = np.maximum(size, np.abs(states[name]).max(axis=(1, 2)))
    return worst / np.maximum(size, np.finfo(float).tiny)


def report_unsettled(worst, steps, settle_tol, on_unsettled):
    """Warn or raise, per ``on_unsettled``, when ``worst`` exceeds ``settle_tol``."""
    if on_unsettled not in ON_UNSETTLED:
        raise InputError(f"on_unsettled must be one of {ON_UNSETTLED}, got {on_unsettled!r}")
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
