"""Every reach into Brian2 beyond its documented interface, in one place.

The circuits settle thousands of times per experiment, each run a few hundred
to a few thousand short steps, so Brian2's per-run and per-access overheads
matter. The measures below remove them. Each relies on something Brian2 does
not promise to keep; `problems` lists what the installed Brian2 lacks (the
canary test ``tests/test_brian_internals.py`` fails with that list), so a
Brian2 release that changes one of them is a change to this file only.

What each measure buys was measured by ``benchmarks/brian_internals.py``
(Brian2 2.9.0, Python 3.11, a shared and busy 2-core machine; the docstrings
give the range of the medians of three runs of that script).
"""

import gc
import inspect
import logging
import re
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial
from typing import Any

import brian2
import brian2.core.network as brian_network
from brian2 import NetworkOperation, NeuronGroup, Synapses
from brian2.codegen.codeobject import CodeObject
from brian2.core.base import BrianObject
from brian2.groups.group import CodeRunner

try:
    from brian2 import CythonCodeObject, NumpyCodeObject
except ImportError as exc:  # the canary cannot run without them: say what moved
    raise ImportError(f"Brian2 {brian2.__version__} no longer exports its code-object classes "
                      f"({exc}); update CODEGEN_TARGETS in dinv.circuits.brian_internals") \
        from exc

LEAN_TEMPLATES = ("stateupdate", "threshold", "reset")
"""The templates of the code that runs at every step of a group, which
`LeanCythonCodeObject` compiles with a lighter start."""

STEP_TEMPLATES = (*LEAN_TEMPLATES, "summed_variable")
"""The templates of the code objects a `LeanRun` runs at every step: groups' state
updates, thresholds and resets, and summed variables (the synapse coupling);
monitors and synaptic pathways keep ``Network.run``."""

_TYPED_BUFFER = re.compile(
    r"^(?P<indent>[ \t]*)cdef _numpy\.ndarray\[[^\]\n]*\] (?P<buffer>_buf_\w+) = "
    r"(?P<value>_namespace\['\w+'\])[ \t]*$", re.M)
_LENGTH = re.compile(
    r"^(?P<indent>[ \t]*)cdef size_t (?P<name>_num\w+) = len\(_namespace\['(?P<array>\w+)'\]\)"
    r"[ \t]*$", re.M)
_VARIABLE = re.compile(r'^[ \t]*(?P<name>_var_\w+) = _namespace\["(?P=name)"\][ \t]*\n', re.M)


PYTHON_DIVISION = "#cython: cdivision=False"
C_DIVISION = "#cython: cdivision=True"
"""Brian2's Cython directive (Python semantics: every ``/`` tests its divisor for zero
and may raise, which keeps the compiler from vectorising a loop) and its C form."""


def lean_cython_source(source: str) -> str:
    """Brian2's generated Cython ``source`` with a lighter start of ``main``.

    Every call of a generated ``main(_namespace)`` first takes each array it
    uses out of the namespace as a typed numpy *buffer*
    (``cdef _numpy.ndarray[double, ndim=1, mode='c'] _buf_x = ...``), whose
    acquisition and release cost about 0.1-0.2 us per array and call, reads
    its length through ``len()`` and fetches a ``_var_`` object per variable
    that the code may never use. The arrays are plain contiguous 1-D arrays of
    the runtime device, and the code only ever reads ``.data`` of the buffer
    (a pointer to the values), so here each array is taken as a plain typed
    ``ndarray`` (``.data`` is then a C access), its length through
    ``PyArray_DIM`` and the unused ``_var_`` lines are left out. Code without
    floor division (``//``, where C and Python round differently) is compiled
    with C division: a quotient of floats is the same IEEE quotient, but
    without the test of every divisor for zero (a division by zero gives inf or
    nan, which the run controller's divergence check reports, instead of a
    ``ZeroDivisionError``); the test kept the compiler from vectorising a loop
    with a division, e.g. the SCN threshold's coding error, 4 ns per neuron and
    step. The loops themselves are unchanged, so the numbers are the same to the
    bit.
    """
    source = _TYPED_BUFFER.sub(r"\g<indent>cdef _numpy.ndarray \g<buffer> = \g<value>", source)

    def length(match):
        if f"_buf_{match['array']} " not in source:
            return match[0]
        return (f"{match['indent']}cdef size_t {match['name']} = "
                f"_numpy.PyArray_DIM(_buf_{match['array']}, 0)")

    source = _LENGTH.sub(length, source)
    if "//" not in source:  # C division: IEEE quotients, no zero test (no floor division)
        source = source.replace(PYTHON_DIVISION, C_DIVISION)
    # The line itself names the variable twice; a name used elsewhere (or one that is
    # the prefix of another) keeps its line.
    return _VARIABLE.sub(lambda m: m[0] if source.count(m["name"]) > 2 else "", source)


