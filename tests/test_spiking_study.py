"""The spiking study (`dinv run spiking-inversion`) and spiking DI in training.

A reduced study (10 tau per run, sizes 8-32) runs in the default suite: its
records have the fields of issue 10, the errors fall with N, and the mixed
circuits settle near the closed form. The `--quick` linear regression trains
the spiking DI models (`DI-SCN a=0.1`, `DI-LIF a=0.1`) and their error falls
clearly. The full protocols are in the slow tests.
"""

import json

import numpy as np
import pytest

from dinv.experiments import (
    classification,
    linear_regression,
    nonlinear_regression,
    spiking_inversion,
)
from dinv.experiments.cli import main
from dinv.experiments.registry import EXPERIMENTS, make_config

FIELDS = ("population", "case", "neurons_per_dim", "angle_deg", "rel_error", "rms_error",
          "mean_rate_hz")

SMALL = {"sizes": [8, 16, 32], "case_sizes": [32], "duration": 10.0, "durations": [10.0],
         "tau_readout_ms": {"scn": [20.0], "lif": [10.0]},
         "sweep_size": {"scn": 16, "lif": 16}}


@pytest.fixture(scope="module")
def small_study():
    config = make_config(EXPERIMENTS["spiking-inversion"], quick=True, overrides=SMALL)
    return spiking_inversion.run(config, progress=False)


def _rows(results, model, case):
    return sorted((r for r in results["scaling"] if r["population"] == model
                   and r["case"] == case), key=lambda r: r["neurons_per_dim"])


def test_study_structure_and_record_fields(small_study):
    scaling = small_study["scaling"]
    for record in scaling:
        for field in FIELDS:
            assert field in record, field
        assert record["population"] in ("scn", "lif", "adex")
        assert np.isfinite(record["angle_deg"]) and record["rel_error"] > 0
    for model in ("scn", "lif"):
        assert [r["neurons_per_dim"] for r in _rows(small_study, model, "contracting")] \
            == [8, 16, 32]
        for case in spiking_inversion.CASES[1:]:
            assert [r["neurons_per_dim"] for r in _rows(small_study, model, case)] == [32]
        assert model in small_study["silencing"]
        assert any(s["population"] == model and s["case"] == "contracting"
                   for s in small_study["slopes"])
        assert f"{model} contracting" in small_study["settling"]
    # The builder's neuron of --quick: the contracting pair at three sizes, no sweeps.
    assert [r["neurons_per_dim"] for r in _rows(small_study, "adex", "contracting")] \
        == [8, 16, 32]
    assert not any(r["population"] == "adex" and r["case"] != "contracting"
                   for r in small_study["scaling"])
    assert set(small_study["goals"]) == set()  # no size 64 here
    assert {r["population"] for r in small_study["tau_sweep"]} == {"scn", "lif"}
    assert {r["population"] for r in small_study["duration_sweep"]} == {"scn", "lif"}
    json.dumps(small_study)  # plain JSON types
    figure = EXPERIMENTS["spiking-inversion"].figure(small_study)
    assert len(figure.axes) >= 6


def test_errors_fall_with_neurons(small_study):
    """Log-log slopes against N are negative at small sizes (both errors)."""
    slopes = {(s["population"], s["case"]): s for s in small_study["slopes"]}
    for model in ("scn", "lif", "adex"):
        s = slopes[(model, "contracting")]
        assert s["rel_error"] < -0.3, s
        assert s["rms_error"] < -0.3, s


def test_mixed_circuits_near_closed_form(small_study):
    """A spiking system with a rate controller and the reverse (loose bounds)."""
    for model, bound in (("scn", 3.0), ("lif", 10.0)):
        for case in ("spiking-system", "spiking-controller"):
            (record,) = _rows(small_study, model, case)
            assert record["angle_deg"] < bound, record
            assert 1.0 < record["mean_rate_hz"] < 100.0


def test_scn_silencing_and_rates(small_study):
    silencing = small_study["silencing"]["scn"]
    assert silencing["angle_ratio"] < 2.0
    for record in _rows(small_study, "scn", "contracting"):
        assert 1.0 < record["mean_rate_hz"] < 100.0


def test_quick_linear_regression_spiking_models_learn():
    """`--quick`: the spiking DI models' error falls clearly, close to NDI's direction."""
    names = ["DI-SCN a=0.1", "DI-LIF a=0.1"]
    config = make_config(EXPERIMENTS["linear-regression"], quick=True,
                         overrides={"models": names})
    results = linear_regression.run(config, progress=False)
    for name in names:
        final = results["final"][name]
        assert final["updates"] == linear_regression.QUICK["spiking_updates"]
        assert final["error_ratio"] < 0.7, final
        assert final["angle_ndi_deg"] < 5.0, final
        assert len(results["nmse"][name]) == final["updates"] + 1
        assert results["settling"][name]["settles"] == final["updates"]


