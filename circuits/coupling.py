"""How a circuit computes its pathways: two strategies with one interface.

``DenseCoupling`` (the default)
    Every pathway is an in-place numpy call on live views of the Brian2
    arrays (``np.matmul(readout, M^T, out=input)``), run by one network
    operation per kind of population: the controller bank just before the
    controllers integrate, the system bank after them and just before the
    systems (``when='groups'``). The controller moves first and the system
    sees the new control signal (semi-implicit Euler, as the authors
    simulate).
``SynapseCoupling``
    Every pathway is a Brian2 ``Synapses`` object with a summed variable, its
    update scheduled just before its target group integrates (the same
    semi-implicit order). Slower; the reference the dense coupling is tested
    against.

Both take pathways out of a run by `activate`: the pathways into inactive
blocks are skipped and those blocks' inputs held at zero.

A population model's ``drive`` (a coupling within the population, e.g. the
gain matrices of a PID controller) runs in the dense coupling's bank of its
kind after the pathways, for every block, active or not (as an element-wise
equation would); the synapse coupling refuses such models.
"""

import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import MappingProxyType
from typing import Any

import numpy as np
from brian2 import NetworkOperation, Synapses, have_same_dimensions, second

from dinv.circuits.brian_internals import live_view, order_summed_updaters
from dinv.circuits.stacked_matmul import stacked_matmul
from dinv.circuits.structure import TAG
from dinv.errors import InputError
from dinv.hints import FloatArray
from dinv.nonlinearities import get_transfer


class Coupling:
    """The interface of a coupling strategy.

    Attributes
    ----------
    objects : list
        Brian2 objects to add to the circuit's Network.
    marks_steps : bool
        Whether the coupling calls the run controller's ``step_started`` at the
        start of every step itself (else the circuit adds a network operation
        that calls ``step_ended`` at the end of every step).
    expansions : dict
        The coupling's network operations, each with the list of calls
        (kept up to date by `activate`) that a step makes in its place once
        the run controller keeps its books between chunks of steps
        (`dinv.circuits.brian_internals.lean_runs`).
    """

    objects: Sequence[Any] = ()
    marks_steps = False
    expansions: Mapping[Any, list[Callable[[], object]]] = MappingProxyType({})
    _matrices: dict[str, FloatArray]
    _matrix_shapes: dict[str, tuple[int, int, int]]
    _gains: dict[str, FloatArray]
    _offsets: dict[str, tuple[FloatArray, FloatArray, Callable[..., Any]]]
    _offset_shapes: dict[str, tuple[int, ...]]

    def set_matrix(self, pathway, M):
        """Use matrices M of shape (n, d_dest, d_source) on a matrix pathway."""
        self._write_matrix(self._matrices[pathway],
                           _shaped(M, self._matrix_shapes[pathway], pathway, "matrices"))

    def set_offset(self, pathway, offset):
        """Use per-sample offsets o on an offset pathway: (n, batch, d_source) for
        ``dest = M (g(o) - g(o - source))``, (n, batch, d_dest) for
        ``dest = g(o) - g(o - M source)``."""
        if pathway not in self._offsets:
            raise InputError(f"pathway {pathway!r} takes no offsets (a linear transfer, or "
                             "built without offset)")
        self._write_offset(pathway, _shaped(offset, self._offset_shapes[pathway], pathway,
                                            "offsets"))

    def set_gain(self, pathway, gain):
        """Use per-sample gains of shape (n, batch, d) on a gain pathway."""
        store = self._gains[pathway]
        gain = np.asarray(gain, dtype=float)
        if gain.shape != store.shape:
            raise InputError(f"pathway {pathway!r} needs gains of shape {store.shape}, "
                             f"got {gain.shape}")
        store[...] = gain

    def activate(self, active):
        """Compute only the pathways into the blocks in ``active``; zero the others' inputs."""
        raise NotImplementedError

    def _write_matrix(self, store, M):
        raise NotImplementedError

    def _write_offset(self, pathway, offset):
        raise NotImplementedError


def _shaped(value, expected, pathway, what):
    """``value`` as a float array of the shape ``expected``, or the `InputError` naming
    the pathway."""
    value = np.asarray(value, dtype=float)
    if value.shape != expected:
        raise InputError(f"pathway {pathway!r} needs {what} of shape {expected}, "
                         f"got {value.shape}")
    return value


def _offset_pathway(p):
    """Whether pathway ``p`` applies its transfer around per-sample offsets."""
    return p.offset is not None and p.transfer != "linear"


