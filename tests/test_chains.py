"""Chain circuits (circuits.chains, Fig. 2) against closed forms and each other.

Every check compares a Brian2 backward pass through a whole network with an
independent numpy computation: the layer-by-layer closed form of Eq. (17),
the fixed-point equations of the nonlinear controller (Eqs. 14-15), a
hand-written semi-implicit Euler loop, or another architecture / coupling
that must give the same numbers.

Arrays are stacked as settle_chain takes them: W_l (n, d_l, d_{l-1}),
B_l (n, d_{l-1}, d_l), delta (n, batch, d_L), gains (n, batch, d_l).
"""

import numpy as np
import pytest
from brian2 import ms
from scipy.special import expit

from dinv.circuits import SettleOptions, settle_layer
from dinv.circuits.chains import ChainCircuit, settle_chain
from dinv.errors import CircuitDivergedError, InputError
from dinv.models.network import FeedforwardNetwork
from dinv.models.rules import fa, ndi
from dinv.models.training import Learner, UpdateConfig, train_step

# Layer 2 contracts 12 -> 6, layer 3 expands 6 -> 9, layer 4 contracts 9 -> 5.
WIDTHS = [8, 12, 6, 9, 5]
ALPHAS = np.array([0.1, 0.5])
STEPS = 4000

G = {
    "linear": lambda x: x,
    "tanh": np.tanh,
    "logistic": expit,
    "relu": lambda x: np.maximum(x, 0.0),
}
"""Transfer functions g, written independently of dinv.nonlinearities."""


def rel_err(x, ref):
    """max |x - ref| / max |ref|."""
    return float(np.max(np.abs(np.asarray(x) - ref)) / np.max(np.abs(ref)))


def T(M):
    """Transpose a stack of matrices (n, a, b) -> (n, b, a)."""
    return np.swapaxes(M, -1, -2)


def chain_weights(rng, widths, n):
    """W_1 .. W_L with entries N(0, 1/d_{l-1}), stacked over n problems."""
    return [rng.standard_normal((n, widths[l + 1], widths[l])) / np.sqrt(widths[l])
            for l in range(len(widths) - 1)]


def transpose_feedback(weights):
    """B_l = -W_l^T for l = 2 .. L (stable for every alpha >= 0)."""
    return [-T(W) for W in weights[1:]]


def closed_form_eq17(weights, feedback, delta, alpha, gains):
    """delta_{l-1} = B_l (W_l B_l - alpha I)^-1 delta_l * g'(a_{l-1}), layer by layer."""
    depth = len(weights)
    n = delta.shape[0]
    deltas = [None] * (depth - 1)
    upper = delta
    for l in range(depth, 1, -1):
        W, B = weights[l - 1], feedback[l - 2]
        lower = np.empty(upper.shape[:2] + (W.shape[2],))
        for c in range(n):
            A = W[c] @ B[c] - alpha[c] * np.eye(W.shape[1])
            lower[c] = (B[c] @ np.linalg.solve(A, upper[c].T)).T * gains[l - 2][c]
        deltas[l - 2] = lower
        upper = lower
    return deltas


# --------------------------------------------------------------------------
# 1. Linear controller: repeat = sequential = Eq. (17)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 64])
def test_repeat_and_sequential_match_eq17(batch):
    """Repeat-layer and sequential chains both settle to Eq. (17), B_l (W_l B_l - aI)^-1 d_l g'."""
    rng = np.random.default_rng(100 + batch)
    n = len(ALPHAS)
    weights = chain_weights(rng, WIDTHS, n)
    feedback = transpose_feedback(weights)
    delta = rng.standard_normal((n, batch, WIDTHS[-1]))
    gains = [rng.uniform(0.5, 1.0, (n, batch, d)) for d in WIDTHS[1:-1]]
    seq = settle_chain(weights, feedback, delta, ALPHAS, gains, "sequential", steps=STEPS)
    rep = settle_chain(weights, feedback, delta, ALPHAS, gains, "repeat", steps=STEPS)
    ref = closed_form_eq17(weights, feedback, delta, ALPHAS, gains)
    assert [d.shape for d in seq.deltas] == [(n, batch, d) for d in WIDTHS[1:-1]]
    assert [d.shape for d in rep.deltas] == [(n, batch, d) for d in WIDTHS[1:-1]]
    for l in range(len(ref)):
        assert rel_err(rep.deltas[l], seq.deltas[l]) < 1e-6
        assert rel_err(seq.deltas[l], ref[l]) < 1e-6
        assert rel_err(rep.deltas[l], ref[l]) < 1e-6
        # Per problem too: the two leaks give different answers and each is matched.
        for c in range(n):
            assert rel_err(rep.deltas[l][c], ref[l][c]) < 1e-6
    assert np.all(seq.residual < 1e-9) and np.all(rep.residual < 1e-9)
    # Sanity of the reference: the gains matter, and so does alpha.
    no_gain = closed_form_eq17(weights, feedback, delta, ALPHAS,
                               [np.ones_like(g) for g in gains])
    assert rel_err(no_gain[0], ref[0]) > 1e-2
    other_alpha = closed_form_eq17(weights, feedback, delta, ALPHAS[::-1], gains)
    assert rel_err(other_alpha[0], ref[0]) > 1e-2


