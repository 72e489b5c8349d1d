"""Epoch training on a data set (Fig. 4): mini-batches, evaluation, checkpoints.

Shared by the classification and autoencoder experiments. Every epoch visits
the training set in a random order drawn from (seed, epoch), in batches of
``batch_size`` samples (1: the paper's online protocol); every model takes
one summed Eq. (2) update per batch. The circuit models (DI) settle their
Brian2 circuits on the same batch, all of them in one run; the closed-form
models (BP, FA, PBP, NDI) are numpy.

Every ``eval_every`` samples the run measures the models (`Evaluation`);
every ``checkpoint_every`` samples, every 10 minutes and at the end of each
epoch it writes a checkpoint atomically (between batches): every parameter, the
position in the data, the history so far and the timings. A run resumed from a checkpoint therefore
ends with exactly the numbers of an uninterrupted run. A stop request
(SIGINT, SIGTERM: `dinv.experiments.interrupts`) ends the run between two
batches, with a checkpoint.
"""

import io
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dinv.errors import InputError
from dinv.experiments.files import CHECKPOINT
from dinv.experiments.interrupts import stop_requested
from dinv.experiments.models_spec import circuit_options, rinit_options
from dinv.experiments.progress import Progress
from dinv.experiments.results import _atomic_write, jsonable
from dinv.experiments.settle_stats import SettleStats
from dinv.models.network import forward_layers
from dinv.models.stabilise import restabilise
from dinv.models.training import UpdateConfig, train_step
from dinv.validation import check_count

TIMINGS = ("circuit", "closed_form", "stability")
"""Training time per epoch: circuit models' steps, closed-form models' steps, and the
stability checks (and repairs) of the inversion models' feedback."""

LR_SCALINGS = ("none", "sqrt")
"""How the learning rate of a batch's summed update depends on its size."""

CHECKPOINT_SECONDS = 600.0
"""A checkpoint is also written when this long has passed since the last one."""



@dataclass
class Evaluation:
    """How a run measures its models.

    Attributes
    ----------
    metrics : tuple of str
        Names of the measured quantities (e.g. 'test_error').
    measure : callable
        ``measure(learners) -> {metric: [value per learner]}`` (the history keys
        them by model name).
    headline : str
        The metric shown in the progress bar.
    """

    metrics: tuple
    measure: Callable
    headline: str


def forward_output(net, x, dtype=np.float32, chunk=2000, layer=None):
    """Output (or hidden layer ``layer``) of ``net`` on ``x``, in ``dtype``, by chunks.

    Evaluation only: float32 halves the cost of the large forward passes
    over a test set; the arithmetic of training stays float64.
    """
    last = net.depth if layer is None else layer
    transposed = [w.astype(dtype).T for w in net.weights[:last]]
    biases = None if net.biases is None else [b.astype(dtype) for b in net.biases[:last]]
    return np.concatenate([
        forward_layers(x[start:start + chunk].astype(dtype), transposed, biases,
                       net.nonlinearities[:last])
        for start in range(0, x.shape[0], chunk)
    ])


def epoch_order(seed, epoch, n):
    """The order of the training samples in ``epoch`` (same seed, same order)."""
    return np.random.default_rng([int(seed), 7919, int(epoch)]).permutation(n)


def _parameters(learners):
    """``(checkpoint key, list holding the array, index)`` of every parameter."""
    for k, lrn in enumerate(learners):
        for kind, held in (("W", lrn.net.weights), ("b", lrn.net.biases or []),
                           ("B", lrn.feedback)):
            for index in range(len(held)):
                yield f"m{k}_{kind}{index}", held, index


def _learner_arrays(learners):
    return {key: held[index] for key, held, index in _parameters(learners)}


def save_checkpoint(folder, experiment, config, learners, state):
    """Write ``folder/checkpoint.npz`` atomically: parameters and progress.

    Parameters
    ----------
    folder : Path
    experiment : str
        Name of the experiment (checked on resume).
    config : dict
        The run's full settings.
    learners : list of Learner
    state : dict
        Position, history, events and timings (JSON types).
    """
    meta = {"experiment": experiment, "config": config, "state": state,
            "models": [lrn.name for lrn in learners]}
    arrays = _learner_arrays(learners)
    arrays["meta"] = np.frombuffer(json.dumps(jsonable(meta)).encode(), dtype=np.uint8)

    def write(handle):
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        handle.write(buffer.getvalue())

    _atomic_write(Path(folder) / CHECKPOINT, write)


