"""Population models other than the default ones, through every entry point.

A rate system with a gain g and its own variable names settles to the
closed form with g B in place of B (its steady state is x = g B u), and a
controller with its own names for target and leak behaves as the default
one. Each runs through `settle_layer`, `settle_chain` (sequential, repeat and
single loop) and one training step, settles to its own closed form, reports
a residual near 0 and ends early under ``stop_tol``.
"""

import warnings

import numpy as np
import pytest
from brian2 import Clock, Network, NumpyCodeObject, SpikeMonitor, ms

from dinv.circuits import (
    CONTROLLER,
    POPULATION_MODELS,
    SYSTEM,
    LayerCircuit,
    PopulationModel,
    SettleOptions,
    get_population_model,
    register_population_model,
    settle_layer,
)
from dinv.circuits.chains import settle_chain
from dinv.errors import InputError, NotSettledWarning
from dinv.models.network import FeedforwardNetwork
from dinv.models.rules import ndi
from dinv.models.training import Learner, UpdateConfig, train_step

GAIN = 2.0

GAINED_SYSTEM = PopulationModel(
    equations="""
    dx/dt = (-x + g * I_in) / tau_sys : 1
    I_in : 1
    g : 1 (shared, constant)
    tau_sys : second (shared, constant)
    """,
    readout="x", input="I_in", tau="tau_sys", parameters={"g": GAIN},
)
"""Rate system with a gain: tau dx/dt = -x + g B u, steady state x = g B u."""

NAMED_CONTROLLER = PopulationModel(
    equations="""
    dv/dt = (-leak * v + fwd - err) / tau_c : 1
    fwd : 1
    err : 1
    leak : 1 (constant)
    tau_c : second (shared, constant)
    """,
    readout="v", input="fwd", tau="tau_c", kind="controller", target="err", leak="leak",
)
"""Eq. (8) under other names: target 'err', leak 'leak'."""

FILTERED_SYSTEM = PopulationModel(
    equations="""
    dv/dt = (-v + I_in) / tau_sys : 1
    dr/dt = (v - r) / tau_filter : 1
    I_in : 1
    tau_sys : second (shared, constant)
    """,
    readout="r", input="I_in", tau="tau_sys", namespace={"tau_filter": 10 * ms},
    rest={"v": 0.0},
)
"""Eq. (5) read out through a low-pass filter r of the state v (as a spiking
population is read out through a filtered spike train); at rest r = v = B u."""

MODELS = {"system": GAINED_SYSTEM, "controller": NAMED_CONTROLLER}
ALPHA = 0.1


def rel_err(x, ref):
    """max |x - ref| / max |ref|."""
    return float(np.max(np.abs(np.asarray(x) - ref)) / np.max(np.abs(ref)))


def layer_case(seed=0, d_out=3, d_in=5, batch=4):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)
    return W, -W.T, rng.standard_normal((batch, d_out))


def euler_loop(W, B, target, alpha, steps, dt=0.5):
    """Hand-written semi-implicit Euler of Eqs. (5, 8): controller first, then the system."""
    delta = np.zeros(target.shape[:-1] + (W.shape[1],))
    u = np.zeros(target.shape)
    for _ in range(steps):
        u = u + dt * (-alpha * u + delta @ W.T - target)
        delta = delta + dt * (-delta + u @ B.T)
    return delta, u


# --------------------------------------------------------------------------
# Default models, registry
# --------------------------------------------------------------------------


def test_default_models_are_the_paper_equations():
    """Default, explicit and registered-name models give bitwise the same states,
    those of the hand-written semi-implicit Euler loop of Eqs. (5, 8)."""
    W, B, delta = layer_case(1)
    kwargs = dict(steps=300, return_result=True, on_unsettled="ignore")
    default = settle_layer(W, B, delta, ALPHA, **kwargs)
    explicit = settle_layer(W, B, delta, ALPHA, system=SYSTEM, controller=CONTROLLER, **kwargs)
    named = settle_layer(W, B, delta, ALPHA, system="rate-system",
                         controller="rate-controller", **kwargs)
    for other in (explicit, named):
        np.testing.assert_array_equal(other.delta, default.delta)
        np.testing.assert_array_equal(other.u, default.u)
    ref_delta, ref_u = euler_loop(W, B, delta, ALPHA, 300)
    assert np.max(np.abs(default.delta[0] - ref_delta)) < 1e-13
    assert np.max(np.abs(default.u[0] - ref_u)) < 1e-13
    settled = settle_layer(W, B, delta, ALPHA, steps=3000)
    assert rel_err(settled, ndi(W, B, delta, ALPHA)) < 1e-10