# --------------------------------------------------------------------------
# 2. Single loop (SLDI): Eq. (15) with relays
# --------------------------------------------------------------------------

SLDI_TRANSFERS = {
    "tanh": ["tanh", "tanh", "tanh"],
    "mixed": ["tanh", "logistic", "linear"],
}


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("transfers", sorted(SLDI_TRANSFERS))
def test_single_loop_steady_state_satisfies_eq15(batch, transfers):
    """SLDI at rest: W_L g(h_{L-1}) = delta_L + alpha u_L (Eq. 15), h_l = W_l g(h_{l-1}), h_1 = B u.

    The controller is slow (tau_controller = 8 tau_system): with equal time
    constants the all-tanh loop here, through three relay lags, does not settle
    (it oscillates), a physical property of the loop (slow control), not of
    the integrator.
    """
    transfers = SLDI_TRANSFERS[transfers]
    rng = np.random.default_rng(200 + batch + len(transfers[1]))
    n, depth = len(ALPHAS), len(WIDTHS) - 1
    weights = chain_weights(rng, WIDTHS, n)
    B = -T(weights[3] @ weights[2] @ weights[1])  # (n, d_1, d_L)
    delta = rng.standard_normal((n, batch, WIDTHS[-1]))
    circuit = ChainCircuit(WIDTHS, "single-loop", transfers, batch, n,
                           tau_system=10 * ms, tau_controller=80 * ms)
    result = circuit.settle(weights, [B], delta, ALPHAS, steps=6000)
    asm = circuit.assembly
    u = asm.state(f"u{depth}")
    h = [asm.state(f"h{l}") for l in range(1, depth)]
    for l in range(depth - 1):
        np.testing.assert_array_equal(result.deltas[l], h[l])
    g = [G[name] for name in transfers]
    # Eq. (15): the readout through all layers equals the target plus the leak.
    readout = g[depth - 2](h[depth - 2]) @ T(weights[depth - 1])
    assert rel_err(readout, delta + ALPHAS[:, None, None] * u) < 1e-6
    # Relays: h_l = W_l g_{l-1}(h_{l-1}), l = 2 .. L-1.
    for l in range(2, depth):
        assert rel_err(h[l - 1], g[l - 2](h[l - 2]) @ T(weights[l - 1])) < 1e-6
    # First layer: h_1 = B u.
    assert rel_err(h[0], u @ T(B)) < 1e-6
    # The nonlinearity is not negligible here (else a linear check would pass too).
    linear_readout = h[depth - 2] @ T(weights[depth - 1])
    if transfers[-1] != "linear":
        assert rel_err(linear_readout, readout) > 1e-2
    else:
        assert rel_err(g[0](h[0]) @ T(weights[1]), h[0] @ T(weights[1])) > 1e-2