def read_checkpoint(folder):
    """Read a checkpoint: ``(meta, arrays)``; clear errors for a missing or damaged one."""
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise InputError(f"no checkpoint to resume from: {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"checkpoint {path} is damaged ({exc}); start the run again") from None
    return meta, arrays


def restore_learners(learners, arrays):
    """Put a checkpoint's parameters into ``learners`` (shapes are checked).

    The saved arrays replace the learners' own with their memory layout: a
    re-stabilised feedback matrix is C-ordered where a fresh one (-W^T) is
    Fortran-ordered, and BLAS rounds a product differently for the two, so
    values alone would resume to numbers 1e-15 away from an uninterrupted run.
    """
    for key, held, index in _parameters(learners):
        saved, current = arrays.get(key), held[index]
        if saved is None or saved.shape != current.shape:
            raise InputError(f"the checkpoint does not fit this run: parameter {key} is "
                             f"{'missing' if saved is None else saved.shape}, expected "
                             f"{current.shape}")
        held[index] = np.array(saved, dtype=current.dtype, order="K")


def by_model(history, models):
    """``history`` with every metric keyed by model name (results format 2).

    An evaluation of an older run or checkpoint lists a metric's values in the order
    of ``models``; one already keyed by name is kept as it is.
    """
    return [{key: dict(zip(models, value)) if isinstance(value, list) else value
             for key, value in entry.items()} for entry in history]


def _slices(n, batch_size, start):
    return [(s, min(s + batch_size, n)) for s in range(start, n, batch_size)]


def train_epochs(name, config, learners, data, evaluation, folder=None, resume=None,
                 progress=True, stop=None, observe=None):
    """Train ``learners`` for ``config['epochs']`` epochs; measure and checkpoint.

    Parameters
    ----------
    name : str
        Experiment name (progress bar, checkpoint).
    config : dict
        Needs ``seed``, ``epochs``, ``batch_size``, ``train_samples`` (None:
        the whole training set per epoch), ``lr``, ``lr_scaling`` ('none': a
        batch takes the summed update with rate ``lr``; 'sqrt': with rate
        ``lr / sqrt(batch_size)``, so ``lr`` is the online rate), ``weight_decay``,
        ``steps``, ``dt``, ``stop_tol`` (None: every settle runs all its
        steps), ``eval_every``, ``checkpoint_every`` (samples), ``restabilise``
        (after every update, re-stabilise the feedback of every NDI, DI and
        SLDI model whose circuit turned unstable: NDI stays the steady state
        of the circuit DI simulates) and ``rinit`` (options of
        `dinv.models.stabilise.stabilise_feedback`); optional
        ``second_order_every`` (samples; None or absent: never) and
        ``second_order_damping`` (`second_order_records` of the first batch
        and of every batch that holds a multiple of it).
    learners : list of Learner
    data : tuple
        ``(x_train, t_train)``: inputs and targets, one row per sample.
    evaluation : Evaluation
    folder : Path or None
        Where checkpoints go (None: no checkpoints).
    resume : tuple or None
        ``(state, arrays)`` of a checkpoint to continue from.
    progress : bool
        Show a progress bar (samples/s, the headline metric, ETA).
    stop : StopRequests or None
        Looked at before every batch: on a request the run writes a checkpoint
        and returns what it has, with ``interrupted``.
    observe : object or None
        Watches the circuit learners' updates: ``observe.before(learners, x,
        t)`` before and ``observe.after(learners, step)`` after each (with
        the `dinv.models.training.Step`); its time is not counted.

    Returns
    -------
    dict
        ``history`` (list of {'samples', 'epoch', metric: {model: value}}),
        ``restabilised`` (events), ``epoch_seconds`` (training time per epoch,
        split as in `TIMINGS`), ``eval_seconds`` and
        ``settle_steps`` (mean Euler steps per settle of the circuit models)
        and ``settling`` (per circuit model, see
        `dinv.experiments.settle_stats.SettleStats.summary`; a run resumed
        from a checkpoint of an older version counts the settles since);
        with ``second_order_every``, ``second_order`` (the records of
        `second_order_records`) and ``second_order_seconds`` (time spent
        measuring them); after a stop request also ``interrupted``
        (`StopRequests.report`).
    """
    x_train, t_train = data
    n, batch_size = _epoch_size(config, x_train.shape[0])
    scale = np.sqrt(batch_size) if config["lr_scaling"] == "sqrt" else 1.0
    update = UpdateConfig(
        lr=config["lr"] / scale, weight_decay=config["weight_decay"],
        circuit=circuit_options(config, stop_tol=config["stop_tol"]))
    state: dict[str, Any]  # the training's progress, checkpointed
    if resume is None:
        state = {"epoch": 0, "start": 0, "samples": 0, "history": [], "restabilised": [],
                 "epoch_seconds": [], "eval_seconds": 0.0, "settles": 0, "settle_steps": 0,
                 "current": dict.fromkeys(TIMINGS, 0.0), "settling": {}}
    else:
        state, arrays = resume
        restore_learners(learners, arrays)
        state["history"] = by_model(state["history"], [lrn.name for lrn in learners])
    stats = SettleStats(update.circuit.settle_tol, state.setdefault("settling", {}))

    def measure():
        start = time.perf_counter()
        values = evaluation.measure(learners)
        state["history"].append({"samples": state["samples"], "epoch": state["samples"] / n,
                                 **by_model([values], [lrn.name for lrn in learners])[0]})
        state["eval_seconds"] += time.perf_counter() - start
        return values

    if not state["history"]:
        measure()
    bar = Progress(total=int(config["epochs"]) * n, initial=state["samples"], desc=name,
                   unit="sample", unit_scale=True, disable=not progress, smoothing=0.1)
    since_checkpoint, last_checkpoint = 0, time.monotonic()
    interrupted = None
    try:
        while state["epoch"] < int(config["epochs"]) and interrupted is None:
            order = epoch_order(config["seed"], state["epoch"], x_train.shape[0])[:n]
            for lo, hi in _slices(n, batch_size, state["start"]):
                if stop_requested(stop):  # between batches: never inside a settle
                    interrupted = stop.report(state["samples"], int(config["epochs"]) * n,
                                              "samples")
                    break
                index = np.sort(order[lo:hi])
                _train_batch(learners, x_train[index], t_train[index], update, config, state,
                             state["samples"] + hi - lo, stats, observe)
                done = hi - lo
                state["samples"] += done
                state["start"] = hi
                since_checkpoint += done
                bar.update(done)
                if state["samples"] % int(config["eval_every"]) < done or hi == n:
                    values = measure()
                    bar.set_postfix({evaluation.headline: _headline(learners, values,
                                                                    evaluation.headline)},
                                    refresh=False)
                if hi == n:
                    state["epoch_seconds"].append(dict(state["current"]))
                    state["current"] = dict.fromkeys(TIMINGS, 0.0)
                    state["epoch"] += 1
                    state["start"] = 0
                due = (since_checkpoint >= int(config["checkpoint_every"]) or hi == n
                       or time.monotonic() - last_checkpoint > CHECKPOINT_SECONDS)
                if folder is not None and due:
                    save_checkpoint(folder, name, config, learners, state)
                    since_checkpoint, last_checkpoint = 0, time.monotonic()
    finally:
        bar.close()
    if interrupted is not None and folder is not None:
        save_checkpoint(folder, name, config, learners, state)
    trained = {
        "history": state["history"],
        "restabilised": state["restabilised"],
        "epoch_seconds": state["epoch_seconds"],
        "eval_seconds": state["eval_seconds"],
        "settle_steps": state["settle_steps"] / state["settles"] if state["settles"] else None,
        "settling": stats.summary(),
    }
    if config.get("second_order_every") is not None:
        trained["second_order"] = state.get("second_order", [])
        trained["second_order_seconds"] = state.get("second_order_seconds", 0.0)
    if interrupted is not None:
        trained["interrupted"] = interrupted
    return trained


def _epoch_size(config, available):
    """Samples per epoch and batch size of ``config``, checked (with the other counts)."""
    n = available if config["train_samples"] is None else min(
        check_count("train_samples", config["train_samples"]), available)
    batch_size = int(config["batch_size"])
    if batch_size < 1 or batch_size > n:
        raise InputError(f"batch_size must be between 1 and the {n} training samples, "
                         f"got {batch_size}")
    for key in ("eval_every", "checkpoint_every", "epochs", "second_order_every"):
        value = config.get(key)
        if key == "second_order_every" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or int(value) != value or value < 1:
            raise InputError(f"{key} must be a positive integer, got {value!r}")
    damping = config.get("second_order_damping", 0.0)
    if config.get("second_order_every") is not None and not (
            isinstance(damping, (int, float)) and np.isfinite(damping) and damping >= 0):
        raise InputError(f"second_order_damping must be a number >= 0, got {damping!r}")
    if config["lr_scaling"] not in LR_SCALINGS:
        raise InputError(f"lr_scaling must be one of {LR_SCALINGS}, "
                         f"got {config['lr_scaling']!r}")
    return n, batch_size


def _train_batch(learners, x, t, update, config, state, samples, stats, observe=None):
    """One update of every learner on (x, t), timed into ``state['current']``.

    The circuit learners settle together (each settle counted in ``stats``,
    a `SettleStats`), then the closed-form ones step;
    with ``config['restabilise']`` the inversion learners' feedback is
    repaired where a circuit turned unstable (events tagged with ``samples``).
    """
    circuit = [lrn for lrn in learners if lrn.rule.circuit]
    closed = [lrn for lrn in learners if not lrn.rule.circuit]
    every, first = config.get("second_order_every"), samples - x.shape[0]
    # The batch that holds sample m * every (the first batch included) is measured.
    measured = every is not None and -(-first // int(every)) * int(every) < samples
    for group, key in ((circuit, "circuit"), (closed, "closed_form")):
        if not group:
            continue
        if key == "circuit" and observe is not None:
            observe.before(group, x, t)
        before = [_parameters_of(lrn.net) for lrn in group] if measured else []
        start = time.perf_counter()
        step = train_step(group, x, t, update)
        state["current"][key] += time.perf_counter() - start
        if key == "circuit" and observe is not None:
            observe.after(group, step)
        if key == "circuit":
            state["settles"] += 1
            state["settle_steps"] += step.settle_steps
            stats.add_step([lrn.name for lrn in group], step)
        if measured:
            start = time.perf_counter()
            state.setdefault("second_order", []).extend(second_order_records(
                group, before, step, config["second_order_damping"], first))
            state["second_order_seconds"] = (state.get("second_order_seconds", 0.0)
                                             + time.perf_counter() - start)
    # NDI is the steady state of the circuit DI simulates: both keep a stable one.
    inverting = [lrn for lrn in learners if lrn.rule.inverts]
    if config["restabilise"] and inverting:
        start = time.perf_counter()
        rinit = rinit_options(config, update.circuit, inverting[0].net.depth)
        state["restabilised"] += restabilise(inverting, samples, **rinit)
        state["current"]["stability"] += time.perf_counter() - start


def _parameters_of(net):
    """Copies of a network's weights and biases (None without biases)."""
    return ([W.copy() for W in net.weights],
            None if net.biases is None else [b.copy() for b in net.biases])


def second_order_records(learners: list, before: list, step: Any, damping: float,
                         samples: int) -> list[dict[str, Any]]:
    """The second-order measures of every learner's update of one training step.

    Per learner and weight layer, its update against BP's, the Gauss-Newton
    target's and the joint and layer-wise damped Gauss-Newton updates on the
    same weights and batch, and the null-space share of its hidden errors
    (`dinv.analysis.second_order.second_order_measures`). The Gauss-Newton
    matrix of the output is the loss's: the softmax cross-entropy's for a
    softmax output, the squared error's otherwise.

    Parameters
    ----------
    learners : list of Learner
        The learners of the step, after it.
    before : list of (list, list or None)
        Each learner's weights and biases before the step.
    step : dinv.models.training.Step
        The step (forward passes and errors, before the update).
    damping : float
        lambda of the Gauss-Newton target and updates.
    samples : int
        Training samples seen before the step.

    Returns
    -------
    list of dict
        ``samples``, ``model``, ``layer`` (1: W_1), the five measures and ``damping``.
    """
    from dinv.analysis.second_order import (
        Linearisation,
        output_metric,
        second_order_measures,
        weight_updates,
    )

    records = []
    for k, lrn in enumerate(learners):
        weights, biases = before[k]
        forward, errors = step.forward[k], step.deltas[k]
        nonlinearities = lrn.net.nonlinearities
        slopes = [g.derivative(a) for g, a in zip(nonlinearities[:-1], forward.a[:-1])]
        if nonlinearities[-1].name == "softmax":
            metric = output_metric("cross-entropy", forward.output)
        elif nonlinearities[-1].name == "linear":
            metric = output_metric("squared", forward.output)
        else:
            metric = output_metric("squared", forward.output,
                                   nonlinearities[-1].derivative(forward.a[-1]))
        lin = Linearisation(weights, forward.h[:-1], slopes, metric, biases is not None)
        measures = second_order_measures(lin, errors[-1], weight_updates(lin, errors), damping,
                                         errors, lrn.slope)
        records += [{"samples": int(samples), "model": lrn.name, "layer": layer, **values,
                     "damping": float(damping)}
                    for layer, values in enumerate(measures, start=1)]
    return records


def _headline(learners, values, metric):
    best = int(np.argmin(values[metric]))
    return f"{learners[best].name} {values[metric][best]:.4g}"


def summary(specs, data, sizes, trained, metrics):
    """The results both data-set experiments report, from `train_epochs`' output.

    ``models``, ``rules``, ``dataset`` (`Dataset.record`: name, source, the
    split, its seed and the sizes of the two sets), ``sizes`` (layer widths),
    ``final`` (the last evaluation of each of ``metrics`` per model) and
    everything ``trained`` holds.
    """
    last = trained["history"][-1]
    return {
        "models": [s.name for s in specs],
        "rules": {s.name: s.rule for s in specs},
        "dataset": data.record(),
        "sizes": sizes,
        "final": {s.name: {m: last[m][s.name] for m in metrics} for s in specs},
        **trained,
    }


def hidden_widths(config):
    """``config['hidden']`` checked: a list of positive integers."""
    hidden = config["hidden"]
    if not (isinstance(hidden, list) and hidden
            and all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in hidden)):
        raise InputError(f"hidden must be a list of positive integers (layer widths), "
                         f"got {hidden!r}")
    return hidden
