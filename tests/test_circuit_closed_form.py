"""The Brian2 layer circuit against its closed forms (Eqs. 5, 8, 10).

Every numeric check compares the simulation with an independent numpy
computation: the steady state B (W B - alpha I)^-1 delta, a hand-written
semi-implicit Euler loop, or the exact linear map of that loop.
"""

import warnings

import numpy as np
import pytest
from brian2 import ms

from dinv.analysis.stability import circuit_jacobian, jacobian_abscissa
from dinv.circuits import LayerCircuit, settle_layer
from dinv.circuits.coupling import (
    matrix_to_synapse_weights,
    synapse_indices,
    synapse_weights_to_matrix,
)
from dinv.errors import CircuitDivergedError, InputError, NotSettledWarning
from dinv.models.rules import ndi

ALPHA = 0.1
STEPS = 3000


def rel_err(x, ref):
    """max |x - ref| / max |ref|."""
    return float(np.max(np.abs(np.asarray(x) - ref)) / np.max(np.abs(ref)))


def forward_weights(rng, d_out, d_in, n=None):
    """Well-conditioned W ~ N(0, 1/d_in), optionally stacked."""
    shape = (d_out, d_in) if n is None else (n, d_out, d_in)
    return rng.standard_normal(shape) / np.sqrt(d_in)


def euler_loop(W, B, target, alpha, steps, dt=0.5, tau_ratio=1.0):
    """Hand-written semi-implicit Euler: controller first, then the system."""
    delta = np.zeros(target.shape[:-1] + (W.shape[1],))
    u = np.zeros(target.shape)
    for _ in range(steps):
        u = u + dt * tau_ratio * (-alpha * u + delta @ W.T - target)
        delta = delta + dt * (-delta + u @ B.T)
    return delta, u


# --------------------------------------------------------------------------
# Steady state = NDI closed form
# --------------------------------------------------------------------------

SHAPES = {
    "contracting": (3, 5),
    "expanding": (5, 3),
    "square": (4, 4),
}


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_settled_state_matches_ndi_with_transpose_feedback(kind, batch):
    """Settled delta equals ndi = B (W B - alpha I)^-1 delta for B = -W^T."""
    rng = np.random.default_rng(10 + batch + len(kind))
    d_out, d_in = SHAPES[kind]
    W = forward_weights(rng, d_out, d_in)
    B = -W.T
    delta = rng.standard_normal((batch, d_out))
    got = settle_layer(W, B, delta, ALPHA, steps=STEPS)
    ref = ndi(W, B, delta, ALPHA)
    assert got.shape == (batch, d_in)
    assert rel_err(got, ref) < 1e-6


@pytest.mark.parametrize("kind", ["contracting", "square"])
def test_settled_state_matches_ndi_with_random_stable_feedback(kind):
    """Settled delta equals ndi for a random (non-transpose) but stable B."""
    d_out, d_in = SHAPES[kind]
    rng = np.random.default_rng(20 + d_out + d_in)
    W = forward_weights(rng, d_out, d_in)
    B = -W.T + 0.3 * rng.standard_normal((d_in, d_out))
    assert jacobian_abscissa(W, B, ALPHA) < 0  # precondition: the circuit is stable
    delta = rng.standard_normal((64, d_out))
    got = settle_layer(W, B, delta, ALPHA, steps=STEPS)
    assert rel_err(got, ndi(W, B, delta, ALPHA)) < 1e-6


def test_settled_state_matches_explicit_formula():
    """Settled delta equals B (W B - alpha I)^-1 delta_l written out with numpy."""
    rng = np.random.default_rng(3)
    W = forward_weights(rng, 3, 5)
    B = -W.T + 0.2 * rng.standard_normal((5, 3))
    delta = rng.standard_normal((64, 3))
    expected = (B @ np.linalg.solve(W @ B - ALPHA * np.eye(3), delta.T)).T
    expected_u = np.linalg.solve(W @ B - ALPHA * np.eye(3), delta.T).T
    res = settle_layer(W, B, delta, ALPHA, steps=STEPS, return_result=True)
    assert rel_err(res.delta[0], expected) < 1e-6
    assert rel_err(res.u[0], expected_u) < 1e-6
    # Fixed point of both equations: delta = B u and W delta_{l-1} - delta_l = alpha u.
    assert rel_err(res.u[0] @ B.T, res.delta[0]) < 1e-6
    assert rel_err(res.delta[0] @ W.T - delta, ALPHA * res.u[0]) < 1e-6


def test_vector_delta_returns_vector():
    """A 1-D delta_l gives a 1-D delta_{l-1} equal to ndi of that vector."""
    rng = np.random.default_rng(4)
    W = forward_weights(rng, 3, 5)
    delta = rng.standard_normal((1, 3))
    got = settle_layer(W, -W.T, delta[0], ALPHA, steps=STEPS)
    assert got.shape == (5,)
    assert rel_err(got, ndi(W, -W.T, delta[0], ALPHA)) < 1e-6


