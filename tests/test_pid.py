"""The PID controller (Eq. 7): Brian2 equations, numpy theory and stability.

Zero gains reproduce the leaky-integral controller (Eq. 8); with P and D on
the steady state still satisfies Eq. (9) and equals NDI (Eq. 10); the Brian2
states follow a hand-written Euler loop of `dinv.theory.pid_layer_rhs`; the
Jacobian matches finite differences; the abscissa (continuous time) and the
step matrix's spectral radius (the paper's Euler step) predict which
circuits settle and how fast.
"""

import re

import numpy as np
import pytest

from dinv.circuits import (
    CONTROLLER,
    PID_CONTROLLER,
    POPULATION_MODELS,
    CircuitDivergedError,
    InputError,
    pid_controller,
    settle_layer,
)
from dinv.circuits.chains import settle_chain
from dinv.models.rules import ndi
from dinv.theory import (
    jacobian_abscissa,
    layer_steady_state,
    pid_abscissa,
    pid_jacobian,
    pid_layer_rhs,
    pid_step_matrix,
    pid_step_radius,
)

ALPHA = 0.1


def reference_case(seed=0):
    """The timescale study's layer pair: 10 <- 20, B = -W^T, one sample."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((10, 20)) / np.sqrt(20)
    return W, -W.T, rng.standard_normal((1, 10))


def euler_loop(W, B, target, alpha, steps, kp, kd, filter_ratio, dt=0.5):
    """Semi-implicit Euler of `pid_layer_rhs` (tau_controller = tau_system): controller
    states first, from the states at the start of the step, then the system."""
    delta = np.zeros(target.shape[:-1] + (W.shape[1],))
    u, e_f, rate_f = (np.zeros(target.shape) for _ in range(3))
    for _ in range(steps):
        _, du, de, dr = pid_layer_rhs(delta, u, e_f, rate_f, W, B, target, alpha, 1.0, kp, kd,
                                      filter_ratio)
        u, e_f, rate_f = u + dt * du, e_f + dt * de, rate_f + dt * dr
        delta = delta + dt * (-delta + u @ B.T)
    return delta, u


def random_gains(rng, d, scale=0.3):
    """Gain matrices near the stable scalar gains (1, 0.5): K_p, K_d with coupled units."""
    return (np.eye(d) + scale * rng.standard_normal((d, d)) / np.sqrt(d),
            0.5 * np.eye(d) + scale * rng.standard_normal((d, d)) / np.sqrt(d))


def test_zero_gains_are_the_integral_controller():
    """Acceptance: kp = kd = 0 gives the states of Eq. (8) to 1e-12, by name and factory,
    scalar and matrix zeros."""
    W, B, delta = reference_case()
    kwargs = dict(steps=400, return_result=True, on_unsettled="ignore")
    integral = settle_layer(W, B, delta, ALPHA, controller=CONTROLLER, **kwargs)
    zeros = np.zeros((10, 10))
    for model in (PID_CONTROLLER, "pid-controller", pid_controller(0.0, 0.0, 0.3),
                  pid_controller(zeros, zeros), pid_controller(zeros, 0.0, 0.3)):
        pid = settle_layer(W, B, delta, ALPHA, controller=model, **kwargs)
        assert np.max(np.abs(pid.delta - integral.delta)) < 1e-12
        assert np.max(np.abs(pid.u - integral.u)) < 1e-12
    assert POPULATION_MODELS["pid-controller"] == pid_controller()


@pytest.mark.parametrize("kp, kd", [(1.0, 0.0), (0.0, 0.5), (2.0, 1.0), (-0.2, 0.25),
                                    ("matrix", None)])
def test_pid_settles_to_eq_9_and_ndi(kp, kd):
    """Acceptance: with P and D on, W delta = delta_l + alpha u (Eq. 9) to 1e-6, delta = NDI;
    scalar gains and full gain matrices."""
    W, B, delta = reference_case()
    if kp == "matrix":
        kp, kd = random_gains(np.random.default_rng(11), 10)
    result = settle_layer(W, B, delta, ALPHA, controller=pid_controller(kp, kd), steps=3000,
                          return_result=True)
    settled, u = result.delta[0], result.u[0]
    assert np.max(np.abs(settled @ W.T - delta - ALPHA * u)) < 1e-6
    np.testing.assert_allclose(settled, ndi(W, B, delta, ALPHA), atol=1e-9)


def test_brian2_follows_the_numpy_right_hand_side():
    """The Brian2 equations are `pid_layer_rhs` under the circuits' semi-implicit Euler."""
    W, B, delta = reference_case(1)
    for kp, kd, ratio in ((1.0, 0.5, 1.0), (0.25, 0.0, 0.5), (-0.2, 1.0, 2.0)):
        result = settle_layer(W, B, delta, ALPHA, controller=pid_controller(kp, kd, ratio),
                              steps=150, return_result=True, on_unsettled="ignore")
        ref_delta, ref_u = euler_loop(W, B, delta, ALPHA, 150, kp, kd, ratio)
        assert np.max(np.abs(result.delta[0] - ref_delta)) < 1e-10
        assert np.max(np.abs(result.u[0] - ref_u)) < 1e-10