def test_registry_lookup_and_errors():
    """Names resolve to models of the right kind; mistakes name the fix."""
    assert get_population_model("rate-system", "system") is SYSTEM
    assert POPULATION_MODELS["rate-controller"] is CONTROLLER
    with pytest.raises(InputError, match=r"no population model called 'izh'.*rate-system"):
        get_population_model("izh", "system")
    with pytest.raises(InputError, match=r"system needs a system model, got the controller model "
                       r".rate-controller.; system models: \[.lif., .rate-system., .scn.\]"):
        settle_layer(*layer_case(), ALPHA, system="rate-controller")
    with pytest.raises(InputError, match="controller needs a controller model"):
        SettleOptions(controller=GAINED_SYSTEM)
    register_population_model("test-gained-system", GAINED_SYSTEM)
    try:
        assert SettleOptions(system="test-gained-system").system == GAINED_SYSTEM
        with pytest.raises(InputError, match="already called"):
            register_population_model("test-gained-system", FILTERED_SYSTEM)
    finally:
        del POPULATION_MODELS["test-gained-system"]


def test_bad_models_raise_input_error():
    """A model whose roles do not match its equations is refused when it is made."""
    with pytest.raises(InputError, match="target variable 'target' is not in its equations"):
        PopulationModel(NAMED_CONTROLLER.equations, "v", "fwd", "tau_c", kind="controller",
                        target="target", leak="leak")
    with pytest.raises(InputError, match="input 'x' must be a parameter"):
        PopulationModel(GAINED_SYSTEM.equations, "x", "x", "tau_sys")
    with pytest.raises(InputError, match="only controller models have a target"):
        PopulationModel(GAINED_SYSTEM.equations, "x", "I_in", "tau_sys", target="I_in")
    with pytest.raises(InputError, match="must be '\\(shared, constant\\)'"):
        PopulationModel("dx/dt = (-x + I) / tau : 1\nI : 1\ntau : second", "x", "I", "tau")


def test_models_are_hashable_settings():
    """Equal models and options compare and hash equal (circuit cache keys)."""
    copy = PopulationModel(**{f: getattr(GAINED_SYSTEM, f)
                              for f in GAINED_SYSTEM.__dataclass_fields__})
    assert copy == GAINED_SYSTEM and hash(copy) == hash(GAINED_SYSTEM)
    assert SettleOptions(system=copy) == SettleOptions(system=GAINED_SYSTEM)
    assert SettleOptions(system=GAINED_SYSTEM).circuit_key() != SettleOptions().circuit_key()
    assert SettleOptions(steps=5).circuit_key() == SettleOptions().circuit_key()


def test_make_group_passes_spiking_settings_through():
    """Threshold, reset, refractory period and namespace reach the NeuronGroup."""
    model = PopulationModel(
        equations="""
        dv/dt = (-v + I_in) / tau_sys : 1 (unless refractory)
        I_in : 1
        tau_sys : second (shared, constant)
        """,
        readout="v", input="I_in", tau="tau_sys", threshold="v > v_th", reset="v = 0",
        refractory="2*ms", namespace={"v_th": 0.5},
    )
    group = model.make_group(2, "spiking_test", Clock(dt=0.1 * ms), 0, NumpyCodeObject)
    group.tau_sys = 1 * ms
    group.I_in = [2.0, 0.1]
    spikes = SpikeMonitor(group)
    Network(group, spikes).run(10 * ms, namespace={})
    counts = spikes.count[:]
    assert counts[1] == 0 and 1 < counts[0] < 10  # refractory: fewer spikes than free
    assert group.namespace == {"v_th": 0.5}


# --------------------------------------------------------------------------
# One layer
# --------------------------------------------------------------------------


