"""Canary of the Brian2 internals the circuits rely on, and what they must not break.

Every reach into Brian2 beyond its documented interface lives in
`dinv.circuits.brian_internals`. If a Brian2 release changes one of them, the
first test here fails and names the function of that module to update.
"""

import gc
import weakref

import brian2
import brian2.core.network as brian_network
import numpy as np
import pytest

from dinv.circuits import LayerCircuit, brian_internals, step_loop
from dinv.circuits.brian_internals import live_view, young_collection_only
from dinv.circuits.step_loop import run_steps
from dinv.errors import CircuitDivergedError


def test_installed_brian2_has_what_the_circuits_rely_on():
    """The canary: each relied-on Brian2 attribute and behaviour is still there."""
    found = brian_internals.problems()
    assert not found, (
        f"Brian2 {brian2.__version__} changed what dinv.circuits.brian_internals relies on:\n"
        + "\n".join(found)
    )


def test_live_view_writes_reach_the_simulation():
    """A value written through the view is what the group integrates."""
    group = brian2.NeuronGroup(3, "dx/dt = -x / (10*ms) : 1", namespace={},
                               codeobj_class=brian2.NumpyCodeObject)
    live_view(group, "x")[...] = [1.0, 2.0, 3.0]
    net = brian2.Network(group)
    net.run(1 * brian2.ms, namespace={})
    np.testing.assert_allclose(live_view(group, "x"), group.x[:])
    assert np.all(live_view(group, "x") < [1.0, 2.0, 3.0])


def test_young_collection_only_restores_the_gc_module():
    """Inside the block Network.run's collection is a young one; after it, as before."""
    with young_collection_only():
        assert brian_network.gc is not gc
        brian_network.gc.collect()
    assert brian_network.gc is gc
    with pytest.raises(RuntimeError), young_collection_only():
        raise RuntimeError("inside")
    assert brian_network.gc is gc


def test_code_objects_are_kept_after_the_first_run():
    """The second run uses the code objects generated for the first."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((2, 3))
    circuit = LayerCircuit(2, 3)
    circuit.settle(W, -W.T, np.ones((1, 2)), 0.1, steps=5, on_unsettled="ignore")
    updater = circuit.assembly.slots["system"].group.state_updater
    first = updater.codeobj
    circuit.settle(W, -W.T, np.ones((1, 2)), 0.1, steps=5, on_unsettled="ignore")
    assert updater.codeobj is first


def test_discarded_circuits_are_collectable():
    """Building and dropping 40 circuits leaves nothing frozen or alive."""
    gc.collect()
    frozen = gc.get_freeze_count()
    rng = np.random.default_rng(1)
    W = rng.standard_normal((2, 3))
    refs = []
    for k in range(40):
        circuit = LayerCircuit(2, 3)
        if k % 10 == 0:
            circuit.settle(W, -W.T, np.ones((1, 2)), 0.1, steps=5, on_unsettled="ignore")
        refs.append(weakref.ref(circuit.assembly.network))
        del circuit
    gc.collect()
    assert gc.get_freeze_count() == frozen
    alive = sum(ref() is not None for ref in refs)
    assert alive == 0, f"{alive} of 40 discarded circuits are still alive"


def _layer_problem(n=3):
    rng = np.random.default_rng(2)
    W = rng.standard_normal((n, 2, 3))
    return W, -W.transpose(0, 2, 1), rng.standard_normal((n, 1, 2)), 0.1


def _brian_own_runs(circuit):
    """Every later run through Network.run and Brian2's own chain of calls per object."""
    for obj in circuit.assembly.network.objects:
        for contained in [obj] + list(getattr(obj, "contained_objects", [])):
            vars(contained).pop("run", None)
    circuit.assembly.runner._lean = None


def test_lean_runs_give_exactly_the_states_of_network_run():
    """After the first run, the direct calls and the lean loop reproduce Network.run bit
    for bit: the settled states, the steps and the network's time."""
    args = _layer_problem()
    circuit = LayerCircuit(2, 3, n=3)
    circuit.settle(*args, steps=40, on_unsettled="ignore")
    assert circuit.assembly.runner._lean is not None
    lean = circuit.settle(*args, steps=60, on_unsettled="ignore")
    lean_t = float(circuit.assembly.network.t_)
    early = circuit.settle(*args, steps=4000, stop_tol=1e-6, on_unsettled="ignore")
    twin = LayerCircuit(2, 3, n=3)
    twin.settle(*args, steps=40, on_unsettled="ignore")
    _brian_own_runs(twin)
    own = twin.settle(*args, steps=60, on_unsettled="ignore")
    assert lean_t == float(twin.assembly.network.t_) > 0
    assert lean.steps == own.steps == 60
    np.testing.assert_array_equal(lean.delta, own.delta)
    np.testing.assert_array_equal(lean.u, own.u)
    np.testing.assert_array_equal(lean.residual, own.residual)
    # Stopped early by stop_tol (between chunks of steps): at the same step, same states.
    own_early = twin.settle(*args, steps=4000, stop_tol=1e-6, on_unsettled="ignore")
    assert early.steps == own_early.steps < 4000
    np.testing.assert_array_equal(early.delta, own_early.delta)


def test_lean_runs_stop_where_network_run_stops():
    """A diverging circuit is stopped by the run controller at the same step either way."""
    rng = np.random.default_rng(3)
    W = 3 * rng.standard_normal((1, 2, 3))
    args = (W, W.transpose(0, 2, 1), np.ones((1, 1, 2)), 0.0)  # B = +W^T: unstable
    messages = []
    for own in (False, True):
        circuit = LayerCircuit(2, 3, n=1)
        circuit.settle(*_layer_problem(1), steps=5, on_unsettled="ignore")
        if own:
            _brian_own_runs(circuit)
        else:
            assert circuit.assembly.runner._lean is not None
        with pytest.raises(CircuitDivergedError) as info:
            circuit.settle(*args, steps=20000, on_unsettled="ignore")
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert "diverged after" in messages[0]