def test_brian2_follows_the_numpy_right_hand_side_with_gain_matrices():
    """Gain matrices through ``pid_drive``: the Brian2 states are a numpy Euler loop of
    `pid_layer_rhs` with the same matrices, over 300 steps (two samples)."""
    W, B, _ = reference_case(4)
    rng = np.random.default_rng(12)
    delta = rng.standard_normal((2, 10))
    for ratio, (kp, kd) in ((1.0, random_gains(rng, 10)), (2.0, (random_gains(rng, 10)[0], 0.0))):
        result = settle_layer(W, B, delta, ALPHA, controller=pid_controller(kp, kd, ratio),
                              steps=300, return_result=True, on_unsettled="ignore")
        ref_delta, ref_u = euler_loop(W, B, delta, ALPHA, 300, kp, kd, ratio)
        assert np.max(np.abs(result.delta[0] - ref_delta)) < 1e-10
        assert np.max(np.abs(result.u[0] - ref_u)) < 1e-10


def test_identity_gain_matrices_are_the_scalar_gains():
    """k I as a matrix gives the states of the scalar gain k to 1e-12 (layer and chain)."""
    W, B, delta = reference_case(2)
    kwargs = dict(steps=400, return_result=True, on_unsettled="ignore")
    for kp, kd, ratio in ((0.7, 0.3, 1.5), (-0.2, 0.0, 1.0), (0.0, 1.0, 2.0)):
        scalar = settle_layer(W, B, delta, ALPHA, controller=pid_controller(kp, kd, ratio),
                              **kwargs)
        matrix = settle_layer(W, B, delta, ALPHA, controller=pid_controller(
            kp * np.eye(10), kd * np.eye(10), ratio), **kwargs)
        assert np.max(np.abs(scalar.delta - matrix.delta)) < 1e-12
        assert np.max(np.abs(scalar.u - matrix.u)) < 1e-12
    weights, feedback, target = chain_case()
    kwargs = dict(architecture="sequential", steps=300, on_unsettled="ignore")
    scalar = settle_chain(weights, feedback, target, ALPHA, controller=[
        pid_controller(1.0, 0.5), pid_controller(0.5, 0.0)], **kwargs)
    matrix = settle_chain(weights, feedback, target, ALPHA, controller=[
        pid_controller(np.eye(5), 0.5 * np.eye(5)), pid_controller(0.5 * np.eye(4), 0.0)],
        **kwargs)
    for got, want in zip(matrix.deltas, scalar.deltas):
        assert np.max(np.abs(got - want)) < 1e-12


def chain_case(seed=5):
    """A 6-8-5-4 chain with Tr-Init feedback and a batch of two output errors."""
    rng = np.random.default_rng(seed)
    widths = [6, 8, 5, 4]
    weights = [rng.standard_normal((1, widths[l + 1], widths[l])) / np.sqrt(widths[l])
               for l in range(3)]
    feedback = [-np.swapaxes(W, 1, 2) for W in weights[1:]]
    return weights, feedback, rng.standard_normal((1, 2, widths[-1]))