# --------------------------------------------------------------------------
# 3. Nonlinear controller in sequential and repeat chains: Eq. (15) per layer
# --------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 64])
def test_nonlinear_controller_satisfies_eq15_per_layer(batch):
    """Nonlinear controller per layer: W_l g_{l-1}(delta_{l-1}) = delta_l + alpha u_l (Eq. 15)."""
    rng = np.random.default_rng(300 + batch)
    transfers = ["tanh", "logistic", "relu"]
    n, depth = len(ALPHAS), len(WIDTHS) - 1
    weights = chain_weights(rng, WIDTHS, n)
    feedback = transpose_feedback(weights)
    delta = rng.standard_normal((n, batch, WIDTHS[-1]))
    gains = [np.full((n, batch, d), 0.5) for d in WIDTHS[1:-1]]  # must be ignored
    results = {}
    for arch in ("sequential", "repeat"):
        circuit = ChainCircuit(WIDTHS, arch, transfers, batch, n)
        # Sequential: each phase's end state comes from its trace (later phases
        # run other blocks); record_every = steps records rest and the end.
        res = circuit.settle(weights, feedback, delta, ALPHAS, gains, steps=STEPS,
                             record_every=STEPS if arch == "sequential" else 0)
        results[arch] = res.deltas
        for l in range(depth, 1, -1):
            if arch == "repeat":
                u = circuit.assembly.state(f"u{l}")
                d_below = circuit.assembly.state(f"d{l - 1}")
            else:
                phase = res.traces.phases()[depth - l]
                assert np.all(phase["t"] == [0.0, STEPS * 0.5])
                u, d_below = phase[f"u{l}"][-1], phase[f"d{l - 1}"][-1]
            np.testing.assert_array_equal(res.deltas[l - 2], d_below)  # no gain applied
            upper = delta if l == depth else res.deltas[l - 1]
            readout = G[transfers[l - 2]](res.deltas[l - 2]) @ T(weights[l - 1])
            assert rel_err(readout, upper + ALPHAS[:, None, None] * u) < 1e-6
            assert rel_err(d_below, u @ T(feedback[l - 2])) < 1e-6
    for a, b in zip(results["sequential"], results["repeat"]):
        assert rel_err(b, a) < 1e-6
    # The transfers are not interchangeable here: a swapped pair breaks Eq. (15).
    swapped = G["relu"](results["repeat"][2]) @ T(weights[3])
    right = G["tanh"](results["repeat"][2]) @ T(weights[3])
    assert rel_err(swapped, right) > 1e-2


# --------------------------------------------------------------------------
# 4. Dense and synaptic couplings
# --------------------------------------------------------------------------

TINY = [3, 4, 3, 2]


def _tiny_chain(architecture):
    """A tiny chain problem (n = 2, batch 2) for the slow 'synapses' coupling."""
    rng = np.random.default_rng(400 + len(architecture))
    n, batch = 2, 2
    weights = chain_weights(rng, TINY, n)
    delta = rng.standard_normal((n, batch, TINY[-1]))
    if architecture in ("sequential", "repeat"):
        feedback = transpose_feedback(weights)
        gains = [rng.uniform(0.5, 1.0, (n, batch, d)) for d in TINY[1:-1]]
        transfers = None
    else:
        feedback = [-T(weights[2] @ weights[1])]
        gains = None
        transfers = ["tanh", "logistic"]
    return (weights, feedback, delta, ALPHAS, gains), transfers


@pytest.mark.parametrize("architecture", ["sequential", "repeat", "single-loop"])
def test_dense_and_synaptic_chains_agree_mid_transient(architecture):
    """coupling='synapses' (gain relays, transfers in Synapses) equals 'dense' mid-transient."""
    args, transfers = _tiny_chain(architecture)
    n, batch = args[2].shape[:2]
    out = {}
    for coupling in ("dense", "synapses"):
        circuit = ChainCircuit(TINY, architecture, transfers, batch, n,
                               tau_controller=40 * ms, coupling=coupling)
        # A sequential chain settles its layer pairs one after the other: fewer steps
        # per phase keep both mid-transient.
        steps = 20 if architecture == "sequential" else 80
        out[coupling] = circuit.settle(*args, steps=steps, on_unsettled="ignore")
    for a, b in zip(out["dense"].deltas, out["synapses"].deltas):
        assert rel_err(b, a) < 1e-10
    np.testing.assert_allclose(out["synapses"].residual, out["dense"].residual,
                               rtol=1e-8, atol=1e-14)
    # Mid-transient: the state is still moving, so agreement is not just the fixed point.
    assert np.all(out["dense"].residual > 1e-4)


def test_settle_chain_accepts_synaptic_coupling():
    """settle_chain(coupling='synapses') (a prefixed joint circuit) equals 'dense', repeat chain."""
    args, _ = _tiny_chain("repeat")
    dense = settle_chain(*args, "repeat", steps=80, on_unsettled="ignore")
    syn = settle_chain(*args, "repeat", steps=80, coupling="synapses", on_unsettled="ignore")
    for a, b in zip(dense.deltas, syn.deltas):
        assert rel_err(b, a) < 1e-10


# --------------------------------------------------------------------------
# 5. Per-layer time constants
# --------------------------------------------------------------------------

TAU_SYSTEM = [10 * ms, 20 * ms, 5 * ms]  # d_1, d_2, d_3
TAU_CONTROLLER = [20 * ms, 10 * ms, 40 * ms]  # u_2, u_3, u_4