def test_gained_system_and_named_controller_settle_layer():
    """The gained system settles to ndi(W, g B); the controller under other names works."""
    W, B, delta = layer_case(2)
    default = settle_layer(W, B, delta, ALPHA, steps=3000)  # same shapes, cached circuit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = settle_layer(W, B, delta, ALPHA, steps=3000, return_result=True, **MODELS)
    expected = ndi(W, GAIN * B, delta, ALPHA)
    assert rel_err(result.delta[0], expected) < 1e-9
    assert rel_err(default, ndi(W, B, delta, ALPHA)) < 1e-9
    assert rel_err(default, expected) > 1e-2  # the gain matters
    u = np.linalg.solve(W @ (GAIN * B) - ALPHA * np.eye(3), delta.T).T
    assert rel_err(result.u[0], u) < 1e-9
    assert result.residual.shape == (1,) and result.residual[0] < 1e-9


def test_namespace_gain_and_filtered_readout():
    """A gain from the model's namespace, and a readout filtered from the state."""
    W, B, delta = layer_case(3)
    namespaced = PopulationModel(
        equations=GAINED_SYSTEM.equations.replace("g : 1 (shared, constant)", ""),
        readout="x", input="I_in", tau="tau_sys", namespace={"g": GAIN},
    )
    got = settle_layer(W, B, delta, ALPHA, steps=3000, system=namespaced)
    assert rel_err(got, ndi(W, GAIN * B, delta, ALPHA)) < 1e-9
    filtered = settle_layer(W, B, delta, ALPHA, steps=6000, system=FILTERED_SYSTEM,
                            tau_controller=40 * ms, return_result=True)
    assert rel_err(filtered.delta[0], ndi(W, B, delta, ALPHA)) < 1e-8
    # A second run starts from rest: v too, not only the readout r.
    circuit = LayerCircuit(3, 5, batch=4, system=FILTERED_SYSTEM, tau_controller=40 * ms)
    first = circuit.settle(W, B, delta, ALPHA, steps=7, on_unsettled="ignore")
    circuit.settle(W, B, -delta, ALPHA, steps=100, on_unsettled="ignore")
    again = circuit.settle(W, B, delta, ALPHA, steps=7, on_unsettled="ignore")
    np.testing.assert_array_equal(again.delta, first.delta)


@pytest.mark.parametrize("coupling", ["dense", "synapses"])
def test_stop_tol_ends_layer_early(coupling):
    """stop_tol ends the run once the readouts stop changing, for the other models too."""
    W, B, delta = layer_case(4)
    result = settle_layer(W, B, delta, ALPHA, steps=3000, stop_tol=1e-10, coupling=coupling,
                          return_result=True, **MODELS)
    assert result.steps < 1500
    assert result.residual[0] < 1e-8
    assert rel_err(result.delta[0], ndi(W, GAIN * B, delta, ALPHA)) < 1e-8


def test_short_run_warns_for_other_models():
    """The readout-based residual flags an unsettled run whatever the model."""
    W, B, delta = layer_case(5)
    with pytest.warns(NotSettledWarning, match="has not settled after 20 steps"):
        settle_layer(W, B, delta, ALPHA, steps=20, **MODELS)


# --------------------------------------------------------------------------
# Chains
# --------------------------------------------------------------------------

WIDTHS = [6, 8, 5, 7, 4]


def chain_case(seed=10, n=2, batch=3):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((n, WIDTHS[l + 1], WIDTHS[l])) / np.sqrt(WIDTHS[l])
               for l in range(len(WIDTHS) - 1)]
    feedback = [-np.swapaxes(W, 1, 2) for W in weights[1:]]
    delta = rng.standard_normal((n, batch, WIDTHS[-1]))
    gains = [rng.uniform(0.5, 1.0, (n, batch, d)) for d in WIDTHS[1:-1]]
    return weights, feedback, delta, np.array([0.1, 0.3]), gains


def chain_closed_form(weights, feedback, delta, alpha, gains, scale):
    """Eq. (17) with B_l scaled by ``scale``, layer by layer, with numpy's ndi."""
    deltas = [None] * len(gains)
    upper = delta
    for l in range(len(weights), 1, -1):
        lower = ndi(weights[l - 1], scale * feedback[l - 2], upper, alpha) * gains[l - 2]
        deltas[l - 2] = upper = lower
    return deltas


