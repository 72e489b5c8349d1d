"""The rule registry (dinv.models.rules): a new rule is one function and one Rule."""

import numpy as np
import pytest

from dinv.errors import InputError
from dinv.experiments.models_spec import ModelSpec
from dinv.models import rules
from dinv.models.network import FeedforwardNetwork
from dinv.models.rules import RULES, Rule, get_rule
from dinv.models.training import Learner, UpdateConfig, train_step


def sign_symmetric(W, B, delta, alpha):
    """Sign-symmetric feedback: delta_{l-1} = sign(W)^T delta_l."""
    return delta @ np.sign(W)


def test_registered_rules_describe_themselves():
    assert set(RULES) == {"bp", "fa", "pbp", "ndi", "di", "sldi", "ndi-targets", "di-targets",
                          "ndfc", "dfc"}
    assert [RULES[r].feedback for r in ("bp", "fa", "ndi", "sldi", "di-targets", "dfc")] == [
        None, "layer", "layer", "loop", "layer", "direct"]
    assert [r for r, rule in RULES.items() if rule.inverts] == [
        "ndi", "di", "sldi", "ndi-targets", "di-targets", "ndfc", "dfc"]
    assert [r for r, rule in RULES.items() if rule.circuit] == ["di", "sldi", "di-targets",
                                                                "dfc"]
    assert [r for r, rule in RULES.items() if rule.chainwise] == ["ndi-targets", "ndfc"]
    assert [r for r, rule in RULES.items() if not rule.slope] == [
        "sldi", "ndi-targets", "di-targets", "ndfc", "dfc"]
    assert RULES["di"].feedback_count(4) == 3 and RULES["sldi"].feedback_count(4) == 1
    assert RULES["dfc"].feedback_count(4) == 3 and RULES["bp"].feedback_count(4) == 0
    assert RULES["ndi"].leak_count(4) == 3 and RULES["sldi"].leak_count(4) == 1
    assert RULES["ndfc"].leak_count(4) == 1
    assert get_rule(RULES["fa"]) is RULES["fa"]


def test_unknown_rule_names_the_known_ones():
    with pytest.raises(InputError, match="unknown rule 'bpp'; choose one of bp, fa"):
        get_rule("bpp")


def test_rule_needs_exactly_one_way_to_compute():
    with pytest.raises(InputError, match="one of a layer-wise function, a chainwise function "
                                         "or a circuit"):
        rules.register(Rule("nothing", "computes nothing"))


def test_a_new_rule_trains_without_touching_other_files(monkeypatch):
    """Register a rule; learners, model specs and training pick it up by name."""
    monkeypatch.setitem(RULES, "ss", Rule("ss", "sign-symmetric feedback",
                                          layerwise=sign_symmetric))
    rng = np.random.default_rng(3)
    net = FeedforwardNetwork.create([5, 4, 3], ["tanh", "linear"], rng, scale=0.5)
    learner = ModelSpec("SS", "ss").learner(net, seed=0)
    reference = net.copy()
    x, t = rng.standard_normal((2, 5)), rng.standard_normal((2, 3))
    step = train_step([learner], x, t, UpdateConfig(lr=0.1))
    forward = reference.forward(x)
    output = reference.output_delta(forward, t)
    hidden = output @ np.sign(reference.weights[1]) * (1 - np.tanh(forward.a[0]) ** 2)
    np.testing.assert_allclose(step.deltas[0][0], hidden, rtol=1e-12)
    np.testing.assert_allclose(learner.net.weights[0],
                               reference.weights[0] - 0.1 * hidden.T @ x, rtol=1e-12)


def test_learner_checks_feedback_count_and_leaks():
    rng = np.random.default_rng(0)
    net = FeedforwardNetwork.create([5, 4, 3], ["tanh", "linear"], rng)
    with pytest.raises(InputError, match="needs 1 feedback matrices, got 0"):
        Learner("FA", "fa", net.copy())
    with pytest.raises(InputError, match=r"SLDI feedback must have shape \(4, 3\)"):
        Learner("SLDI", "sldi", net.copy(), feedback=[np.zeros((3, 4))], alpha=0.1)
    with pytest.raises(InputError, match="alpha must be >= 0"):
        Learner("NDI", "ndi", net.copy(), feedback=[np.zeros((4, 3))], alpha=-1.0)
    with pytest.raises(InputError, match="alpha must be a scalar or have shape"):
        Learner("NDI", "ndi", net.copy(), feedback=[np.zeros((4, 3))], alpha=(0.1, 0.2))
    assert Learner("BP", "bp", net.copy()).rule is RULES["bp"]
