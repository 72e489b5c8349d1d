"""The Brian2 circuits of DI of targets and of direct feedback control (DFC) against their
closed forms (dinv.theory), each other and the circuit of errors.

Arrays are stacked as settle_chains takes them: W_l (n, d_l, d_{l-1}), B_l
(n, d_{l-1}, d_l), Q_l (n, d_l, d_L), delta and offsets (n, batch, d).
"""

import numpy as np
import pytest
from brian2 import ms

from dinv.circuits import SCN, SYSTEM, SettleOptions
from dinv.circuits.chains import ChainProblem, ChainSpec, settle_chains
from dinv.circuits.populations import (
    CONTROLLER,
    direct_controller,
    pid_controller,
    proportional_gain,
    with_forward_input,
)
from dinv.circuits.structure import Block, Pathway, Structure
from dinv.errors import InputError
from dinv.models.network import FeedforwardNetwork
from dinv.models.training import Learner, UpdateConfig, train_step
from dinv.theory import (
    direct_jacobians,
    direct_state,
    direct_steady_state,
    target_chain_state,
)

WIDTHS = (5, 4, 3, 2)
N, BATCH = 2, 3
# Meulemans et al. (2021)'s toy: tau_v / tau_u = 0.2; a finer dt and more steps than their
# 1000 of 0.005 tau_u, so that the circuit settles to rounding.
DIRECT = SettleOptions(steps=12000, dt=0.1, tau_controller=50 * ms, on_unsettled="raise",
                       settle_tol=1e-9)


def problem(seed=0, widths=WIDTHS, scale=1.0):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((N, widths[l + 1], widths[l])) / np.sqrt(widths[l])
               for l in range(len(widths) - 1)]
    delta = scale * rng.standard_normal((N, BATCH, widths[-1]))
    offsets = [rng.standard_normal((N, BATCH, d)) for d in widths[1:-1]]
    return weights, delta, offsets


