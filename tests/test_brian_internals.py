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

from dinv.circuits import LayerCircuit, brian_internals
from dinv.circuits.brian_internals import live_view, young_collection_only
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
    twin = LayerCircuit(2, 3, n=3)
    twin.settle(*args, steps=40, on_unsettled="ignore")
    _brian_own_runs(twin)
    own = twin.settle(*args, steps=60, on_unsettled="ignore")
    assert lean_t == float(twin.assembly.network.t_) > 0
    assert lean.steps == own.steps == 60
    np.testing.assert_array_equal(lean.delta, own.delta)
    np.testing.assert_array_equal(lean.u, own.u)
    np.testing.assert_array_equal(lean.residual, own.residual)


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


def test_lean_runs_only_for_networks_of_plain_state_updates():
    """A network with spikes and a monitor keeps Network.run; one of plain Cython state
    updates gets the lean loop, and it advances the clock like Network.run."""
    plain = brian2.NeuronGroup(2, "dx/dt = -x / (10*ms) : 1", namespace={},
                               codeobj_class=brian2.CythonCodeObject)
    net = brian2.Network(plain)
    net.run(1 * brian2.ms, namespace={})
    brian_internals.reuse_code_objects(net)
    brian_internals.direct_step_calls(net)
    run = brian_internals.lean_runs(net)
    assert run is not None
    plain.x = 1.0
    start = float(net.t_)
    run(30)
    lean_x, lean_t = np.array(plain.x[:]), float(net.t_) - start
    plain.x = 1.0
    for obj in net.objects:
        for contained in [obj] + list(obj.contained_objects):
            vars(contained).pop("run", None)
    start = float(net.t_)
    net.run(30 * brian2.defaultclock.dt, namespace={})
    np.testing.assert_array_equal(lean_x, plain.x[:])
    assert lean_t == pytest.approx(float(net.t_) - start) == pytest.approx(0.003)
    spiking = brian2.NeuronGroup(2, "dv/dt = 1 / (10*ms) : 1", threshold="v > 1",
                                 reset="v = 0", namespace={},
                                 codeobj_class=brian2.CythonCodeObject)
    monitor = brian2.SpikeMonitor(spiking, codeobj_class=brian2.CythonCodeObject)
    other = brian2.Network(spiking, monitor)
    other.run(1 * brian2.ms, namespace={})
    brian_internals.reuse_code_objects(other)
    brian_internals.direct_step_calls(other)
    assert brian_internals.lean_runs(other) is None
