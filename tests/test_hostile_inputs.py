"""Hostile inputs, through the API and the ``dinv`` command.

Each case either fails with a clear error (an `InputError` naming the
problem; on the command line exit status 2 and one line ``dinv: error: ...``
on stderr, never a traceback) or gives a correct result, checked against a
closed form. Nothing may be silently wrong: no complex part dropped, no
boolean counted as a number, no unstable circuit returned as settled.
"""

import json
import re
import warnings

import numpy as np
import pytest
from brian2 import ms, mV

from dinv.circuits import CircuitUnstableError, PopulationModel, SettleOptions, settle_layer
from dinv.circuits.chains import ChainProblem, ChainSpec, settle_chain, settle_chains
from dinv.circuits.coupling import check_synapse_memory
from dinv.circuits.populations import CONTROLLER, SYSTEM
from dinv.circuits.structure import Block, Pathway, Structure
from dinv.errors import InputError, NotSettledError, NotSettledWarning
from dinv.experiments.cli import main
from dinv.models.rules import ndi
from dinv.theory import jacobian_abscissa

RNG = np.random.default_rng(11)
W = RNG.standard_normal((3, 5)) / np.sqrt(5)
B = -W.T
D = RNG.standard_normal((4, 3))
ALPHA = 0.1


def complex_of(x):
    return x + 1e-3j


# --------------------------------------------------------------------------
# The layer circuit (settle_layer): arrays and settings
# --------------------------------------------------------------------------

LAYER_ERRORS = {
    "NaN in W": (dict(W=np.where(np.eye(3, 5) > 0, np.nan, W)), "W contains NaN"),
    "inf in delta": (dict(delta=np.full((4, 3), np.inf)), "delta contains NaN or infinite"),
    "NaN alpha": (dict(alpha=np.nan), "alpha contains NaN"),
    "complex W": (dict(W=complex_of(W)), "W is complex"),
    "complex B": (dict(B=complex_of(B)), "B is complex"),
    "complex delta": (dict(delta=complex_of(D)), "delta is complex"),
    "complex alpha": (dict(alpha=0.1 + 0.01j), "alpha is complex"),
    "complex scalars in a list": (dict(delta=[[1, 2, 3j]]), "delta is complex"),
    "boolean W": (dict(W=W > 0), "W holds booleans"),
    "boolean alpha": (dict(alpha=True), "alpha holds booleans"),
    "strings in delta": (dict(delta=[["1", "2", "3"]]), "delta must be a numeric array"),
    "ragged W": (dict(W=[[1.0, 2.0], [3.0]]), "W must be a numeric array"),
    "W with units": (dict(W=W * mV), "W has physical units"),
    "transposed W": (dict(W=W.T.copy()), "B must have shape"),
    "B not transposed": (dict(B=W.copy()), "B must have shape"),
    "delta of the wrong width": (dict(delta=np.ones((4, 5))), "delta must have shape"),
    "W 4-D": (dict(W=np.ones((1, 1, 3, 5))), "W must have 2 or 3 dimensions"),
    "no error vectors": (dict(delta=np.ones((0, 3))), "batch size 0"),
    "negative alpha": (dict(alpha=-0.1), "alpha must be >= 0"),
    "alpha per problem, wrong length": (dict(alpha=[0.1, 0.2]), "alpha must be a scalar"),
    "alpha 0 on an expanding layer": (dict(W=W.T.copy(), B=-W, delta=np.ones((4, 5)),
                                           alpha=0.0), "expanding layer"),
    "steps=True": (dict(steps=True), "steps must be a positive integer"),
    "steps=2.5": (dict(steps=2.5), "steps must be a positive integer"),
    "steps=-1": (dict(steps=-1), "steps must be a positive integer"),
    "record_every negative": (dict(record_every=-5), "record_every must be an integer >= 0"),
    "record_every=True": (dict(record_every=True), "record_every must be an integer >= 0"),
    "settle_tol NaN": (dict(settle_tol=float("nan")), "settle_tol must be a positive number"),
    "settle_tol 0": (dict(settle_tol=0.0), "settle_tol must be a positive number"),
    "settle_tol negative": (dict(settle_tol=-1e-3), "settle_tol must be a positive number"),
    "stop_tol NaN": (dict(stop_tol=float("nan")), "stop_tol must be a positive number"),
    "negative dt": (dict(dt=-0.5), "dt must be a positive number"),
    "dt NaN": (dict(dt=float("nan")), "dt must be a positive number"),
    "zero tau": (dict(tau_controller=0 * ms), "tau_controller must be a positive time"),
    "tau without units": (dict(tau_system=10.0), "tau_system must be a positive time"),
    "tau in volts": (dict(tau_system=10 * mV), "tau_system must be a positive time"),
    "unknown coupling": (dict(coupling="sparse"), "coupling must be one of"),
    "unknown codegen target": (dict(codegen_target="cpp"), "codegen_target must be one of"),
    "unknown population model": (dict(system="izh"), "no population model called 'izh'"),
    "system model as controller": (dict(controller="rate-system"), "rate-system"),
    "unknown on_unsettled": (dict(on_unsettled="shout"), "on_unsettled must be one of"),
    "misspelt option": (dict(stepz=10), "unknown settle options"),
}