@pytest.mark.parametrize("gains", [(0.7, 0.3, 1.0, 0.5), "matrix"])
def test_jacobian_matches_finite_differences(gains):
    """`pid_jacobian` is the derivative of `pid_layer_rhs`, scalar and matrix gains."""
    rng = np.random.default_rng(3)
    W = rng.standard_normal((3, 5))
    B = rng.standard_normal((5, 3))
    if gains == "matrix":
        kp, kd, ratio, r = rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), 0.7, 2.0
    else:
        kp, kd, ratio, r = gains
    J = pid_jacobian(W, B, ALPHA, r, kp, kd, ratio)
    sizes = (5, 3, 3, 3)
    x0 = rng.standard_normal(sum(sizes))
    target = rng.standard_normal((1, 3))

    def rhs(x):
        parts = np.split(x, np.cumsum(sizes)[:-1])
        out = pid_layer_rhs(*(p[None] for p in parts), W, B, target, ALPHA, r, kp, kd, ratio)
        return np.concatenate([o[0] for o in out])

    h = 1e-6
    numeric = np.stack([(rhs(x0 + h * e) - rhs(x0 - h * e)) / (2 * h)
                        for e in np.eye(x0.size)], axis=1)
    np.testing.assert_allclose(J, numeric, atol=1e-6)


def test_zero_gain_jacobian_keeps_the_integral_spectrum():
    """Zero gains: the abscissa is the integral controller's (filters decay at -1/tau_d)."""
    W, B, _ = reference_case()
    for r in (0.25, 1.0, 4.0):
        assert pid_abscissa(W, B, ALPHA, r) == pytest.approx(jacobian_abscissa(W, B, ALPHA, r),
                                                             abs=1e-10)


def test_step_matrix_is_the_euler_circuit_and_tends_to_the_jacobian():
    """Iterating `pid_step_matrix` is the Euler loop (zero target: shifted states);
    for a small dt its spectral radius is exp(dt * abscissa)."""
    W, B, delta = reference_case(2)
    kp, kd, ratio = 0.5, 0.25, 1.0
    # Deviations from the steady state obey x_{n+1} - x* = M (x_n - x*).
    settled = layer_steady_state(W, B, delta, ALPHA)
    u_star = (settled @ W.T - delta) / ALPHA
    # At the steady state e_f = e = alpha u* and rate_f = 0; every run starts from 0.
    x = np.concatenate([-settled[0], -u_star[0], -ALPHA * u_star[0], np.zeros(10)])
    M = pid_step_matrix(W, B, ALPHA, 0.5, 1.0, kp, kd, ratio)
    for _ in range(60):
        x = M @ x
    ref_delta, _ = euler_loop(W, B, delta, ALPHA, 60, kp, kd, ratio)
    np.testing.assert_allclose(x[:20] + settled[0], ref_delta[0], atol=1e-12)
    dt = 1e-3
    radius = pid_step_radius(W, B, ALPHA, dt, 1.0, kp, kd, ratio)
    assert np.log(radius) / dt == pytest.approx(pid_abscissa(W, B, ALPHA, 1.0, kp, kd, ratio),
                                                rel=1e-2)


def test_stability_predicts_what_settles():
    """A gain pair with step radius above 1 diverges at the paper's dt; one below settles,
    at the rate the radius gives; negative gains with a positive abscissa grow."""
    W, B, delta = reference_case()
    assert pid_step_radius(W, B, ALPHA, 0.5, 1.0, 1.0, 0.5, 0.5) > 1.0
    with pytest.raises(CircuitDivergedError):
        settle_layer(W, B, delta, ALPHA, controller=pid_controller(1.0, 0.5, 0.5), steps=2000)
    radius = pid_step_radius(W, B, ALPHA, 0.5, 1.0, 1.0, 0.5, 1.0)
    assert radius < 1.0
    result = settle_layer(W, B, delta, ALPHA, controller=pid_controller(1.0, 0.5, 1.0),
                          steps=400, record_every=1, return_result=True, on_unsettled="ignore")
    target = ndi(W, B, delta, ALPHA)[0]
    error = np.linalg.norm(result.traces["delta"][:, 0, 0] - target, axis=1)
    t = result.traces["t"]
    fit = (error < 1e-3) & (error > 1e-10)
    rate = -np.polyfit(t[fit], np.log(error[fit]), 1)[0]
    assert rate == pytest.approx(-np.log(radius) / 0.5, rel=0.05)
    # Continuous time (small dt): a positive abscissa grows.
    assert pid_abscissa(W, B, ALPHA, 1.0, -1.0, -0.5) > 0.0
    with pytest.raises(CircuitDivergedError):
        settle_layer(W, B, delta, ALPHA, controller=pid_controller(-1.0, -0.5), steps=20000,
                     dt=0.05)