class DenseCoupling(Coupling):
    """Pathways as in-place numpy calls in two network operations per step.

    Parameters
    ----------
    structure : Structure
    slots : dict of str to Slot
    readouts : dict of str to ndarray
        Live (n, batch, d) views of every block's readout.
    clock : brian2.Clock
    step_started : callable
        Called without arguments at the start of every step, before any
        pathway (the run controller's bookkeeping of the step before; this
        saves a network operation and a Python call per step).
    compiled : bool
        Compute the matrix pathways with the compiled kernel
        (`dinv.circuits.stacked_matmul`; circuits on the Cython target) rather
        than ``np.matmul`` (the numpy target).
    """

    def __init__(self, structure, slots, readouts, clock, step_started, compiled=True):
        self._structure = structure
        self._compiled = compiled
        self._matrices, self._matrix_shapes, self._gains = {}, {}, {}
        self._offsets, self._offset_shapes = {}, {}
        self._apply, self._inputs = {}, {}
        for p in structure.pathways.values():
            self._build_pathway(p, readouts[p.source], slots[p.dest])
        self._calls: dict[str, list[Callable[[], object]]] = {"controller": [], "system": []}
        self._drives: dict[str, list[Callable[[], object]]] = {"controller": [], "system": []}
        for slot in slots.values():
            drive = slot.block.model.drive
            if drive is not None:
                self._drives[slot.block.kind] += drive.calls(slot.view,
                                                             float(slot.block.tau / second))
        kinds = {b.kind for b in structure.blocks.values()}
        self.marks_steps = "controller" in kinds
        self._step_started = step_started
        self.objects: list[Any] = []
        expansions: dict[Any, list[Callable[[], object]]] = {}
        for kind, order in (("controller", -1), ("system", 1)):
            if kind not in kinds:
                continue
            # Brian2 passes t to a network operation with one argument, so
            # the banks are functions without parameters.
            function = self._controller_bank if kind == "controller" else \
                _bank(self._calls[kind])
            bank = NetworkOperation(function, when="groups", order=order, clock=clock,
                                    name=f"{TAG}_to_{kind}")
            self.objects.append(bank)
            # After the first run the steps call the kernels themselves and the run
            # controller keeps its books between chunks of steps (LeanRun).
            expansions[bank] = self._calls[kind]
        self.expansions = expansions

    def _build_pathway(self, p, src, dst_slot):
        dst = dst_slot.view(self._structure.variable(p))
        self._inputs[p.name] = dst
        if p.kind == "gain":
            gain = np.zeros(dst_slot.shape)
            self._gains[p.name] = gain
            self._apply[p.name] = [partial(np.multiply, src, gain, out=dst)]
            return
        src_block = self._structure.blocks[p.source]
        matrix_t = np.zeros((src_block.n, src_block.width, dst_slot.shape[2]))
        self._matrices[p.name] = matrix_t
        self._matrix_shapes[p.name] = (src_block.n, dst_slot.shape[2], src_block.width)
        fn = get_transfer(p.transfer).g_into
        # partial() of numpy functions: no Python frame per call and step.
        if _offset_pathway(p) and p.offset == "before":
            assert fn is not None  # a nonlinear transfer
            offset, at_offset, tmp = (np.zeros(src.shape) for _ in range(3))
            self._offsets[p.name] = (offset, at_offset, fn)
            self._offset_shapes[p.name] = src.shape
            self._apply[p.name] = [partial(np.subtract, offset, src, out=tmp),
                                   partial(fn, tmp, out=tmp),
                                   partial(np.subtract, at_offset, tmp, out=tmp),
                                   stacked_matmul(tmp, matrix_t, dst, self._compiled)]
        elif _offset_pathway(p):
            assert fn is not None  # a nonlinear transfer
            offset, at_offset, tmp = (np.zeros(dst.shape) for _ in range(3))
            self._offsets[p.name] = (offset, at_offset, fn)
            self._offset_shapes[p.name] = dst.shape
            self._apply[p.name] = [stacked_matmul(src, matrix_t, tmp, self._compiled),
                                   partial(np.subtract, offset, tmp, out=tmp),
                                   partial(fn, tmp, out=tmp),
                                   partial(np.subtract, at_offset, tmp, out=dst)]
        elif fn is None:
            self._apply[p.name] = [stacked_matmul(src, matrix_t, dst, self._compiled)]
        else:
            tmp = np.empty_like(src)
            self._apply[p.name] = [partial(fn, src, out=tmp),
                                   stacked_matmul(tmp, matrix_t, dst, self._compiled)]

    def _write_matrix(self, store, M):
        store[...] = np.swapaxes(M, 1, 2)

    def _write_offset(self, pathway, offset):
        store, at_offset, fn = self._offsets[pathway]
        store[...] = offset
        fn(offset, out=at_offset)

    def activate(self, active):
        """Compute only the pathways into the blocks in ``active``; zero the others' inputs."""
        pathways = self._structure.pathways.values()
        blocks = self._structure.blocks
        for kind, calls in self._calls.items():
            calls[:] = [call for p in pathways if p.dest in active
                        and blocks[p.dest].kind == kind for call in self._apply[p.name]]
            calls += self._drives[kind]
        for p in pathways:
            if p.dest not in active:
                self._inputs[p.name][...] = 0.0

    def _controller_bank(self):
        """Couplings into the controllers; first, the bookkeeping of the step before."""
        self._step_started()
        for call in self._calls["controller"]:
            call()


