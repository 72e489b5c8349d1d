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

Per population, one ``NeuronGroup`` of d units holds the readout ``xhat``
(one unit per dimension) and, for a spiking population, one of d*K
neurons does the spiking; the neurons read their dimension's variables
through linked variables, and a ``Synapses`` object with ``on_pre`` makes
the readout jump. The schedule is that of `dinv.spiking_reference` (the
controller's group, then its neurons, then the system's, in the
``groups`` slot, each group's summed input computed just before it; then
thresholds, spike transmission and resets).

The equation strings mirror the spec in `dinv.spiking` and are kept here,
one function per population kind (`rate_equations`, `scn_equations`,
`lif_equations`), to be replaced by ``dinv.circuits.spiking_equations``
when the two are unified.
"""

import multiprocessing
import tempfile
import time
from dataclasses import dataclass

import numpy as np
from brian2 import (
    Clock,
    Network,
    NeuronGroup,
    StateMonitor,
    Synapses,
    get_device,
    linked_var,
    second,
    seed,
)

from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

from dinv.circuits.brian_internals import (
    CODEGEN_TARGETS,
    reuse_code_objects,
    young_collection_only,
)
from dinv.errors import InputError
from dinv.spiking_reference import PairRun, PopulationRun

# --------------------------------------------------------------------------
# equations (mirror the spec in dinv.spiking; see dinv.spiking_reference)
# --------------------------------------------------------------------------

_DRIVE = {
    "system": "drive = -xhat + I_in : 1",
    "controller": "drive = -alpha * xhat + I_in - target : 1\nalpha : 1 (shared)\ntarget : 1",
}
"""tau x' = f(x) of each role: Eq. 5 (system) and Eq. 8 (controller), at the readout."""

_WINDOW = """
dxsum/dt = window * xhat : second
dsqsum/dt = window * (xhat - reference)**2 : second
window = int(t > t_window) : 1
t_window : second (shared)
reference : 1
I_in : 1
"""
"""Time integrals of the readout and of its squared error over the averaging window."""


@dataclass(frozen=True)
class PopulationEquations:
    """Brian2 strings of one population kind and role.

    Attributes
    ----------
    readout : str
        Equations of the group of d units holding the readout ``xhat``.
    neurons : str or None
        Equations of the d*K spiking neurons (None: a rate population).
    threshold, reset : str or None
    refractory : bool
        Whether the neurons have a refractory period (``tau_ref``).
    on_pre : str or None
        Code of the ``Synapses`` from the neurons to the readout group.
    """

    readout: str
    neurons: str = None
    threshold: str = None
    reset: str = None
    refractory: bool = False
    on_pre: str = None


def rate_equations(role):
    """A rate population (Eqs. 5, 8): the state is the readout, ``tau_pop dxhat/dt = f``."""
    return PopulationEquations(readout="dxhat/dt = drive / tau_pop : 1\n" + _DRIVE[role]
                               + _WINDOW)


def scn_equations(role, noise=False):
    """A spike-coding population (`dinv.spiking`, ``scn``).

    Readout group: ``xhat`` decays with tau_readout, the ideal state ``y``
    integrates ``f`` at the readout. Neurons: ``V = D (y - xhat) / R - mu r
    (+ sigma eta)``, candidates at ``V > (D**2 + mu) / 2``; the ``on_pre``
    code checks each candidate once more against the readout the spikes
    before it in the step have moved (a spike lowers the others' voltages at
    once: the SCN's fast connections), and only then jumps the readout by
    ``R D`` and counts the spike in ``r`` (and ``count``).
    """
    noise_term = " + sigma * eta" if noise else ""
    noise_eq = "deta/dt = -eta / tau_noise + sqrt(2 / tau_noise) * xi : 1\n" if noise else ""
    voltage = "decoder{p} * (y{q} - xhat{q}) / radius{q} - mu * r{p}" + noise_term.replace(
        "eta", "eta{p}")
    return PopulationEquations(
        readout="dxhat/dt = -xhat / tau_readout : 1\ndy/dt = drive / tau_pop : 1\n"
                "radius : 1\n" + _DRIVE[role] + _WINDOW,
        neurons="dr/dt = -r / tau_readout : 1\n" + noise_eq
                + "V = " + voltage.format(p="", q="_dim") + " : 1\n"
                "decoder : 1 (constant)\nbound : 1 (constant)\ncount : 1\n"
                "y_dim : 1 (linked)\nxhat_dim : 1 (linked)\nradius_dim : 1 (linked)\n",
        threshold="V > bound",
        on_pre="fired = " + voltage.format(p="_pre", q="_post") + " > bound_pre\n"
               "xhat_post += radius_post * decoder_pre * int(fired)\n"
               "r_pre += int(fired)\ncount_pre += int(fired)",
    )