@pytest.mark.parametrize("architecture", ["sequential", "repeat"])
def test_pid_controllers_in_chains(architecture):
    """Sequential and repeat chains with PID controllers (one per layer, other gains each;
    scalars, and a gain matrix for layer 2) settle to the integral controllers' steady
    state (Eq. 17)."""
    weights, feedback, delta = chain_case()
    reference = settle_chain(weights, feedback, delta, ALPHA, architecture=architecture,
                             steps=6000)
    kp, kd = random_gains(np.random.default_rng(13), 5, scale=0.2)
    for controllers in ([pid_controller(1.0, 0.5), pid_controller(0.5, 0.0)],
                        [pid_controller(kp, kd), pid_controller(0.5, 0.0)]):
        pid = settle_chain(weights, feedback, delta, ALPHA, architecture=architecture,
                           steps=6000, controller=controllers)
        for got, want in zip(pid.deltas, reference.deltas):
            np.testing.assert_allclose(got, want, atol=1e-8)


def test_bad_gains_name_the_fix():
    W, B, delta = reference_case()
    with pytest.raises(InputError, match="kp must be a number or a square"):
        pid_controller(kp=np.ones((2, 3)))
    with pytest.raises(InputError, match="kd contains NaN"):
        pid_controller(kd=np.full((2, 2), np.nan))
    with pytest.raises(InputError, match="kp must be finite"):
        pid_controller(kp=np.inf)
    with pytest.raises(InputError, match="kp and kd must have the same shape"):
        pid_controller(np.eye(2), np.eye(3))
    with pytest.raises(InputError, match="filter_ratio .* must be positive"):
        pid_controller(filter_ratio=0.0)
    with pytest.raises(InputError, match="has 10 units; pass one model per layer"):
        settle_layer(W, B, delta, ALPHA, controller=pid_controller(np.eye(3)), steps=10)
    with pytest.raises(InputError, match="use coupling='dense'"):
        settle_layer(W, B, delta, ALPHA, controller=pid_controller(np.eye(10)), steps=10,
                     coupling="synapses")


def test_r_init_descent_on_the_pid_jacobian():
    """SSA descent on the PID circuit's Jacobian stabilises random feedback; the
    Brian2 PID circuit with it settles to NDI."""
    from dinv.models.stabilise import stabilise_pid_feedback

    rng = np.random.default_rng(7)
    W = rng.standard_normal((4, 6)) / np.sqrt(6)
    B = rng.standard_normal((6, 4))
    kp, kd = 0.5, 0.25
    assert pid_abscissa(W, B, ALPHA, 1.0, kp, kd) > 0
    result = stabilise_pid_feedback(W, B, ALPHA, kp, kd, target=-0.02, max_iters=400)
    assert result.abscissa <= -0.02
    assert result.abscissa == pytest.approx(pid_abscissa(W, result.B, ALPHA, 1.0, kp, kd))
    delta = rng.standard_normal((2, 4))
    assert pid_step_radius(W, result.B, ALPHA, 0.1, 1.0, kp, kd) < 1
    steps = int(25 / abs(result.abscissa) / 0.1)
    settled = settle_layer(W, result.B, delta, ALPHA, controller=pid_controller(kp, kd),
                           steps=steps, dt=0.1, stop_tol=1e-12)
    np.testing.assert_allclose(settled, ndi(W, result.B, delta, ALPHA), atol=1e-6)
    # SSA gradients from eigendecompositions: the same descent, to rounding amplified
    # over 100-odd steps (1e-7 of the largest entry here).
    eigen = stabilise_pid_feedback(W, B, ALPHA, kp, kd, target=-0.02, max_iters=400,
                                   solver="eigen")
    assert eigen.iterations == result.iterations
    np.testing.assert_allclose(eigen.B, result.B, rtol=0, atol=1e-6 * np.abs(result.B).max())
    with pytest.raises(InputError, match="solver must be one of"):
        stabilise_pid_feedback(W, B, ALPHA, kp, kd, solver="qr")