def euler_chain(weights, feedback, delta, alpha, gains, architecture, steps, tau_sys,
                tau_ctl, dt=0.5):
    """Hand-written semi-implicit Euler of a sequential or repeat chain (linear controller).

    Per step: every controller moves first (readout W_l d_{l-1}, target delta_L
    or gain_l * d_l), then every system (B_l u_l with the new u). The step is
    dt times the smallest system time constant.
    """
    depth = len(weights)
    h = dt * min(float(t / ms) for t in tau_sys)
    a = alpha[:, None, None]
    n, batch = delta.shape[:2]
    d = {l: np.zeros((n, batch, weights[l - 1].shape[1])) for l in range(1, depth)}
    u = {l: np.zeros((n, batch, weights[l - 1].shape[1])) for l in range(2, depth + 1)}

    def target(l):
        return delta if l == depth else gains[l - 1] * d[l]

    if architecture == "repeat":
        for _ in range(steps):
            targets = {l: target(l) for l in u}
            readouts = {l: d[l - 1] @ T(weights[l - 1]) for l in u}
            for l in u:
                u[l] = u[l] + h / float(tau_ctl[l - 2] / ms) * (-a * u[l] + readouts[l]
                                                                  - targets[l])
            for l in u:
                d[l - 1] = d[l - 1] + h / float(tau_sys[l - 2] / ms) * (
                    -d[l - 1] + u[l] @ T(feedback[l - 2]))
        return [d[l] * gains[l - 1] for l in range(1, depth)]
    out = [None] * (depth - 1)
    upper = delta
    for l in range(depth, 1, -1):
        ul = np.zeros_like(upper)
        dl = np.zeros((n, batch, weights[l - 1].shape[2]))
        for _ in range(steps):
            ul = ul + h / float(tau_ctl[l - 2] / ms) * (-a * ul + dl @ T(weights[l - 1]) - upper)
            dl = dl + h / float(tau_sys[l - 2] / ms) * (-dl + ul @ T(feedback[l - 2]))
        out[l - 2] = dl * gains[l - 2]
        upper = out[l - 2]
    return out


def _tau_problem(architecture):
    """A chain problem (n = 2, batch 4, widths WIDTHS) with random gains."""
    rng = np.random.default_rng(500 + len(architecture))
    n, batch = len(ALPHAS), 4
    weights = chain_weights(rng, WIDTHS, n)
    feedback = transpose_feedback(weights)
    delta = rng.standard_normal((n, batch, WIDTHS[-1]))
    gains = [rng.uniform(0.5, 1.0, (n, batch, d)) for d in WIDTHS[1:-1]]
    return weights, feedback, delta, ALPHAS, gains, architecture


@pytest.mark.parametrize("architecture", ["sequential", "repeat"])
def test_per_layer_time_constants_keep_steady_state(architecture):
    """Per-layer tau_system / tau_controller lists leave the Eq. (17) steady state unchanged."""
    args = _tau_problem(architecture)
    weights, feedback, delta, alpha, gains, _ = args
    settled = settle_chain(*args, steps=8000, tau_system=TAU_SYSTEM,
                           tau_controller=TAU_CONTROLLER)
    ref = closed_form_eq17(weights, feedback, delta, alpha, gains)
    for got, want in zip(settled.deltas, ref):
        assert rel_err(got, want) < 1e-6


@pytest.mark.parametrize("architecture", ["sequential", "repeat"])
def test_per_layer_time_constants_shape_transient(architecture):
    """Per-layer taus change the transient, as a hand semi-implicit Euler loop with those taus."""
    args = _tau_problem(architecture)
    per_layer = dict(tau_system=TAU_SYSTEM, tau_controller=TAU_CONTROLLER)
    # 20 steps of dt = 0.5 * 5 ms, each layer with its own tau. Each call runs
    # twice, so the measured run always reuses a circuit that has run before.
    for _ in range(2):
        early = settle_chain(*args, steps=20, on_unsettled="ignore", **per_layer)
        early_scalar = settle_chain(*args, steps=20, on_unsettled="ignore")
    hand = euler_chain(*args, 20, TAU_SYSTEM, TAU_CONTROLLER)
    hand_reversed = euler_chain(*args, 20, TAU_SYSTEM[::-1], TAU_CONTROLLER[::-1])
    hand_scalar = euler_chain(*args, 20, [10 * ms] * 3, [10 * ms] * 3)
    # The layer order of the lists matters (a swapped assignment is caught).
    assert max(rel_err(hand_reversed[l], hand[l]) for l in range(len(hand))) > 1e-3
    for l in range(len(WIDTHS) - 2):
        assert rel_err(early_scalar.deltas[l], early.deltas[l]) > 1e-3
        assert rel_err(early.deltas[l], hand[l]) < 1e-10
        # The scalar default (10 ms everywhere) follows the same hand loop.
        assert rel_err(early_scalar.deltas[l], hand_scalar[l]) < 1e-10


