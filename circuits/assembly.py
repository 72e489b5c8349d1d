"""Circuits assembled from blocks of populations joined by pathways.

Every circuit of the package (one layer, a sequential chain, the repeat-layer
and the single-loop architectures) is a `CircuitAssembly`, composed of:

- its structure (`dinv.circuits.structure`): blocks (populations of a
  `dinv.circuits.populations.PopulationModel`), pathways between them, and
  the Brian2 groups the blocks live in;
- a coupling strategy (`dinv.circuits.coupling`): how pathways are computed,
  dense in-place matmuls (default) or Brian2 ``Synapses``;
- a run controller (`dinv.circuits.runner`): phases, stop criterion,
  divergence, records.

A run activates a set of blocks: their pathways are computed, the others are
skipped (their inputs are held at zero; their populations still integrate, at
the cost of an element-wise update), so the phases of a sequential chain share
one Network and one Brian2 run.

Spiking populations (models with an `dinv.circuits.populations.Ensemble`)
add their neurons and decoding synapses to the Network; their blocks report
the time-averaged readout of the last window of a run (see
`dinv.circuits.runner`). A circuit without them builds and runs exactly as
before: nothing spiking is built and nothing runs per step.
"""

import zlib
from typing import Any

import numpy as np
from brian2 import Clock, Network, NetworkOperation, second

from dinv.circuits.brian_internals import CODEGEN_TARGETS
from dinv.circuits.coupling import (
    COUPLINGS,
    DenseCoupling,
    SynapseCoupling,
    check_synapse_memory,
)
from dinv.circuits.populations import Ensemble
from dinv.circuits.runner import RunController
from dinv.circuits.structure import TAG, Block, Phase, Structure, build_groups
from dinv.errors import InputError
from dinv.validation import check_count