# --------------------------------------------------------------------------
# Stacks of independent circuits
# --------------------------------------------------------------------------


def test_stacked_circuits_match_separate_calls():
    """Circuit c of a stack (own W, B, alpha) equals a separate single-circuit run."""
    rng = np.random.default_rng(5)
    alphas = np.array([0.05, 0.2, 0.6])
    W = forward_weights(rng, 3, 5, n=3)
    B = -W.transpose(0, 2, 1)
    delta = rng.standard_normal((3, 64, 3))
    stacked = settle_layer(W, B, delta, alphas, steps=STEPS)
    assert stacked.shape == (3, 64, 5)
    for c in range(3):
        single = settle_layer(W[c], B[c], delta[c], alphas[c], steps=STEPS)
        assert rel_err(stacked[c], single) < 1e-10
        assert rel_err(stacked[c], ndi(W[c], B[c], delta[c], alphas[c])) < 1e-6
    # The alphas matter: circuit 0 run with alpha 0.6 gives something else.
    other = settle_layer(W[0], B[0], delta[0], alphas[2], steps=STEPS)
    assert rel_err(other, stacked[0]) > 1e-2


# --------------------------------------------------------------------------
# Couplings and code targets
# --------------------------------------------------------------------------


def small_stable_case(rng, n=2, batch=3, d_out=4, d_in=6):
    W = forward_weights(rng, d_out, d_in, n=n)
    B = -W.transpose(0, 2, 1) + 0.2 * rng.standard_normal((n, d_in, d_out))
    delta = rng.standard_normal((n, batch, d_out))
    return W, B, delta


SYN = dict(n=2, batch=3, d_out=4, d_in=6, steps=150)  # 150 steps: still in the transient
SYN_ALPHAS = np.array([0.1, 0.3])


@pytest.fixture(scope="module")
def synaptic_run():
    """One small circuit with coupling='synapses' (its build is the slow part), run once."""
    rng = np.random.default_rng(6)
    W, B, delta = small_stable_case(rng, SYN["n"], SYN["batch"], SYN["d_out"], SYN["d_in"])
    circuit = LayerCircuit(SYN["d_out"], SYN["d_in"], batch=SYN["batch"], n=SYN["n"],
                           coupling="synapses")
    res = circuit.settle(W, B, delta, SYN_ALPHAS, steps=SYN["steps"], on_unsettled="ignore")
    return circuit, res, W, B, delta


def test_dense_and_synaptic_couplings_agree(synaptic_run):
    """coupling='synapses' reproduces coupling='dense' and the hand loop, transient included."""
    _, res, W, B, delta = synaptic_run
    dense = settle_layer(W, B, delta, SYN_ALPHAS, steps=SYN["steps"], coupling="dense",
                         on_unsettled="ignore")
    assert np.max(np.abs(dense - res.delta)) < 1e-10 * np.max(np.abs(dense))
    ref = np.stack([euler_loop(W[c], B[c], delta[c], SYN_ALPHAS[c], SYN["steps"])[0]
                    for c in range(SYN["n"])])
    assert rel_err(res.delta, ref) < 1e-12


