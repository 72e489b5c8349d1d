"""A spiking layer pair from Brian2 objects alone, for ``cpp_standalone`` and runtime mode.

`StandalonePair` builds one layer pair (system delta_{l-1}, controller u;
Eqs. 5 and 8) whose populations are rate, SCN or LIF populations as
specified in `dinv.spiking` and simulated in numpy by
`dinv.spiking_reference`, from ``NeuronGroup``s, ``Synapses`` (summed
variables for the dense couplings, ``on_pre`` for the spikes), linked
variables and nothing else (no ``network_operation``), so that the same
objects run under Brian2's runtime device and under ``cpp_standalone``.
Under ``cpp_standalone`` it is built (code generated and compiled) once,
then rerun with new weights W, B, targets delta_l, leak and radii through
the command-line arguments of the compiled binary (``device.run(run_args=...)``);
no recompilation. `run_standalone` does that in a fresh process, so that
Brian2's global device never leaks into the caller.

Per population, one ``NeuronGroup`` of d units holds the readout (one unit
per dimension) and, for a spiking population, one of d*K neurons does the
spiking; the neurons read their dimension's variables through linked
variables, and a ``Synapses`` object with ``on_pre`` makes the readout jump.
Every population is the circuits' own: the representation group has the
equations, namespace and roles of the circuits' `PopulationModel`
(`dinv.circuits.populations.SYSTEM` and ``CONTROLLER`` for rate
populations, `dinv.circuits.spiking.scn_population` and ``lif_population``
for spiking ones, whose equations are `dinv.circuits.spiking_equations`),
and the neurons and their decoding synapses are built by the same functions
as the circuits' ensembles (`dinv.circuits.spiking.scn_neurons`,
``lif_neurons``), from the neuron parameters of the population
specification. What differs is only what a circuit does from Python between
steps: the dense couplings are ``Synapses`` with summed variables instead
of network operations, and the averaging window (``averaging``, which a
circuit's run controller switches on) is switched on between two ``run``
calls. The schedule is that of `dinv.spiking_reference` (the controller's
group, then its neurons, then the system's, in the ``groups`` slot, each
group's summed input computed just before it; then thresholds, spike
transmission and resets).
"""

import multiprocessing
import tempfile
import time

import numpy as np
from brian2 import (
    Clock,
    Network,
    NeuronGroup,
    StateMonitor,
    Synapses,
    get_device,
    second,
    seed,
)
from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

from dinv.circuits import spiking_equations as eq
from dinv.circuits.brian_internals import (
    CODEGEN_TARGETS,
    reuse_code_objects,
    young_collection_only,
)
from dinv.circuits.populations import CONTROLLER, SYSTEM
from dinv.circuits.spiking import lif_neurons, lif_population, scn_neurons, scn_population
from dinv.errors import InputError
from dinv.spiking_reference import PairRun, PopulationRun

# --------------------------------------------------------------------------
# the populations: the circuits' models
# --------------------------------------------------------------------------

_ERROR = "dsqsum/dt = averaging * ({readout} - reference)**2 : second\nreference : 1\n"
"""Time integral of the readout's squared error over the averaging window."""


def _per_dim(parameters):
    return len(parameters.dim_index) // (int(parameters.dim_index.max()) + 1)


def population_model(spec, role):
    """The circuits' `PopulationModel` of a population specification (`make_population`).

    Its equations, namespace and roles build the representation group; the
    neuron parameters come from ``spec``, not from the model's ensemble.
    """
    if spec.kind == "rate":
        return SYSTEM if role == "system" else CONTROLLER
    if spec.kind == "scn":
        return scn_population(role, _per_dim(spec.parameters),
                              tau_readout=spec.tau_readout * second)
    if spec.kind == "lif":
        return lif_population(role, _per_dim(spec.parameters),
                              tau_synapse=spec.tau_synapse * second)
    raise InputError(f"unknown population kind {spec.kind!r}")


# --------------------------------------------------------------------------
# the circuit
# --------------------------------------------------------------------------


def _is_standalone():
    """Whether the caller has set Brian2's ``cpp_standalone`` device."""
    return isinstance(get_device(), CPPStandaloneDevice)


