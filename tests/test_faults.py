"""Faults a long run meets: signals, full disks, unwritable and busy output folders.

The signal tests run the ``dinv`` command in a subprocess, send SIGINT or
SIGTERM once it is under way, and compare what it wrote with an
uninterrupted run of the same seed: a stopped run ends between updates
(never inside a settle), so its numbers are a prefix of the uninterrupted
run's, and a checkpointed run resumed ends with exactly its numbers.
"""

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import dinv.experiments.results as results_module
from dinv.experiments.cli import main
from dinv.experiments.folders import LOCK
from dinv.experiments.supervised import CHECKPOINT, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "dinv.experiments.cli"]

# A small classification run on the digits set: two epochs of 60 batches of 25 (5 s).
SMALL_MNIST = ["run", "mnist", "--dataset", "digits", "--set", "hidden=[16]", "--epochs", "2",
               "--batch-size", "25", "--set", "steps=200", "--set", "eval_every=250",
               "--set", "checkpoint_every=300", "--set", "lr=0.01", "--no-progress"]
# A short linear regression: 199 online updates of two circuit models and two closed-form
# ones (the progress bar shows how far it is). Its settles are ten times the default's
# 1000 steps (about 8 s in all, 40 ms per update), so that a signal sent once the bar
# shows three updates lands well before the end: with 1000 steps the whole run took under
# a second, and on CI the signal once came as it ended.
SIGNALLED_REGRESSION = ["run", "linear-regression", "--set", "samples=200", "--seed", "2",
                        "--models", "BP,FA,NDI a=0.01,DI a=0.01", "--set", "steps=10000"]
# The full linear-regression protocol (minutes) without the R-Init models' set-up.
LONG_REGRESSION = ["run", "linear-regression", "--models", "BP,DI a=0.01"]
# Settles of about a second: a signal sent right after another lands inside one.
SLOW_SETTLES = LONG_REGRESSION + ["--set", "steps=200000"]
# An alpha sweep of a few milliseconds of simulation.
TINY_SWEEP = ["run", "alpha-sweep", "--set", "samples=4", "--set", "steps=50",
              "--set", "alphas=[0.1]", "--no-progress"]


