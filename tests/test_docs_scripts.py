"""The scripts under docs/scripts that print the user guide's numbers, on hand-made records."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "docs" / "scripts"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tables():
    return _load("dataset_tables")


@pytest.fixture(scope="module")
def merge_script():
    return _load("autoencoder_merge")


def _classification():
    """Two epochs of 2 samples, evaluated every sample: epochs 0, .5, 1, 1.5, 2."""
    errors = {"BP": [90, 50, 40, 30, 20], "NDI a=0.01": [90, 60, 35.004, 25, 15.011],
              "DI a=0.01": [90, 60, 35.001, 25.02, 15.012]}
    history = [{"samples": s, "epoch": s / 2,
                "test_error": {m: v[s] for m, v in errors.items()}} for s in range(5)]
    return {"experiment": "mnist", "interrupted": False, "models": list(errors),
            "rules": {"BP": "bp", "NDI a=0.01": "ndi", "DI a=0.01": "di"},
            "history": history, "paper_test_error": {"BP": 2.2, "NDI": 2.8, "DI": 2.8},
            "restabilised": [{"model": "DI a=0.01"}],
            "settling": {"DI a=0.01": {"settles": 8, "unsettled": 1, "tolerance": 0.001,
                                       "worst_residual": 0.002}},
            "epoch_seconds": [{"circuit": 10.0, "closed_form": 2.0},
                              {"circuit": 11.0, "closed_form": 3.0}],
            "eval_seconds": 4.0, "wall_seconds": 7.0}


def test_classification_table_reads_epoch_one_and_the_last(tables):
    # EPOCHS = (1, 5): epoch 5 is past this run's last epoch (2), so the columns are 1 and 2
    lines = tables.classification_table(_classification())
    assert lines[0] == "| model | test error after 1 / 2 epochs (%) | paper, MNIST (%) |"
    assert lines[2] == "| BP | 40.00 / **20.00** | 2.2 |"
    assert lines[3] == "| NDI a=0.01 | 35.00 / **15.01** | 2.8 |"
    assert lines[4] == "| DI a=0.01 | 35.00 / **15.01** | 2.8 |"


def test_di_against_ndi_counts_equal_evaluations_and_the_largest_gap(tables):
    # equal to 2 decimals at samples 0, 1, 2 and 4 (15.011 and 15.012 both round to 15.01);
    # at sample 3 they differ by 0.02, the largest gap
    [line] = tables.di_against_ndi(_classification(), "test_error", 2)
    assert line == ("DI a=0.01 against NDI a=0.01 (test_error): equal to 2 decimals at 4 of 5 "
                    "evaluations; largest difference 0.02")


def test_summary_sums_the_times_of_every_process(tables):
    lines = tables.summary(_classification())
    assert lines[0] == "feedback re-stabilisations: 1"
    assert lines[1] == ("DI a=0.01 settles: 1 of 8 unsettled (worst residual 0.002, "
                        "tolerance 0.001)")
    assert lines[2].startswith("training 26 s and evaluations 4 s")
    assert lines[2].endswith("it 7 s")


def test_autoencoder_table_has_every_evaluation(tables):
    record = {"models": ["NDI uniform", "DI uniform"],
              "history": [{"samples": 0, "train_error": {"NDI uniform": 160.0,
                                                         "DI uniform": 160.0}},
                          {"samples": 2000, "train_error": {"NDI uniform": 150.123,
                                                            "DI uniform": 150.456}}]}
    assert tables.autoencoder_table(record) == [
        "| model | 0 samples | 2000 samples |", "|---|---|---|",
        "| NDI uniform | 160.00 | 150.12 |", "| DI uniform | 160.00 | 150.46 |"]


def test_refuses_an_interrupted_run_a_missing_one_and_other_experiments(tables, tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        tables.read(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({**_classification(),
                                                       "interrupted": True}))
    with pytest.raises(SystemExit, match="interrupted; resume it first"):
        tables.read(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"experiment": "timescales"}))
    with pytest.raises(SystemExit, match="give a mnist, mnist-3x256 or autoencoder run"):
        tables.main(["dataset_tables.py", str(tmp_path)])


def test_main_prints_the_classification_numbers(tables, tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps(_classification()))
    tables.main(["dataset_tables.py", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| BP | 40.00 / **20.00** | 2.2 |" in out
    assert "equal to 2 decimals at 4 of 5 evaluations" in out


def _autoencoder_run(models, config, samples=(0, 10)):
    history = [{"samples": s, "epoch": s / 10.0,
                "train_error": {m: 100.0 - s - k for k, m in enumerate(models)},
                "test_error": {m: 101.0 - s - k for k, m in enumerate(models)}}
               for s in samples]
    return ({"models": list(models), "history": history,
             "images": {"input": [[0.0]], **{m: [[1.0]] for m in models}},
             "tsne": {"labels": [3], "maps": {m: [[0.0, 1.0]] for m in models}},
             "image_shape": [1, 1], "dataset": {"name": "digits"}}, config)


def test_autoencoder_merge_joins_models_and_refuses_other_protocols(merge_script):
    config = {"seed": 0, "lr": 1e-6, "models": ["BP uniform"]}
    first = _autoencoder_run(["BP uniform"], config)
    second = _autoencoder_run(["BP orthogonal"], {**config, "models": ["BP orthogonal"]})
    merged = merge_script.merge([first, second])
    assert merged["models"] == ["BP uniform", "BP orthogonal"]
    assert merged["history"][1]["train_error"] == {"BP uniform": 90.0, "BP orthogonal": 90.0}
    other = _autoencoder_run(["BP orthogonal"], {**config, "lr": 1e-5})
    with pytest.raises(SystemExit, match=r"differ in \['lr'\]"):
        merge_script.merge([first, other])
    later = _autoencoder_run(["BP orthogonal"], config, samples=(0, 20))
    with pytest.raises(SystemExit, match="different samples"):
        merge_script.merge([first, later])


def test_batch_learning_rate_report_compares_thread_counts(tmp_path):
    script = _load("batch_learning_rate")

    def record(none_shift):
        errors = {"NDI a=0": [90, 40, 45], "NDI a=0.01": [90, 41, 30],
                  "DI a=0.01": [90, 41, 30 + none_shift]}
        return {"history": [{"samples": 1000 * k,
                             "test_error": {m: v[k] for m, v in errors.items()}}
                            for k in range(3)],
                "restabilised": [{"model": "DI a=0.01", "iteration": 600, "layer": 2},
                                 {"model": "NDI a=0.01", "iteration": 600, "layer": 2}]}

    records = {("none", 1): record(2.0), ("none", 2): record(-1.0),
               ("sqrt", 1): record(0.0), ("sqrt", 2): record(0.0)}
    lines = script.report(records)
    assert lines[0] == "lr_scaling=none (3 evaluations up to 2000 samples):"
    # NDI a=0: 90 -> 40 -> 45: largest rise 5; both thread counts equal
    assert lines[1].startswith("  NDI a=0     1 vs 2 BLAS threads: largest difference 0.00 "
                               "points; largest rise between evaluations 5.00 points")
    # DI a=0.01: 90 -> 41 -> 32 never rises; it ends at 32 with one thread and 29 with two
    assert lines[3].endswith("largest difference 3.00 points; largest rise between "
                             "evaluations 0.00 points; last 32.00 / 29.00 %")
    assert lines[4] == ("  DI a=0.01 against NDI a=0.01 (1 thread): largest difference "
                        "2.00 points")
    assert lines[5] == ("  feedback re-stabilisations (1 thread): 2; first: DI a=0.01 after "
                        "600 samples, NDI a=0.01 after 600 samples")
    assert lines[6] == "lr_scaling=sqrt (3 evaluations up to 2000 samples):"


def _final_run(experiment, dataset, errors, sizes, config):
    rules = {"BP": "bp", "FA": "fa", "DI a=0.01": "di", "NDI a=0.01": "ndi"}
    return {"experiment": experiment, "models": list(errors),
            "rules": {m: rules[m] for m in errors}, "sizes": sizes,
            "dataset": {"name": dataset, "train": 4000, "test": 1000},
            "final": {m: {"test_error": v} for m, v in errors.items()},
            "config": {"seed": 0, "epochs": 20, "lr": 1e-3, "lr_scaling": "sqrt", **config}}


def test_published_table_has_every_published_and_run_row(tables):
    paper = _final_run("mnist", "mnist-5k", {"BP": 6.0, "DI a=0.01": 7.25},
                       [784, 1000, 10], {"batch_size": 1})
    dfc = _final_run("mnist-3x256", "fashion-mnist", {"BP": 12.5, "FA": 14.0},
                     [784, 256, 256, 256, 10], {"batch_size": 10})
    lines = tables.published_table([paper, dfc])
    assert lines[:3] == [".. list-table::", "   :header-rows: 1", ""]
    rows = [lines[k:k + 6] for k in range(9, len(lines), 6)]
    published = sum(len(errors) for *_, errors in tables.PUBLISHED)
    assert len(rows) == published + 4 and all(r[0].startswith("   * - ") for r in rows)
    assert rows[0] == ["   * - Podlaski & Machens 2020, Fig. 4a",
                       "     - 784-1000-10 tanh/softmax", "     - MNIST (60000 / 10000)",
                       "     - online SGD, rate 1e-3, 10 epochs", "     - BP", "     - 2.2"]
    assert rows[published + 1] == [
        "   * - this package, dinv run mnist", "     - 784-1000-10 tanh/softmax",
        "     - mnist-5k, a subset of MNIST (4000 / 1000)",
        "     - online SGD, rate 0.001, 20 epochs, seed 0", "     - DI a=0.01", "     - 7.25"]
    assert rows[-1][1:] == ["     - 784-256-256-256-10 tanh/softmax",
                            "     - Fashion-MNIST (4000 / 1000)",
                            "     - SGD, batches of 10, rate 0.001 / sqrt(batch), 20 epochs, "
                            "seed 0", "     - FA", "     - 14.00"]


def test_gaps_set_the_rules_against_bp_and_the_subset_against_full_mnist(tables):
    paper = _final_run("mnist", "mnist-5k", {"BP": 6.0, "DI a=0.01": 7.25},
                       [784, 1000, 10], {"batch_size": 1})
    lines = tables.gaps([paper])
    assert lines[0] == ("Podlaski & Machens 2020, Fig. 4a, MNIST (60000 / 10000): FA -0.40 "
                        "points from BP")
    # sqrt(0.06 * 0.94 / 1000) = 0.0075
    assert lines[-2] == ("mnist on mnist-5k, a subset of MNIST (4000 / 1000): DI a=0.01 +1.25 "
                         "points from BP (6.00 %; one test error at BP's level has a binomial "
                         "standard error of 0.75 points on 1000 test images)")
    assert lines[-1] == ("  BP on the subset against BP on full MNIST (Podlaski & Machens 2020, "
                         "Fig. 4a): 6.00 - 2.20 = +3.80 points from the data alone")
    dfc = _final_run("mnist-3x256", "mnist-5k", {"BP": 7.0}, [784, 256, 256, 256, 10],
                     {"batch_size": 10})
    assert tables.gaps([dfc])[-1] == (
        "  BP on the subset against BP on full MNIST (Deep Feedback Control (Meulemans et al. "
        "2021)): 7.00 - 1.83 = +5.17 points from the data and the training together")


def _second_order():
    """Two rules and GN on one case of three layers; medians as the study writes them."""
    def median(rule, layer, gn, gnt, share):
        return {"case": "toy", "rule": rule, "layer": layer, "to_bp_deg": 0.0,
                "to_gnt_deg": gnt, "to_gn_deg": gn, "to_lgn_deg": gn, "null_share": share}
    medians = [median("BP", 1, 30.0, 20.0, 0.0), median("BP", 2, 25.0, 10.0, 0.0),
               median("DI", 1, 40.0, 30.0, 0.25), median("DI", 2, 20.0, 5.0, 0.01),
               median("DI-T", 1, 45.0, 35.0, 0.5), median("DI-T", 2, 21.0, 4.0, 0.02),
               median("GN", 1, 0.0, 18.0, None), median("GN", 2, 0.0, 9.0, None),
               median("BP", 3, 10.0, 0.0, 0.0)]
    return {"medians": medians,
            "cases": {"toy": {"sizes": [4, 4, 4, 2], "hidden": "tanh", "alpha": 0.001,
                              "damping": 0.1,
                              "unsolved": {"NDFC": {"samples": 2, "of": 640}},
                              "final": {"BP": {"train_loss": 0.01234, "test_loss": 0.02},
                                        "GN": {"train_loss": 0.001, "test_loss": 0.002}}}},
            "settling": {"toy DI": {"settles": 20, "unsettled": 3, "median_residual": 2e-4}}}


def test_second_order_tables_and_comparisons():
    script = _load("second_order_tables")
    record = _second_order()
    lines = script.case_table(record, "toy")
    assert lines[0].startswith(".. list-table:: toy (4-4-4-2, tanh hidden layers; alpha "
                               "0.001, damping 0.1)")
    assert lines[3:7] == ["   * - rule", "     - layer 1", "     - layer 2",
                          "     - layer 3 (output)"]
    assert lines[7:11] == ["   * - BP", "     - 30.0 / 20.0 / 0.00", "     - 25.0 / 10.0 / 0.00",
                           "     - 10.0 / 0.0 / 0.00"]
    assert "   * - GN" in lines and "     - 0.0 / 18.0 / -" in lines
    assert lines[lines.index("   * - DI") + 3] == "     - -"  # no layer-3 median for DI
    comparisons = script.comparisons(record)
    assert comparisons == [
        "toy, layer 1: BP 30.0 deg to GN; closer: none; DI-T vs DI: GN 45.0 vs 40.0, "
        "GNT 35.0 vs 30.0",
        "toy, layer 2: BP 25.0 deg to GN; closer: DI, DI-T; DI-T vs DI: GN 21.0 vs 20.0, "
        "GNT 4.0 vs 5.0"]
    assert script.losses(record) == ["toy final training loss: BP 0.0123, GN 0.001"]
    assert script.settling_lines(record) == [
        "toy DI: 3 of 20 settles unsettled (median residual 0.0002)",
        "toy NDFC: exact steady state not found for 2 of 640 samples"]


def test_second_order_table_has_the_medians_per_model_and_layer(tables):
    def entry(samples, model, layer, angle):
        return {"samples": samples, "model": model, "layer": layer, "to_bp_deg": angle,
                "to_gnt_deg": angle + 1, "to_gn_deg": angle + 2, "to_lgn_deg": None,
                "null_share": 0.25, "damping": 0.1}

    record = {"second_order": [entry(0, "DI", 1, 10.0), entry(0, "DI", 2, 0.0),
                               entry(40, "DI", 1, 20.0), entry(40, "DI", 2, 0.0),
                               entry(80, "DI", 1, 60.0), entry(80, "DI", 2, 0.0)]}
    lines = tables.second_order_table(record)
    assert lines[10:17] == ["   * - DI", "     - 1", "     - 20.0", "     - 21.0",
                            "     - 22.0", "     - nan", "     - 0.25"]
    assert lines[-1] == ("medians over 3 measurements at 3 points (0 to 80 samples), "
                         "damping 0.1")
    assert tables.second_order_table({}) == []


def test_partial_runs_say_where_they_stopped_and_spiking_passes_their_samples(tables):
    """``published --partial``: an interrupted run's rows name how far it got; a spiking
    pass is a row of its own with its samples; a cut epoch says its samples."""
    run = _final_run("mnist", "mnist-5k", {"BP": 6.0}, [784, 1000, 10],
                     {"batch_size": 1, "epochs": 1, "train_samples": 1200})
    run["interrupted"] = True
    run["interruption"] = {"signal": "SIGINT", "done": 600, "total": 1200, "unit": "samples"}
    run["spiking"] = {"DI-SCN a=0.1": {"samples": 100, "final_test_error": 20.5}}
    source, _, _, training, errors = tables.run_rows(run)
    assert source == ("this package, dinv run mnist (interrupted after 600 of 1200 samples: "
                      "its last evaluation)")
    assert training == "online SGD, rate 0.001, 1 epoch of 1200 samples, seed 0"
    assert errors == {"BP": 6.0, "DI-SCN a=0.1, 100 samples": 20.5}