@pytest.mark.parametrize("architecture", ["sequential", "repeat"])
def test_chain_settles_to_its_closed_form(architecture):
    """Sequential and repeat chains of the other models settle to Eq. (17) with g B."""
    weights, feedback, delta, alpha, gains = chain_case()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = settle_chain(weights, feedback, delta, alpha, gains, architecture,
                              steps=4000, **MODELS)
    expected = chain_closed_form(weights, feedback, delta, alpha, gains, GAIN)
    for got, want in zip(result.deltas, expected):
        assert rel_err(got, want) < 1e-8
    assert np.all(result.residual < 1e-8)
    early = settle_chain(weights, feedback, delta, alpha, gains, architecture, steps=4000,
                         stop_tol=1e-10, **MODELS)
    assert early.steps < 0.6 * result.steps
    assert np.all(early.residual < 1e-8)
    for got, want in zip(early.deltas, expected):
        assert rel_err(got, want) < 1e-7


def test_per_layer_models_and_single_loop_relays():
    """Models per layer, and the single loop's relays swapped with relay=."""
    weights, feedback, delta, alpha, gains = chain_case(11)
    mixed = settle_chain(weights, feedback, delta, alpha, gains, "sequential", steps=4000,
                         system=[GAINED_SYSTEM, SYSTEM, "rate-system"],
                         controller=[CONTROLLER, NAMED_CONTROLLER, CONTROLLER])
    # Layer pair l uses system l - 1: only delta_1 sees the gain.
    upper = ndi(weights[3], feedback[2], delta, alpha) * gains[2]
    middle = ndi(weights[2], feedback[1], upper, alpha) * gains[1]
    lower = ndi(weights[1], GAIN * feedback[0], middle, alpha) * gains[0]
    for got, want in zip(mixed.deltas, (lower, middle, upper)):
        assert rel_err(got, want) < 1e-8
    with pytest.raises(InputError, match="system needs 3 models"):
        settle_chain(weights, feedback, delta, alpha, gains, system=[SYSTEM, SYSTEM])
    # Single loop, linear: h_1 = g B u (gained first layer), relays h_l = W_l h_{l-1}.
    product = weights[3] @ weights[2] @ weights[1]
    B = -np.swapaxes(product, 1, 2)
    loop = settle_chain(weights, [B], delta, alpha, architecture="single-loop",
                        steps=8000, tau_controller=40 * ms, system=GAINED_SYSTEM, relay=SYSTEM,
                        controller=NAMED_CONTROLLER)
    h1 = ndi(product, GAIN * B, delta, alpha)
    assert rel_err(loop.deltas[0], h1) < 1e-8
    assert rel_err(loop.deltas[2], h1 @ np.swapaxes(weights[2] @ weights[1], 1, 2)) < 1e-8
    assert np.all(loop.residual < 1e-8)


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def test_training_step_with_other_models_matches_ndi_with_gained_feedback():
    """A DI training step with the other models gives NDI's errors for feedback g B."""
    rng = np.random.default_rng(20)
    net = FeedforwardNetwork.create([6, 8, 5, 4], ["tanh", "tanh", "linear"], rng, scale=0.5)
    x, t = rng.standard_normal((5, 6)), rng.standard_normal((5, 4))
    feedback = [-W.T for W in net.weights[1:]]
    learners = [
        Learner("di", "di", net.copy(), feedback=feedback, alpha=0.1),
        Learner("ndi", "ndi", net.copy(), feedback=[GAIN * B for B in feedback], alpha=0.1),
    ]
    options = SettleOptions(steps=4000, stop_tol=1e-11, **MODELS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step = train_step(learners, x, t, UpdateConfig(lr=0.01, circuit=options))
    for got, want in zip(step.deltas[0], step.deltas[1]):
        assert rel_err(got, want) < 1e-8
    assert 0 < step.settle_steps < 2 * 4000
    with pytest.raises(InputError, match="circuit must be a SettleOptions"):
        UpdateConfig(lr=0.01, circuit={"steps": 10})