class Run:
    """The ``dinv`` command in a subprocess, its stderr collected as it comes."""

    def __init__(self, args):
        self.process = subprocess.Popen(CLI + args, cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.err = ""
        self.out = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for chunk in iter(lambda: self.process.stderr.read(1), ""):
            self.err += chunk

    def wait_for(self, condition, what, timeout=120.0):
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, f"the run ended before {what}:\n{self.err}"
            assert time.monotonic() < deadline, f"no {what} within {timeout} s:\n{self.err}"
            time.sleep(0.02)

    def progress(self):
        """Updates done, as the progress bar last showed them."""
        counts = re.findall(r"(\d+)/\d+ \[", self.err)
        return int(counts[-1]) if counts else 0

    def send(self, signum):
        self.process.send_signal(signum)

    def finish(self, timeout=300.0):
        code = self.process.wait(timeout=timeout)
        self.out = self.process.stdout.read()
        self._reader.join(timeout=10)
        return code


def children(pid):
    """Process ids whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def record(folder):
    return json.loads((Path(folder) / "results.json").read_text())


def checkpoint_arrays(folder):
    return read_checkpoint(folder)[1]


@pytest.fixture(scope="module")
def small_mnist_whole(tmp_path_factory):
    """The uninterrupted small classification run (in this process: same numbers)."""
    out = tmp_path_factory.mktemp("whole") / "run"
    assert main(SMALL_MNIST + ["--out", str(out)]) == 0
    return out


def _interrupt_and_resume(tmp_path, whole, args, signum):
    stopped = tmp_path / "stopped"
    run = Run(args + ["--out", str(stopped)])
    run.wait_for(lambda: (stopped / CHECKPOINT).exists(), "its first checkpoint")
    run.send(signum)
    code = run.finish()
    name = signal.Signals(signum).name
    assert code == 128 + signum, run.err
    last = run.err.strip().splitlines()[-1]
    assert last.startswith(f"dinv: interrupted by {name} after ") and \
        f"--resume {stopped}" in last, run.err
    partial = record(stopped)
    assert partial["interrupted"] is True
    meta, _ = read_checkpoint(stopped)
    assert partial["interruption"] == {"signal": name, "done": meta["state"]["samples"],
                                       "total": partial["interruption"]["total"],
                                       "unit": "samples"}
    assert 0 < meta["state"]["samples"] < partial["interruption"]["total"]
    assert partial["history"] == record(whole)["history"][:len(partial["history"])]
    resumed = subprocess.run(CLI + ["run", "mnist", "--resume", str(stopped), "--no-progress"]
                             + [a for a in args if a == "--keep-checkpoints"],
                             cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    full, again = record(whole), record(stopped)
    assert again["interrupted"] is False and again["interruption"] is None
    assert again["history"] == full["history"]
    assert again["final"] == full["final"]
    a, b = checkpoint_arrays(whole), checkpoint_arrays(stopped)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert not (stopped / LOCK).exists()


@pytest.mark.parametrize("signum", [signal.SIGINT,
                                    pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_then_resume_gives_the_uninterrupted_numbers(tmp_path, small_mnist_whole,
                                                            signum):
    """SIGINT or SIGTERM mid-run: exit 128 + signal with a checkpoint, partial results
    marked interrupted and one line naming --resume; resumed, the run ends with every
    evaluation and every parameter of the uninterrupted run."""
    _interrupt_and_resume(tmp_path, small_mnist_whole, SMALL_MNIST, signum)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_quick_mnist_signal_then_resume_gives_the_uninterrupted_numbers(tmp_path, signum):
    """The same with ``dinv run mnist --quick`` (checkpoints every 300 samples)."""
    args = ["run", "mnist", "--quick", "--set", "checkpoint_every=300", "--no-progress",
            "--keep-checkpoints"]
    whole = tmp_path / "whole"
    subprocess.run(CLI + args + ["--out", str(whole)], cwd=ROOT, check=True,
                   capture_output=True)
    _interrupt_and_resume(tmp_path, whole, args, signum)


def test_resume_restores_the_memory_layout_of_parameters(tmp_path):
    """A re-stabilised feedback matrix is C-ordered, a fresh one (-W^T) Fortran-ordered;
    BLAS rounds their products differently, so a resumed run must get the saved layout
    back (with values alone it drifted 1e-15 from the uninterrupted run)."""
    from dinv.experiments.classification import MODELS
    from dinv.experiments.supervised import restore_learners, save_checkpoint
    from dinv.models.network import FeedforwardNetwork

    def learners():
        base = FeedforwardNetwork.create([6, 5, 3], ["tanh", "softmax"],
                                         np.random.default_rng(0))
        return [spec.learner(base, 0) for spec in MODELS if spec.name.startswith("NDI")]

    trained, fresh = learners(), learners()
    assert fresh[0].feedback[0].flags.f_contiguous
    trained[0].feedback[0] = np.ascontiguousarray(trained[0].feedback[0] * 1.5)
    save_checkpoint(tmp_path, "mnist", {}, trained, {})
    restore_learners(fresh, read_checkpoint(tmp_path)[1])
    for a, b in zip(trained, fresh):
        for x, y in zip(a.net.weights + a.feedback, b.net.weights + b.feedback):
            assert np.array_equal(x, y)
            assert (x.flags.c_contiguous, x.flags.f_contiguous) == \
                (y.flags.c_contiguous, y.flags.f_contiguous)


def test_sigint_during_settles_never_changes_the_numbers(tmp_path):
    """A run stopped by SIGINT (which mostly lands inside a Brian2 settle) stops between
    updates: its errors are exactly the first updates of an uninterrupted run; the
    companion process ends with it."""
    stopped = Run(SIGNALLED_REGRESSION + ["--out", str(tmp_path / "stopped")])
    stopped.wait_for(lambda: stopped.progress() >= 3, "three updates")
    companions = children(stopped.process.pid)
    assert companions, "the regression runs its closed-form side in a companion process"
    stopped.send(signal.SIGINT)
    assert stopped.finish() == 130, stopped.err
    assert main(SIGNALLED_REGRESSION + ["--no-progress", "--out", str(tmp_path / "whole")]) == 0
    last = stopped.err.strip().splitlines()[-1]
    assert last.startswith("dinv: interrupted by SIGINT after ") and "--overwrite" in last
    partial, full = record(tmp_path / "stopped"), record(tmp_path / "whole")
    done = partial["interruption"]["done"]
    assert partial["interrupted"] and 3 <= done < partial["interruption"]["total"] == 199
    for model, errors in partial["error"].items():
        assert len(errors) == done + 1
        assert errors == full["error"][model][:done + 1], model
    for curves in partial["curves"].values():
        for layers in curves.values():
            assert np.array(layers).shape[-1] == done
    assert (tmp_path / "stopped" / "figure.png").stat().st_size > 0
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in companions):
        assert time.monotonic() < deadline, "the companion process outlived the run"
        time.sleep(0.05)


def test_second_signal_stops_at_once(tmp_path):
    """The second SIGINT leaves at once, with a message, writing nothing (sent while
    the run still finishes the update the first one let it complete)."""
    out = tmp_path / "run"
    run = Run(SLOW_SETTLES + ["--out", str(out)])
    run.wait_for(lambda: run.progress() >= 1, "a first update")
    run.send(signal.SIGINT)
    run.wait_for(lambda: "SIGINT received" in run.err, "the first signal's note")
    run.send(signal.SIGINT)
    start = time.monotonic()
    assert run.finish() == 130, run.err
    assert time.monotonic() - start < 5.0
    assert "dinv: second SIGINT: stopped at once" in run.err.strip().splitlines()[-1]
    assert not (out / "results.json").exists()
    assert not (out / LOCK).exists()


def _unwritable_folder(tmp_path):
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    folder = Path("/sys")  # root may write anywhere but here (sysfs takes no new files)
    try:
        (folder / LOCK).touch()
    except OSError:
        return folder
    (folder / LOCK).unlink()
    pytest.skip("no folder here refuses writes to root")


def test_unwritable_output_folder_is_refused_before_any_work(tmp_path, capsys):
    """The full linear-regression protocol (minutes) into a folder nobody can write:
    refused at once, in one line naming the folder."""
    folder = _unwritable_folder(tmp_path)
    start = time.monotonic()
    code = main(["run", "linear-regression", "--out", str(folder), "--no-progress"])
    assert time.monotonic() - start < 2.0
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"dinv: error: cannot write into the output folder {folder}")


def test_command_line_errors_are_one_line_not_brian2_bugs(tmp_path):
    """Through the real command: exit 2, one line, no traceback, no folder left."""
    out = tmp_path / "a" / "b"
    result = subprocess.run(CLI + ["run", "linear-regression", "--seed", "-1", "--out",
                                   str(out)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == \
        "dinv: error: setting seed must be an integer >= 0, got -1"
    assert "Traceback" not in result.stderr and "Brian 2" not in result.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "setting seed must be an integer >= 0, got -1"),
    (["--set", "seed=1.5"], "setting seed must be an integer >= 0, got 1.5"),
    (["--set", "seed=true"], "setting seed must be a whole number, got True"),
    (["--models", ",,,"], "--models names no models"),
    (["--models", ""], "--models names no models"),
    (["--set", "models=[]"], "models names no models"),
    (["--set", "lr=-1"], "lr must be a positive number"),
    (["--models", "BP,XYZ"], "unknown model(s) XYZ"),
])
def test_argument_errors_leave_no_folder_behind(tmp_path, capsys, args, message):
    """Errors found before the run (some only once the experiment starts) leave no
    folder that the command created."""
    out = tmp_path / "new" / "out"
    code = main(["run", "linear-regression", *args, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("dinv: error:") and message in err, err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_internal_errors_are_reported_as_dinv_bugs(tmp_path, capsys, monkeypatch):
    """An unexpected exception: the traceback and a line saying it is dinv's bug."""
    from dinv.experiments import alpha_sweep

    def broken(config, progress=True, stop=None):
        raise RuntimeError("something unforeseen")

    monkeypatch.setattr(alpha_sweep, "run", broken)
    code = main(TINY_SWEEP + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "RuntimeError: something unforeseen" in err
    assert "dinv: internal error" in err and "Brian" not in err
    assert not (tmp_path / "out").exists()


def test_finished_results_are_not_overwritten_silently(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(TINY_SWEEP + ["--out", str(out)]) == 0
    first = (out / "results.json").read_bytes()
    capsys.readouterr()
    assert main(TINY_SWEEP + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds the results of a finished run" in err and "--overwrite" in err
    assert (out / "results.json").read_bytes() == first
    assert main(TINY_SWEEP + ["--out", str(out), "--overwrite"]) == 0
    assert (out / "results.json").read_bytes() != first  # a new record (wall time, ...)


def test_overwrite_removes_the_earlier_runs_files(tmp_path):
    """A results.json beside a newer run's checkpoint: --overwrite clears both first."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"interrupted": False}))
    (out / CHECKPOINT).write_bytes(b"an earlier run's checkpoint")
    (out / ".checkpoint.npz.abc.tmp").write_bytes(b"left by a killed run")
    (out / "notes.txt").write_text("the user's own file")
    assert main(TINY_SWEEP + ["--out", str(out)]) == 2
    assert main(TINY_SWEEP + ["--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["figure.png", "notes.txt",
                                                     "results.json"]
    assert record(out)["experiment"] == "alpha-sweep"


def _lock(folder, pid, host=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK).write_text(json.dumps({
        "pid": pid, "host": host or socket.gethostname(), "command": "dinv run mnist",
        "started": time.time()}))


def test_a_busy_folder_is_refused_naming_the_running_process(tmp_path, capsys):
    out = tmp_path / "out"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        _lock(out, sleeper.pid)
        assert main(TINY_SWEEP + ["--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert f"is in use by dinv process {sleeper.pid} on {socket.gethostname()}" in err
        assert "dinv run mnist" in err and len(err.splitlines()) == 1
        assert not (out / "results.json").exists()
        assert json.loads((out / LOCK).read_text())["pid"] == sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()
    _lock(out, 1, host="another-host")
    assert main(TINY_SWEEP + ["--out", str(out)]) == 2
    assert f"if that run is gone, delete {out / LOCK}" in capsys.readouterr().err


def test_two_concurrent_runs_do_not_both_succeed(tmp_path, capsys):
    """A second run (here, in this process) while a first one holds the folder; SIGTERM
    then stops the first with its partial results."""
    out = tmp_path / "out"
    first = Run(LONG_REGRESSION + ["--no-progress", "--out", str(out)])
    first.wait_for(lambda: (out / LOCK).exists(), "the lock")
    assert main(TINY_SWEEP + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"is in use by dinv process {first.process.pid}" in err
    first.send(signal.SIGTERM)
    assert first.finish() == 143, first.err
    assert "dinv: interrupted by SIGTERM after " in first.err
    partial = record(out)
    assert partial["experiment"] == "linear-regression" and partial["interrupted"]
    assert partial["interruption"]["signal"] == "SIGTERM"
    assert not (out / LOCK).exists()


def test_a_stale_lock_is_taken_over(tmp_path):
    out = tmp_path / "out"
    gone = subprocess.Popen(["true"])
    gone.wait()
    _lock(out, gone.pid)
    assert main(TINY_SWEEP + ["--out", str(out)]) == 0
    assert not (out / LOCK).exists()


def _full_disk_on(monkeypatch, name, after=0):
    """Writes of ``name`` fail with ENOSPC (after ``after`` successful ones), half-way."""
    original = results_module._write_and_rename
    count = {"n": 0}

    def write(path, content):
        if path.name == name:
            count["n"] += 1
            if count["n"] > after:
                def failing(handle):
                    handle.write(b"half a file")
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return original(path, failing)
        return original(path, content)

    monkeypatch.setattr(results_module, "_write_and_rename", write)


def test_full_disk_writing_results_is_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    _full_disk_on(monkeypatch, "results.json")
    assert main(TINY_SWEEP + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"dinv: error: could not write {out / 'results.json'}: No space left on "
                   "device; the earlier results.json (if there was one) is intact")
    assert not out.exists()  # nothing was written: the folder it created is gone


def test_full_disk_writing_a_checkpoint_keeps_the_last_one(tmp_path, capsys, monkeypatch):
    """ENOSPC on the third checkpoint: one line naming the file and --resume; the second
    checkpoint is intact and the run resumes from it."""
    out = tmp_path / "out"
    _full_disk_on(monkeypatch, CHECKPOINT, after=2)
    assert main(SMALL_MNIST + ["--out", str(out), "--set", "train_samples=500"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"could not write {out / CHECKPOINT}: No space left on device" in err
    assert f"continue with --resume {out}" in err
    assert read_checkpoint(out)[0]["state"]["samples"] == 500
    assert not list(out.glob(".*.tmp")) and not (out / LOCK).exists()
    monkeypatch.undo()
    assert main(["run", "mnist", "--resume", str(out), "--no-progress"]) == 0
    assert record(out)["interrupted"] is False


def test_resume_refuses_a_finished_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(SMALL_MNIST + ["--out", str(out), "--set", "train_samples=100",
                               "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["run", "mnist", "--resume", str(out), "--no-progress"]) == 2
    assert "has finished" in capsys.readouterr().err
    assert main(["run", "mnist", "--resume", str(out), "--overwrite", "--no-progress"]) == 2
    assert "drop one" in capsys.readouterr().err


class _StoppedAtOnce:
    """Stands in for `StopRequests`: a SIGINT already requested when the run starts."""

    def __init__(self):
        from dinv.experiments.interrupts import StopRequests

        self._real = StopRequests()

    def __enter__(self):
        self._real.__enter__()
        self._real.requested = signal.SIGINT
        return self._real

    def __exit__(self, *exc):
        return self._real.__exit__(*exc)


@pytest.mark.parametrize("name", ["linear-regression", "nonlinear-regression", "mnist",
                                  "autoencoder", "alpha-sweep", "timescales",
                                  "spiking-inversion"])
def test_every_experiment_stopped_at_once_writes_marked_partial_results(tmp_path, capsys,
                                                                        monkeypatch, name):
    """Stopped at its first safe point, every experiment writes results.json (marked
    interrupted, no work done), a figure saying so, and the line saying how to go on."""
    import dinv.experiments.cli as cli

    monkeypatch.setattr(cli, "StopRequests", _StoppedAtOnce)
    out = tmp_path / "out"
    assert main(["run", name, "--quick", "--no-progress", "--out", str(out)]) == 130
    partial = record(out)
    assert partial["interrupted"] is True
    assert partial["interruption"]["signal"] == "SIGINT"
    assert partial["interruption"]["done"] == 0 < partial["interruption"]["total"]
    assert (out / "figure.png").stat().st_size > 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("dinv: interrupted by SIGINT after 0 of ")
    if name in ("mnist", "autoencoder"):
        assert f"--resume {out}" in err and (out / CHECKPOINT).exists()
    else:
        assert "--overwrite" in err


def test_ctrl_c_in_library_use_never_returns_a_cut_short_state():
    """Brian2's own Ctrl-C handler stops a run after the current step; the circuit
    must raise KeyboardInterrupt instead of handing back the unsettled state."""
    import os
    import signal
    import threading

    from dinv.circuits import settle_layer

    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 5))
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt, match="stopped after .* of 2000000 steps"):
            settle_layer(W, -W.T, rng.standard_normal((1, 3)), 0.1, steps=2_000_000,
                         on_unsettled="ignore")
    finally:
        timer.cancel()