def test_pid_controller_in_the_single_loop_and_a_training_step():
    """The single loop (output controller -> first hidden layer) and a DI training step
    with PID controllers settle where the integral controllers do."""
    from brian2 import ms

    from dinv.circuits import SettleOptions
    from dinv.models.network import FeedforwardNetwork
    from dinv.models.training import Learner, UpdateConfig, train_step

    rng = np.random.default_rng(9)
    widths = [6, 8, 5, 4]
    weights = [rng.standard_normal((1, widths[l + 1], widths[l])) / np.sqrt(widths[l])
               for l in range(3)]
    product = weights[2] @ weights[1]
    B = -np.swapaxes(product, 1, 2)
    delta = rng.standard_normal((1, 2, widths[-1]))
    kwargs = dict(architecture="single-loop", steps=8000, tau_controller=40 * ms)
    loop = settle_chain(weights, [B], delta, ALPHA, controller=pid_controller(0.5, 0.25),
                        **kwargs)
    reference = settle_chain(weights, [B], delta, ALPHA, **kwargs)
    for got, want in zip(loop.deltas, reference.deltas):
        np.testing.assert_allclose(got, want, atol=1e-8)

    net = FeedforwardNetwork.create([6, 8, 5, 4], ["tanh", "tanh", "linear"], rng, scale=0.5)
    x, t = rng.standard_normal((3, 6)), rng.standard_normal((3, 4))
    steps = {}
    for label, controller in (("pid", pid_controller(1.0, 0.5)), ("integral", CONTROLLER)):
        learner = Learner("di", "di", net.copy(), feedback=[-W.T for W in net.weights[1:]],
                          alpha=0.1)
        options = SettleOptions(steps=4000, stop_tol=1e-11, controller=controller)
        steps[label] = train_step([learner], x, t, UpdateConfig(lr=0.01, circuit=options))
    for got, want in zip(steps["pid"].deltas[0], steps["integral"].deltas[0]):
        np.testing.assert_allclose(got, want, atol=1e-8)


def chain_gains(rng):
    """PID gains of two layer pairs, as R-Init takes them: scalars with equal time
    constants, and a 4 x 4 gain matrix with a controller twice as slow as the system."""
    return [dict(kp=0.5, kd=0.25, filter_ratio=1.0, tau_ratio=1.0),
            dict(kp=random_gains(rng, 4)[0], kd=0.5 * np.eye(4), filter_ratio=1.0,
                 tau_ratio=0.5)]


def test_r_init_under_pid_controllers():
    """R-Init with PID controllers puts every layer pair's PID-circuit abscissa (with that
    pair's own gains) below the target, by descent and by the shift; `pair_controllers`
    reads the gains and time constants of every layer from the settle options."""
    from brian2 import ms

    from dinv.circuits import SettleOptions
    from dinv.experiments.models_spec import pair_controllers
    from dinv.models.stabilise import stable_random_feedback

    weights, _, _ = chain_case()
    weights = [W[0] for W in weights]
    controllers = chain_gains(np.random.default_rng(14))
    rng = np.random.default_rng(1)
    for W, gains in zip(weights[1:], controllers):  # the random starts are unstable
        assert pid_abscissa(W, rng.uniform(-1, 1, W.T.shape), ALPHA, gains["tau_ratio"],
                            gains["kp"], gains["kd"], gains["filter_ratio"]) > 0
    for method in ("descent", "shift"):
        feedback = stable_random_feedback(weights, ALPHA, np.random.default_rng(1), scale=1.0,
                                          controllers=controllers, target=-0.02, method=method)
        for W, B, gains in zip(weights[1:], feedback, controllers):
            assert pid_abscissa(W, B, ALPHA, gains["tau_ratio"], gains["kp"], gains["kd"],
                                gains["filter_ratio"]) <= -0.02
    kp = random_gains(np.random.default_rng(15), 4)[0]
    options = SettleOptions(controller=[pid_controller(0.5, 0.25),
                                        pid_controller(kp, 0.0, 2.0)],
                            tau_controller=[10 * ms, 20 * ms])
    first, second = pair_controllers(options, 2)
    assert first == dict(kp=0.5, kd=0.25, filter_ratio=1.0, tau_ratio=1.0)
    np.testing.assert_array_equal(second["kp"], kp)
    assert second["filter_ratio"] == 2.0 and second["tau_ratio"] == 0.5
    assert pair_controllers(SettleOptions(), 2) == [None, None]