@pytest.mark.parametrize("case", list(LAYER_ERRORS))
def test_layer_refuses(case):
    """Each hostile argument of settle_layer is an InputError that names it."""
    changes, match = LAYER_ERRORS[case]
    kwargs = dict(W=W, B=B, delta=D, alpha=ALPHA, steps=10, on_unsettled="ignore")
    kwargs.update(changes)
    with pytest.raises(InputError, match=match):
        settle_layer(**kwargs)


def test_a_number_for_options_is_refused():
    """A number where the options go (settle_layer(W, B, delta, alpha, 2000))."""
    with pytest.raises(InputError, match="options must be a SettleOptions"):
        settle_layer(W, B, D, ALPHA, 2000)


@pytest.mark.parametrize("case", ["int lists", "float32", "steps 3000.0", "one vector"])
def test_layer_accepts_harmless_variants(case):
    """Lists of ints, float32, an integral float for steps, one error vector: the
    closed form (Eq. 10)."""
    W_int = np.array([[1, 0, 1, 0, 0], [0, 2, 0, 1, 0], [0, 0, 1, 0, 1]])
    args = {"int lists": (W_int.tolist(), (-W_int.T).tolist(), [[1, 2, 3]], {}),
            "float32": (W.astype(np.float32), B.astype(np.float32), D.astype(np.float32), {}),
            "steps 3000.0": (W, B, D, {"steps": 3000.0}),
            "one vector": (W, B, D[0], {})}[case]
    W_, B_, D_, extra = args
    options = dict(steps=3000, on_unsettled="raise") | extra
    got = settle_layer(W_, B_, D_, ALPHA, **options)
    want = ndi(np.asarray(W_, float), np.asarray(B_, float), np.asarray(D_, float), ALPHA)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_huge_synapse_layer_is_refused_before_building():
    """A layer whose Synapses would need more memory than there is: refused with
    the estimate and the dense alternative (before anything is allocated)."""
    W_big = np.zeros((2000, 2000))
    with pytest.raises(InputError, match=r"coupling='synapses' needs about [\d.]+ GB.*"
                                         r"coupling='dense'"):
        settle_layer(W_big, W_big, np.zeros((1000, 2000)), ALPHA, coupling="synapses",
                     steps=10)


def test_synapse_memory_estimate_against_the_available_memory():
    """The estimate is compared with the available memory: 4 x 10^4 synapses fit in
    1 GB, not in 1 MB."""
    structure = Structure([Block("s", SYSTEM, 200), Block("c", CONTROLLER, 100)],
                          [Pathway("W", "s", "c"), Pathway("B", "c", "s")])
    check_synapse_memory(structure, batch=1, available=10**9)
    with pytest.raises(InputError, match="more than half of the 1 MB"):
        check_synapse_memory(structure, batch=1, available=10**6)


# --------------------------------------------------------------------------
# Chains
# --------------------------------------------------------------------------

WIDTHS = [4, 6, 5, 3]


def chain_case(n=1, batch=2):
    rng = np.random.default_rng(5)
    weights = [rng.standard_normal((n, WIDTHS[l + 1], WIDTHS[l])) / np.sqrt(WIDTHS[l])
               for l in range(3)]
    feedback = [-np.swapaxes(w, 1, 2) for w in weights[1:]]
    delta = rng.standard_normal((n, batch, WIDTHS[-1]))
    return weights, feedback, delta