class _Population:
    """The Brian2 groups of one population and how to read them back."""

    def __init__(self, spec, role, dims, tau, order, clock, record_every, codeobj_class):
        self.model = model = population_model(spec, role)
        self.spec, self.role, self.dims = spec, role, dims
        self.codeobj_class, self.clock = codeobj_class, clock
        self.x = model.readout
        equations = model.equations + ("" if model.spiking else eq.running_average(self.x)) \
            + _ERROR.format(readout=self.x)
        self.readout = NeuronGroup(dims, equations, method=model.method, order=order,
                                   clock=clock, namespace=dict(model.namespace),
                                   codeobj_class=codeobj_class, name=f"spair_{role}*")
        setattr(self.readout, model.tau, tau * second)
        for variable, value in model.parameters:
            setattr(self.readout, variable, value)
        self.objects = [self.readout]
        self.neurons = None
        if model.spiking:
            self._spiking(spec)
        self.monitor = None
        if record_every:
            self.monitor = StateMonitor(self.readout, self.x, record=True,
                                        dt=record_every * clock.dt,
                                        codeobj_class=codeobj_class,
                                        name=f"spair_{role}_trace*")
            self.objects.append(self.monitor)

    def _spiking(self, spec):
        p = spec.parameters
        if p.dim_index.max() + 1 != self.dims:
            raise InputError(f"the {spec.kind} parameters represent {p.dim_index.max() + 1} "
                             f"dimensions, the {self.role} has {self.dims}")
        per_dim = _per_dim(p)
        if spec.kind == "scn":
            self.neurons, spikes = scn_neurons(
                self.readout, p.decoder, per_dim, p.mu, p.noise, spec.tau_readout, 0.0,
                spec.tau_noise, self.clock, self.codeobj_class)
        else:
            self.neurons, spikes = lif_neurons(
                self.readout, p.gain, p.bias, p.encoder, p.decoder, per_dim,
                spec.tau_synapse, p.tau_rc, p.tau_ref, self.clock, self.codeobj_class)
        self.readout.radius = spec.radius
        self.objects += [self.neurons, spikes]

    def result(self, window_time, reference, duration, values):
        """A `PopulationRun` from the variables read back (``values``: name -> array)."""
        rms = None
        if reference is not None:
            rms = float(np.sqrt(values["sqsum"].sum() / window_time)
                        / np.linalg.norm(reference))
        counts = None if self.neurons is None else np.rint(values["count"]).astype(np.int64)
        return PopulationRun(mean=values["xsum"] / window_time, final=values["readout"],
                             rms_error=rms, spike_counts=counts, duration=duration,
                             trace=values.get("trace"))

    def read(self):
        values = {name: np.array(getattr(self.readout, name + "_")[:])
                  for name in ("xsum", "sqsum")}
        values["readout"] = np.array(getattr(self.readout, self.x + "_")[:])
        if self.neurons is not None:
            values["count"] = np.array(self.neurons.count_[:])
        if self.monitor is not None:
            values["trace"] = np.array(getattr(self.monitor, self.x + "_")).T
        return values


def _dense(source, target, name, clock, codeobj_class):
    """Dense coupling (input of ``target`` = M readout of ``source``) as a Synapses object
    with a summed variable; its update runs just before the target group integrates
    (Brian2's default order)."""
    model = f"w : 1\n{target.model.input}_post = w * {source.x}_pre : 1 (summed)"
    syn = Synapses(source.readout, target.readout, model=model, name=name, clock=clock,
                   namespace={}, codeobj_class=codeobj_class)
    n_pre, n_post = source.dims, target.dims
    syn.connect(i=np.repeat(np.arange(n_pre), n_post), j=np.tile(np.arange(n_post), n_pre))
    return syn


def matrix_to_weights(M):
    """Synapse weights (pre-major order of `_dense`) of a (post, pre) matrix M."""
    return np.ascontiguousarray(np.asarray(M, dtype=float).T).ravel()