def _bank(calls):
    """A function running every coupling in ``calls`` (a list kept up to date)."""

    def run_all():
        for call in calls:
            call()

    return run_all


class SynapseCoupling(Coupling):
    """Pathways as Brian2 ``Synapses`` with summed variables.

    Parameters
    ----------
    structure : Structure
    slots : dict of str to Slot
    clock : brian2.Clock
    codeobj_class : type
        Brian2 code-object class (code-generation target).

    Attributes
    ----------
    synapses : dict of str to brian2.Synapses
        By pathway name.
    """

    def __init__(self, structure, slots, clock, codeobj_class):
        for p in structure.pathways.values():
            if _offset_pathway(p) and p.offset == "after":
                raise InputError(f"coupling='synapses' cannot apply the transfer of pathway "
                                 f"{p.name!r} after its sum (the inversion of targets through "
                                 "a nonlinearity); use coupling='dense'")
        for block in structure.blocks.values():
            if block.model.drive is not None:
                raise InputError(f"coupling='synapses' cannot compute the drive of the model "
                                 f"of block {block.name!r} ({block.model.description}); "
                                 "use coupling='dense'")
        self._structure, self._slots = structure, slots
        self._matrices, self._matrix_shapes, self._gains = {}, {}, {}
        self._offsets, self._offset_shapes = {}, {}
        self._switches: dict[str, np.ndarray] = {}
        self.synapses = {}
        for p in structure.pathways.values():
            self.synapses[p.name] = self._build_pathway(p, clock, codeobj_class)
        self.objects = list(self.synapses.values())

    def _build_pathway(self, p, clock, codeobj_class):
        src_slot, dst_slot = self._slots[p.source], self._slots[p.dest]
        n, batch, d_src = src_slot.shape
        d_dst = dst_slot.shape[2]
        readout = src_slot.block.model.readout
        variable = self._structure.variable(p)
        for group, name in ((src_slot.group, readout), (dst_slot.group, variable)):
            if not have_same_dimensions(group.variables[name].dim, 1):
                raise InputError(f"coupling='synapses' needs dimensionless readouts and "
                                 f"inputs, but {name!r} has units; use coupling='dense'")
        pre = src_slot.group[src_slot.range[0]:src_slot.range[1]]
        post = dst_slot.group[dst_slot.range[0]:dst_slot.range[1]]
        transfer = get_transfer(p.transfer).brian
        assert transfer is not None  # every transfer has a Brian2 expression
        if _offset_pathway(p):
            # Per synapse: o, the offset of its presynaptic unit and sample, and g(o).
            expression = f"(g_offset - {transfer.format(x=f'(offset - {readout}_pre)')})"
            extra = "offset : 1\ng_offset : 1\n"
        else:
            expression, extra = transfer.format(x=f"{readout}_pre"), ""
        # ``on`` switches the pathway for the phases of a run: Brian2 fixes which
        # objects run when a run starts, so an object's ``active`` flag set between
        # the phases of one run would not take effect.
        syn = Synapses(
            pre, post,
            model=f"w : 1\non : 1 (shared)\n{extra}"
                  f"{variable}_post = on * w * {expression} : 1 (summed)",
            name=f"{TAG}_{p.name}", clock=clock, namespace={},
            codeobj_class=codeobj_class,
        )
        if p.kind == "gain":
            syn.connect(j="i")
        else:
            i, j = synapse_indices(n, batch, d_src, d_dst)
            syn.connect(i=i, j=j)
        # The summed updater must run just before its target group integrates.
        order_summed_updaters(syn, dst_slot.group.order - 1)
        syn.on = 1.0
        self._switches[p.name] = live_view(syn, "on")
        weights = live_view(syn, "w")
        if p.kind == "gain":
            self._gains[p.name] = weights.reshape(dst_slot.shape)
        else:
            self._matrices[p.name] = weights.reshape(n, batch, d_src, d_dst)
            self._matrix_shapes[p.name] = (n, d_dst, d_src)
        if _offset_pathway(p):
            self._offsets[p.name] = (live_view(syn, "offset").reshape(n, batch, d_src, d_dst),
                                     live_view(syn, "g_offset").reshape(n, batch, d_src, d_dst),
                                     get_transfer(p.transfer).g)
            self._offset_shapes[p.name] = (n, batch, d_src)
        return syn

    def _write_matrix(self, store, M):
        store.reshape(-1)[...] = matrix_to_synapse_weights(M, store.shape[1])

    def _write_offset(self, pathway, offset):
        store, at_offset, g = self._offsets[pathway]
        store[...] = offset[..., None]
        at_offset[...] = g(offset)[..., None]

    def activate(self, active):
        """Compute only the pathways into the blocks in ``active``; zero the others' inputs."""
        for p in self._structure.pathways.values():
            self._switches[p.name][...] = 1.0 if p.dest in active else 0.0
            if p.dest not in active:
                self._slots[p.dest].view(self._structure.variable(p))[...] = 0.0