class LeanCythonCodeObject(CythonCodeObject):
    """Brian2's Cython code object, whose per-step code starts lighter.

    The code of the `LEAN_TEMPLATES` (a group's state update, threshold and
    reset, run at every step) is compiled as `lean_cython_source` rewrites it:
    a ``main`` call of a small group then costs about a third of Brian2's
    (1.0 against 3.0 us for a controller's state update of 10 units, on a
    shared 2-core machine at load 9; ``benchmarks/brian_internals.py``). The
    code of every other template is Brian2's own.

    Relies on the lines Brian2's ``CythonCodeGenerator.determine_keywords``
    writes to load the namespace, on ``CodeObject.code`` being a
    ``MultiTemplate`` whose blocks are string attributes (and its
    ``_templates`` dict) compiled by ``compile_block``, and on the templates'
    code using the buffers only through ``.data``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.template_name in LEAN_TEMPLATES:
            for block, source in list(self.code._templates.items()):
                lean = lean_cython_source(source)
                setattr(self.code, block, lean)
                self.code._templates[block] = lean


CODEGEN_TARGETS = {"cython": LeanCythonCodeObject, "numpy": NumpyCodeObject}
"""Code-object classes by code-generation target name.

Passing the class to each group (``codeobj_class=``) picks the target per
circuit without touching Brian2's global ``prefs.codegen.target``, so a
circuit never changes the user's own simulations. The Cython target is
Brian2's, with the lighter per-step code of `LeanCythonCodeObject`. Relies on
``brian2`` exporting the classes, which its documentation names only for
developers.
"""


def live_view(group, variable):
    """The array Brian2 integrates for ``variable`` of ``group``, as a writable view.

    The dense couplings read and write the states and inputs through these
    views in place (``np.matmul(state, M, out=input)``), with no Brian2 call
    per step. Through the public ``group.variable_[:]`` each read or write
    goes through a ``VariableView``: 7 us per read and 13 us per write of
    1000 values, against 0.3 and 0.2 us through the view. With two reads and
    two writes per step that is 0.04 ms per step, 40 ms per 1000-step settle
    of a 1000 <- 10 layer, whose 1000 steps cost 17-20 ms in all.

    Relies on ``group.variables[name].get_value()`` returning the device's
    own array (runtime mode), which Brian2 documents for its developers only.

    Parameters
    ----------
    group : brian2.Group
    variable : str

    Returns
    -------
    numpy.ndarray
    """
    return group.variables[variable].get_value()


def order_summed_updaters(synapses, order):
    """Schedule the summed-variable updates of ``synapses`` at ``order``.

    A summed variable written into a ``Subgroup`` is updated at the order of
    the subgroup's group, tied with the group's own state update; ordering it
    just before (``order`` = the group's order - 1) gives the Synapses
    coupling the semi-implicit Euler of the dense coupling (the controller
    moves first, the system sees the new control signal). Buys agreement of
    the two couplings to 1e-10 rather than time (0 ms).

    Relies on ``Synapses.summed_updaters``, a dict of the updater objects.
    """
    for updater in synapses.summed_updaters.values():
        updater.order = order


ORDER_DEPENDENT_MARK = "coding_error_post :="
"""What the first line of the spike-coding neurons' ``on_pre`` code looks like
to Brian2 (`dinv.circuits.spiking_equations.SCN_ON_PRE`)."""


class _SequentialRuleFilter(logging.Filter):
    """Drops Brian2's warning that the SCN's ``on_pre`` code depends on its order."""

    def filter(self, record):
        message = record.getMessage()
        return not (message.startswith("Came across an abstract code block")
                    and ORDER_DEPENDENT_MARK in message)


def expect_sequential_spike_rule():
    """Keep Brian2 quiet about the order dependence of the SCN's spike rule.

    The SCN's decoding synapses read their unit's readout after earlier
    synapses of the step wrote it (`dinv.circuits.spiking_equations.SCN_ON_PRE`):
    the outcome depends on the order of execution, by design. Brian2 warns of
    that each time it generates the code; this filter (on Brian2's
    code-generation logger, installed once) drops that warning for that code
    only. Costs and saves no time.

    Relies on the warning's wording and logger name
    (``brian2.codegen.generators.base``), which Brian2 does not promise.
    """
    logger = logging.getLogger("brian2.codegen.generators.base")
    if not any(isinstance(f, _SequentialRuleFilter) for f in logger.filters):
        logger.addFilter(_SequentialRuleFilter())


def reuse_code_objects(network):
    """Keep the generated code objects of a network's objects after its first run.

    Brian2 regenerates every code object at the start of each run. A circuit
    never changes its equations, namespace or variables between runs, so after
    the first run the objects are reused: a 10-step run of a small layer
    circuit takes 4 ms instead of 10-15 ms with dense coupling (two state
    updaters), 3-4 ms instead of 19-30 ms with Synapses (two more objects, each
    with a summed-variable updater).

    Relies on ``CodeRunner.create_code_objects(run_namespace)`` being the one
    method that (re)creates them, called by ``before_run``; it is replaced per
    object, never on the class.
    """
    for obj in network.objects:
        for contained in [obj] + list(getattr(obj, "contained_objects", [])):
            if getattr(contained, "code_objects", None) and hasattr(contained,
                                                                     "create_code_objects"):
                contained.create_code_objects = _keep_code_objects


def direct_step_calls(network):
    """Let each step of a network's later runs call its objects' compiled code directly.

    At every step ``Network.run`` calls each object's ``run()``. For a group's
    state updater that is ``BrianObject.run`` -> ``CodeObject.__call__`` (which
    refreshes the namespace's dynamic arrays and merges keyword arguments) ->
    ``run`` -> ``run_block`` -> the compiled ``main(namespace)``; for a
    network operation ``NetworkOperation.run`` -> the function. Once the code
    objects are kept (`reuse_code_objects`), an object whose code objects are
    all Cython code with a fixed namespace (no dynamic arrays that change size
    during a run, as in synapses that grow) gets an instance ``run`` that calls
    the compiled mains straight away, and a network operation without a time
    argument one that calls its function: the same code in the same order, 2-4
    us less per object and step (``benchmarks/brian_internals.py``). Other
    objects (numpy code, spike queues, monitors) keep Brian2's own ``run``.

    Relies on ``CythonCodeObject.compiled_code['run'].main(namespace)`` being
    what ``run_block('run')`` calls, on ``nonconstant_values`` listing every
    namespace entry refreshed per call, on ``BrianObject.run`` calling each
    of ``code_objects`` without arguments, and on ``NetworkOperation._has_arg``.
    """
    for obj in network.objects:
        for contained in [obj] + list(getattr(obj, "contained_objects", [])):
            direct = _direct_call(contained)
            if direct is not None:
                contained.run = direct


def _direct_call(obj):
    """The direct per-step call of ``obj`` (see `direct_step_calls`), or None."""
    if isinstance(obj, NetworkOperation):
        return None if obj._has_arg else obj.function
    if type(obj).run is not BrianObject.run:
        return None
    mains = []
    for code in getattr(obj, "code_objects", ()):
        compiled = getattr(code, "compiled_code", {}).get("run")
        if not (isinstance(code, CythonCodeObject) and compiled is not None
                and not code.nonconstant_values and code.__class__.__call__ is CodeObject.__call__):
            return None
        mains.append(partial(compiled.main, code.namespace))
    if not mains:
        return None
    if len(mains) == 1:
        return mains[0]

    def run_all():
        for main in mains:
            main()

    return run_all


def lean_runs(network: Any, expand: dict[Any, list] | None = None) -> "LeanRun | None":
    """The runs of ``network`` after its first, without ``Network.run``: a `LeanRun`.

    Later runs of a circuit need none of what ``Network.run`` does around its
    loop at every run: sorting and checking the objects, preparing each of
    them, setting the clock through `Clock.set_interval` (whose debug message
    formats two quantities in their best units, 1-3 ms per run: more than 100
    steps of a small circuit), checking every state for NaN (the run
    controller has its own divergence check) and finishing each object. Nor
    do they need its per-step bookkeeping beyond advancing the clock. A
    `LeanRun` runs the objects' direct calls (`direct_step_calls`) in
    Brian2's order, in chunks of steps whose length the caller chooses
    (`dinv.circuits.step_loop` runs a chunk in one compiled loop), advances the
    clock's ``timestep`` and ``t`` after every step as Brian2 does, and tells
    the caller when ``network.stop()`` or Brian2's global stop (Ctrl-C) asked
    the run to end.

    It is only offered for a network whose objects all run on one clock and
    are either network operations without a time argument or code runners
    whose code objects are Cython code with a direct call (`direct_step_calls`):
    groups' state updates, thresholds and resets (spiking populations whose
    spikes act through their resets), no monitors or synaptic pathways, whose
    own ``before_run`` and ``after_run`` would have work to do. The compiled
    ``before_run`` and ``after_run`` blocks of their code objects (a
    threshold's ``after_run`` clears its spike space) run at the start and end
    of a run, as ``Network.run`` runs them. Every object of the network is
    judged, active or not: an object switched off for the first run (a pathway
    of a later phase) must run when it is switched on. Each run calls the
    objects active at its start, as ``Network.run`` does. Call it after a first
    ``Network.run`` (which builds the code objects) and `direct_step_calls`.

    Relies on `direct_step_calls`, on ``Network.sorted_objects``,
    ``Network._stopped``, ``Network._globally_stopped``,
    ``Network._globally_running`` (Brian2's Ctrl-C handler) and ``Network.t_``,
    on a clock's ``timestep`` and ``t`` arrays, and on an object's
    ``before_run`` and ``after_run`` doing nothing else once its code objects
    are kept (`reuse_code_objects`) than run its code objects' blocks.

    Parameters
    ----------
    network : brian2.Network
    expand : dict or None
        Network operations to replace by a list of calls each (kept by
        reference: a change of the list changes later chunks), e.g. a
        coupling bank by its pathways' kernels, or a per-step bookkeeping
        operation by an empty list when the caller keeps the books between
        chunks.

    Returns
    -------
    LeanRun or None
        None when some object needs ``Network.run``.
    """
    expand = expand or {}
    objects = list(network.sorted_objects)
    clocks = {obj.clock for obj in objects}
    if len(clocks) != 1:
        return None
    items: list[tuple[Any, Any]] = []
    before: list[tuple[Any, Any]] = []
    after: list[tuple[Any, Any]] = []
    for obj in objects:
        if isinstance(obj, NetworkOperation):
            if obj in expand:
                items.append((obj, expand[obj]))
            elif "run" in vars(obj):
                items.append((obj, obj.run))
            else:
                return None
            continue
        codes = list(getattr(obj, "code_objects", ()))
        if not codes:
            if type(obj).run is not BrianObject.run:
                return None
            continue  # a group: its own run does nothing
        if "run" not in vars(obj) or type(obj).before_run is not CodeRunner.before_run \
                or type(obj).after_run is not BrianObject.after_run \
                or any(code.template_name not in STEP_TEMPLATES for code in codes):
            return None
        for code in codes:
            for block, blocks in (("before_run", before), ("after_run", after)):
                compiled = code.compiled_code.get(block)
                if compiled is not None:
                    blocks.append((obj, partial(compiled.main, code.namespace)))
        items.append((obj, obj.run))
    return LeanRun(network, clocks.pop(), items, before, after)


class LeanRun:
    """Chunks of steps of a network without ``Network.run`` (see `lean_runs`).

    A run is `begin`, chunks of steps (each a call of every item of `calls`
    per step, then the clock advanced), then `end`.

    Attributes
    ----------
    timestep, t : numpy.ndarray
        The clock's arrays (one element each), advanced after every step.
    dt : float
        The clock's step (second).
    """

    def __init__(self, network: Any, clock: Any, items: list[tuple[Any, Any]],
                 before: list[tuple[Any, Any]], after: list[tuple[Any, Any]]) -> None:
        self._network = network
        self._class = type(network)
        self._items, self._before, self._after = items, before, after
        self._running: list[Any] = []
        self.timestep = clock.variables["timestep"].get_value()
        self.t = clock.variables["t"].get_value()
        self.dt = float(clock.variables["dt"].get_value().item())

    def calls(self) -> tuple[Callable[[], object], ...]:
        """Every call of one step of this run, in Brian2's order (the objects active at
        the run's start; expanded lists as they are now)."""
        found = []
        for item in self._running:
            if isinstance(item, list):
                found.extend(item)
            else:
                found.append(item)
        return tuple(found)

    def begin(self) -> None:
        """Start a run: fix the objects it runs (those active now, as ``Network.run``
        does), clear the stop flags, let Brian2's SIGINT handler turn Ctrl-C into a
        stop (as in ``Network.run``) and run the before-run blocks."""
        self._running = [item for obj, item in self._items if obj.active]
        self._network._stopped = False
        self._class._globally_stopped = False
        self._class._globally_running = True
        for obj, call in self._before:
            if obj.active:
                call()

    def stopped(self) -> bool:
        """Whether ``network.stop()`` or Ctrl-C asked the run to end."""
        return bool(self._network._stopped or self._class._globally_stopped)

    def end(self) -> None:
        """End a run: the network's time, Ctrl-C back to Brian2's default, the
        after-run blocks."""
        self._class._globally_running = False
        self._network.t_ = float(self.t[0])
        for obj, call in self._after:
            if obj.active:
                call()


FAST_MATH_FLAGS = ("-ffast-math", "-fno-finite-math-only", "/fp:fast")
"""Brian2's default compiler flags that let the compiler reorder or fuse
floating-point operations; `compile_cython` drops them."""


def compile_cython(source, name):
    """Compile the Cython module ``source`` as Brian2 compiles its generated code.

    The module is built with Brian2's compiler, include and library settings
    (``prefs.codegen.cpp``), into Brian2's Cython cache
    (``prefs.codegen.runtime.cython.cache_dir``: compiled once per machine and
    source, then loaded in milliseconds) under the file lock Brian2 takes per
    module, so concurrent workers never race. The compiler flags are Brian2's
    without its fast-math flags and, for gcc and clang, with
    ``-ffp-contract=off``: every addition and multiplication is then one IEEE
    operation in the order of the source, so a kernel gives the same bits on
    every machine, whatever its vector width or fused multiply-add. The flags
    are written into the source as a comment, so a change of flags builds a
    new module (Brian2's cache key is the source alone).

    Relies on ``cython_extension_manager.create_extension`` (in
    ``brian2.codegen.runtime.cython_rt.extension_manager``) and
    ``brian2.codegen.cpp_prefs.get_compiler_and_args``, which Brian2 documents
    for its developers only.

    Parameters
    ----------
    source : str
        Cython source (compiled as C++, as Brian2 does).
    name : str
        What the module holds, for Brian2's log.

    Returns
    -------
    module

    Raises
    ------
    ImportError, OSError or a compiler error
        When the module cannot be built (no Cython, no compiler).
    """
    import numpy
    from brian2 import prefs
    from brian2.codegen.cpp_prefs import get_compiler_and_args
    from brian2.codegen.runtime.cython_rt.extension_manager import cython_extension_manager

    compiler, flags = get_compiler_and_args()
    flags = [flag for flag in flags if flag not in FAST_MATH_FLAGS]
    if compiler != "msvc":
        flags.append("-ffp-contract=off")
    return cython_extension_manager.create_extension(
        f"# compiled with {compiler} {' '.join(flags)}\n{source}",
        compiler=compiler, extra_compile_args=flags,
        extra_link_args=prefs["codegen.cpp.extra_link_args"],
        include_dirs=[numpy.get_include()] + list(prefs["codegen.cpp.include_dirs"]),
        library_dirs=prefs["codegen.cpp.library_dirs"],
        runtime_library_dirs=prefs["codegen.cpp.runtime_library_dirs"],
        owner_name=f"dinv {name}")


def _keep_code_objects(run_namespace):
    """Replacement of ``CodeRunner.create_code_objects`` that keeps the old ones."""


class _YoungCollector:
    """Stands in for the ``gc`` module inside ``brian2.core.network`` during a run."""

    @staticmethod
    def collect(generation=2):
        """Collect the youngest generation only, whatever was asked."""
        return gc.collect(0)


@contextmanager
def young_collection_only():
    """Within the block, ``Network.run``'s full garbage collection is a young one.

    ``Network.run`` starts with ``gc.collect()``, to warn about objects left
    out of the magic network (which circuits never use). A full collection
    walks every object of the process: a 10-step run of a small layer circuit
    takes 84-116 ms with it in a process that holds Brian2, scipy and
    matplotlib (170 000 tracked objects), 2.3-3.9 ms with a young collection
    (2.2-2.8 ms with the former ``gc.freeze``). Swapping the module only for
    the duration of our own runs
    leaves every object collectable and every other ``Network.run`` as it
    was (unlike ``gc.freeze``, which would keep a dropped circuit's objects
    alive until ``gc.unfreeze``).

    Relies on ``brian2.core.network`` calling ``gc.collect()`` through its
    module-level name ``gc``.
    """
    brian_network.gc = _YoungCollector
    try:
        yield
    finally:
        brian_network.gc = gc


def _common_template():
    """The text of Brian2's Cython template that sets the compiler directives."""
    from pathlib import Path

    import brian2.codegen.runtime.cython_rt as cython_rt

    path = Path(cython_rt.__file__).parent / "templates" / "common_group.pyx"
    return path.read_text() if path.is_file() else ""


def discard_unrun(objects):
    """Let Brian2 objects that never ran be collected without Brian2's warning.

    Brian2 warns, when it collects an object, that the object "was never
    included in a network" if no run prepared it; the objects of a neuron
    model Brian2 refused to prepare (`dinv.circuits.neurons`) are such
    objects, and their refusal is already reported, in one line. Costs and
    saves no time. Relies on ``BrianObject._network`` (None until a run
    prepares the object) and on ``BrianObject.__del__`` testing it.
    """
    for obj in objects:
        if getattr(obj, "_network", "") is None:
            obj._network = "discarded"


def problems():
    """What the installed Brian2 no longer has that this module relies on.

    Returns
    -------
    list of str
        One line per missing feature, naming the function of this module to
        update; empty when all is well.
    """
    found = []
    group = NeuronGroup(2, "x : 1\ny : 1", codeobj_class=NumpyCodeObject)
    view = group.variables["x"].get_value()
    view[0] = 1.5
    if float(group.x[0]) != 1.5:
        found.append("live_view: group.variables[name].get_value() no longer returns the "
                     "array Brian2 integrates")
    runner = group.state_updater
    if not callable(getattr(runner, "create_code_objects", None)):
        found.append("reuse_code_objects: CodeRunner.create_code_objects is gone")
    elif "create_code_objects" not in inspect.getsource(type(runner).before_run):
        found.append("reuse_code_objects: CodeRunner.before_run no longer calls "
                     "create_code_objects")
    synapses = Synapses(group, group, "w : 1\ny_post = w * x_pre : 1 (summed)",
                        codeobj_class=NumpyCodeObject)
    updaters = getattr(synapses, "summed_updaters", None)
    if not (isinstance(updaters, dict) and updaters
            and all(hasattr(u, "order") and hasattr(u, "when") for u in updaters.values())):
        found.append("order_summed_updaters: "
                     "Synapses.summed_updaters is no longer a dict of scheduled updaters")
    call_chain = (inspect.getsource(CodeObject.__call__), inspect.getsource(CodeObject.run),
                  inspect.getsource(CythonCodeObject.run_block), inspect.getsource(BrianObject.run))
    if not ("self.run()" in call_chain[0] and 'run_block("run")' in call_chain[1]
            and ".main(self.namespace)" in call_chain[2] and "codeobj()" in call_chain[3]
            and hasattr(CythonCodeObject, "update_namespace")):
        found.append("direct_step_calls: a step no longer reaches the compiled code through "
                     "BrianObject.run -> CodeObject.__call__ -> run_block('run') -> "
                     "main(namespace)")
    if not hasattr(NetworkOperation, "run") or "_has_arg" not in inspect.getsource(
            NetworkOperation.run):
        found.append("direct_step_calls: NetworkOperation.run no longer uses _has_arg")
    network_source = inspect.getsource(brian_network)  # Network.run is wrapped
    if not all(name in network_source for name in ("_globally_stopped", "_globally_running",
                                                   "self._stopped",
                                                   'variables["timestep"]', "self.t_")):
        found.append("lean_runs: Network.run no longer steps its clock through the timestep "
                     "and t arrays, or no longer stops on _stopped/_globally_stopped")
    try:
        from brian2.codegen.cpp_prefs import get_compiler_and_args
        from brian2.codegen.runtime.cython_rt.extension_manager import cython_extension_manager
    except ImportError:
        found.append("compile_cython: brian2.codegen.cpp_prefs.get_compiler_and_args or "
                     "cython_rt.extension_manager.cython_extension_manager moved")
    else:
        parameters = inspect.signature(cython_extension_manager.create_extension).parameters
        if not {"compiler", "extra_compile_args", "include_dirs",
                "owner_name"} <= set(parameters) or not callable(get_compiler_and_args):
            found.append("compile_cython: create_extension no longer takes compiler, "
                         "extra_compile_args, include_dirs and owner_name")
    from brian2.codegen.generators.cython_generator import CythonCodeGenerator
    from brian2.codegen.templates import MultiTemplate

    loading = inspect.getsource(CythonCodeGenerator.determine_keywords)
    if not all(text in loading for text in (
            "cdef _numpy.ndarray[{cpp_dtype}, ndim=1, mode='c']",
            " _buf_{array_name} = _namespace['{array_name}']",
            "cdef size_t _num{array_name} = len(_namespace['{array_name}'])",
            "'_var_{varname} = _namespace[\"_var_{varname}\"]'",
            " _buf_{array_name}.data")) \
            or PYTHON_DIVISION not in _common_template() \
            or "_templates" not in inspect.getsource(MultiTemplate.__init__):
        found.append("LeanCythonCodeObject: Brian2's Cython code no longer loads its arrays "
                     "as typed buffers in the lines lean_cython_source rewrites, no longer "
                     "sets the cdivision=False directive it replaces, or a MultiTemplate no "
                     "longer keeps its blocks in _templates")
    if "_network" not in inspect.getsource(BrianObject.__del__) \
            or getattr(group, "_network", "") is not None:
        found.append("discard_unrun: BrianObject.__del__ no longer tests _network, or a new "
                     "object's _network is no longer None")
    if getattr(brian_network, "gc", None) is not gc:
        found.append("young_collection_only: brian2.core.network no longer imports gc")
    elif "gc.collect()" not in inspect.getsource(brian_network):
        found.append("young_collection_only: Network.run no longer calls gc.collect() "
                     "(the swap is then useless: remove it)")
    return found
