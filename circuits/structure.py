"""What a circuit is made of: blocks, pathways, and where blocks live in Brian2.

- A **block** is one population of width d for n independent problems and
  ``batch`` samples each, an array of shape (n, batch, d), filled by a
  `dinv.circuits.populations.PopulationModel`. Blocks of one model and time
  constant share one Brian2 ``NeuronGroup`` (all systems in one, all
  controllers in another), so a step costs two state updates however many
  blocks there are.
- A **pathway** writes into a block's input (or a controller's target) from
  another block's readout, either through matrices M of shape
  (n, d_dst, d_src) (``matrix``: ``input = M g(source)``, with an optional
  transfer function g, Eq. 14; around per-sample offsets o, a deviation
  from the forward pass through g: ``input = M (g(o) - g(o - source))`` or
  ``input = g(o) - g(o - M source)``) or element-wise with per-sample gains (``gain``:
  ``input = gain * source``, the identity relay of the repeat layer).
- A **phase** of a run says which blocks move (see `dinv.circuits.runner`).
"""

from dataclasses import dataclass, field

import numpy as np
from brian2 import Quantity, have_same_dimensions, ms, second

from dinv.circuits.brian_internals import live_view
from dinv.circuits.populations import PopulationModel
from dinv.errors import InputError
from dinv.nonlinearities import TRANSFERS

TAG = "dinv"
"""Prefix of every Brian2 object name.

Brian2 writes object names into generated code; fixed names let every circuit
reuse the Cython code compiled for the first one (names need only be unique
within one Network).
"""

GROUP_ORDER = {"controller": 0, "system": 2}
"""Scheduling order of the populations: controllers integrate before systems."""


@dataclass(frozen=True)
class Block:
    """One population of a circuit, for n problems and a batch of samples.

    Attributes
    ----------
    name : str
    model : PopulationModel
        Neuron model; its kind (system or controller) is the block's role.
    width : int
        Units per sample, d.
    n : int
        Independent problems (models) settled side by side.
    tau : brian2.Quantity
        Time constant (second).
    """

    name: str
    model: PopulationModel
    width: int
    n: int = 1
    tau: Quantity = field(default_factory=lambda: 10 * ms)

    @property
    def kind(self) -> str:
        """'system' or 'controller', the role of the block's model."""
        return self.model.kind


@dataclass(frozen=True)
class Pathway:
    """A coupling from one block's readout into another block's input.

    Attributes
    ----------
    name : str
    source, dest : str
        Names of the block read and of the block written.
    kind : {'matrix', 'gain'}
        ``dest = M g(source)`` with M of shape (n, d_dest, d_source), or
        ``dest = gain * source`` element-wise, gain of shape (n, batch, d).
    transfer : str
        g, one of `dinv.nonlinearities.TRANSFERS` (matrix pathways only).
    variable : {'input', 'target', 'forward'}
        Which role of the dest block's model is written: its input, (for a
        controller) its target, the error it drives its readout towards, or
        (for a system with two inputs) its forward input.
    offset : {None, 'before', 'after'}
        Matrix pathways with a nonlinear transfer, around per-sample offsets
        o (the forward pass's pre-activation) set by the circuit:
        ``dest = M (g(o) - g(o - source))`` ('before' the matrix: o of shape
        (n, batch, d_source); the source holds a deviation of a pre-activation)
        or ``dest = g(o) - g(o - M source)`` ('after' it: o of shape (n, batch,
        d_dest); the source holds a deviation of an activity). A linear
        transfer ignores the offset.
    """

    name: str
    source: str
    dest: str
    kind: str = "matrix"
    transfer: str = "linear"
    variable: str = "input"
    offset: str | None = None


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
        to read settled states and residuals).
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