COUPLINGS = ("dense", "synapses")
"""Names of the coupling strategies."""


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


SYNAPSE_BYTES = 64
"""Memory per synapse of a `SynapseCoupling` (bytes), with a margin.

Brian2 keeps per synapse its weight (8 bytes), the pre- and postsynaptic
indices (4 + 4) and more bookkeeping; building adds the index and weight
arrays of `synapse_indices` and `matrix_to_synapse_weights`. Measured: the
peak resident memory of a process that builds and runs a layer circuit of
10^6, 4 x 10^6 and 8 x 10^6 synapses grows by 45 bytes per synapse (Brian2
2.9, Cython target).
"""

MEMORY_SHARE = 0.5
"""A `SynapseCoupling` may take at most this share of the available memory."""


def available_memory():
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(count):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:.0f} bytes"


def synapse_counts(structure, batch):
    """Synapses of every pathway of ``structure`` under a `SynapseCoupling` (a list).

    A matrix pathway has one per weight, sample and problem
    (n * batch * d_src * d_dst), a gain pathway one per unit (n * batch * d).
    """
    blocks = structure.blocks
    return [blocks[p.source].n * batch * blocks[p.dest].width
            * (1 if p.kind == "gain" else blocks[p.source].width)
            for p in structure.pathways.values()]


def check_synapse_memory(structure, batch, available=None):
    """Refuse a `SynapseCoupling` that would not fit in memory, before building it.

    Parameters
    ----------
    structure : Structure
    batch : int
    available : int or None
        Bytes available (None: `available_memory`).

    Raises
    ------
    InputError
        When the estimate (`synapse_counts` times `SYNAPSE_BYTES`) exceeds
        `MEMORY_SHARE` of the available memory, or a pathway has more
        synapses than Brian2's 32-bit indices count; the message gives the
        estimate and that of the dense coupling.
    """
    counts = synapse_counts(structure, batch)
    count = sum(counts)
    need = count * SYNAPSE_BYTES
    blocks = structure.blocks
    dense = 8 * sum(blocks[p.source].n * blocks[p.source].width * blocks[p.dest].width
                    for p in structure.pathways.values() if p.kind == "matrix")
    dense += 8 * 4 * sum(b.n * batch * b.width for b in blocks.values())
    available = available_memory() if available is None else available
    too_many = max(counts, default=0) > np.iinfo(np.int32).max
    if too_many or (available is not None and need > MEMORY_SHARE * available):
        reason = ("more than Brian2's 32-bit synapse indices can count" if too_many else
                  f"more than half of the {_size(available)} of memory available")
        raise InputError(
            f"coupling='synapses' needs about {_size(need)} for the {count:.3g} synapses "
            f"of this circuit (one per weight, sample and problem), {reason}; use "
            f"coupling='dense' (the default; about {_size(dense)} here)")
