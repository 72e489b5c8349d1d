"""The rules of targets (ndi-targets, di-targets) and of direct feedback control (ndfc, dfc):
closed forms, learners, feedback initialisation and stabilisation, model specs."""

import numpy as np
import pytest

from dinv.errors import InputError
from dinv.experiments.models_spec import (
    DIRECT_SETTINGS,
    ModelSpec,
    direct_circuit,
    own_settings,
    select_models,
)
from dinv.models.initialisation import init_direct_feedback
from dinv.models.network import FeedforwardNetwork
from dinv.models.rules import RULES, steady_rule
from dinv.models.stabilise import (
    restabilise,
    stabilise_direct,
    stable_random_direct_feedback,
    unstable_feedback,
)
from dinv.models.training import Learner, UpdateConfig, train_step
from dinv.theory import direct_abscissa, direct_jacobians, direct_steady_state


def network(nonlinearity="tanh", seed=0, sizes=(6, 5, 4, 3)):
    rng = np.random.default_rng(seed)
    return FeedforwardNetwork.create(list(sizes), [nonlinearity] * 2 + ["linear"], rng,
                                     init="orthogonal"), rng


def test_ndi_targets_is_ndi_on_linear_networks_and_differs_on_tanh_ones():
    for nonlinearity, same in (("linear", True), ("tanh", False)):
        net, rng = network(nonlinearity)
        B = [-W.T for W in net.weights[1:]]
        learners = [Learner(r, r, net.copy(), B, 0.01) for r in ("ndi", "ndi-targets")]
        x, t = rng.standard_normal((4, 6)), rng.standard_normal((4, 3))
        step = train_step(learners, x, t, UpdateConfig(lr=1e-2))
        gaps = [np.abs(a - b).max() / np.abs(a).max()
                for a, b in zip(step.deltas[0][:-1], step.deltas[1][:-1])]
        assert (max(gaps) < 1e-12) if same else (min(gaps) > 1e-3), nonlinearity


def test_ndfc_is_the_closed_form_with_the_target_step():
    """On a linear network NDFC is delta_l = Q_l (J Q + alpha' I)^-1 delta_L (the target
    step cancels); the Jacobian-transpose feedback makes it J^T (J J^T)^-1 for small alpha."""
    net, rng = network("linear")
    Q = init_direct_feedback(net.weights, "transpose", None)
    for Qj, J in zip(Q, direct_jacobians(net.weights[1:])):
        np.testing.assert_array_equal(Qj, J.T)
    learner = Learner("NDFC", RULES["ndfc"].with_settings(kp=0.5, target_step=0.2), net.copy(),
                      Q, 0.01)
    x, t = rng.standard_normal((4, 6)), rng.standard_normal((4, 3))
    step = train_step([learner], x, t, UpdateConfig(lr=1e-3))
    output = step.deltas[0][-1]
    expected, _ = direct_steady_state(net.weights[1:], Q, output, 0.01, 0.5)
    for got, ref in zip(step.deltas[0][:-1], expected):
        np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-14)


def test_rule_settings_are_checked_and_make_rules_of_their_own():
    dfc = RULES["dfc"].with_settings(kp=0.0)
    assert dfc.kp == 0.0 and dfc != RULES["dfc"] and RULES["dfc"].kp == 1.5
    with pytest.raises(InputError, match="has no setting kp"):
        RULES["di"].with_settings(kp=1.0)
    with pytest.raises(InputError, match="target_step must be a number > 0"):
        RULES["di-targets"].with_settings(target_step=0.0)
    with pytest.raises(InputError, match="rule settings are kp and target_step"):
        RULES["dfc"].with_settings(alpha=1.0)
    assert steady_rule("dfc").name == "ndfc" and steady_rule(dfc).kp == 0.0
    assert steady_rule("di-targets").name == "ndi-targets" and steady_rule("di").name == "ndi"
    assert steady_rule("bp") is None and steady_rule("sldi") is None


def test_learner_checks_direct_feedback_shapes():
    net, _ = network()
    with pytest.raises(InputError, match=r"Q_1 .. Q_\(L-1\) of shapes \(d_l, d_L\)"):
        Learner("DFC", "dfc", net.copy(), [np.zeros((3, 5)), np.zeros((3, 4))], 0.01)
    with pytest.raises(InputError, match="alpha must be a scalar"):
        Learner("DFC", "dfc", net.copy(), [np.zeros((5, 3)), np.zeros((4, 3))], (0.1, 0.2))