class StandalonePair:
    """One layer pair (Eqs. 5, 8) of rate or spiking populations, built from Brian2 objects.

    Build under the device the caller has set (runtime or ``cpp_standalone``
    with ``build_on_run=False``); the class never switches devices. In
    runtime mode every `run` restores the initial state and simulates; under
    ``cpp_standalone`` the first `run` (or `build`) generates and compiles
    the project, and every run executes the compiled binary with the new
    values as command-line arguments.

    Parameters
    ----------
    d_out, d_in : int
        Widths of the controller (layer l) and of the system (layer l-1).
    system, controller : population specifications
        From `dinv.spiking_reference.make_population` (rate, scn or lif).
    tau_system, tau_controller : float
        Time constants (second).
    dt : float
        Euler step (second).
    duration : float
        Simulated time of every run (second; fixed: it is compiled in).
    average_fraction : float
        Final fraction of the run over which readouts are averaged.
    record_every : int or None
        Record both readouts every this many steps.
    seed : int or None
        Seed of the voltage noise (SCN populations with noise).
    codegen_target : {'cython', 'numpy'}
        Code generation in runtime mode (ignored under ``cpp_standalone``).
        The SCN's sequential spike check needs the loops of 'cython'.
    """

    def __init__(self, d_out, d_in, system, controller, tau_system=0.01, tau_controller=0.01,
                 dt=1e-5, duration=0.5, average_fraction=0.2, record_every=None, seed=None,
                 codegen_target="cython"):
        if not 0 < average_fraction <= 1:
            raise InputError(f"average_fraction must lie in (0, 1], got {average_fraction!r}")
        self.steps = int(round(duration / dt))
        if self.steps < 1:
            raise InputError(f"duration {duration!r} is shorter than one step dt={dt!r}")
        self.dt, self.d_out, self.d_in = float(dt), int(d_out), int(d_in)
        self.window = max(1, int(np.ceil(average_fraction * self.steps)))
        self.seed = seed
        self.standalone = _is_standalone()
        if codegen_target not in CODEGEN_TARGETS:
            raise InputError(f"codegen_target must be one of {sorted(CODEGEN_TARGETS)}, "
                             f"got {codegen_target!r}")
        code = None if self.standalone else CODEGEN_TARGETS[codegen_target]
        self.clock = Clock(dt=self.dt * second, name="spair_clock*")
        self.controller = _Population(controller, "controller", self.d_out, tau_controller, 2,
                                      self.clock, record_every, code)
        self.system = _Population(system, "system", self.d_in, tau_system, 5, self.clock,
                                  record_every, code)
        self.W = _dense(self.system, self.controller, "spair_W*", self.clock, code)
        self.B = _dense(self.controller, self.system, "spair_B*", self.clock, code)
        self.network = Network(*self.controller.objects, *self.system.objects, self.W, self.B,
                               name="spair_network*")
        self.built = False
        self.directory = None
        self.timings = {}
        if not self.standalone:
            self.network.store("initial")

    def _values(self, W, B, target, alpha, reference, radius):
        """Variable -> value of one run, checked."""
        W = np.asarray(W, dtype=float)
        B = np.asarray(B, dtype=float)
        target = np.asarray(target, dtype=float).ravel()
        if W.shape != (self.d_out, self.d_in) or B.shape != (self.d_in, self.d_out) \
                or target.shape != (self.d_out,):
            raise InputError(f"W, B and target must have shapes {(self.d_out, self.d_in)}, "
                             f"{(self.d_in, self.d_out)} and {(self.d_out,)}, got {W.shape}, "
                             f"{B.shape} and {target.shape}")
        model = self.controller.model
        values = {(self.W, "w"): matrix_to_weights(W), (self.B, "w"): matrix_to_weights(B),
                  (self.controller.readout, model.target): target,
                  (self.controller.readout, model.leak): np.full(self.d_out, float(alpha))}
        refs = (None, None) if reference is None else reference
        radius = (None, None) if radius is None else radius
        for pop, ref, rad in ((self.system, refs[0], radius[0]),
                              (self.controller, refs[1], radius[1])):
            values[(pop.readout, "reference")] = np.zeros(pop.dims) if ref is None else \
                np.asarray(ref, dtype=float).ravel()
            if pop.neurons is not None:
                rad = pop.spec.radius if rad is None else rad
                values[(pop.readout, "radius")] = np.broadcast_to(
                    np.asarray(rad, dtype=float), (pop.dims,)).copy()
        return values

    def _simulate(self):
        """The run: the steps before the averaging window, then the window with
        ``averaging`` on (as a circuit's run controller switches it on)."""
        before = self.steps - self.window
        if before:
            self.network.run(before * self.dt * second, namespace={})
        for pop in (self.controller, self.system):
            pop.readout.averaging = 1.0
        self.network.run(self.window * self.dt * second, namespace={})

    def build(self, directory=None, **build_options):
        """Generate and compile the standalone project (no-op in runtime mode).

        ``directory``: where the project goes (default: a new temporary one).
        Times go to ``timings['record']`` (Python side) and ``['compile']``.
        """
        if not self.standalone or self.built:
            return
        start = time.perf_counter()
        if self.seed is not None:
            seed(self.seed)
        self._simulate()
        self.timings["record"] = time.perf_counter() - start
        self.directory = directory or tempfile.mkdtemp(prefix="dinv_standalone_")
        start = time.perf_counter()
        get_device().build(directory=self.directory, compile=True, run=False,
                           **build_options)
        self.timings["compile"] = time.perf_counter() - start
        self.built = True

    def run(self, W, B, target, alpha, reference=None, radius=None):
        """Simulate the pair for ``duration`` from rest with these values.

        Parameters
        ----------
        W : ndarray, shape (d_out, d_in)
        B : ndarray, shape (d_in, d_out)
        target : ndarray, shape (d_out,)
        alpha : float
        reference : (array, array) or None
            Reference readouts (delta_{l-1}, u) for the moment-to-moment error.
        radius : (array or None, array or None) or None
            Radii of the (system, controller) for this run; None: the specs'.

        Returns
        -------
        PairRun
        """
        values = self._values(W, B, target, alpha, reference, radius)
        if self.standalone:
            self.build()
            run_args = {getattr(obj, name): value for (obj, name), value in values.items()}
            get_device().run(directory=self.directory, with_output=False, run_args=run_args)
        else:
            self.network.restore("initial")
            for (obj, name), value in values.items():
                setattr(obj, name, value)
            if self.seed is not None:
                seed(self.seed)
            with young_collection_only():
                self._simulate()
            if not self.built:  # runtime: the code objects of the first run serve every run
                reuse_code_objects(self.network)
                self.built = True
        window_time = self.window * self.dt
        duration = self.steps * self.dt
        refs = (None, None) if reference is None else reference
        runs = [pop.result(window_time, ref, duration, pop.read())
                for pop, ref in ((self.system, refs[0]), (self.controller, refs[1]))]
        t = None
        if self.system.monitor is not None:
            t = np.array(self.system.monitor.t_)
        return PairRun(system=runs[0], controller=runs[1], t=t)


