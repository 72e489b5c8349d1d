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
    with pytest.raises(RuntimeError):
        with young_collection_only():
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