def _lean_steps(net, steps, expand=None):
    """``steps`` steps of ``net`` through a LeanRun and the compiled step loop."""
    lean = brian_internals.lean_runs(net, expand)
    assert lean is not None
    lean.begin()
    run_steps(lean.calls(), steps, lean.timestep, lean.t, lean.dt)
    lean.end()
    return lean


def _own_steps(net, steps):
    """``steps`` steps of ``net`` through Network.run and Brian2's own calls."""
    for obj in net.objects:
        for contained in [obj] + list(obj.contained_objects):
            vars(contained).pop("run", None)
    net.run(steps * brian2.defaultclock.dt, namespace={})


def _kept(net):
    net.run(1 * brian2.ms, namespace={})
    brian_internals.reuse_code_objects(net)
    brian_internals.direct_step_calls(net)


def test_lean_runs_only_for_networks_without_pathways_or_monitors():
    """A network with a monitor keeps Network.run; one of Cython state updates gets the
    lean loop, and it advances the clock like Network.run."""
    plain = brian2.NeuronGroup(2, "dx/dt = -x / (10*ms) : 1", namespace={},
                               codeobj_class=brian_internals.CODEGEN_TARGETS["cython"])
    net = brian2.Network(plain)
    _kept(net)
    plain.x = 1.0
    start = float(net.t_)
    _lean_steps(net, 30)
    lean_x, lean_t = np.array(plain.x[:]), float(net.t_) - start
    plain.x = 1.0
    start = float(net.t_)
    _own_steps(net, 30)
    np.testing.assert_array_equal(lean_x, plain.x[:])
    assert lean_t == pytest.approx(float(net.t_) - start) == pytest.approx(0.003)
    spiking = brian2.NeuronGroup(2, "dv/dt = 1 / (10*ms) : 1", threshold="v > 1",
                                 reset="v = 0", namespace={},
                                 codeobj_class=brian2.CythonCodeObject)
    monitor = brian2.SpikeMonitor(spiking, codeobj_class=brian2.CythonCodeObject)
    other = brian2.Network(spiking, monitor)
    _kept(other)
    assert brian_internals.lean_runs(other) is None


def test_lean_runs_of_spikes_through_resets_match_network_run():
    """Thresholds and resets (a reset writing a linked variable, in neuron order) run
    in the lean loop as in Network.run, bit for bit, and the spike space is cleared
    at the end of a run (the threshold's after-run block), as Network.run clears it."""
    cython = brian_internals.CODEGEN_TARGETS["cython"]
    states = []
    for lean in (True, False):
        units = brian2.NeuronGroup(2, "dx/dt = -x / (5*ms) : 1", namespace={},
                                   codeobj_class=cython)
        neurons = brian2.NeuronGroup(
            6, "dv/dt = (drive - v) / (3*ms) : 1\ndrive : 1 (constant)\nx_rep : 1 (linked)",
            threshold="v > 0.5", reset="v = 0\nx_rep += 0.1 * (1 - x_rep)", namespace={},
            method="euler", codeobj_class=cython)
        neurons.x_rep = brian2.linked_var(units, "x", index=np.arange(6) // 3)
        neurons.drive = np.linspace(0.6, 1.6, 6)
        net = brian2.Network(units, neurons)
        _kept(net)
        if lean:
            _lean_steps(net, 200)
        else:
            _own_steps(net, 200)
        spikespace = neurons.variables["_spikespace"].get_value()
        assert spikespace[-1] == 0
        states.append((np.array(units.x[:]), np.array(neurons.v[:]), float(net.t_)))
    for lean_state, own_state in zip(*states):
        np.testing.assert_array_equal(lean_state, own_state)
    assert np.all(states[0][0] > 0)


def test_lean_cython_source_keeps_the_numbers():
    """The lighter start of a state update's code: no typed buffer is acquired, lengths
    come from PyArray_DIM, unused _var_ lines go, and the group integrates to the same
    bits as with Brian2's own code object."""
    equations = "dx/dt = (a - x) / tau : 1\na : 1\ntau : second (shared, constant)"
    values = []
    for cls in (brian2.CythonCodeObject, brian_internals.LeanCythonCodeObject):
        group = brian2.NeuronGroup(5, equations, method="euler", codeobj_class=cls,
                                   namespace={})
        group.a = np.arange(5.0)
        group.tau = 3 * brian2.ms
        brian2.Network(group).run(2 * brian2.ms, namespace={})
        values.append(np.array(group.x[:]))
        source = group.state_updater.codeobj.code.run
        if cls is brian_internals.LeanCythonCodeObject:
            assert "_numpy.ndarray[" not in source
            assert "_numpy.PyArray_DIM(_buf_" in source
            assert '_var_a = _namespace["_var_a"]' not in source
        else:
            assert "_numpy.ndarray[" in source
    np.testing.assert_array_equal(values[0], values[1])
    assert np.all(values[1][1:] > 0)  # x approaches a (0 for the first unit)


def test_compiled_step_loop_matches_the_python_loop():
    """The compiled loop makes the calls of every step in order and advances the clock
    as the Python loop does."""
    for loop in (step_loop.run_steps, step_loop._python_steps):
        log = []
        timestep, t = np.array([7], dtype=np.int64), np.zeros(1)
        calls = (lambda log=log: log.append("a"), lambda log=log: log.append("b"))
        loop(calls, 3, timestep, t, 0.25)
        assert log == ["a", "b"] * 3
        assert timestep[0] == 10 and t[0] == 2.5
