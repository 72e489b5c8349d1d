"""Epoch training on data sets: batches, evaluation schedule, checkpoints, resume."""

import json

import numpy as np
import pytest

import dinv.experiments.supervised as supervised
from dinv.errors import InputError
from dinv.experiments.cli import main
from dinv.experiments.supervised import (
    CHECKPOINT,
    Evaluation,
    epoch_order,
    forward_output,
    read_checkpoint,
    train_epochs,
)
from dinv.models.network import FeedforwardNetwork
from dinv.models.training import Learner

# A small classification run on the digits set: two epochs of 60 batches.
SMALL = ["--dataset", "digits", "--set", "hidden=[16]", "--epochs", "2",
         "--batch-size", "25", "--set", "steps=200", "--set", "eval_every=250",
         "--set", "checkpoint_every=300", "--set", "lr=0.01"]


def run(tmp_path, folder, *args):
    return main(["run", "mnist", *args, "--out", str(tmp_path / folder), "--no-progress"])


def results(tmp_path, folder):
    record = json.loads((tmp_path / folder / "results.json").read_text())
    return record


def test_epoch_order_is_a_seeded_permutation():
    a = epoch_order(3, 0, 50)
    assert sorted(a) == list(range(50))
    assert np.array_equal(a, epoch_order(3, 0, 50))
    assert not np.array_equal(a, epoch_order(3, 1, 50))
    assert not np.array_equal(a, epoch_order(4, 0, 50))


def test_forward_output_matches_the_network():
    rng = np.random.default_rng(0)
    net = FeedforwardNetwork.create([5, 7, 4, 3], ["tanh", "linear", "softmax"], rng,
                                    scale=0.5)
    x = rng.standard_normal((11, 5))
    fwd = net.forward(x)
    np.testing.assert_allclose(forward_output(net, x, chunk=4), fwd.output, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(forward_output(net, x, np.float64, layer=2), fwd.h[2],
                               rtol=1e-12)


def _toy_run(tmp_path, **overrides):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 6))
    t = x[:, :2] * 0.5
    net = FeedforwardNetwork.create([6, 5, 2], ["tanh", "linear"], rng, scale=0.3)
    learners = [Learner("BP", "bp", net.copy())]
    calls = []

    def measure(lrns):
        calls.append(1)
        return {"error": [float(np.sum((lrns[0].net.forward(x).output - t) ** 2))]}

    config = {"seed": 0, "epochs": 2, "batch_size": 3, "train_samples": None, "lr": 0.01,
              "lr_scaling": "none",
              "weight_decay": 0.0, "steps": 10, "dt": 0.5, "stop_tol": None,
              "eval_every": 10, "checkpoint_every": 1000, "restabilise": False, "rinit": {}}
    config.update(overrides)
    out = train_epochs("toy", config, learners, (x, t), Evaluation(("error",), measure, "error"),
                       tmp_path, None, progress=False)
    return out


def test_evaluation_schedule_and_epoch_ends(tmp_path):
    """Measured at the start, whenever a multiple of eval_every is passed, and at each
    epoch's end (40 samples in batches of 3: the last batch of an epoch holds 1)."""
    out = _toy_run(tmp_path)
    samples = [h["samples"] for h in out["history"]]
    assert samples == [0, 12, 21, 30, 40, 52, 61, 70, 80]
    assert [h["epoch"] for h in out["history"]][-1] == 2.0
    errors = [h["error"]["BP"] for h in out["history"]]  # keyed by model name
    assert errors[-1] < errors[0]
    assert len(out["epoch_seconds"]) == 2
    meta, arrays = read_checkpoint(tmp_path)
    assert meta["state"]["epoch"] == 2 and meta["experiment"] == "toy"
    assert arrays["m0_W0"].shape == (5, 6)


@pytest.mark.parametrize("key, value", [("batch_size", 0), ("batch_size", 41),
                                        ("eval_every", 0), ("epochs", 1.5),
                                        ("lr_scaling", "linear"), ("second_order_every", 0),
                                        ("second_order_every", "x")])
def test_bad_settings_are_refused(tmp_path, key, value):
    with pytest.raises(InputError, match=key):
        _toy_run(tmp_path, **{key: value})


def die_in_batch(monkeypatch, batch):
    """Make training raise KeyboardInterrupt in batch ``batch`` (two learner groups, circuit
    and closed-form, step per batch); returns the real `train_step`."""
    original = supervised.train_step
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2 * (batch - 1):
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(supervised, "train_step", dying)
    return original