def test_sequential_phases_start_from_rest():
    """Each sequential phase starts at rest: the same 20-step call twice gives the same deltas."""
    args = _tau_problem("sequential")
    circuit = ChainCircuit(WIDTHS, "sequential", None, 4, len(ALPHAS))
    first = circuit.settle(*args[:5], steps=20, on_unsettled="ignore")
    again = circuit.settle(*args[:5], steps=20, on_unsettled="ignore")
    hand = euler_chain(*args, 20, [10 * ms] * 3, [10 * ms] * 3)
    for a, b, c in zip(first.deltas, again.deltas, hand):
        np.testing.assert_array_equal(a, b)
        assert rel_err(b, c) < 1e-10


def test_sequential_phase_traces_start_at_rest():
    """Each sequential phase's trace starts at t = 0 with u_l = d_{l-1} = 0 (rest)."""
    args = _tau_problem("sequential")
    circuit = ChainCircuit(WIDTHS, "sequential", None, 4, len(ALPHAS))
    for _ in range(2):  # the second run reuses a circuit whose targets are set
        result = circuit.settle(*args[:5], steps=20, record_every=20, on_unsettled="ignore")
    for phase, l in zip(result.traces.phases(), (4, 3, 2)):
        assert np.all(phase["t"] == [0.0, 10.0])
        assert np.all(phase[f"u{l}"][0] == 0.0) and np.all(phase[f"d{l - 1}"][0] == 0.0)
        np.testing.assert_allclose(phase[f"d{l - 1}"][-1] * args[4][l - 2],
                                   result.deltas[l - 2], rtol=1e-12, atol=0)


def test_wrong_number_of_time_constants_raises():
    """tau lists need one value per layer: L-1 systems, L-1 controllers (1 for SLDI)."""
    with pytest.raises(InputError, match="tau_system needs 3 time constants"):
        ChainCircuit(WIDTHS, "repeat", tau_system=[10 * ms] * 2)
    with pytest.raises(InputError, match="tau_controller needs 1 time constants"):
        ChainCircuit(WIDTHS, "single-loop", tau_controller=[10 * ms] * 3)
    with pytest.raises(InputError, match="tau_system must be a positive time"):
        ChainCircuit(WIDTHS, "sequential", tau_system=[10 * ms, 10.0, 10 * ms])


# --------------------------------------------------------------------------
# 6. Training integration
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def training_setup():
    rng = np.random.default_rng(600)
    net = FeedforwardNetwork.create([6, 8, 5, 4], ["tanh", "tanh", "linear"], rng, scale=0.5)
    x, t = rng.standard_normal((16, 6)), rng.standard_normal((16, 4))
    return net, x, t


def test_training_di_repeat_sequential_and_ndi_agree(training_setup):
    """train_step: DI sequential = DI repeat = NDI hidden deltas (Eq. 17 with g'(a_l))."""
    net, x, t = training_setup
    feedback = [-net.weights[1].T, -net.weights[2].T]
    learners = [
        Learner("seq", "di", net.copy(), feedback=feedback, alpha=0.1,
                architecture="sequential", controller="linear"),
        Learner("rep", "di", net.copy(), feedback=feedback, alpha=0.1,
                architecture="repeat", controller="linear"),
        Learner("ndi", "ndi", net.copy(), feedback=feedback, alpha=0.1),
    ]
    step = train_step(learners, x, t, UpdateConfig(lr=0.01, circuit=SettleOptions(steps=4000)))
    for k in (0, 1):
        for l in (0, 1):
            assert step.deltas[k][l].shape == step.deltas[2][l].shape
            assert rel_err(step.deltas[k][l], step.deltas[2][l]) < 1e-6
    # The gains g'(a_l) are in: without them delta_1 is different.
    fwd = net.forward(x)
    raw = step.deltas[2][0] / (1.0 - np.tanh(fwd.a[0]) ** 2)
    assert rel_err(raw, step.deltas[2][0]) > 1e-2
    for w_a, w_b in zip(learners[1].net.weights, learners[2].net.weights):
        np.testing.assert_allclose(w_a, w_b, rtol=1e-6, atol=1e-9)