class Structure:
    """Validated blocks and pathways, by name.

    Parameters
    ----------
    blocks : sequence of Block
    pathways : sequence of Pathway
    """

    def __init__(self, blocks, pathways):
        self.blocks = {}
        for block in blocks:
            self._check_block(block)
            self.blocks[block.name] = block
        if not self.blocks:
            raise InputError("a circuit needs at least one block")
        self.pathways = {}
        for pathway in pathways:
            self._check_pathway(pathway)
            self.pathways[pathway.name] = pathway

    def _check_block(self, block):
        if block.model.kind not in GROUP_ORDER:
            raise InputError(f"block {block.name!r}: its model's kind must be one of "
                             f"{sorted(GROUP_ORDER)}")
        for label in ("width", "n"):
            value = getattr(block, label)
            if int(value) != value or value < 1:
                raise InputError(f"block {block.name!r}: {label} must be a positive integer, "
                                 f"got {value!r}")
        check_time(block.tau, f"block {block.name!r}: tau")
        if block.name in self.blocks:
            raise InputError(f"two blocks are called {block.name!r}")

    def _check_pathway(self, pathway):
        for end in (pathway.source, pathway.dest):
            if end not in self.blocks:
                raise InputError(f"pathway {pathway.name!r}: no block called {end!r}")
        src, dst = self.blocks[pathway.source], self.blocks[pathway.dest]
        if src.n != dst.n:
            raise InputError(f"pathway {pathway.name!r} joins blocks with different n")
        if pathway.kind not in ("matrix", "gain"):
            raise InputError(f"pathway {pathway.name!r}: kind must be 'matrix' or 'gain'")
        if pathway.kind == "gain" and src.width != dst.width:
            raise InputError(f"gain pathway {pathway.name!r} joins blocks of different widths")
        if pathway.transfer not in TRANSFERS:
            raise InputError(f"pathway {pathway.name!r}: transfer must be one of "
                             f"{list(TRANSFERS)}, got {pathway.transfer!r}")
        if pathway.variable not in ("input", "target", "forward"):
            raise InputError(f"pathway {pathway.name!r}: variable must be 'input', 'target' "
                             "or 'forward'")
        if pathway.variable == "target" and dst.kind != "controller":
            raise InputError(f"pathway {pathway.name!r}: only controllers have a target")
        if pathway.variable == "forward" and dst.model.forward is None:
            raise InputError(f"pathway {pathway.name!r}: the model of block {dst.name!r} has "
                             "no forward input (dinv.circuits.populations.with_forward_input)")
        if pathway.offset not in (None, "before", "after"):
            raise InputError(f"pathway {pathway.name!r}: offset must be None, 'before' or "
                             f"'after', got {pathway.offset!r}")
        if pathway.offset and pathway.kind != "matrix":
            raise InputError(f"pathway {pathway.name!r}: only matrix pathways take offsets")
        key = (pathway.dest, pathway.variable)
        for other in self.pathways.values():
            if (other.dest, other.variable) == key:
                raise InputError(f"pathways {other.name!r} and {pathway.name!r} both write "
                                 f"the {pathway.variable} of block {pathway.dest!r}")

    def variable(self, pathway):
        """Name of the model variable that ``pathway`` writes into."""
        model = self.blocks[pathway.dest].model
        return {"target": model.target, "forward": model.forward}.get(pathway.variable,
                                                                      model.input)

    def fastest_tau(self, kind=None):
        """Smallest time constant of all blocks (or of the blocks of ``kind``)."""
        taus = [b.tau for b in self.blocks.values() if kind is None or b.kind == kind]
        return min(taus, key=lambda tau: float(tau / ms))


class Slot:
    """Where a block lives: its group and its (n, batch, d) slice of it.

    Attributes
    ----------
    block : Block
    group : brian2.NeuronGroup
    shape : tuple of int
        (n, batch, d).
    range : tuple of int
        First and one-past-last neuron of the block in its group.
    """

    def __init__(self, block, group, start, batch):
        size = block.n * batch * block.width
        self.block = block
        self.group = group
        self.shape = (block.n, batch, block.width)
        self.range = (start, start + size)

    def view(self, variable):
        """A live (n, batch, d) view of ``variable`` of the block's neurons."""
        start, stop = self.range
        return live_view(self.group, variable)[start:stop].reshape(self.shape)


def build_groups(structure, batch, clock, codeobj_class):
    """One ``NeuronGroup`` per model and time constant, and a slot per block.

    A shared tau keeps the generated update a multiplication (a per-neuron
    tau costs a division per neuron and step, measured 2x slower at 10^5
    neurons), so blocks with another time constant get a group of their own.
    Groups are named ``dinv_{kind}_{index}``, indexed in order of the models'
    first appearance among the blocks, then of tau.

    Returns
    -------
    groups : dict of (str, int) to brian2.NeuronGroup
        By (kind, index).
    slots : dict of str to Slot
        By block name.
    """
    groups, slots = {}, {}
    blocks = list(structure.blocks.values())
    for kind in ("controller", "system"):
        members = [b for b in blocks if b.kind == kind]
        models = list(dict.fromkeys(b.model for b in members))
        keys = sorted({(models.index(b.model), float(b.tau / second)) for b in members})
        for index, (model_index, tau) in enumerate(keys):
            model = models[model_index]
            inside = [b for b in members
                      if b.model == model and float(b.tau / second) == tau]
            size = sum(b.n * batch * b.width for b in inside)
            group = model.make_group(size, f"{TAG}_{kind}_{index}", clock, GROUP_ORDER[kind],
                                     codeobj_class)
            setattr(group, model.tau, tau * second)
            groups[(kind, index)] = group
            start = 0
            for b in inside:
                slots[b.name] = Slot(b, group, start, batch)
                start += b.n * batch * b.width
    return groups, slots
