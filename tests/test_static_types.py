"""A user's script, checked by mypy, sees the package's real types (not ``Any``).

The package ships a ``py.typed`` marker and typed signatures; static tools
find it after the install command of the docs (setuptools' strict editable
mode, whose link tree they can follow). mypy runs in a folder of its own, as
on a user's script elsewhere on the machine, in a fresh interpreter.
"""

import importlib.util
import re
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                                reason="mypy is not installed (pip install -e '.[test]')")

USER_SCRIPT = '''\
import numpy as np

from dinv.analysis import load_results
from dinv.analysis.metrics import nmse, vector_angle
from dinv.circuits import SettleOptions, pid_controller, settle_layer
from dinv.circuits.chains import settle_chain
from dinv.experiments.registry import get_experiment
from dinv.models.network import FeedforwardNetwork
from dinv.models.rules import get_rule, ndi
from dinv.models.training import Learner, UpdateConfig, train_step
from dinv.theory import layer_steady_state

rng = np.random.default_rng(0)
W = rng.normal(size=(3, 5))
delta = rng.normal(size=(2, 3))
x, t = rng.normal(size=(2, 5)), rng.normal(size=(2, 3))
net = FeedforwardNetwork.create([5, 4, 3], ["tanh", "linear"], rng)
learner = Learner("DI", "di", net.copy(), feedback=[-net.weights[1].T], alpha=0.01)

reveal_type(settle_layer(W, -W.T, delta, 0.1))  # settle_layer
reveal_type(settle_layer(W, -W.T, delta, 0.1, return_result=True))  # settle_layer result
reveal_type(SettleOptions(steps=2000))  # SettleOptions
reveal_type(settle_chain([W, W], [-W.T], delta[None], 0.1))  # settle_chain
reveal_type(pid_controller(kp=0.5))  # pid_controller
reveal_type(ndi(W, -W.T, delta, 0.1))  # ndi
reveal_type(get_rule("di"))  # get_rule
reveal_type(layer_steady_state(W, -W.T, delta, 0.1))  # layer_steady_state
reveal_type(learner.rule)  # Learner.rule
reveal_type(train_step([learner], x, t, UpdateConfig(lr=0.1)))  # train_step
reveal_type(load_results("results"))  # load_results
reveal_type(nmse({"BP": [1.0, 0.5]}))  # nmse
reveal_type(vector_angle(W, W))  # vector_angle
reveal_type(get_experiment("linear-regression"))  # get_experiment
'''

EXPECTED = {
    "settle_layer": "float64",
    "settle_layer result": "dinv.circuits.layer.Settled",
    "SettleOptions": "dinv.circuits.options.SettleOptions",
    "settle_chain": "dinv.circuits.chains.ChainSettled",
    "pid_controller": "dinv.circuits.populations.PopulationModel",
    "ndi": "float64",
    "get_rule": "dinv.models.rules.Rule",
    "layer_steady_state": "float64",
    "Learner.rule": "dinv.models.rules.Rule",
    "train_step": "dinv.models.training.Step",
    "load_results": "pandas.core.frame.DataFrame",
    "nmse": "float64",
    "vector_angle": "float64",
    "get_experiment": "dinv.experiments.registry.Experiment",
}
"""What each revealed type must name (the line's comment -> a part of its type)."""


def test_user_script_sees_real_types(tmp_path):
    """Every revealed type is the documented one, none is ``Any``, and the script
    type-checks without errors."""
    script = tmp_path / "user_script.py"
    script.write_text(USER_SCRIPT)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--show-error-codes",
         "--cache-dir", str(tmp_path / "cache"), "--config-file", "", script.name],
        capture_output=True, text=True, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert "import-not-found" not in output and "import-untyped" not in output, (
        "mypy cannot see the dinv package: install it with "
        "`pip install -e '.[test]' --config-settings editable_mode=strict` "
        "(static tools cannot follow the default editable install)\n" + output)
    labels = {number: line.rsplit("# ", 1)[1]
              for number, line in enumerate(USER_SCRIPT.splitlines(), start=1)
              if "# " in line}
    revealed = {}
    for number, kind in re.findall(r':(\d+): note: Revealed type is "(.*)"', output):
        revealed[labels[int(number)]] = kind
    assert set(revealed) == set(EXPECTED), output
    for label, kind in revealed.items():
        assert kind != "Any", f"{label} is Any to mypy"
        assert EXPECTED[label] in kind, f"{label}: expected {EXPECTED[label]}, got {kind}"
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert result.returncode == 0 and not errors, textwrap.indent(output, "  ")