def test_training_sldi_hidden_deltas_are_relays(training_setup):
    """train_step with SLDI: h_2 = W_2 tanh(h_1), h_1 = B u and W_3 g(h_2) = delta_L + alpha u."""
    net, x, t = training_setup
    alpha = 0.1
    B = -(net.weights[2] @ net.weights[1]).T  # (d_1, d_L) = (8, 4)
    learner = Learner("sldi", "sldi", net.copy(), feedback=[B], alpha=alpha)
    config = UpdateConfig(lr=0.01, circuit=SettleOptions(tau_controller=40 * ms, steps=6000))
    step = train_step([learner], x, t, config)
    h1, h2, delta_L = step.deltas[0]
    assert h1.shape == (16, 8) and h2.shape == (16, 5)
    # Relay through layer 2, with g = tanh (the layer-1 nonlinearity).
    assert rel_err(h2, np.tanh(h1) @ net.weights[1].T) < 1e-6
    # h_1 lies in the range of B: h_1 = B u with u solved by least squares ...
    u = np.linalg.lstsq(B, h1.T, rcond=None)[0].T
    assert rel_err(u @ B.T, h1) < 1e-6
    # ... and that u closes the loop (Eq. 15), layer-2 nonlinearity tanh.
    assert rel_err(np.tanh(h2) @ net.weights[2].T, delta_L + alpha * u) < 1e-6
    np.testing.assert_array_equal(delta_L, net.output_delta(net.forward(x), t))


def test_training_joint_step_matches_separate_steps(training_setup):
    """DI (sequential, repeat), SLDI and NDI in one train_step (one joint circuit) = alone."""
    net, x, t = training_setup
    feedback = [-net.weights[1].T, -net.weights[2].T]
    B = -(net.weights[2] @ net.weights[1]).T
    config = UpdateConfig(lr=0.01, circuit=SettleOptions(tau_controller=40 * ms, steps=6000))

    def learners():
        return [
            Learner("seq", "di", net.copy(), feedback=feedback, alpha=0.1),
            Learner("sldi", "sldi", net.copy(), feedback=[B], alpha=0.1),
            Learner("rep", "di", net.copy(), feedback=feedback, alpha=0.1,
                    architecture="repeat"),
            Learner("ndi", "ndi", net.copy(), feedback=feedback, alpha=0.1),
        ]

    joint = train_step(learners(), x, t, config)
    alone = [train_step([lrn], x, t, config) for lrn in learners()]
    for k in range(4):
        for l in (0, 1):
            assert rel_err(joint.deltas[k][l], alone[k].deltas[0][l]) < 1e-10
    for k in (0, 2):
        for l in (0, 1):
            assert rel_err(joint.deltas[k][l], joint.deltas[3][l]) < 1e-6
    # SLDI is a different rule: its errors are not the DI ones.
    assert rel_err(joint.deltas[1][0], joint.deltas[3][0]) > 1e-3


def test_sldi_learner_wrong_feedback_raises(training_setup):
    """An SLDI learner needs exactly one B of shape (d_1, d_L)."""
    net, _, _ = training_setup
    with pytest.raises(InputError, match=r"SLDI feedback must have shape \(8, 4\)"):
        Learner("x", "sldi", net.copy(), feedback=[np.zeros((4, 8))], alpha=0.1)
    with pytest.raises(InputError, match="needs 1 feedback matrices, got 2"):
        Learner("x", "sldi", net.copy(), feedback=[np.zeros((8, 5)), np.zeros((5, 4))])


# --------------------------------------------------------------------------
# 7. Bad input
# --------------------------------------------------------------------------