def test_restabilise_uses_the_pid_jacobian():
    """Re-stabilisation during training judges and repairs a layer pair on the PID
    circuit's Jacobian with that pair's gains; the integral check is left as it was."""
    from dinv.models.network import FeedforwardNetwork
    from dinv.models.stabilise import restabilise
    from dinv.models.training import Learner

    rng = np.random.default_rng(16)
    net = FeedforwardNetwork.create([6, 8, 5, 4], ["tanh", "tanh", "linear"], rng, scale=1.0)
    controllers = chain_gains(rng)
    feedback = [rng.uniform(-1, 1, W.T.shape) for W in net.weights[1:]]
    learner = Learner("DI", "di", net, feedback=[B.copy() for B in feedback], alpha=ALPHA)

    def abscissae(B_list):
        return [pid_abscissa(W, B, ALPHA, g["tau_ratio"], g["kp"], g["kd"], g["filter_ratio"])
                for W, B, g in zip(net.weights[1:], B_list, controllers)]

    before = abscissae(feedback)
    events = restabilise([learner], 3, controllers=controllers, target=-0.02)
    unstable = [j for j, value in enumerate(before) if value > 0]
    assert unstable and [e["layer"] - 1 for e in events] == unstable
    for event in events:
        assert event["before"] == pytest.approx(before[event["layer"] - 1])
        assert event["after"] == pytest.approx(abscissae(learner.feedback)[event["layer"] - 1])
        assert event["after"] <= -0.02


def test_cli_gains_and_a_short_pid_training_run(tmp_path, capsys):
    """--set pid_kp/pid_kd/pid_filter_ratio give the pid-controller its gains (recorded in
    the config); R-Init and a short online training run with them work end to end; bad
    values are one line each."""
    import json

    from dinv.experiments.cli import main

    out = tmp_path / "run"
    base = ["run", "linear-regression", "--quick", "--no-progress", "--set", "iterations=20",
            "--models", "DI R-Init a=0.01,NDI R-Init a=0.01"]
    assert main(base + ["--out", str(out), "--set", "controller=pid-controller",
                        "--set", "pid_kp=0.5", "--set", "pid_kd=0.25",
                        "--set", "pid_filter_ratio=1.5"]) == 0
    record = json.loads((out / "results.json").read_text())
    assert {k: record["config"][k] for k in ("pid_kp", "pid_kd", "pid_filter_ratio")} == \
        {"pid_kp": 0.5, "pid_kd": 0.25, "pid_filter_ratio": 1.5}
    final = record["final"]
    assert final["DI R-Init a=0.01"]["error_ratio"] < 1
    assert final["DI R-Init a=0.01"]["error_ratio"] == pytest.approx(
        final["NDI R-Init a=0.01"]["error_ratio"], rel=1e-2)
    capsys.readouterr()
    for setting, message in (("pid_kp=[[1, 0], [0, 1]]", "setting pid_kp must be a number"),
                             ("pid_kd=NaN", "setting pid_kd must be a finite number"),
                             ("pid_filter_ratio=0", "pid_filter_ratio .* must be positive")):
        assert main(base + ["--out", str(tmp_path / "bad"), "--set",
                            "controller=pid-controller", "--set", setting]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("dinv: error:"), err
        assert re.search(message, err), err
    assert main(base + ["--out", str(tmp_path / "bad"), "--set", "pid_kp=1"]) == 2
    assert "not a PID controller" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