def test_nonlinear_regression_spiking_models_learn():
    """Spiking DI through both layer pairs of the tanh network (gains g'(a) on the
    pathways), 40 updates: the error falls as NDI a=0.1's does after as many updates,
    and the hidden errors stay close to NDI's."""
    names = ["NDI a=0.1", "DI-SCN a=0.1", "DI-LIF a=0.1"]
    config = make_config(EXPERIMENTS["nonlinear-regression"], quick=True,
                         overrides={"models": names, "spiking_updates": 40})
    results = nonlinear_regression.run(config, progress=False)
    for name, angle in (("DI-SCN a=0.1", 2.0), ("DI-LIF a=0.1", 5.0)):
        final = results["final"][name]
        assert final["updates"] == 40
        ndi = final["reference_error_ratio"]["NDI a=0.1"]
        assert final["error_ratio"] < 0.8 and abs(final["error_ratio"] - ndi) < 0.05 * ndi, final
        assert final["angle_ndi_deg"] < angle, final
        assert results["spiking"][name]["population"] in ("scn", "lif")


def test_classification_spiking_models_learn():
    """Digits, a 64-30-10 network: the spiking DI models' test error falls over 20
    batches of 10 like NDI a=0.1's, their hidden errors near NDI's; rate DI's angle to
    NDI is recorded too."""
    names = ["DI a=0.01", "NDI a=0.1", "DI-SCN a=0.1", "DI-LIF a=0.1"]
    config = make_config(EXPERIMENTS["mnist"], quick=True, overrides={
        "models": names, "hidden": [30], "epochs": 1, "train_samples": 400,
        "eval_every": 200, "spiking_updates": 20, "spiking_eval_every": 10, "init_scale": 0.01})
    results = classification.run(config, progress=False)
    assert results["models"] == ["DI a=0.01", "NDI a=0.1"]
    assert results["angle_ndi_deg"]["DI a=0.01"] < 1.0
    for name, angle in (("DI-SCN a=0.1", 3.0), ("DI-LIF a=0.1", 8.0)):
        part = results["spiking"][name]
        assert [h["samples"] for h in part["history"]] == [0, 100, 200]
        errors = [h["test_error"] for h in part["history"]]
        assert errors[2] < errors[1] < errors[0], part  # falling at every evaluation
        ndi = part["reference_error_ratio"]["NDI a=0.1"]
        assert part["error_ratio"] < 0.9 and abs(part["error_ratio"] - ndi) < 0.1, part
        assert part["angle_ndi_deg"] < angle and results["angle_ndi_deg"][name] < angle
        assert part["reference_samples"] == 200
        assert set(part["reference_error_ratio"]) == {"DI a=0.01", "NDI a=0.1"}
    assert len(EXPERIMENTS["mnist"].figure(results).axes[0].lines) >= 4


@pytest.mark.slow
def test_quick_study_cli(tmp_path):
    """`dinv run spiking-inversion --quick`: three sizes per model, slopes, figure."""
    assert main(["run", "spiking-inversion", "--quick", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    for model in ("scn", "lif", "adex"):
        sizes = [r["neurons_per_dim"] for r in results["scaling"]
                 if r["population"] == model and r["case"] == "contracting"]
        assert len(sizes) >= 3
    for model, goal in results["goals"].items():
        assert goal["slope"] < 0, (model, goal)  # the error falls with N
    assert (tmp_path / "figure.png").is_file()


@pytest.mark.slow
def test_full_study_targets(tmp_path):
    """Issue 10's targets on the contracting case, 16-256 neurons per dimension."""
    config = make_config(EXPERIMENTS["spiking-inversion"],
                         overrides={"cases": ["contracting"], "durations": [40.0],
                                    "tau_readout_ms": {"scn": [20.0], "lif": [10.0]}})
    results = spiking_inversion.run(config, progress=False)
    rows = {(r["population"], r["neurons_per_dim"]): r for r in results["scaling"]}
    assert rows[("scn", 32)]["angle_deg"] < 1.0
    assert rows[("lif", 64)]["angle_deg"] < 3.0
    slopes = {s["population"]: s for s in results["slopes"]}
    assert slopes["scn"]["rel_error"] <= -0.8 and slopes["scn"]["rms_error"] <= -0.8
    assert slopes["lif"]["rel_error"] <= -0.7
    assert results["silencing"]["scn"]["angle_ratio"] <= 2.0


def test_check_layer_pair_against_eq_10():
    """The reference pair settled by rate populations: within 1e-4 degrees of Eq. (10),
    no spiking populations to report; by a spiking one: its rates, per population."""
    from dinv.circuits import get_population_model, lif_population
    from dinv.experiments.spiking_inversion import check_layer_pair

    check = check_layer_pair(get_population_model("rate-system", "system"),
                             get_population_model("rate-controller", "controller"))
    assert check.angle_deg < 1e-4 and check.mean_rates_hz == {}
    check = check_layer_pair(lif_population("system", 16), lif_population("controller", 16),
                             steps=2000, dt=0.01)
    assert len(check.mean_rates_hz) == 2 and all(0 < r < 400 for r in check.mean_rates_hz.values())
    assert 0 < check.angle_deg < 90