def lif_equations(role):
    """A LIF ensemble with decoders (`dinv.spiking`, ``lif``).

    Readout group: ``xhat`` decays with tau_synapse; the neurons encode ``s =
    xhat + (tau_synapse / tau_pop) f``. Neurons: ``tau_rc dv/dt = -v + J``,
    ``J = gain e s / R + bias``, spike at ``v > 1``, reset to 0, refractory
    ``tau_ref``; a spike makes the readout jump by ``R d / tau_synapse``.
    """
    return PopulationEquations(
        readout="dxhat/dt = -xhat / tau_synapse : 1\ns = xhat + mix * drive : 1\n"
                "radius : 1\n" + _DRIVE[role] + _WINDOW,
        neurons="dv/dt = (-v + J) / tau_rc : 1 (unless refractory)\n"
                "J = gain_encoder * s_dim / radius_dim + bias : 1\n"
                "gain_encoder : 1 (constant)\nbias : 1 (constant)\njump : 1 (constant)\n"
                "count : 1\ns_dim : 1 (linked)\nradius_dim : 1 (linked)\n",
        threshold="v > 1", reset="v = 0\ncount += 1", refractory=True,
        on_pre="xhat_post += radius_post * jump_pre",
    )


def population_equations(spec, role):
    """The `PopulationEquations` of a population specification (`make_population`)."""
    if spec.kind == "rate":
        return rate_equations(role)
    if spec.kind == "scn":
        return scn_equations(role, noise=spec.parameters.noise > 0)
    if spec.kind == "lif":
        return lif_equations(role)
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
        eqs = population_equations(spec, role)
        self.codeobj_class = codeobj_class
        self.spec, self.role, self.dims = spec, role, dims
        namespace = {"tau_pop": tau * second}
        if spec.kind == "scn":
            namespace["tau_readout"] = spec.tau_readout * second
        elif spec.kind == "lif":
            namespace.update(tau_synapse=spec.tau_synapse * second, mix=spec.tau_synapse / tau)
        self.clock = clock
        self.readout = NeuronGroup(dims, eqs.readout, method="euler", order=order,
                                   clock=clock, namespace=namespace,
                                   codeobj_class=codeobj_class,
                                   name=f"spair_{role}_readout*")
        self.objects = [self.readout]
        self.neurons = None
        if eqs.neurons is not None:
            self._spiking(spec, eqs, namespace, order, dims)
        self.monitor = None
        if record_every:
            self.monitor = StateMonitor(self.readout, "xhat", record=True,
                                        dt=record_every * clock.dt,
                                        codeobj_class=codeobj_class,
                                        name=f"spair_{role}_trace*")
            self.objects.append(self.monitor)

    def _spiking(self, spec, eqs, namespace, order, dims):
        p = spec.parameters
        if p.dim_index.max() + 1 != dims:
            raise InputError(f"the {spec.kind} parameters represent {p.dim_index.max() + 1} "
                             f"dimensions, the {self.role} has {dims}")
        namespace = dict(namespace)
        extra = {}
        if spec.kind == "scn":
            namespace.update(mu=p.mu, sigma=p.noise, tau_noise=spec.tau_noise * second)
        else:
            namespace.update(tau_rc=p.tau_rc * second)
            extra = dict(refractory=p.tau_ref * second)
        self.neurons = NeuronGroup(len(p.dim_index), eqs.neurons, threshold=eqs.threshold,
                                   reset=eqs.reset or "",
                                   method="euler", order=order + 1, clock=self.clock,
                                   namespace=namespace, codeobj_class=self.codeobj_class,
                                   name=f"spair_{self.role}_neurons*", **extra)
        index = p.dim_index
        if spec.kind == "scn":
            self.neurons.decoder = p.decoder
            self.neurons.bound = (p.decoder ** 2 + p.mu) / 2
            self.neurons.y_dim = linked_var(self.readout, "y", index=index)
            self.neurons.xhat_dim = linked_var(self.readout, "xhat", index=index)
        else:
            self.neurons.gain_encoder = p.gain * p.encoder
            self.neurons.bias = p.bias
            self.neurons.jump = p.decoder / spec.tau_synapse
            self.neurons.s_dim = linked_var(self.readout, "s", index=index)
        self.neurons.radius_dim = linked_var(self.readout, "radius", index=index)
        self.readout.radius = spec.radius
        self.spikes = Synapses(self.neurons, self.readout, on_pre=eqs.on_pre,
                               clock=self.clock, namespace=namespace,
                               codeobj_class=self.codeobj_class,
                               name=f"spair_{self.role}_spikes*")
        self.spikes.connect(i=np.arange(len(index)), j=index)
        self.objects += [self.neurons, self.spikes]

    def result(self, window_time, reference, duration, values):
        """A `PopulationRun` from the variables read back (``values``: name -> array)."""
        rms = None
        if reference is not None:
            rms = float(np.sqrt(values["sqsum"].sum() / window_time)
                        / np.linalg.norm(reference))
        counts = None if self.neurons is None else np.rint(values["count"]).astype(np.int64)
        return PopulationRun(mean=values["xsum"] / window_time, final=values["xhat"],
                             rms_error=rms, spike_counts=counts, duration=duration,
                             trace=values.get("trace"))

    def read(self):
        values = {name: np.array(getattr(self.readout, name + "_")[:])
                  for name in ("xsum", "sqsum", "xhat")}
        if self.neurons is not None:
            values["count"] = np.array(self.neurons.count_[:])
        if self.monitor is not None:
            values["trace"] = np.array(self.monitor.xhat_).T
        return values


