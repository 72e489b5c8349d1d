"""The experiments and the ``dinv`` command, end to end."""

import json

import numpy as np
import pytest

from dinv.analysis import load_results, validate_results
from dinv.analysis.results import COLUMNS
from dinv.circuits import POPULATION_MODELS
from dinv.errors import InputError
from dinv.experiments import linear_regression
from dinv.experiments.cli import _overrides, build_parser, main
from dinv.experiments.registry import EXPERIMENTS, make_config
from dinv.models.rules import RULES


def run_cli(tmp_path, *args):
    out = tmp_path / "out"
    code = main(["run", *args, "--out", str(out), "--no-progress"])
    return code, out


REGRESSIONS = ("linear-regression", "nonlinear-regression")


# The spiking study's quick run (about a minute, its neurons' rate curves measured) runs
# with the slow checks, beside test_spiking_study's checks of its numbers.
QUICK_RUNS = [pytest.param(name, marks=pytest.mark.slow) if name == "spiking-inversion"
              else name for name in sorted(EXPERIMENTS)]


@pytest.mark.parametrize("name", QUICK_RUNS)
def test_quick_run_writes_results_and_figure(tmp_path, name, capsys):
    """Every experiment's --quick protocol writes a complete results.json that its JSON
    Schema accepts, with units, keyed by model name, and a PNG; it shows progress and
    ends with a summary table; `load_results` makes a tidy table of it, `dinv show`
    prints its summary, and a quick run leaves no checkpoint behind."""
    out = tmp_path / "out"
    code = main(["run", name, "--quick", "--seed", "3", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    assert "compiling Brian2 code" in printed.err  # the progress bar's first phase
    assert f"{name} (seed 3, --quick), finished in" in printed.out
    record = json.loads((out / "results.json").read_text())
    validate_results(record)
    assert record["results_format"] == 2 and record["units"]
    assert not (out / "checkpoint.npz").exists()
    frame = load_results(out)
    assert tuple(frame.columns) == COLUMNS and len(frame) > 0
    assert set(frame["experiment"]) == {name}
    assert frame["unit"].notna().any()
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"{out}: {name} (seed 3, --quick), finished in")
    assert "\n".join(shown.splitlines()[1:]) in printed.out  # the same summary table
    if "history" in record:
        for entry in record["history"]:
            for metric, values in entry.items():
                if metric not in ("samples", "epoch"):
                    assert list(values) == record["models"], metric
    assert record["experiment"] == name
    assert record["seed"] == 3 and record["config"]["seed"] == 3
    assert record["config"]["quick"] is True
    assert record["versions"]["brian2"] == "2.9.0"
    png = (out / "figure.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    if name in REGRESSIONS:
        assert set(record["final"]) == set(record["models"])
        # One update per sample after the first: the errors before training and after
        # every update; the curves during every update. Spiking DI models train on the
        # first spiking.MODEL.updates updates: their series are that prefix of the axes.
        updates = record["updates"]
        assert updates["error"] == list(range(300)) and updates["curves"] == list(range(1, 300))
        trained = {model: len(updates["curves"]) for model in record["models"]}
        for model, entry in record.get("spiking", {}).items():
            assert record["final"][model]["updates"] == entry["updates"] < len(updates["curves"])
            trained[model] = entry["updates"]
        if name == "linear-regression":  # the paper's models: the spiking ones need --spiking
            assert record["models"] == [s.name for s in linear_regression.RATE_MODELS]
            assert not record.get("spiking")
        for curve in record["curves"].values():
            for model, layers in curve.items():
                assert all(len(values) == trained[model] for values in layers)
        for name_, err in record["error"].items():
            err = np.asarray(err, dtype=float)
            assert np.all(np.isfinite(err)), name_
            assert err[-1] < err[0], f"{name_} did not learn"
            assert len(err) == trained[name_] + 1


def test_alpha_sweep_matches_eq_12(tmp_path):
    """As alpha -> 0 the settled error tends to W^+ delta (Eq. 12); the circuit equals the
    closed form wherever it settles within the protocol's steps."""
    code, out = run_cli(tmp_path, "alpha-sweep", "--set", "samples=8", "--set",
                        "alphas=[1e-6, 1e-3, 0.1, 0.5, 1.0]", "--set", "steps=4000")
    assert code == 0
    record = json.loads((out / "results.json").read_text())
    for name, layer in record["layers"].items():
        closed = np.asarray(layer["relative_error"]["ndi"])
        assert closed[0] < 1e-2, name  # alpha = 1e-6 << sigma_min^2: the pseudoinverse
        assert np.all(np.diff(closed) > 0), name  # the error grows with alpha
        circuit = np.asarray(layer["relative_error"]["circuit"])
        settled = np.asarray(layer["circuit_residual"]) < 1e-6
        assert settled[2:].all(), name  # alpha >= 0.1 settles in 4000 steps
        np.testing.assert_allclose(circuit[settled], closed[settled], rtol=1e-5, atol=1e-9)


def test_same_seed_same_numbers(tmp_path):
    """Two runs with one seed give identical curves; another seed gives other numbers."""
    args = ["linear-regression", "--set", "samples=25", "--models", "BP,FA,DI a=0.01"]
    records = []
    for seed in ("5", "5", "6"):
        code, out = run_cli(tmp_path / seed / str(len(records)), *args, "--seed", seed)
        assert code == 0
        records.append(json.loads((out / "results.json").read_text()))
    assert records[0]["error"] == records[1]["error"]
    assert records[0]["curves"] == records[1]["curves"]
    assert records[0]["error"] != records[2]["error"]
    assert records[0]["models"] == ["BP", "FA", "DI a=0.01"]


def test_linear_regression_di_tracks_ndi(tmp_path):
    """In a short run the DI circuit at alpha 0.01 settles onto the NDI steady state."""
    code, out = run_cli(tmp_path, "linear-regression", "--set", "samples=40",
                        "--models", "NDI a=0.01,DI a=0.01")
    assert code == 0
    record = json.loads((out / "results.json").read_text())
    assert record["median_angle_ndi"]["DI a=0.01"][0] < 1.0
    ndi, di = (np.asarray(record["error"][k]) for k in ("NDI a=0.01", "DI a=0.01"))
    np.testing.assert_allclose(di, ndi, rtol=1e-3)


def test_fixed_norm_updates_have_learning_rate_length(tmp_path):
    """With --fixed-norm every model still learns and the flag is recorded."""
    code, out = run_cli(tmp_path, "linear-regression", "--fixed-norm", "--set",
                        "fixed_norm_samples=30", "--models", "BP,PBP")
    assert code == 0
    record = json.loads((out / "results.json").read_text())
    assert record["config"]["fixed_norm"] is True
    assert len(record["error"]["BP"]) == 30


def test_spiking_flag_adds_the_spiking_models():
    """`dinv run linear-regression` trains the paper's nine models (nonlinear-regression
    its twelve, mnist its nine); `--spiking` adds the spiking DI models and NDI a=0.1, and
    `--models` may name them without it; other experiments refuse the flag."""
    experiment = EXPERIMENTS["linear-regression"]
    parser = build_parser()
    plain = make_config(experiment, False, _overrides(
        experiment, parser.parse_args(["run", "linear-regression"])))
    spiking = make_config(experiment, False, _overrides(
        experiment, parser.parse_args(["run", "linear-regression", "--spiking"])))
    named = make_config(experiment, False, {"models": ["BP", "DI-SCN a=0.1"]})
    assert tuple(linear_regression.models(plain)) == linear_regression.RATE_MODELS
    assert spiking["spiking_models"] is True
    assert tuple(linear_regression.models(spiking)) == linear_regression.MODELS
    assert tuple(linear_regression.models(named)) == linear_regression.MODELS
    nonlinear = EXPERIMENTS["nonlinear-regression"]
    from dinv.experiments import nonlinear_regression

    plain = make_config(nonlinear, False, {})
    spiking = make_config(nonlinear, False, _overrides(
        nonlinear, parser.parse_args(["run", "nonlinear-regression", "--spiking"])))
    assert linear_regression.models(plain, nonlinear_regression.PAPER_MODELS,
                                    nonlinear_regression.MODELS) \
        == nonlinear_regression.PAPER_MODELS
    assert spiking["spiking_models"] is True
    mnist = EXPERIMENTS["mnist"]
    from dinv.experiments import classification

    plain = make_config(mnist, False, {})
    spiking = make_config(mnist, False, _overrides(
        mnist, parser.parse_args(["run", "mnist", "--spiking"])))
    assert linear_regression.models(plain, classification.PAPER_MODELS,
                                    classification.MODELS) == classification.PAPER_MODELS
    assert spiking["spiking_models"] is True
    assert linear_regression.models(spiking, classification.PAPER_MODELS,
                                    classification.MODELS) == classification.MODELS
    with pytest.raises(InputError, match="--spiking does not apply to autoencoder"):
        _overrides(EXPERIMENTS["autoencoder"],
                   parser.parse_args(["run", "autoencoder", "--spiking"]))


def test_list(capsys):
    """`dinv list` names every registered experiment, rule and population model."""
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for name in [*EXPERIMENTS, *RULES, *POPULATION_MODELS]:
        assert f"  {name} " in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["no-such-experiment"], "unknown experiment"),
        (["linear-regression", "--models", "BP,XYZ"], "unknown model(s) XYZ"),
        (["linear-regression", "--set", "lerning_rate=1"], "has no setting 'lerning_rate'"),
        (["linear-regression", "--set", "lr=-1"], "lr must be a positive number"),
        (["linear-regression", "--set", "lr"], "--set expects KEY=VALUE"),
        (["linear-regression", "--set", "lr=abc"], "setting lr must be a number"),
        (["linear-regression", "--set", "models=5"], "models must be a list of model names"),
        (["linear-regression", "--set", "steps=0"], "steps must be a positive integer"),
        (["linear-regression", "--set", "sizes=[30,-2,10]"], "sizes must list"),
        (["linear-regression", "--fixed-norm", "--set", "dt=5", "--set",
          "fixed_norm_samples=5"], "circuit diverged"),
        (["alpha-sweep", "--set", "alphas=[-1]"], "alpha must be >= 0"),
        (["timescales", "--set", "ratios=[0]"], "must be positive"),
        (["linear-regression", "--out", "/proc/no/such/dir"], "cannot create the output"),
        (["linear-regression", "--set", "system=izh"], "no population model called 'izh'"),
        (["linear-regression", "--set", "controller=rate-system"], "rate-system"),
        (["mnist", "--quick", "--set", "system=spiking"], "no population model called"),
        (["timescales", "--set", "controller=x"], "no population model called"),
        (["alpha-sweep", "--set", "system=5"], "setting system must be str"),
    ],
)
def test_bad_input_gives_one_line_error(tmp_path, capsys, args, message):
    """Bad command lines exit with status 2 and a one-line message naming the problem."""
    out = tmp_path / "out"
    code = main(["run", *args, "--no-progress"] + ([] if "--out" in args else ["--out", str(out)]))
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dinv: error:") and message in err
    assert len(err.splitlines()) == 1
    assert not (out / "results.json").exists()