def test_synapse_weight_layout_round_trip():
    """matrix_to_synapse_weights puts M[c, post, pre] on synapse (c, b, pre, post)."""
    rng = np.random.default_rng(8)
    n, batch, d_pre, d_post = 2, 3, 6, 4
    M = rng.standard_normal((n, d_post, d_pre))
    w = matrix_to_synapse_weights(M, batch)
    assert w.shape == (n * batch * d_pre * d_post,)
    np.testing.assert_array_equal(synapse_weights_to_matrix(w, n, batch, d_pre, d_post), M)
    i, j = synapse_indices(n, batch, d_pre, d_post)
    block = i // d_pre
    np.testing.assert_array_equal(block, j // d_post)  # no cross-sample synapses
    c = block // batch
    np.testing.assert_array_equal(w, M[c, j % d_post, i % d_pre])
    # Every (problem, sample) block is fully connected, with no duplicates.
    assert len(set(zip(i.tolist(), j.tolist()))) == i.size == n * batch * d_pre * d_post


def test_synaptic_circuit_holds_w_and_b(synaptic_run):
    """The Synapses of a built circuit carry W (system->controller) and B (back)."""
    circuit, _, W, B, _ = synaptic_run
    n, batch, d_out, d_in = SYN["n"], SYN["batch"], SYN["d_out"], SYN["d_in"]
    fwd = circuit.assembly.coupling.synapses["W"]
    fb = circuit.assembly.coupling.synapses["B"]
    np.testing.assert_array_equal(
        synapse_weights_to_matrix(fwd.w[:], n, batch, d_in, d_out), W
    )
    np.testing.assert_array_equal(
        synapse_weights_to_matrix(fb.w[:], n, batch, d_out, d_in), B
    )
    # Synapse k connects system neuron i[k] (problem c = i // (batch d_in)) to
    # controller neuron j[k] with weight W[c, j_local, i_local].
    i, j = fwd.i[:], fwd.j[:]
    np.testing.assert_array_equal(fwd.w[:], W[i // (batch * d_in), j % d_out, i % d_in])


def test_numpy_target_matches_cython():
    """codegen_target='numpy' gives the same trajectory as codegen_target='cython'."""
    rng = np.random.default_rng(11)
    W, B, delta = small_stable_case(rng, SYN["n"], SYN["batch"], SYN["d_out"], SYN["d_in"])
    kwargs = dict(steps=300, on_unsettled="ignore")
    cy = settle_layer(W, B, delta, SYN_ALPHAS, codegen_target="cython", **kwargs)
    py = settle_layer(W, B, delta, SYN_ALPHAS, codegen_target="numpy", **kwargs)
    assert np.max(np.abs(cy - py)) < 1e-12 * np.max(np.abs(cy))


# --------------------------------------------------------------------------
# Traces and transient
# --------------------------------------------------------------------------


def test_traces_start_at_rest_and_end_at_result():
    """Traces: t = k dt, first record 0, last record equals the returned state."""
    rng = np.random.default_rng(12)
    W = forward_weights(rng, 3, 5)
    delta = rng.standard_normal((64, 3))
    res = settle_layer(W, -W.T, delta, ALPHA, steps=200, record_every=10,
                       return_result=True, on_unsettled="ignore")
    tr = res.traces
    np.testing.assert_allclose(tr["t"], 0.5 * np.arange(0, 201, 10))
    assert tr["delta"].shape == (21, 1, 64, 5)
    assert tr["u"].shape == (21, 1, 64, 3)
    np.testing.assert_array_equal(tr["delta"][0], 0.0)
    np.testing.assert_array_equal(tr["u"][0], 0.0)
    np.testing.assert_array_equal(tr["delta"][-1], res.delta)
    np.testing.assert_array_equal(tr["u"][-1], res.u)
    # Intermediate records are the hand loop after 10 k steps.
    for k in (1, 7):
        ref, _ = euler_loop(W, -W.T, delta, ALPHA, 10 * k)
        assert rel_err(tr["delta"][k, 0], ref) < 1e-12


def test_decay_rate_matches_slowest_eigenvalue():
    """The distance to the steady state decays like the spectral radius of the Euler map."""
    rng = np.random.default_rng(3)
    W = forward_weights(rng, 3, 5)
    B = -W.T
    delta = rng.standard_normal((64, 3))
    h, r = 0.5, 0.25  # dt (units of tau_system) and tau_system / tau_controller
    res = settle_layer(W, B, delta, ALPHA, steps=600, record_every=10,
                       tau_controller=40 * ms, return_result=True, on_unsettled="ignore")
    err = np.linalg.norm(res.traces["delta"][:, 0] - ndi(W, B, delta, ALPHA), axis=(1, 2))
    # Exact linear map of one semi-implicit step on (delta, u).
    I_in, I_out = np.eye(5), np.eye(3)
    M = np.block([
        [(1 - h) * I_in + h * h * r * B @ W, h * (1 - h * r * ALPHA) * B],
        [h * r * W, (1 - h * r * ALPHA) * I_out],
    ])
    rho = np.max(np.abs(np.linalg.eigvals(M)))
    rate = (err[40] / err[20]) ** (1 / 200)
    assert rate == pytest.approx(rho, rel=1e-6)
    # ... which is the slowest continuous-time mode, up to the Euler error.
    slowest = np.linalg.eigvals(circuit_jacobian(W, B, ALPHA, r)).real.max()
    assert np.log(rate) / h == pytest.approx(slowest, rel=0.05)


# --------------------------------------------------------------------------
# Semi-implicit Euler, step by step
# --------------------------------------------------------------------------


@pytest.mark.parametrize("tau_controller", [10 * ms, 40 * ms], ids=["tau_c=tau_s", "tau_c=4tau_s"])
@pytest.mark.parametrize("steps", [1, 2])
def test_first_steps_are_semi_implicit_euler(steps, tau_controller):
    """After 1 or 2 steps, (delta, u) equal the hand-written semi-implicit Euler loop."""
    rng = np.random.default_rng(13)
    W = forward_weights(rng, 3, 5)
    B = rng.standard_normal((5, 3))
    delta = rng.standard_normal((64, 3))
    res = settle_layer(W, B, delta, 0.3, steps=steps, tau_system=10 * ms,
                       tau_controller=tau_controller, return_result=True,
                       on_unsettled="ignore")
    ref_delta, ref_u = euler_loop(W, B, delta, 0.3, steps,
                                  tau_ratio=float(10 * ms / tau_controller))
    assert np.max(np.abs(res.delta[0] - ref_delta)) < 1e-12
    assert np.max(np.abs(res.u[0] - ref_u)) < 1e-12
    assert np.max(np.abs(ref_delta)) > 0.1  # the check is not trivially 0 == 0


# --------------------------------------------------------------------------
# Bad input, divergence, unsettled runs
# --------------------------------------------------------------------------

_W = np.random.default_rng(14).standard_normal((3, 5)) / np.sqrt(5)
_D = np.random.default_rng(15).standard_normal((64, 3))

BAD_INPUTS = {
    "B not transposed": (dict(B=np.zeros((3, 5))), "B must have shape"),
    "delta wrong width": (dict(delta=np.ones((64, 4))), "delta must have shape"),
    "W 1-D": (dict(W=np.ones(5)), "W must have 2 or 3 dimensions"),
    "negative alpha": (dict(alpha=-0.1), "alpha must be >= 0"),
    "alpha per circuit wrong length": (dict(alpha=[0.1, 0.2]), "alpha must be a scalar"),
    "alpha 0, expanding": (
        dict(W=_W.T, B=-_W, delta=np.ones((64, 5)), alpha=0.0), "expanding layer"
    ),
    "NaN in delta": (dict(delta=np.array([[np.nan, 0.0, 1.0]])), "NaN"),
    "inf in W": (dict(W=np.where(np.eye(3, 5) > 0, np.inf, _W)), "NaN or infinite"),
    "negative tau": (dict(tau_controller=-10 * ms), "tau_controller must be a positive time"),
    "unknown coupling": (dict(coupling="sparse"), "coupling must be one of"),
    "unknown codegen target": (dict(codegen_target="cpp"), "codegen_target must be one of"),
    "old name of the codegen target": (dict(target="numpy"), "now called codegen_target"),
    "zero steps": (dict(steps=0), "steps must be a positive integer"),
    "unknown on_unsettled": (dict(on_unsettled="shout"), "on_unsettled must be one of"),
    "zero dt": (dict(dt=0.0), "dt must be a positive number"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_input_error(case):
    """Each malformed argument raises InputError naming the problem."""
    overrides, match = BAD_INPUTS[case]
    kwargs = dict(W=_W, B=-_W.T, delta=_D, alpha=ALPHA, steps=10, on_unsettled="ignore")
    kwargs.update(overrides)
    with pytest.raises(InputError, match=match):
        settle_layer(**kwargs)


@pytest.mark.parametrize("name", ["tau_system", "tau_controller"])
def test_tau_without_units_raises_input_error(name):
    """A bare float time constant (no brian2 unit) raises InputError, not a Brian2 error."""
    with pytest.raises(InputError, match=f"{name} must be a positive time"):
        settle_layer(_W, -_W.T, _D, ALPHA, steps=10, **{name: 10.0})


def test_unstable_feedback_raises_diverged_not_nan():
    """B = +W^T with alpha = 0 (Jacobian abscissa > 0) raises CircuitDivergedError."""
    assert jacobian_abscissa(_W, _W.T, 0.0) > 0  # precondition
    with pytest.raises(CircuitDivergedError, match="unstable"):
        settle_layer(_W, _W.T, _D, 0.0, steps=3000)


def test_short_run_warns_not_settled():
    """Too few steps: NotSettledWarning by default, with the residual in the message."""
    with pytest.warns(NotSettledWarning, match="has not settled after 5 steps"):
        warned = settle_layer(_W, -_W.T, _D, ALPHA, steps=5)
    ref, _ = euler_loop(_W, -_W.T, _D, ALPHA, 5)
    assert rel_err(warned, ref) < 1e-12


def test_short_run_raises_when_asked():
    """on_unsettled='raise' turns the unsettled run into an error."""
    with pytest.raises(CircuitDivergedError, match="has not settled"):
        settle_layer(_W, -_W.T, _D, ALPHA, steps=5, on_unsettled="raise")


def test_short_run_silent_when_ignored():
    """on_unsettled='ignore' emits no warning at all and returns the 5-step state."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = settle_layer(_W, -_W.T, _D, ALPHA, steps=5, on_unsettled="ignore")
    ref, _ = euler_loop(_W, -_W.T, _D, ALPHA, 5)
    assert rel_err(got, ref) < 1e-12


def test_long_run_is_settled_without_warning():
    """A converged run emits no NotSettledWarning and its residual is tiny."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = settle_layer(_W, -_W.T, _D, ALPHA, steps=STEPS, return_result=True)
    assert res.residual.shape == (1,)
    assert res.residual[0] < 1e-10