def test_killed_run_resumes_to_identical_numbers(tmp_path, monkeypatch):
    """A run interrupted after its first checkpoints and resumed with --resume ends with
    exactly the numbers (every evaluation, every parameter) of an uninterrupted run."""
    assert run(tmp_path, "whole", *SMALL) == 0
    original = die_in_batch(monkeypatch, 18)  # of 60
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "killed", *SMALL)
    meta, _ = read_checkpoint(tmp_path / "killed")
    assert 0 < meta["state"]["samples"] < 3000 and meta["state"]["epoch"] == 0
    assert not (tmp_path / "killed" / "results.json").exists()
    # A new run must not overwrite the unfinished one.
    assert run(tmp_path, "killed", *SMALL) == 2
    monkeypatch.setattr(supervised, "train_step", original)
    assert main(["run", "mnist", "--resume", str(tmp_path / "killed"), "--no-progress"]) == 0
    whole, resumed = results(tmp_path, "whole"), results(tmp_path, "killed")
    assert resumed["history"] == whole["history"]
    assert resumed["final"] == whole["final"]
    assert resumed["config"] == whole["config"]
    _, a = read_checkpoint(tmp_path / "whole")
    _, b = read_checkpoint(tmp_path / "killed")
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def test_resume_refuses_what_it_cannot_honour(tmp_path, capsys):
    assert main(["run", "mnist", "--resume", str(tmp_path / "none"), "--no-progress"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert run(tmp_path, "done", *SMALL[:-2]) == 0
    folder = str(tmp_path / "done")
    assert main(["run", "mnist", "--resume", folder, "--epochs", "3", "--no-progress"]) == 2
    assert "saved settings" in capsys.readouterr().err
    assert main(["run", "autoencoder", "--resume", folder, "--no-progress"]) == 2
    assert "checkpoint of 'mnist'" in capsys.readouterr().err
    assert main(["run", "linear-regression", "--resume", folder, "--no-progress"]) == 2
    assert "does not write checkpoints" in capsys.readouterr().err
    (tmp_path / "done" / CHECKPOINT).write_bytes(b"PK\x03\x04 not a zip")
    assert main(["run", "mnist", "--resume", folder, "--no-progress"]) == 2
    assert "damaged" in capsys.readouterr().err


def test_unknown_dataset_is_a_one_line_error(tmp_path, capsys):
    assert run(tmp_path, "x", "--dataset", "cifar") == 2
    err = capsys.readouterr().err
    assert "cifar" in err and "digits" in err and len(err.strip().splitlines()) == 1


def test_classifier_learns_and_di_tracks_ndi(tmp_path):
    """On digits, every model ends far below chance (90 %), and simulated DI ends
    within 1 percentage point of its closed form NDI (same alpha)."""
    assert run(tmp_path, "learn", "--quick", "--seed", "1") == 0
    record = results(tmp_path, "learn")
    final = {name: value["test_error"] for name, value in record["final"].items()}
    assert all(error < 15.0 for error in final.values()), final
    assert abs(final["DI a=0.01"] - final["NDI a=0.01"]) <= 1.0
    assert record["settle_steps"] == record["config"]["steps"]
    assert record["dataset"]["name"] == "digits"


@pytest.mark.slow
def test_sigkilled_run_resumes_to_identical_numbers(tmp_path):
    """A real crash: the CLI process is SIGKILLed once it has written a checkpoint;
    --resume then ends with the numbers of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    args = ["run", "mnist", "--quick", "--batch-size", "1", "--set", "checkpoint_every=500",
            "--set", "eval_every=500", "--no-progress"]
    command = [sys.executable, "-m", "dinv.experiments.cli"]
    subprocess.run(command + args + ["--out", str(tmp_path / "whole")], check=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen(command + args + ["--out", str(killed)])
    deadline = time.time() + 300
    while not (killed / CHECKPOINT).exists() and process.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(1.0)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    meta, _ = read_checkpoint(killed)
    assert 0 < meta["state"]["samples"] < 3 * 1500
    subprocess.run(command + ["run", "mnist", "--resume", str(killed), "--no-progress"],
                   check=True)
    whole, resumed = results(tmp_path, "whole"), results(tmp_path, "killed")
    assert resumed["history"] == whole["history"]
    assert resumed["final"] == whole["final"]


@pytest.mark.slow
@pytest.mark.skipif(not __import__("pathlib").Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="needs Debian's dataset-fashion-mnist (apt install it)")
def test_fashion_mnist_short_run(tmp_path):
    """Real Fashion-MNIST, one epoch of 20000 samples in batches of 100, the full
    784-1000-10 network and 1000-step DI settles: every model far below chance (90 %),
    DI within 1 percentage point of NDI with the same leak."""
    assert run(tmp_path, "fashion", "--dataset", "fashion-mnist", "--batch-size", "100",
               "--epochs", "1", "--set", "train_samples=20000", "--set",
               "eval_every=5000") == 0
    record = results(tmp_path, "fashion")
    assert record["dataset"] == {"name": "fashion-mnist", "train": 60000, "test": 10000,
                                 "source": record["dataset"]["source"],
                                 "split": "the published train and test files",
                                 "split_seed": None}
    final = {name: value["test_error"] for name, value in record["final"].items()}
    assert all(error < 40.0 for error in final.values()), final
    assert abs(final["DI a=0.01"] - final["NDI a=0.01"]) <= 1.0, final


@pytest.mark.parametrize("name, args, message", [
    ("mnist", ["--set", 'hidden=["a"]'], "hidden must be a list of positive integers"),
    ("autoencoder", ["--set", "hidden=[10, 5]"], "five widths"),
    ("autoencoder", ["--set", 'tsne_models=["nope"]'], "no models called"),
    ("mnist", ["--batch-size", "0"], "batch_size"),
])
def test_bad_settings_are_one_line_errors(tmp_path, capsys, name, args, message):
    code = main(["run", name, "--quick", *args, "--out", str(tmp_path / "x"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_second_order_records_of_bp_and_fa_have_their_known_angles():
    """BP's update is at 0 degrees to BP's in every layer; FA's output layer takes the
    same update as BP's (same output error), its hidden layer another; the output layer's
    null-space share is 0; one record per model and layer, with the damping and samples."""
    from dinv.experiments.models_spec import ModelSpec
    from dinv.models.training import UpdateConfig, train_step

    rng = np.random.default_rng(0)
    base = FeedforwardNetwork.create([6, 5, 4, 3], ["tanh", "tanh", "softmax"], rng,
                                     init="xavier-normal")
    learners = [ModelSpec("BP", "bp").learner(base, 0),
                ModelSpec("FA", "fa", feedback="random").learner(base, 0)]
    before = [supervised._parameters_of(lrn.net) for lrn in learners]
    x = rng.normal(size=(8, 6))
    t = np.eye(3)[rng.integers(0, 3, 8)]
    step = train_step(learners, x, t, UpdateConfig(lr=0.1))
    records = supervised.second_order_records(learners, before, step, 0.1, 40)
    assert [(r["model"], r["layer"]) for r in records] == [
        ("BP", 1), ("BP", 2), ("BP", 3), ("FA", 1), ("FA", 2), ("FA", 3)]
    assert all(r["samples"] == 40 and r["damping"] == 0.1 for r in records)
    bp, fa = records[:3], records[3:]
    assert max(r["to_bp_deg"] for r in bp) < 1e-6
    assert fa[2]["to_bp_deg"] < 1e-6 and fa[0]["to_bp_deg"] > 1.0
    assert bp[2]["null_share"] == fa[2]["null_share"] == 0.0
    assert all(0.0 <= r[k] <= 180.0 for r in records
               for k in ("to_gnt_deg", "to_gn_deg", "to_lgn_deg"))


def test_second_order_measured_on_the_batches_holding_a_multiple(tmp_path):
    """Batches of 3 over 40 samples an epoch (the last of 1), measured every 10: the
    batches [0, 3), [9, 12), [18, 21), [30, 33), then [40, 43), [49, 52), [58, 61),
    [70, 73) of the second epoch; BP at 0 degrees to BP."""
    out = _toy_run(tmp_path, second_order_every=10, second_order_damping=0.5)
    starts = sorted({r["samples"] for r in out["second_order"]})
    assert starts == [0, 9, 18, 30, 40, 49, 58, 70]
    assert {r["layer"] for r in out["second_order"]} == {1, 2}
    assert max(r["to_bp_deg"] for r in out["second_order"]) < 1e-6
    assert out["second_order_seconds"] > 0
    assert "second_order" not in _toy_run(tmp_path / "off")
    with pytest.raises(InputError, match="second_order_damping"):
        _toy_run(tmp_path / "bad", second_order_every=10, second_order_damping=-1.0)


@pytest.mark.slow
def test_3x256_run_with_every_rule_resumes_to_identical_numbers(tmp_path, monkeypatch):
    """mnist-3x256's models (DI, DI of targets, DFC and their steady states among them)
    resume from a checkpoint to exactly the numbers of an uninterrupted run, second-order
    records included."""
    small = ["run", "mnist-3x256", "--dataset", "digits", "--set", "hidden=[12,12,12]",
             "--epochs", "2", "--set", "train_samples=200", "--batch-size", "20",
             "--set", "eval_every=100", "--set", "checkpoint_every=60",
             "--set", "second_order_every=100", "--no-progress"]
    assert main([*small, "--out", str(tmp_path / "whole")]) == 0
    original = die_in_batch(monkeypatch, 14)  # of 20
    with pytest.raises(KeyboardInterrupt):
        main([*small, "--out", str(tmp_path / "killed")])
    monkeypatch.setattr(supervised, "train_step", original)
    assert main(["run", "mnist-3x256", "--resume", str(tmp_path / "killed"),
                 "--no-progress"]) == 0
    whole, resumed = results(tmp_path, "whole"), results(tmp_path, "killed")
    assert len(whole["models"]) == 8
    for key in ("history", "final", "second_order", "config"):
        assert resumed[key] == whole[key], key