CHAIN_ERRORS = {
    "feedback None": (dict(feedback=None), "feedback must be a list of 2 arrays"),
    "feedback one matrix short": (lambda a: dict(feedback=a["feedback"][:1]),
                                  "feedback must be a list of 2 arrays"),
    "feedback an array": (lambda a: dict(feedback=a["feedback"][0]),
                          "feedback must be a list"),
    "weights an array": (lambda a: dict(weights=a["weights"][0]), "weights must be a list"),
    "complex delta": (lambda a: dict(delta=complex_of(a["delta"])), "delta is complex"),
    "complex W_2": (lambda a: dict(weights=[a["weights"][0], complex_of(a["weights"][1]),
                                            a["weights"][2]]), "W2 is complex"),
    "NaN in B_3": (lambda a: dict(feedback=[a["feedback"][0], a["feedback"][1] * np.nan]),
                   "B3 contains NaN"),
    "delta 2-D": (lambda a: dict(delta=a["delta"][0]), "stacked arrays"),
    "unknown architecture": (dict(architecture="loop"), "architecture must be one of"),
    "unknown transfer": (dict(transfers=["tanh", "swish"]), "transfer must be one of"),
    "transfers too few": (dict(transfers=["tanh"]), "transfers needs one name per hidden"),
    "leak per pair, wrong length": (dict(alpha=np.array([[0.1, 0.1, 0.1]])),
                                    "alpha must be one value"),
    "single loop with two feedback matrices": (dict(architecture="single-loop"),
                                               "single-loop feedback is one matrix B"),
    "tau_controller per layer, too many": (dict(tau_controller=[10 * ms] * 3),
                                           "tau_controller needs 2 time constants"),
    "system models per layer, too few": (dict(system=["rate-system"]),
                                         "system needs 2 models"),
}


@pytest.mark.parametrize("case", list(CHAIN_ERRORS))
def test_chain_refuses(case):
    """Each hostile argument of settle_chain is an InputError that names it."""
    weights, feedback, delta = chain_case()
    arrays = dict(weights=weights, feedback=feedback, delta=delta)
    changes, match = CHAIN_ERRORS[case]
    changes = changes(arrays) if callable(changes) else changes
    kwargs = dict(arrays, alpha=0.1, steps=10, on_unsettled="ignore") | changes
    with pytest.raises(InputError, match=match):
        settle_chain(**kwargs)


@pytest.mark.parametrize("order", ["uncached", "cached"])
def test_per_layer_tau_length_checked_with_or_without_a_cached_circuit(order):
    """tau_controller with the wrong number of layers is refused whether or not a
    circuit for these shapes is cached (built by the call before)."""
    weights, feedback, delta = chain_case()
    if order == "cached":
        settle_chain(weights, feedback, delta, 0.1, steps=10, on_unsettled="ignore",
                     tau_controller=[10 * ms, 20 * ms])
    for wrong in ([10 * ms], (10 * ms, 20 * ms, 40 * ms)):
        with pytest.raises(InputError, match="tau_controller needs 2 time constants"):
            settle_chain(weights, feedback, delta, 0.1, steps=10, on_unsettled="ignore",
                         tau_controller=wrong)


def test_problem_labels_must_name_every_problem():
    weights, feedback, delta = chain_case()
    spec = ChainSpec(tuple(WIDTHS), "sequential", None, 1)
    with pytest.raises(InputError, match="labels must name each of the 1 problems"):
        settle_chains([spec], [ChainProblem(weights, feedback, delta, 0.1,
                                            labels=["a", "b"])], steps=10)


# --------------------------------------------------------------------------
# Unstable circuits are reported as unstable, not as "run more steps"
# --------------------------------------------------------------------------

def mildly_unstable(alpha=1.9, abscissa=0.006, seed=3):
    """W (10 x 20) with B = +W^T whose Jacobian's largest real eigenvalue is
    exactly ``abscissa``: (lambda + 1)(lambda + alpha) = mu for the largest
    eigenvalue mu of W W^T."""
    rng = np.random.default_rng(seed)
    W_ = rng.standard_normal((10, 20)) / np.sqrt(20)
    mu = abscissa * (1.0 + alpha) + abscissa ** 2 + alpha
    W_ *= np.sqrt(mu) / np.linalg.norm(W_, 2)
    return W_, W_.T.copy()