@pytest.mark.parametrize("kp", [0.0, 1.5])
def test_random_direct_feedback_is_stabilised(kp):
    net, rng = network()
    Q = stable_random_direct_feedback(net.weights, 0.0015, rng, kp=kp, tau_ratio=0.2, lr=0.5,
                                      max_iters=2000, min_iters=10)
    assert [q.shape for q in Q] == [(5, 3), (4, 3)]
    assert direct_abscissa(net.weights[1:], Q, 0.0015, kp, 0.2) <= -0.01
    start = [-q for q in Q]  # unstable: the negated feedback
    assert direct_abscissa(net.weights[1:], start, 0.0015, kp, 0.2) > 0
    result = stabilise_direct(net.weights[1:], start, 0.0015, kp, 0.2, lr=0.5, max_iters=2000)
    assert result.abscissa <= -0.01 and result.history[0] > 0


def test_unstable_direct_learners_are_repaired():
    net, _ = network()
    Q = [-q for q in init_direct_feedback(net.weights, "transpose", None)]
    learner = Learner("DFC", "dfc", net.copy(), Q, 0.0015, circuit=direct_circuit({}))
    found = unstable_feedback([learner])
    assert [(k, layer) for k, layer, _ in found] == [(0, "direct")]
    events = restabilise([learner], 7, lr=0.5, max_iters=3000)
    assert events[0]["layer"] == "direct" and events[0]["after"] <= -0.01
    assert unstable_feedback([learner]) == []


def test_model_specs_of_targets_and_direct_control():
    net, _ = network()
    config = {"dfc_kp": 0.5, "target_step": 0.1}
    spec = ModelSpec("DFC", "dfc", 0.0015, "transpose", optional=True)
    rule, circuit = own_settings(config, spec)
    assert (rule.kp, rule.target_step) == (0.5, 0.1)
    assert float(circuit.tau_system / circuit.tau_controller) == DIRECT_SETTINGS["dfc_tau_ratio"]
    assert circuit.dt == DIRECT_SETTINGS["dfc_dt"] and circuit.steps == 1000
    learner = spec.learner(net, 0, circuit=circuit, rule=rule)
    assert learner.rule.kp == 0.5 and len(learner.feedback) == 2
    shared = {}
    stable = ModelSpec("DFC R", "dfc", 0.0015, "stable-random").learner(
        net, 0, {"lr": 0.5, "max_iters": 2000}, shared, circuit, rule=rule)
    again = ModelSpec("NDFC R", "ndfc", 0.0015, "stable-random").learner(
        net, 0, {"lr": 0.5, "max_iters": 2000}, shared, circuit,
        rule=own_settings(config, ModelSpec("x", "ndfc"))[0])
    assert all(np.array_equal(a, b) for a, b in zip(stable.feedback, again.feedback))
    assert direct_abscissa(net.weights[1:], stable.feedback, 0.0015, 0.5, 0.2) <= -0.01
    specs = [ModelSpec("BP", "bp"), spec]
    assert select_models(specs, None) == specs[:1]
    assert select_models(specs, ["DFC"]) == [spec]
    with pytest.raises(InputError, match="spiking controller has no proportional part"):
        own_settings({}, ModelSpec("DFC-SCN", "dfc", 0.01, "transpose", population="scn"))


def test_regression_trains_the_optional_models(tmp_path):
    """linear-regression runs DI of targets and DFC when named: on its linear network DI of
    targets takes DI's updates; the curves compare each with its own closed form."""
    import json

    from dinv.analysis import validate_results
    from dinv.experiments.cli import main

    out = tmp_path / "out"
    models = "DI a=0.01,DI-T a=0.01,NDFC a=0.0015,DFC a=0.0015"
    assert main(["run", "linear-regression", "--set", "samples=12", "--models", models,
                 "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "results.json").read_text())
    validate_results(record)
    di, targets = (np.array(record["error"][m]) for m in ("DI a=0.01", "DI-T a=0.01"))
    np.testing.assert_allclose(targets, di, rtol=1e-9)
    curves = record["curves"]
    assert max(curves["angle_ndi"]["DI-T a=0.01"][0]) < 1.0
    assert np.isfinite(curves["eigenvalue"]["DFC a=0.0015"][0]).all()
    assert np.isfinite(curves["angle_B"]["NDFC a=0.0015"][0]).all()
    assert record["rules"]["DFC a=0.0015"] == "dfc"


def test_mnist_trains_the_optional_models(tmp_path):
    import json

    from dinv.experiments.cli import main

    out = tmp_path / "out"
    assert main(["run", "mnist", "--quick", "--models", "BP,DI-T a=0.01,DFC a=0.0015",
                 "--set", "epochs=1", "--set", "train_samples=60", "--set", "eval_every=60",
                 "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "results.json").read_text())
    assert set(record["final"]) == {"BP", "DI-T a=0.01", "DFC a=0.0015"}
    assert all(np.isfinite(v["test_error"]) for v in record["final"].values())
    assert set(record["settling"]) == {"DI-T a=0.01", "DFC a=0.0015"}