def _dense(source, target, name, clock, codeobj_class):
    """Dense coupling ``I_in = M xhat_source`` as a Synapses object with a summed variable;
    its update runs just before the target group integrates (Brian2's default order)."""
    syn = Synapses(source, target, model="w : 1\nI_in_post = w * xhat_pre : 1 (summed)",
                   name=name, clock=clock, namespace={}, codeobj_class=codeobj_class)
    n_pre, n_post = len(source), len(target)
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
        self.W = _dense(self.system.readout, self.controller.readout, "spair_W*", self.clock,
                        code)
        self.B = _dense(self.controller.readout, self.system.readout, "spair_B*", self.clock,
                        code)
        t_window = (self.steps - self.window - 0.5) * self.dt * second
        for pop in (self.controller, self.system):
            pop.readout.t_window = t_window
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
        values = {(self.W, "w"): matrix_to_weights(W), (self.B, "w"): matrix_to_weights(B),
                  (self.controller.readout, "target"): target,
                  (self.controller.readout, "alpha"): float(alpha)}
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
        self.network.run(self.steps * self.dt * second, namespace={})
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
                self.network.run(self.steps * self.dt * second, namespace={})
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
    timings = {}
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


__all__ = ["PopulationEquations", "StandalonePair", "lif_equations", "matrix_to_weights",
           "population_equations", "rate_equations", "run_standalone", "scn_equations"]