@pytest.mark.slow
def test_full_linear_regression_protocol(tmp_path):
    """Acceptance (paper protocol): every model of the paper ends below 1e-6 of its
    initial error, DI at alpha 0.01 tracks NDI (median angle under 1 degree), and the
    spiking DI models (``--spiking``) train on every update to within 2x of the error of
    NDI at their alpha, their hidden errors within 3 degrees of NDI's (median)."""
    code, out = run_cli(tmp_path, "linear-regression", "--seed", "0", "--spiking")
    assert code == 0
    record = json.loads((out / "results.json").read_text())
    spiking = record["spiking"]
    reference = record["final"]["NDI a=0.1"]["error_ratio"]
    for name, final in record["final"].items():
        if name in spiking:
            assert final["updates"] == 1999, name
            assert final["error_ratio"] < 2 * reference, name
            assert final["angle_ndi_deg"] < 3.0, name
        else:
            assert final["error_ratio"] < 1e-6, name
    assert record["median_angle_ndi"]["DI a=0.01"][0] < 1.0


def test_a_model_trains_the_same_beside_any_other_models(tmp_path):
    """Feedback and data are drawn per model and per run: FA alone equals FA among others."""
    curves = []
    for models in ("FA", "BP,FA,NDI R-Init a=0.01,DI a=0.01"):
        code, out = run_cli(tmp_path / str(len(curves)), "linear-regression", "--set",
                            "samples=20", "--models", models, "--seed", "2")
        assert code == 0
        curves.append(json.loads((out / "results.json").read_text())["error"]["FA"])
    assert curves[0] == curves[1]


@pytest.mark.slow
def test_full_nonlinear_regression_protocol(tmp_path):
    """Acceptance (paper protocol, 10000 updates): PBP, NDI and DI end at or below BP's and
    FA's error; SLDI, which shares the baselines' plateau (docs/guide/reproductions.rst), ends
    at or below BP's and within 1 % of FA's; DI at alpha 0.01 tracks NDI (median angle under
    2 degrees per layer)."""
    code, out = run_cli(tmp_path, "nonlinear-regression", "--seed", "0")
    assert code == 0
    record = json.loads((out / "results.json").read_text())
    final = {name: value["error_ratio"] for name, value in record["final"].items()}
    for name, rule in record["rules"].items():
        if rule in ("pbp", "ndi", "di"):
            assert final[name] <= min(final["BP"], final["FA"]), name
        if rule == "sldi":
            assert final[name] <= final["BP"], name
            assert final[name] <= 1.01 * final["FA"], name
    assert max(record["median_angle_ndi"]["DI a=0.01"]) < 2.0