def rel_err(x, ref):
    return float(np.max(np.abs(x - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("transfers, kp, scale", [(("linear", "linear"), 1.5, 1.0),
                                                  (("linear", "linear"), 0.0, 1.0),
                                                  (("tanh", "tanh"), 1.5, 0.1)])
def test_dfc_settles_to_its_closed_form(transfers, kp, scale):
    """The simulated DFC circuit ends at u = (J Q + alpha' I)^-1 delta, delta_l = Q_l u
    (linear network), and at the exact steady state of the tanh network (Newton), to 1e-6."""
    weights, delta, offsets = problem(0, scale=scale)
    Q = [np.swapaxes(J, 1, 2) for J in direct_jacobians(weights[1:])]
    spec = ChainSpec(WIDTHS, "direct", transfers, N, kp=kp)
    settled = settle_chains([spec], [ChainProblem(weights, Q, delta, 0.01, offsets=offsets)],
                            DIRECT)[0]
    if transfers[0] == "linear":
        reference, _ = direct_steady_state(weights[1:], Q, delta, 0.01, kp)
    else:
        reference, _, converged = direct_state(weights[1:], Q, delta, 0.01, kp, offsets,
                                               list(transfers))
        assert converged.all()
    for got, ref in zip(settled.deltas, reference):
        assert rel_err(got, ref) < 1e-6


def test_dfc_leak_is_reduced_by_the_proportional_part():
    """With k_p the steady state is that of the leak alpha / (1 + alpha k_p): at alpha = 0.5
    and k_p = 1.5 far from the integral controller's."""
    weights, delta, _ = problem(2)
    Q = [np.swapaxes(J, 1, 2) for J in direct_jacobians(weights[1:])]
    got = {kp: settle_chains([ChainSpec(WIDTHS, "direct", None, N, kp=kp)],
                             [ChainProblem(weights, Q, delta, 0.5)], DIRECT)[0].deltas[0]
           for kp in (0.0, 1.5)}
    with_kp, _ = direct_steady_state(weights[1:], Q, delta, 0.5, 1.5)
    without, _ = direct_steady_state(weights[1:], Q, delta, 0.5, 0.0)
    assert rel_err(got[1.5], with_kp[0]) < 1e-6 and rel_err(got[0.0], without[0]) < 1e-6
    assert rel_err(with_kp[0], without[0]) > 0.05


@pytest.mark.parametrize("architecture", ["sequential", "repeat"])
def test_target_circuit_settles_to_the_exact_steady_state(architecture):
    weights, delta, offsets = problem(3, scale=0.5)
    B = [-np.swapaxes(W, 1, 2) for W in weights[1:]]
    spec = ChainSpec(WIDTHS, architecture, ("tanh", "tanh"), N, targets=True)
    settled = settle_chains([spec], [ChainProblem(weights, B, delta, 0.1, offsets=offsets)],
                            steps=6000, settle_tol=1e-9, on_unsettled="raise")[0]
    reference, converged = target_chain_state(weights[1:], B, delta, 0.1, offsets,
                                              ["tanh", "tanh"])
    assert converged.all()
    for got, ref in zip(settled.deltas, reference):
        assert rel_err(got, ref) < 1e-6


def test_offset_pathways_with_synapses_equal_the_dense_ones():
    """DFC's pathways through g before the matrix, as Brian2 Synapses (with a leaky
    integral controller: the proportional part is a dense-coupling drive), equal the
    dense ones mid-transient; the targets' pathways through g after the sum are refused."""
    weights, delta, offsets = problem(4)
    Q = [np.swapaxes(J, 1, 2) for J in direct_jacobians(weights[1:])]
    spec = ChainSpec(WIDTHS, "direct", ("tanh", "tanh"), N)
    runs = [settle_chains([spec], [ChainProblem(weights, Q, delta, 0.1, offsets=offsets)],
                          steps=60, coupling=coupling, codegen_target="numpy",
                          tau_controller=50 * ms, on_unsettled="ignore")[0].deltas
            for coupling in ("dense", "synapses")]
    for dense, synapses in zip(*runs):
        np.testing.assert_allclose(synapses, dense, rtol=1e-10, atol=1e-12)
    B = [-np.swapaxes(W, 1, 2) for W in weights[1:]]
    with pytest.raises(InputError, match="cannot apply the transfer of pathway"):
        settle_chains([ChainSpec(WIDTHS, "repeat", ("tanh", "tanh"), N, targets=True)],
                      [ChainProblem(weights, B, delta, 0.1, offsets=offsets)], steps=10,
                      coupling="synapses", codegen_target="numpy")


@pytest.mark.parametrize("architecture", ["sequential", "repeat"])
def test_di_targets_equals_di_on_linear_networks(architecture):
    """On a linear network DI of targets is DI of errors (the hidden errors agree to
    1e-10), whatever the target step."""
    rng = np.random.default_rng(5)
    net = FeedforwardNetwork.create([5, 6, 4, 3], ["linear"] * 3, rng, init="orthogonal")
    B = [-W.T for W in net.weights[1:]]
    learners = [Learner(rule, rule, net.copy(), B, 0.01, architecture) for rule in
                ("di", "di-targets")]
    x, t = rng.standard_normal((4, 5)), rng.standard_normal((4, 3))
    step = train_step(learners, x, t, UpdateConfig(lr=1e-2, circuit=SettleOptions(
        steps=2000, on_unsettled="raise")))
    for di, targets in zip(step.deltas[0][:-1], step.deltas[1][:-1]):
        assert rel_err(targets, di) < 1e-10


def test_forward_input_model_sums_two_couplings():
    model = with_forward_input(SYSTEM)
    assert (model.input, model.forward) == ("I_fb_own", "I_ff")
    assert "I_fb = I_fb_own + I_ff : 1" in model.equations
    assert with_forward_input(model) is model
    spiking = with_forward_input(SCN.system)
    assert spiking.input == "I_in_own" and spiking.forward == "I_ff"
    with pytest.raises(InputError, match="forward input needs a system model"):
        with_forward_input(CONTROLLER)


def test_structure_refuses_misplaced_forward_and_offset_pathways():
    blocks = [Block("a", SYSTEM, 2), Block("b", SYSTEM, 2), Block("u", CONTROLLER, 2)]
    with pytest.raises(InputError, match="no forward input"):
        Structure(blocks, [Pathway("p", "a", "b", variable="forward")])
    with pytest.raises(InputError, match="only matrix pathways take offsets"):
        Structure(blocks, [Pathway("p", "a", "b", kind="gain", offset="before")])
    with pytest.raises(InputError, match="offset must be None, 'before' or 'after'"):
        Structure(blocks, [Pathway("p", "a", "b", offset="inside")])


def test_direct_controller_and_its_gain():
    assert proportional_gain(direct_controller(0.7)) == 0.7
    assert proportional_gain(CONTROLLER) == 0.0
    assert proportional_gain(pid_controller(kp=0.5)) == 0.0  # filtered: no part at rest
    with pytest.raises(InputError, match="kp must be a number >= 0"):
        direct_controller(-1.0)


def test_dfc_with_a_controller_without_proportional_part_needs_kp_0():
    weights, delta, _ = problem(4)
    Q = [np.swapaxes(J, 1, 2) for J in direct_jacobians(weights[1:])]
    with pytest.raises(InputError, match="has no proportional part"):
        settle_chains([ChainSpec(WIDTHS, "direct", None, N, kp=1.5)],
                      [ChainProblem(weights, Q, delta, 0.01)], DIRECT,
                      controller=pid_controller(kd=0.1))
    with pytest.raises(InputError, match="kp .* applies to the 'direct' chain only"):
        settle_chains([ChainSpec(WIDTHS, "sequential", None, N, kp=1.5)],
                      [ChainProblem(weights, Q, delta, 0.01)])


@pytest.mark.slow
@pytest.mark.parametrize("population", ["scn", "lif"])
def test_spiking_populations_carry_targets_and_direct_control(population):
    """DI of targets and DFC (k_p = 0: spiking controllers have no proportional part) with
    every population spiking settle near their closed forms (NDI of targets, NDFC)."""
    from dinv.experiments.models_spec import spiking_circuit
    from dinv.models.initialisation import init_direct_feedback
    from dinv.models.rules import RULES

    rng = np.random.default_rng(8)
    net = FeedforwardNetwork.create([4, 3, 3, 2], ["tanh", "tanh", "linear"], rng,
                                    init="orthogonal")
    circuit = spiking_circuit({}, population).replace(on_unsettled="ignore")
    B = [-W.T for W in net.weights[1:]]
    Q = init_direct_feedback(net.weights, "transpose", None)
    # DFC at its published target step: at 1, tanh saturation slows its settling past
    # the run (the rate circuit too).
    dfc, ndfc = (RULES[name].with_settings(kp=0.0) for name in ("dfc", "ndfc"))
    targets = RULES["di-targets"].with_settings(target_step=1.0)
    ndi_targets = RULES["ndi-targets"].with_settings(target_step=1.0)
    learners = [Learner("DI-T", targets, net.copy(), B, 0.1, circuit=circuit),
                Learner("NDI-T", ndi_targets, net.copy(), B, 0.1),
                # DFC with a controller slower than the systems, as Meulemans et al.'s:
                # the same Euler step in ms (dt is in units of the fastest tau), 200 ms.
                Learner("DFC", dfc, net.copy(), Q, 0.1, circuit=circuit.replace(
                    tau_controller=20 * ms, dt=circuit.dt / 10, steps=2 * circuit.steps)),
                Learner("NDFC", ndfc, net.copy(), Q, 0.1)]
    x, t = rng.standard_normal((2, 4)), rng.standard_normal((2, 2))
    step = train_step(learners, x, t, UpdateConfig(lr=1e-3))
    for simulated, closed in ((0, 1), (2, 3)):
        for got, ref in zip(step.deltas[simulated][:-1], step.deltas[closed][:-1]):
            assert rel_err(got, ref) < 0.15, (learners[simulated].name, population)