def _bad_case(case):
    """settle_chain arguments for one bad-input case, and the expected message."""
    rng = np.random.default_rng(700)
    n, batch = 1, 2
    weights = chain_weights(rng, WIDTHS, n)
    feedback = transpose_feedback(weights)
    delta = rng.standard_normal((n, batch, WIDTHS[-1]))
    kwargs = dict(weights=weights, feedback=feedback, delta=delta, alpha=np.array([0.1]),
                  steps=10, on_unsettled="ignore")
    single = [-T(weights[3] @ weights[2] @ weights[1])]
    if case == "architecture":
        kwargs["architecture"] = "ladder"
        return kwargs, r"architecture must be one of .*'ladder'"
    if case == "n_transfers":
        kwargs["transfers"] = ["tanh", "tanh"]
        return kwargs, r"transfers needs one name per hidden layer \(3\), got 2"
    if case == "transfer_name":
        kwargs.update(architecture="single-loop", feedback=single,
                      transfers=["tanh", "softplus", "tanh"])
        return kwargs, r"transfer must be one of .*'softplus'"
    if case == "weight_shape":
        kwargs["weights"] = weights[:2] + [T(weights[2])] + weights[3:]
        return kwargs, r"weights must have shapes \(n, d_l, d_\(l-1\)\)"
    if case == "unstacked":
        kwargs["weights"] = [w[0] for w in weights]
        return kwargs, "stacked arrays"
    if case == "feedback_shape":
        kwargs["feedback"] = feedback[:1] + [T(feedback[1])] + feedback[2:]
        return kwargs, r"feedback must be B_2..B_L of shapes \(n, d_\(l-1\), d_l\)"
    if case == "alpha0_expanding":
        kwargs["alpha"] = np.array([0.0])
        return kwargs, "alpha = 0 makes the inversion of expanding layer 3 singular"
    if case == "alpha_negative":
        kwargs["alpha"] = np.array([-0.1])
        return kwargs, "alpha must be >= 0"
    if case == "single_loop_B_shape":
        kwargs.update(architecture="single-loop", feedback=[T(single[0])])
        return kwargs, r"single-loop feedback is one matrix B of shape \(1, 12, 5\)"
    if case == "single_loop_two_B":
        kwargs.update(architecture="single-loop", feedback=single + single)
        return kwargs, r"single-loop feedback is one matrix B"
    if case == "gains_shape":
        kwargs["gains"] = [np.ones((n, batch, d)) for d in WIDTHS[1:-2]]
        return kwargs, r"gains must be one \(n, batch, d_l\) array per hidden layer"
    if case == "delta_shape":
        kwargs["delta"] = delta[:, :, :3]  # widths come from the weights: d_L = 5
        return kwargs, r"delta must have shape \(1, 2, 5\), got \(1, 2, 3\)"
    raise AssertionError(case)