def test_mildly_unstable_layer_warns_unstable():
    """B = +W^T at alpha = 1.9 (largest real eigenvalue +0.006): the run grows far
    from the closed form; the warning says unstable, not "run more steps"."""
    W_, B_ = mildly_unstable()
    assert jacobian_abscissa(W_, B_, 1.9) == pytest.approx(0.006, rel=1e-6)
    delta = np.random.default_rng(4).standard_normal((1, 10))
    with pytest.warns(NotSettledWarning) as caught:
        result = settle_layer(W_, B_, delta, 1.9, on_unsettled="warn", return_result=True)
    message = str(caught[0].message)
    assert "unstable (largest real eigenvalue of its Jacobian +0.006 > 0)" in message
    assert "more steps" in message and "make it worse" in message
    assert "B = -W^T" in message
    assert result.unstable.tolist() == [True]
    closed = ndi(W_, B_, delta, 1.9)
    assert np.abs(result.delta[0]).max() > 3 * np.abs(closed).max()  # wrong, and flagged


def test_mildly_unstable_layer_raises_unstable():
    W_, B_ = mildly_unstable()
    delta = np.random.default_rng(4).standard_normal((1, 10))
    with pytest.raises(CircuitUnstableError, match=r"unstable \(largest real eigenvalue"):
        settle_layer(W_, B_, delta, 1.9, on_unsettled="raise")


def test_mildly_unstable_pair_in_a_chain_raises_unstable():
    """The same layer pair as the top pair of a sequential chain."""
    W_, B_ = mildly_unstable()
    rng = np.random.default_rng(8)
    weights = [rng.standard_normal((1, 20, 6)), W_[None]]
    delta = rng.standard_normal((1, 1, 10))
    with pytest.raises(CircuitUnstableError, match="unstable"):
        settle_chain(weights, [B_[None]], delta, 1.9, on_unsettled="raise")
    result = settle_chain(weights, [B_[None]], delta, 1.9, on_unsettled="ignore")
    assert result.unstable.tolist() == [True] and result.residual[0] > 1e-3


def test_stable_but_slow_layer_says_so():
    """A stable circuit that needs more steps: 'not settled', 'stable', 'more steps'."""
    with pytest.raises(NotSettledError, match=r"has not settled after 20 steps.*it is "
                                              r"stable \(largest real eigenvalue -"):
        settle_layer(W, B, D, ALPHA, steps=20, on_unsettled="raise")


GAINED_SYSTEM = PopulationModel(
    equations="""
    dx/dt = (-x + g * I_in) / tau_sys : 1
    I_in : 1
    g : 1 (shared, constant)
    tau_sys : second (shared, constant)
    """,
    readout="x", input="I_in", tau="tau_sys", parameters={"g": 2.0},
)
"""Rate system with a gain (as in test_population_models): steady state x = 2 B u."""


def test_growth_is_detected_for_other_population_models():
    """A system with a gain (no closed-form stability check): an unstable circuit
    is found from its readouts, which keep growing."""
    W_, B_ = mildly_unstable(alpha=0.5, abscissa=0.02)
    delta = np.random.default_rng(4).standard_normal((1, 10))
    assert jacobian_abscissa(W_, 2 * B_ / 2, 0.5) > 0
    with pytest.warns(NotSettledWarning, match="the readouts grow.*looks unstable"):
        result = settle_layer(W_, B_ / 2, delta, 0.5, system=GAINED_SYSTEM, on_unsettled="warn",
                              return_result=True)
    assert result.unstable.tolist() == [True]
    # The same model with stable feedback settles to its closed form, unflagged.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stable = settle_layer(W_, -B_ / 2, delta, 0.5, system=GAINED_SYSTEM, steps=3000,
                              return_result=True)
    np.testing.assert_allclose(stable.delta[0], ndi(W_, -B_, delta, 0.5), rtol=1e-6)
    assert stable.unstable.tolist() == [False]


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------