SCHEDULE = ("start", "groups", "thresholds", "synapses", "resets", "end")
"""Brian2's default schedule, set explicitly on every circuit's Network."""


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
    codegen_target : {'cython', 'numpy'}
        Brian2 code-generation target of the populations.
    divergence_limit : float
        A readout larger than this times the largest target is divergence.
    watch_growth : collection of str
        Blocks whose readout change is kept at every check, for `grows`
        (those of circuits whose stability has no cheap closed form).

    Attributes
    ----------
    structure : Structure
    groups : dict of (str, int) to brian2.NeuronGroup
    slots : dict of str to Slot
    readouts, targets, leaks : dict of str to ndarray
        Live (n, batch, d) views of every block's readout and of every
        controller's target and leak.
    coupling : DenseCoupling or SynapseCoupling
    runner : RunController
    network : brian2.Network
    tau_unit : brian2.Quantity
        The fastest time constant, the unit of ``dt``.
    """

    def __init__(self, blocks, pathways, batch=1, dt=0.5, coupling="dense",
                 codegen_target="cython", divergence_limit=1e8, watch_growth=()):
        self._check_options(batch, dt, coupling, codegen_target)
        self.batch = int(batch)
        self.divergence_limit = float(divergence_limit)
        self.structure = Structure(blocks, pathways)
        if coupling == "synapses":
            check_synapse_memory(self.structure, self.batch)
        # The Euler step is a fraction of the fastest population's time
        # constant: a faster controller needs a finer step to stay stable.
        self.dt = float(dt)
        self.tau_unit = self.structure.fastest_tau()
        self.clock = Clock(dt=self.dt * self.tau_unit, name=f"{TAG}_clock")
        self._check_spiking_dt()
        self.groups, self.slots = build_groups(self.structure, self.batch, self.clock,
                                               CODEGEN_TARGETS[codegen_target])
        self.ensembles = self._build_ensembles(CODEGEN_TARGETS[codegen_target])
        self._make_views()
        self.runner = RunController(self, watch_growth)
        self.coupling = self._make_coupling(coupling, CODEGEN_TARGETS[codegen_target])
        self.network = self._make_network()

    @staticmethod
    def _check_options(batch, dt, coupling, codegen_target):
        check_count("batch", batch)
        if coupling not in COUPLINGS:
            raise InputError(f"coupling must be one of {list(COUPLINGS)}, got {coupling!r}")
        if codegen_target not in CODEGEN_TARGETS:
            raise InputError(f"codegen_target must be one of {sorted(CODEGEN_TARGETS)}, "
                             f"got {codegen_target!r}")
        if not (np.isfinite(dt) and dt > 0):
            raise InputError(f"dt must be a positive number (in units of tau), got {dt!r}")

    def _check_spiking_dt(self):
        """Refuse a step too coarse for a spiking population (see `Ensemble.max_dt`)."""
        step = float(self.dt * self.tau_unit / second)
        for block in self.structure.blocks.values():
            ensemble = block.model.ensemble
            if ensemble is not None and step > ensemble.max_dt() * (1 + 1e-9):
                largest = ensemble.max_dt() / float(self.tau_unit / second)
                raise InputError(
                    f"dt={self.dt:g} (x the fastest tau {self.tau_unit}) = {step * 1e3:.3g} ms "
                    f"is too coarse for the spiking population of block {block.name!r} "
                    f"(at most {ensemble.max_dt() * 1e3:.3g} ms): use dt <= {largest:.3g}, "
                    f"with steps enough for the run (e.g. dt={largest:.3g}, "
                    f"steps={int(np.ceil(40 / largest))} for 40 tau)")

    def _build_ensembles(self, codeobj_class):
        """The neurons of every spiking group, by block name (one object per group)."""
        members: dict[str, tuple[Any, Ensemble, list[tuple[Block, int, int]]]] = {}
        for slot in self.slots.values():
            ensemble = slot.block.model.ensemble
            if ensemble is not None:
                start, stop = slot.range
                members.setdefault(slot.group.name, (slot.group, ensemble, []))[2].append(
                    (slot.block, start, stop))
        ensembles = {}
        for group, ensemble, blocks in members.values():
            built = ensemble.build(group, blocks, self.clock, codeobj_class)
            for block, _, _ in blocks:
                ensembles[block.name] = built
        return ensembles

    def _make_views(self):
        self.readouts, self.targets, self.leaks = {}, {}, {}
        self.judged, self.averages, self.windows, self.radii = {}, {}, {}, {}
        self._rest = {}
        for name, slot in self.slots.items():
            model = slot.block.model
            self.readouts[name] = slot.view(model.readout)
            self.judged[name] = self.readouts[name]
            self._rest[name] = [(slot.view(variable), value) for variable, value in model.rest]
            if model.kind == "controller":
                self.targets[name] = slot.view(model.target)
                self.leaks[name] = slot.view(model.leak)
            ensemble = model.ensemble
            if ensemble is not None:
                self.judged[name] = slot.view(ensemble.filtered)
                self.averages[name] = slot.view(ensemble.average)
                self.windows[name] = slot.view(ensemble.window)
                self.radii[name] = slot.view(ensemble.radius)
                self.radii[name][...] = 1.0

    def _make_coupling(self, coupling, codeobj_class):
        if coupling == "dense":
            return DenseCoupling(self.structure, self.slots, self.readouts, self.clock,
                                 self.runner.step_started,
                                 compiled=codeobj_class is CODEGEN_TARGETS["cython"])
        return SynapseCoupling(self.structure, self.slots, self.clock, codeobj_class)

    def _make_network(self):
        objects = list(self.groups.values()) + list(self.coupling.objects)
        for built in dict.fromkeys(self.ensembles.values()):
            objects.extend(built.objects)
        # Bookkeeping after every step (traces, divergence, phase switches):
        # a dense coupling calls it from its first operation of each step,
        # which saves one Python call per step; otherwise it has its own.
        if not self.coupling.marks_steps:
            objects.append(NetworkOperation(self.runner.step_ended, when="end",
                                            clock=self.clock, name=f"{TAG}_watch"))
        network = Network(*objects, name=f"{TAG}_network")
        # An explicit schedule (the default one): Brian2 otherwise reads it from
        # its preferences several times per run, a measurable cost per run.
        network.schedule = list(SCHEDULE)
        return network

    # ------------------------------------------------------------- parameters
    @property
    def blocks(self):
        """Blocks by name."""
        return self.structure.blocks

    @property
    def pathways(self):
        """Pathways by name."""
        return self.structure.pathways

    @property
    def steps_run(self):
        """Euler steps of the last run."""
        return self.runner.steps_run

    def set_matrix(self, pathway, M):
        """Use matrices M of shape (n, d_dest, d_source) on a matrix pathway."""
        self.coupling.set_matrix(pathway, M)

    def set_gain(self, pathway, gain):
        """Use per-sample gains of shape (n, batch, d) on a gain pathway."""
        self.coupling.set_gain(pathway, gain)

    def set_offset(self, pathway, offset):
        """Use per-sample offsets o of shape (n, batch, d_source) on an offset pathway."""
        self.coupling.set_offset(pathway, offset)

    def set_target(self, block, values):
        """Fix the target (the error delta_l to invert) of a controller block."""
        self.targets[block][...] = values

    def set_alpha(self, block, alpha):
        """Set the leak alpha of each of a controller block's n problems."""
        self.leaks[block][...] = np.asarray(alpha, dtype=float)[:, None, None]

    def state(self, block):
        """A copy of a block's settled readout, shape (n, batch, d).

        Rate blocks: the readout now. Spiking blocks: its time average over
        the last averaging window of the run (the readout now if none ran).
        """
        average = self.runner.average(block)
        return self.readouts[block].copy() if average is None else average

    @property
    def spiking(self):
        """Names of the blocks of spiking populations."""
        return tuple(self.ensembles)

    def set_radius(self, block, values):
        """Set the range a spiking block represents, per problem and unit.

        Parameters
        ----------
        block : str
        values : float or array_like
            Positive; a scalar, (d,) per unit, (n, 1) per problem, (n, d) per
            problem and unit, or (n, batch, d). Values beyond the radius are
            represented poorly (LIF neurons saturate).
        """
        if block not in self.radii:
            kind = "no block" if block not in self.slots else "a rate block, which has no"
            raise InputError(f"{block!r} is {kind} radius; spiking blocks: "
                             f"{sorted(self.radii)}")
        view = self.radii[block]
        values = np.asarray(values, dtype=float)
        _n, _batch, _d = view.shape
        if values.ndim == 2:
            values = values[:, None, :]
        try:
            values = np.broadcast_to(values, view.shape)
        except ValueError:
            raise InputError(f"radius of block {block!r} must broadcast to (n, batch, d) = "
                             f"{view.shape} (or be (n, d) / (n, 1)), got shape "
                             f"{np.shape(values)}") from None
        if not (np.all(np.isfinite(values)) and np.all(values > 0)):
            raise InputError(f"radius of block {block!r} must be positive and finite")
        view[...] = values

    def set_radii(self, radius):
        """Radii of the spiking blocks: None (all 1) or a dict by block name.

        Entries for rate blocks are ignored (they have no radius).
        """
        if radius is not None and not isinstance(radius, dict):
            raise InputError(f"radius must be a dict of radii by block name (e.g. from "
                             f"layer_radii), got {type(radius).__name__}")
        radius = radius or {}
        unknown = sorted(set(radius) - set(self.slots))
        if unknown:
            raise InputError(f"radius: no blocks called {unknown}; blocks: "
                             f"{sorted(self.slots)}")
        for name in self.radii:
            self.set_radius(name, radius.get(name, 1.0))

    def silence(self, fraction, seed=0, blocks=None):
        """Silence ``fraction`` of each spiking population's neurons (seeded choice).

        Within every represented dimension the same share of the positive
        and of the negative neurons is silenced (``active = 0``), the same
        ones for every problem and sample; ``fraction=0`` brings all back.

        Parameters
        ----------
        fraction : float
            In [0, 1).
        seed : int
        blocks : collection of str or None
            Spiking blocks to silence (None: all).
        """
        if not (np.isfinite(fraction) and 0 <= fraction < 1):
            raise InputError(f"fraction must lie in [0, 1), got {fraction!r}")
        names = self.spiking if blocks is None else tuple(blocks)
        for name in names:
            if name not in self.ensembles:
                raise InputError(f"{name!r} is not a spiking block; spiking blocks: "
                                 f"{sorted(self.ensembles)}")
            rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
            self.ensembles[name].silence(name, float(fraction), rng)

    def rest(self, names):
        """Put the blocks ``names`` at rest: readout 0, other variables per their model."""
        for name in names:
            self.readouts[name][...] = 0.0
            for view, value in self._rest[name]:
                view[...] = value
            if name in self.ensembles:
                self.ensembles[name].rest(name)

    def residual(self, names):
        """Residual per problem of the blocks ``names`` now (`dinv.circuits.settling`)."""
        return self.runner.residual(names)

    def grows(self, names):
        """Per problem: whether a readout of the blocks ``names`` grew to the end of
        the last run (of those in ``watch_growth``; `dinv.circuits.settling.growing`)."""
        return self.runner.grows(names)

    # -------------------------------------------------------------------- run
    def run(self, steps, active, record=(), record_every=0, stop_tol=None,
            average_fraction=0.2):
        """Reset the active blocks to rest and integrate them for ``steps``.

        Parameters
        ----------
        steps : int
            Euler steps.
        active : collection of str
            Blocks simulated in this run; pathways into other blocks are
            skipped and those blocks' inputs held at zero.
        record : collection of str
            Blocks whose readouts are recorded every ``record_every`` steps.
        record_every : int
            0: no traces.
        stop_tol : float or None
            End early once the circuit has settled (see `run_phases`).
        average_fraction : float
            Spiking blocks: share of the run over which the readout is averaged.

        Returns
        -------
        Traces or None
            Time in units of `tau_unit`.
        """
        return self.run_phases([Phase(steps, active)], record, record_every, stop_tol,
                               average_fraction)

    def run_phases(self, phases, record=(), record_every=0, stop_tol=None,
                   average_fraction=0.2):
        """Integrate several phases in one Brian2 run, from rest.

        See `dinv.circuits.runner.RunController.run_phases`.
        """
        return self.runner.run_phases(phases, record, record_every, stop_tol,
                                      average_fraction)

    def statistics(self, names):
        """Spike statistics of the spiking blocks among ``names`` after a run
        (`dinv.circuits.runner.AveragingWindows`), by block name."""
        return self.runner.statistics(names)