BAD_CASES = ["architecture", "n_transfers", "transfer_name", "weight_shape", "unstacked",
             "feedback_shape", "alpha0_expanding", "alpha_negative", "single_loop_B_shape",
             "single_loop_two_B", "gains_shape", "delta_shape"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_raises_input_error(case):
    """Each malformed settle_chain call raises InputError whose message names the problem."""
    kwargs, match = _bad_case(case)
    with pytest.raises(InputError, match=match):
        settle_chain(**kwargs)


def test_single_loop_alpha0_with_wider_output_raises():
    """SLDI with alpha = 0 and d_L > d_1 has no steady state: InputError."""
    rng = np.random.default_rng(710)
    widths = [3, 2, 3, 4]
    weights = chain_weights(rng, widths, 1)
    B = -T(weights[2] @ weights[1])
    delta = rng.standard_normal((1, 1, 4))
    with pytest.raises(InputError, match="alpha = 0 makes the single loop singular"):
        settle_chain(weights, [B], delta, np.array([0.0]), architecture="single-loop",
                     transfers=["tanh", "tanh"], steps=10)


@pytest.mark.parametrize("architecture", ["sequential", "repeat"])
def test_unstable_chain_raises_diverged(architecture):
    """B_l = +W_l^T with alpha = 0 on contracting layers (W B positive definite) diverges."""
    rng = np.random.default_rng(720)
    widths = [4, 6, 4, 3]
    weights = chain_weights(rng, widths, 1)
    feedback = [T(W).copy() for W in weights[1:]]
    delta = rng.standard_normal((1, 3, 3))
    with pytest.raises(CircuitDivergedError, match="unstable"):
        settle_chain(weights, feedback, delta, np.array([0.0]), architecture=architecture,
                     steps=4000)
    # The same chain with B_l = -W_l^T settles (the sign is the whole difference).
    settled = settle_chain(weights, [-b for b in feedback], delta, np.array([0.0]),
                           architecture=architecture, steps=4000)
    assert np.all(np.isfinite(settled.deltas[0]))


def _deep_problem(seed=0, batch=3):
    rng = np.random.default_rng(seed)
    widths = (12, 20, 8, 15)  # contracting, then expanding layer pair
    weights = [rng.standard_normal((widths[l + 1], widths[l])) / np.sqrt(widths[l])
               for l in range(3)]
    feedback = [-W.T for W in weights[1:]]
    delta = rng.standard_normal((batch, widths[-1]))
    gains = [rng.uniform(0.2, 1.0, (batch, w)) for w in widths[1:-1]]
    return weights, feedback, delta, gains


def test_per_layer_leaks_match_layerwise_ndi():
    """alpha (n, L-1): each layer pair's controller leaks with its own alpha (Eq. 17)."""
    weights, feedback, delta, gains = _deep_problem()
    alphas = (0.02, 0.3)
    result = settle_chain([W[None] for W in weights], [B[None] for B in feedback],
                          delta[None], np.array([alphas]), [g[None] for g in gains],
                          steps=4000)
    upper = ndi(weights[2], feedback[1], delta, alphas[1]) * gains[1]
    lower = ndi(weights[1], feedback[0], upper, alphas[0]) * gains[0]
    np.testing.assert_allclose(result.deltas[1][0], upper, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(result.deltas[0][0], lower, rtol=1e-6, atol=1e-9)
    with pytest.raises(InputError, match="layer pair"):
        settle_chain([W[None] for W in weights], [B[None] for B in feedback], delta[None],
                     np.array([[0.1, 0.1, 0.1]]), [g[None] for g in gains])


def test_convergence_criterion_ends_settles_early():
    """stop_tol ends each phase once the state stops changing: far fewer steps, the
    same steady state to the tolerance's order; without it every step runs."""
    weights, feedback, delta, gains = _deep_problem(1)
    args = ([W[None] for W in weights], [B[None] for B in feedback], delta[None],
            np.array([[0.05, 0.3]]), [g[None] for g in gains])
    full = settle_chain(*args, steps=3000)
    early = settle_chain(*args, steps=3000, stop_tol=1e-8)
    assert full.steps == 6000
    assert early.steps < 0.6 * full.steps and early.steps % 50 in (0, 1)
    for a, b in zip(early.deltas, full.deltas):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.abs(b).max())
    looser = settle_chain(*args, steps=3000, stop_tol=1e-3)
    assert looser.steps < early.steps
    with pytest.raises(InputError, match="stop_tol"):
        settle_chain(*args, stop_tol=-1.0)


def test_layer_convergence_criterion():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((6, 30)) / 5
    delta = rng.standard_normal((4, 6))
    result = settle_layer(W, -W.T, delta, 0.1, steps=2000, stop_tol=1e-9,
                          return_result=True)
    assert result.steps < 2000
    np.testing.assert_allclose(result.delta[0], ndi(W, -W.T, delta, 0.1), rtol=1e-6,
                               atol=1e-9)
    assert settle_layer(W, -W.T, delta, 0.1, return_result=True).steps == 1000


def test_learner_leaks_per_layer_pair():
    rng = np.random.default_rng(0)
    net = FeedforwardNetwork.create([5, 8, 6, 4], ["tanh", "tanh", "linear"], rng, scale=0.4)
    feedback = [-W.T for W in net.weights[1:]]
    learner = Learner("DI", "di", net, feedback, (0.01, 0.1))
    assert learner.layer_alpha(0) == 0.01 and learner.layer_alpha(1) == 0.1
    for bad in ((0.1, 0.1, 0.1), (0.1, -1.0), "x"):
        with pytest.raises(InputError, match="alpha"):
            Learner("DI", "di", net, feedback, bad)


def test_training_with_per_layer_leaks_matches_ndi():
    """DI and NDI learners with leaks (0.02, 0.3) compute the same hidden errors."""
    rng = np.random.default_rng(5)
    net = FeedforwardNetwork.create([5, 8, 6, 9], ["tanh", "tanh", "linear"], rng, scale=0.4)
    feedback = [-W.T for W in net.weights[1:]]
    x, t = rng.standard_normal((3, 5)), rng.standard_normal((3, 9))
    learners = [Learner(rule, rule, net.copy(), [B.copy() for B in feedback], (0.02, 0.3))
                for rule in ("ndi", "di")]
    step = train_step(learners, x, t, UpdateConfig(lr=0.01, circuit=SettleOptions(steps=4000)))
    for a, b in zip(step.deltas[0], step.deltas[1]):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-10)
    assert step.settle_steps == 8000


def test_feedback_alignment_needs_no_leak_on_expanding_layers():
    rng = np.random.default_rng(0)
    W, B = rng.standard_normal((9, 4)), rng.standard_normal((4, 9))
    delta = rng.standard_normal((2, 9))
    np.testing.assert_allclose(fa(W, B, delta, 0.0), delta @ B.T)