CLI_ERRORS = {
    "steps=true": (["linear-regression", "--set", "steps=true"],
                   "setting steps must be a whole number"),
    "steps=2.5": (["linear-regression", "--set", "steps=2.5"],
                  "setting steps must be a positive integer"),
    "steps=NaN": (["linear-regression", "--set", "steps=NaN"],
                  "setting steps must be a positive integer"),
    "samples negative": (["linear-regression", "--set", "samples=-3"],
                         "setting samples must be a positive integer"),
    "one sample": (["linear-regression", "--set", "samples=1"], "samples must be at least 2"),
    "seed negative": (["linear-regression", "--set", "seed=-1"],
                      "setting seed must be an integer >= 0"),
    "iterations negative": (["linear-regression", "--set", "iterations=-5"],
                            "iterations must be a positive integer"),
    "iterations text": (["linear-regression", "--set", "iterations=abc"],
                        "iterations must be a positive integer"),
    "dt negative": (["linear-regression", "--set", "dt=-0.5"], "dt must be a positive number"),
    "dt NaN": (["linear-regression", "--set", "dt=NaN"], "dt must be a positive number"),
    "lr infinite": (["linear-regression", "--set", "lr=Infinity"],
                    "lr must be a positive number"),
    "settle_tol NaN": (["linear-regression", "--set", "settle_tol=NaN"],
                       "settle_tol must be a positive number"),
    "settle_tol zero": (["linear-regression", "--set", "settle_tol=0"],
                        "settle_tol must be a positive number"),
    "on_unsettled unknown": (["linear-regression", "--set", "on_unsettled=shout"],
                             "on_unsettled must be one of"),
    "empty alphas": (["alpha-sweep", "--set", "alphas=[]"], "alphas must list at least one leak"),
    "alphas text": (["alpha-sweep", "--set", 'alphas=["a"]'], "alphas must be a numeric array"),
    "alphas nested": (["alpha-sweep", "--set", "alphas=[[0.1]]"],
                      "alphas must have 1 dimensions"),
    "alphas complex-looking": (["alpha-sweep", "--set", 'alphas=["1j"]'],
                               "alphas must be a numeric array"),
    "layer of one width": (["alpha-sweep", "--set", 'layers={"odd": [10]}'],
                           "must be a list \\[d_l, d_\\(l-1\\)\\] of two widths"),
    "layer width zero": (["alpha-sweep", "--set", 'layers={"odd": [10, 0]}'],
                         "the widths of 'odd' must be a positive integer"),
    "no samples": (["alpha-sweep", "--set", "samples=0"],
                   "setting samples must be a positive integer"),
    "weight_scale zero": (["alpha-sweep", "--set", "weight_scale=0"],
                          "weight_scale must be a positive number"),
    "empty ratios": (["timescales", "--set", "ratios=[]"], "ratios must list at least one"),
    "ratios text": (["timescales", "--set", 'ratios=["a"]'], "must be positive numbers"),
    "pair of one width": (["timescales", "--set", "pair=[10]"], "pair must list two"),
    "record_every zero": (["timescales", "--set", "record_every=0"],
                          "setting record_every must be a positive integer"),
    "train_samples text": (["mnist", "--quick", "--set", "train_samples=abc"],
                           "train_samples must be a whole number"),
    "stop_tol negative": (["mnist", "--quick", "--set", "stop_tol=-1"],
                          "stop_tol must be a positive number"),
    "no hidden layer": (["linear-regression", "--quick", "--set", "sizes=[30,20]"],
                        "sizes needs at least three widths"),
    "no hidden layer, nonlinear": (["nonlinear-regression", "--quick", "--set", "sizes=[30,10]"],
                                   "sizes needs at least three widths"),
}


@pytest.mark.parametrize("case", list(CLI_ERRORS))
def test_cli_refuses(tmp_path, capsys, case):
    """Exit status 2 and one line on stderr naming the problem; no results."""
    args, message = CLI_ERRORS[case]
    out = tmp_path / "out"
    code = main(["run", *args, "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("dinv: error:") and len(err.splitlines()) == 1, err
    assert re.search(message, err), err
    assert not (out / "results.json").exists()


def test_cli_on_unsettled_raise_stops_at_the_first_unsettled_settle(tmp_path, capsys):
    """--set on_unsettled=raise: one line naming the model and the fix, status 2."""
    out = tmp_path / "out"
    code = main(["run", "linear-regression", "--models", "BP,DI a=0.01", "--set", "steps=2",
                 "--set", "samples=5", "--set", "on_unsettled=raise", "--no-progress",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith("dinv: error: model 'DI a=0.01': the circuit has not settled after "
                          "2 steps")
    assert "run more steps" in err
    assert not (out / "results.json").exists()


def test_cli_steps_as_exponent_is_a_whole_number(tmp_path):
    """--set steps=1e3 (a JSON float) is the whole number 1000."""
    out = tmp_path / "out"
    code = main(["run", "linear-regression", "--models", "DI a=0.01", "--set", "steps=1e3",
                 "--set", "samples=3", "--no-progress", "--out", str(out)])
    assert code == 0
    record = json.loads((out / "results.json").read_text())
    assert record["config"]["steps"] == 1000 and isinstance(record["config"]["steps"], int)
    assert SettleOptions(steps=record["config"]["steps"]).steps == 1000