# --------------------------------------------------------------------------
# standalone in a fresh process
# --------------------------------------------------------------------------


def _standalone_worker(pair_kwargs, cases, directory, threads):
    """Body of `run_standalone`, in its own process."""
    from brian2 import prefs, set_device

    set_device("cpp_standalone", build_on_run=False, directory=directory)
    if threads:
        prefs.devices.cpp_standalone.openmp_threads = threads
    timings: dict[str, float | list[float]] = {}
    start = time.perf_counter()
    pair = StandalonePair(**pair_kwargs)
    timings["construct"] = time.perf_counter() - start
    pair.build(directory)
    timings.update(pair.timings)
    runs, run_times, binary_times = [], [], []
    for case in cases:
        start = time.perf_counter()
        runs.append(pair.run(**case))
        run_times.append(time.perf_counter() - start)
        binary_times.append(getattr(get_device(), "_last_run_time", float("nan")))
    timings["runs"], timings["binary"] = run_times, binary_times
    return runs, timings


def run_standalone(pair_kwargs, cases, directory=None, threads=0):
    """Build a `StandalonePair` under ``cpp_standalone`` in a fresh process and run ``cases``.

    Parameters
    ----------
    pair_kwargs : dict
        Arguments of `StandalonePair`.
    cases : list of dict
        Arguments of `StandalonePair.run`, one dict per run.
    directory : str or None
        Project directory (default: a new temporary one).
    threads : int
        OpenMP threads of the standalone binary (0: none).

    Returns
    -------
    (list of PairRun, dict)
        The runs, and seconds spent per phase: ``construct`` (Brian2 objects),
        ``record`` (the recorded run call), ``compile`` (code generation and
        compilation), ``runs`` (one per case: the binary, reading results) and
        ``binary`` (one per case: the simulation loop inside the binary, as
        the binary reports it).
    """
    directory = directory or tempfile.mkdtemp(prefix="dinv_standalone_")
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_standalone_worker, (pair_kwargs, cases, directory, threads))


__all__ = ["StandalonePair", "matrix_to_weights", "population_model", "run_standalone"]
