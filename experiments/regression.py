"""Online regression against a teacher: the training loop of Fig. 3.

Shared by the linear (Fig. 3a-f) and nonlinear (Fig. 3g-k) experiments: one
pass over a fixed data set in random order, one online update per sample (the
first sample only measures), the summed squared error of every model on the
whole data set after every update, and per-layer curves of the inversion
models (stability, feedback alignment, agreement with NDI and PBP).
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import ms

from dinv.analysis.metrics import matrix_angle, nmse, vector_angle
from dinv.errors import InputError
from dinv.experiments.companion import Companion
from dinv.experiments.errors import error_measure
from dinv.experiments.interrupts import StopRequests, stop_requested
from dinv.experiments.models_spec import (
    SPIKING_SETTINGS,
    ModelSpec,
    SharedFeedback,
    circuit_options,
    own_settings,
    rinit_options,
    select_models,
    spiking_circuit,
)
from dinv.experiments.progress import Progress
from dinv.experiments.settle_stats import SettleStats
from dinv.hints import FloatArray
from dinv.models.initialisation import init_feedback
from dinv.models.network import FeedforwardNetwork
from dinv.models.rules import ChainArrays, Rule, pbp, steady_rule
from dinv.models.stabilise import direct_settings, repair_feedback, unstable_feedback
from dinv.models.training import UpdateConfig, replay_step, train_step_each
from dinv.theory import (
    chain_steady_state,
    direct_abscissa,
    direct_jacobians,
    jacobian_abscissa,
    loop_abscissa,
    stack_c,
)
from dinv.validation import check_count

CURVES = ("eigenvalue", "angle_B", "angle_ndi", "angle_pbp")
"""Per-layer curves: Jacobian abscissa, angle(B, -W^T), angle to NDI and to PBP."""

SIDE_BATCH = 8
"""Updates per message to the closed-form side's process (`Companion`): each message
wakes that process, which on a busy machine costs the simulation's process time too."""


def _pbp_chain(weights, delta, gains):
    """Hidden errors of pseudobackprop (Eq. 4) through W_2 .. W_L, with gains g'(a_l)."""
    deltas = [None] * len(gains)
    for layer in range(len(weights) - 1, -1, -1):
        delta = pbp(weights[layer], None, delta, 0.0) * gains[layer]
        deltas[layer] = delta
    return deltas


class CurveRecorder:
    """Per-iteration, per-layer curves of the inversion models (NDI, DI, SLDI, DI of
    targets, DFC and their closed forms) of one or more runs.

    For the layer-pair rules layer j pairs W_{j+2} with B_{j+2} and yields
    delta_{j+1}; for SLDI the eigenvalue and feedback angle are those of the
    whole loop (stored in layer 0) and the NDI and PBP references use
    B_l = -W_l^T of the initial weights (the Tr-Init feedback the loop's B is
    built from). For DFC the eigenvalue is that of its whole circuit at rest
    (layer 0) and the feedback angle per hidden layer that of Q_l to J_l^T
    (the Jacobian at the origin). The rules of targets and DFC are compared
    with their own closed forms (NDI of targets, NDFC; `steady_rule`) rather
    than with NDI. The inversion models of all runs are one stack (one row
    each, run after run), processed with one linear-algebra call per layer;
    every call works row by row, so each run's curves are those it gets alone.

    Parameters
    ----------
    runs : list of list of Learner
        The learners of each run (one architecture).
    iterations : int
        Updates of the pass.
    """

    def __init__(self, runs, iterations):
        self.members = [(r, k) for r, learners in enumerate(runs)
                        for k, lrn in enumerate(learners) if lrn.rule.inverts]
        self.learners = [runs[r][k] for r, k in self.members]
        self.loops = [row for row, lrn in enumerate(self.learners)
                      if lrn.rule.feedback == "loop"]
        self.direct = [row for row, lrn in enumerate(self.learners)
                       if lrn.rule.feedback == "direct"]
        self.layerwise = [row for row, lrn in enumerate(self.learners)
                          if lrn.rule.feedback == "layer"]
        # Rows compared with NDI (Eq. 17) and rows compared with their own closed form.
        steady = [steady_rule(lrn.rule) for lrn in self.learners]
        self.errors = [row for row, rule in enumerate(steady) if rule is None or rule.name == "ndi"]
        self.own: dict[Rule, list[int]] = {}
        for row, rule in enumerate(steady):
            if rule is not None and row not in self.errors:
                self.own.setdefault(rule, []).append(row)
        self.alpha = np.array([lrn.alpha for lrn in self.learners])
        layers = runs[0][0].net.depth - 1
        self.values = {key: np.full((len(self.learners), layers, iterations), np.nan)
                       for key in CURVES}
        self.reference_feedback = {
            row: [init_feedback(W, "transpose", None) for W in self.learners[row].net.weights[1:]]
            for row in self.loops + self.direct
        }
        self._weights: list[FloatArray] = []  # as of the last snapshot
        self._feedback: list[FloatArray] = []

    def run_values(self, run):
        """The curves of run ``run``: key -> (its inversion models, layers, iterations)."""
        rows = [row for row, (r, _) in enumerate(self.members) if r == run]
        return {key: value[rows] for key, value in self.values.items()}

    def snapshot(self):
        """Remember the weights and feedback used by this step's backward pass."""
        if not self.learners:
            return
        depth = self.learners[0].net.depth
        self._weights = [stack_c([lrn.net.weights[l] for lrn in self.learners])
                         for l in range(depth)]
        self._feedback = [
            stack_c([self.reference_feedback[row][l] if row in self.reference_feedback
                      else lrn.feedback[l] for row, lrn in enumerate(self.learners)])
            for l in range(depth - 1)
        ]
        self._own_feedback = {row: [B.copy() for B in self.learners[row].feedback]
                              for row in self.loops + self.direct}

    def record(self, it, pre_activations, deltas):
        """Compute every curve for iteration ``it`` from each row's pre-activations
        (``pre_activations[row][l]``: a_{l+1} of the update's forward pass, at least
        the hidden layers') and errors (``deltas[row][l]``: delta_{l+1})."""
        if not self.learners:
            return
        if self.layerwise:
            self._record_pairs(it)
        if self.loops:
            self._record_loops(it)
        if self.direct:
            self._record_direct(it)
        self._record_references(it, pre_activations, deltas)

    def _record_pairs(self, it):
        """Abscissa (before the update) and feedback angle (after it) of every layer pair."""
        rows = self.layerwise
        for j in range(len(self._weights) - 1):
            self.values["eigenvalue"][rows, j, it] = jacobian_abscissa(
                self._weights[j + 1][rows], self._feedback[j][rows], self.alpha[rows])
            after_W = stack_c([self.learners[r].net.weights[j + 1] for r in rows])
            after_B = stack_c([self.learners[r].feedback[j] for r in rows])
            self.values["angle_B"][rows, j, it] = vector_angle(
                after_B.reshape(len(rows), -1), -after_W.transpose(0, 2, 1).reshape(len(rows), -1))

    def _record_loops(self, it):
        """Abscissa (before the update) and feedback angle (after it) of every single loop."""
        loops = self.loops
        self.values["eigenvalue"][loops, 0, it] = loop_abscissa(
            [W[loops] for W in self._weights[1:]],
            stack_c([self._own_feedback[row][0] for row in loops]), self.alpha[loops])
        for row in loops:
            learner = self.learners[row]
            forward_map = learner.net.weights[1]
            for W in learner.net.weights[2:]:
                forward_map = W @ forward_map
            self.values["angle_B"][row, 0, it] = matrix_angle(learner.feedback[0],
                                                             -forward_map.T)

    def _record_direct(self, it):
        """Abscissa of DFC's circuit at rest (before the update) and angle(Q_l, J_l^T)
        (after it)."""
        for row in self.direct:
            learner = self.learners[row]
            self.values["eigenvalue"][row, 0, it] = direct_abscissa(
                [W[row] for W in self._weights[1:]], self._own_feedback[row],
                learner.layer_alpha(0), *direct_settings(learner))
            jacobians = direct_jacobians(learner.net.weights[1:])
            for j, (Q, J) in enumerate(zip(learner.feedback, jacobians)):
                self.values["angle_B"][row, j, it] = matrix_angle(Q, J.T)

    def _record_references(self, it, pre_activations, deltas):
        """Angles of the hidden errors to those of the closed form (NDI, or the rule's own)
        and of PBP with the same weights."""
        depth = len(self._weights)
        output = stack_c([delta[-1] for delta in deltas])
        gains = [stack_c([lrn.net.nonlinearities[l].derivative(a[l])
                          for lrn, a in zip(self.learners, pre_activations)])
                 for l in range(depth - 1)]
        rows = self.errors
        reference = [np.full_like(g, np.nan) for g in gains]
        if rows:
            ndi_ref = chain_steady_state([W[rows] for W in self._weights[1:]],
                                         [B[rows] for B in self._feedback], output[rows],
                                         self.alpha[rows], [g[rows] for g in gains])
            for j in range(depth - 1):
                reference[j][rows] = ndi_ref[j]
        for rule, own in self.own.items():
            learners = [self.learners[row] for row in own]
            arrays = ChainArrays(
                weights=[W[own] for W in self._weights[1:]],
                feedback=[stack_c([self._own_feedback[row][j] if row in self._own_feedback
                                   else self.learners[row].feedback[j] for row in own])
                          for j in range(len(learners[0].feedback))],
                delta=output[own], alpha=np.array([lrn._alphas for lrn in learners]),
                offsets=[stack_c([pre_activations[row][l] for row in own])
                         for l in range(depth - 1)],
                transfers=[g.name for g in learners[0].net.nonlinearities[:-1]])
            assert rule.chainwise is not None  # NDI of targets, NDFC
            for j, value in enumerate(rule.chainwise(rule, arrays)[0]):
                reference[j][own] = value
        pbp_ref = _pbp_chain(self._weights[1:], output, gains)
        for j in range(depth - 1):
            hidden = stack_c([delta[j][0] for delta in deltas])
            self.values["angle_ndi"][:, j, it] = vector_angle(hidden, reference[j][:, 0])
            self.values["angle_pbp"][:, j, it] = vector_angle(hidden, pbp_ref[j][:, 0])


@dataclass
class CircuitUpdate:
    """What the simulation sends the closed-form side after an update of the circuit
    learners (DI, SLDI) of every run, runs in order.

    The side keeps copies of those learners and repeats their update from the
    hidden errors their circuits settled to (`dinv.models.training.replay_step`):
    a few kilobytes per update instead of every weight.

    Attributes
    ----------
    hidden : list of ndarray
        delta_1 .. delta_{L-1} of every circuit learner as its update used them
        (settled and clipped), each (n, batch, d_l).
    checksums : ndarray, shape (n,)
        Sum of each learner's updated weights and biases: the side checks its
        copies against them.
    feedback : dict of int to list of ndarray
        The new feedback of the learners re-stabilised after the update, by
        index (the others keep theirs).
    """

    hidden: list
    checksums: np.ndarray
    feedback: dict

    @classmethod
    def of(cls, learners, step, repaired=()):
        """The update of ``learners`` after ``step`` (their `Step`); ``repaired`` lists
        the indices of the learners whose feedback was re-stabilised."""
        return cls(
            hidden=[stack_c([per_layer[l] for per_layer in step.deltas])
                    for l in range(learners[0].net.depth - 1)],
            checksums=np.array([_parameter_sum(learner) for learner in learners]),
            feedback={k: list(learners[k].feedback) for k in repaired},
        )


def _parameter_sum(learner):
    """The sum of a learner's weights and biases (a fingerprint of its parameters)."""
    net = learner.net
    return sum(float(W.sum()) for W in net.weights) + (
        0.0 if net.biases is None else sum(float(b.sum()) for b in net.biases))


class ClosedFormSide:
    """Everything of a training step that does not need Brian2, for every run of a pass.

    For each run (a cell of `train_regressions`) it trains the closed-form
    learners (BP, FA, PBP, NDI) on the run's sample, repeats the circuit
    learners' updates from the errors their circuits settled to (what the
    simulation sends, `CircuitUpdate`), records the curves and measures the
    error of every model on the run's whole data set. The closed-form
    learners of all runs take each update together (`train_step_each`, each
    rule's learners as one stack) and the curves of all runs are recorded as
    one stack (`CurveRecorder`); every stacked operation works model by
    model, so each run gets the numbers it gets alone. `train_regressions`
    runs it in a companion process, beside the simulation.

    Parameters
    ----------
    runs : list of tuple
        Per run, ``(learners, X, Y, error_dtype)``: its models (one
        architecture for all runs), data set and the precision of its error
        (`dinv.experiments.errors.error_measure`).
    update : UpdateConfig
        The update of every run.
    iterations : int
        Updates of the pass.
    """

    def __init__(self, runs, update, iterations):
        self.learners = [learners for learners, _, _, _ in runs]
        self.data = [(X, Y) for _, X, Y, _ in runs]
        self.update = update
        self.closed = [(r, k) for r, learners in enumerate(self.learners)
                       for k, lrn in enumerate(learners) if not lrn.rule.circuit]
        self.circuit = [(r, k) for r, learners in enumerate(self.learners)
                        for k, lrn in enumerate(learners) if lrn.rule.circuit]
        self.recorder = CurveRecorder(self.learners, iterations)
        self.measures = []
        for learners, X, Y, error_dtype in runs:
            net = learners[0].net
            self.measures.append(error_measure(X, Y, [g.name for g in net.nonlinearities],
                                               net.biases is not None, error_dtype))
        self.errors = [[self._errors(r)] for r in range(len(runs))]

    def _errors(self, run):
        learners = self.learners[run]
        depth = learners[0].net.depth
        weights = [np.stack([lrn.net.weights[l] for lrn in learners]) for l in range(depth)]
        biases = None if learners[0].net.biases is None else [
            np.stack([lrn.net.biases[l] for lrn in learners]) for l in range(depth)]
        return self.measures[run](weights, biases)

    def step(self, it, samples, circuit):
        """Iteration ``it``: ``samples[r]`` is the index of run r's sample, ``circuit``
        the `CircuitUpdate` of the runs' circuit learners (None without any)."""
        self.recorder.snapshot()
        pre_activations, deltas = {}, {}
        if self.closed:
            rows = [(self.data[r], samples[r]) for r, _ in self.closed]
            own = train_step_each([self.learners[r][k] for r, k in self.closed],
                                  [X[i:i + 1] for (X, _), i in rows],
                                  [Y[i:i + 1] for (_, Y), i in rows], self.update)
            for j, member in enumerate(self.closed):
                pre_activations[member], deltas[member] = own.forward[j].a, own.deltas[j]
        if self.circuit:
            self._replay(samples, circuit, pre_activations, deltas)
        self.recorder.record(it, [pre_activations[member] for member in self.recorder.members],
                             [deltas[member] for member in self.recorder.members])
        for r, errors in enumerate(self.errors):
            errors.append(self._errors(r))

    def _replay(self, samples, circuit, pre_activations, deltas):
        """Repeat the circuit learners' update from the errors ``circuit`` (a
        `CircuitUpdate`) brings, check them against the simulation's, take their new
        feedback; their forward passes and errors go to ``pre_activations`` and
        ``deltas`` (by (run, index))."""
        learners = [self.learners[r][k] for r, k in self.circuit]
        rows = [(self.data[r], samples[r]) for r, _ in self.circuit]
        repeated = replay_step(learners, [X[i:i + 1] for (X, _), i in rows],
                               [Y[i:i + 1] for (_, Y), i in rows],
                               [[h[j] for h in circuit.hidden] for j in range(len(learners))],
                               self.update)
        sums = np.array([_parameter_sum(learner) for learner in learners])
        if not np.array_equal(sums, circuit.checksums):
            wrong = [learners[j].name for j in np.flatnonzero(sums != circuit.checksums)]
            raise RuntimeError(f"the closed-form side's copies of {', '.join(wrong)} no longer "
                               "match the simulation's learners (their repeated update "
                               "differs); rerun with --set parallel=false")
        for j, member in enumerate(self.circuit):
            learners[j].feedback = circuit.feedback.get(j, learners[j].feedback)
            pre_activations[member], deltas[member] = repeated.forward[j].a, repeated.deltas[j]

    def results(self):
        """Per run: its errors (models, iterations + 1) and curves (`CurveRecorder`)."""
        return [(np.array(errors).T, self.recorder.run_values(r))
                for r, errors in enumerate(self.errors)]


# One run's arguments of `train_regression` after its name: config, models, the data
# X and Y, the initial network and the generator (what a regression's ``prepare`` gives).
RegressionRun = tuple[dict[str, Any], Sequence[ModelSpec], FloatArray, FloatArray,
                      FeedforwardNetwork, np.random.Generator]


def protocol_run(name: str, prepare: Callable[[dict[str, Any]], RegressionRun],
                 ) -> Callable[..., dict[str, Any]]:
    """The ``run(config, progress=True, stop=None)`` of a regression protocol: train
    every model on the data ``prepare(config)`` gives (`train_regression`).

    Parameters
    ----------
    name : str
        Label of the progress bar.
    prepare : callable
        ``prepare(config)`` -> the arguments of `train_regression` after ``name``.
    """
    def run(config: dict[str, Any], progress: bool = True,
            stop: StopRequests | None = None) -> dict[str, Any]:
        return train_regression(name, *prepare(config), progress, stop)

    return run


def train_regression(name, config, specs, X, Y, base, rng, progress, stop=None):
    """Train every model online on (X, Y) and collect errors and curves.

    The circuit learners (DI, SLDI) train in this process, one joint Brian2
    run per update; the closed-form learners, the curves and the full-data
    error of every model (more arithmetic than the simulation) run in a
    companion process on the second core (`ClosedFormSide`), fed with the
    circuit learners' settled errors after every update. ``parallel=False``
    runs the same code inline; both give the same numbers.

    Parameters
    ----------
    name : str
        Label of the progress bar.
    config : dict
        Needs ``lr``, ``clip_hidden``, ``fixed_norm``, ``models``, ``steps``, ``dt``,
        ``rinit`` (options of `dinv.models.stabilise.stabilise_feedback` for R-Init and
        re-stabilisation), ``repair`` (options that replace those of ``rinit`` for
        re-stabilisation, e.g. ``solver``, ``min_iters``) and ``restabilise`` (repair
        DI/SLDI feedback whenever a circuit's abscissa turns positive); ``iterations``
        (None: one pass over the data set) limits the updates; ``parallel`` runs the
        closed-form side in a companion process; ``error_dtype`` is the precision of the
        data-set error's forward pass ('float32' halves its cost; the sums are
        float64); in 'float64' linear networks without biases take the exact
        closed form instead (`dinv.experiments.errors.error_measure`).
    specs : sequence of ModelSpec
        The experiment's models (``config['models']`` selects a subset).
        Models with a spiking ``population`` train after the others, each in
        a pass of its own over the same samples (`_spiking_passes`; settings
        ``spiking_*``, `dinv.experiments.models_spec.SPIKING_SETTINGS`), so
        the other models' numbers do not depend on them.
    X, Y : ndarray
        Inputs (N, d_0) and targets (N, d_L).
    base : FeedforwardNetwork
        Initial network shared by all models.
    rng : numpy.random.Generator
    progress : bool
        Show a progress bar.
    stop : StopRequests or None
        Looked at before every update: on a request the pass ends there.

    Returns
    -------
    dict
        ``models``, ``rules``, ``error`` (before training and after every
        update), ``nmse``, ``final``, ``curves`` (key -> model -> (layers,
        iterations)), ``updates`` (the x axes of ``error`` and ``curves``),
        ``restabilised`` (events), ``median_angle_ndi``
        (model -> per layer) and ``settling`` (per circuit model, see
        `dinv.experiments.settle_stats.SettleStats.summary`); after a stop
        request the errors and curves of the updates done and ``interrupted``
        (`StopRequests.report`).
    """
    specs = select_models(specs, config["models"])
    rate = [spec for spec in specs if spec.population is None]
    spiking = [spec for spec in specs if spec.population is not None]
    # The models are selected here: each pass below trains exactly the ones it is given
    # (named, optional ones included).
    if not spiking:
        return train_regressions(name, [(_named(config, specs), specs, X, Y, base, rng)],
                                 progress, stop)[0]
    # Every pass draws the same order of samples: copies of the generator as it is now.
    state = rng.bit_generator.state
    results = None
    if rate:
        results = train_regressions(name, [(_named(config, rate), rate, X, Y, base, rng)],
                                    progress, stop)[0]
        if "interrupted" in results:
            return results
    return _spiking_passes(name, config, spiking, X, Y, base, state, progress, stop, results)


def _named(config, specs):
    """``config`` whose ``models`` name exactly ``specs``."""
    return {**config, "models": [spec.name for spec in specs]}


def _copy_generator(state):
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def _spiking_passes(name, config, specs, X, Y, base, state, progress, stop, results):
    """Train each spiking DI model in a pass of its own (its own circuit and timing).

    Each pass sees the samples in the same order as the other models and
    trains on the first ``spiking_updates`` of them (None: all); its errors
    are normalised by the largest error of the rate models (so theirs stay
    as they were) and its ``final`` adds the median angle to NDI, the
    updates and the seconds per update. Returns ``results`` with them added.
    """
    limit = config.get("spiking_updates", SPIKING_SETTINGS["spiking_updates"])
    iterations = config.get("iterations")
    if limit is not None:
        limit = check_count("spiking_updates", limit)
        iterations = limit if iterations is None else min(limit, iterations)
    peak = None if results is None else max(float(np.max(v)) for v in results["error"].values())
    for spec in specs:
        if stop_requested(stop):
            break
        circuit = spiking_circuit(config, spec.population)
        own = {**_named(config, [spec]), "iterations": iterations}
        start = time.perf_counter()
        part = train_regressions(f"{name}, {spec.name}",
                                 [(own, [spec], X, Y, base, _copy_generator(state),
                                   {spec.name: circuit})], progress, stop)[0]
        seconds = time.perf_counter() - start
        updates = len(part["error"][spec.name]) - 1
        error = np.asarray(part["error"][spec.name])
        scale = float(np.max(error)) if peak is None else peak
        part["nmse"] = {spec.name: error / scale}
        angle = part["median_angle_ndi"][spec.name]
        part["final"][spec.name] = {
            "error_ratio": float(error[-1] / error[0]),
            "nmse": float(error[-1] / scale),
            "angle_ndi_deg": angle[0] if len(angle) == 1 else float(np.nanmedian(
                [a for a in angle if a is not None])),
            "updates": updates,
            "seconds_per_update": seconds / max(updates, 1),
        }
        part["spiking"] = {spec.name: {
            "population": spec.population, "updates": updates,
            "seconds": seconds, "seconds_per_update": seconds / max(updates, 1),
            "neurons_per_dim": config.get("spiking_neurons_per_dim", SPIKING_SETTINGS[
                "spiking_neurons_per_dim"])[spec.population],
            "steps": circuit.steps, "dt": circuit.dt,
            "tau_system_ms": float(circuit.tau_system / ms),
            "tau_controller_ms": float(circuit.tau_controller / ms),
            "alpha": spec.alpha}}
        results = part if results is None else _merge(results, part)
        if "interrupted" in part:
            results["interrupted"] = part["interrupted"]
            break
    return results


def _merge(results, part):
    """``results`` with the models of ``part`` (another pass) added."""
    merged = dict(results)
    merged["models"] = results["models"] + part["models"]
    for key in ("rules", "error", "nmse", "final", "median_angle_ndi", "settling", "spiking"):
        merged[key] = {**results.get(key, {}), **part.get(key, {})}
    merged["curves"] = {key: {**results["curves"][key], **part["curves"][key]}
                        for key in results["curves"]}
    merged["restabilised"] = results["restabilised"] + part["restabilised"]
    return merged


class RegressionCell:
    """The training state of one regression run (one config) in a joint pass.

    Built from ``(config, specs, X, Y, base, rng)`` as `train_regression`
    takes them, and optionally ``circuits``, a dict of model name to that
    model's own circuit settings (`dinv.models.training.Learner.circuit`;
    spiking DI): the models' learners, the sample order, the update, the
    settle statistics, the options (``repair``) and events of the
    re-stabilisations; its part of the closed-form side (`ClosedFormSide`,
    shared by the cells of a pass) is `side_run`.
    """

    def __init__(self, config, specs, X, Y, base, rng, circuits=None):
        self.config = config
        self.specs = select_models(specs, config["models"])
        if config["error_dtype"] not in ("float32", "float64"):
            raise InputError(f"error_dtype must be 'float32' or 'float64', "
                             f"got {config['error_dtype']!r}")
        if X.shape[0] < 2:
            raise InputError(f"samples must be at least 2 (the first sample only measures), "
                             f"got {X.shape[0]}")
        order = rng.permutation(X.shape[0])[1:]
        if config.get("iterations") is not None:
            order = order[:check_count("iterations", config["iterations"])]
        self.order, self.X, self.Y = order, X, Y
        self.update = UpdateConfig(
            lr=config["lr"],
            fixed_norm=config["fixed_norm"],
            clip_hidden=config["clip_hidden"],
            circuit=circuit_options(config),
        )
        shared: SharedFeedback = {}
        self.rinit = rinit_options(config, self.update.circuit, base.depth)
        circuits = circuits or {}
        margin = config.get("spiking_radius_margin", SPIKING_SETTINGS["spiking_radius_margin"])
        self.learners = []
        for spec in self.specs:
            rule, own = own_settings(config, spec)
            self.learners.append(spec.learner(base, config["seed"], self.rinit, shared,
                                              circuits.get(spec.name, own), margin, rule))
        self.circuit = [k for k, lrn in enumerate(self.learners) if lrn.rule.circuit]
        self.names = [self.learners[k].name for k in self.circuit]
        self.stats = SettleStats(self.update.circuit.settle_tol)
        self.repair = repair_options(config, self.rinit)
        self.events = []

    def side_run(self):
        """This cell's run on the closed-form side: ``(learners, X, Y, error_dtype)``."""
        return self.learners, self.X, self.Y, self.config["error_dtype"]

    def results(self, done, stop, errors, values):
        """The results dict of `train_regression` after ``done`` updates, from this
        cell's ``errors`` and curve ``values`` on the closed-form side."""
        size = self.order.size
        if done < size:
            values = {key: value[..., :done] for key, value in values.items()}
        results = {**_regression_results(self.specs, self.learners, errors, values,
                                          self.events),
                   "settling": self.stats.summary()}
        if done < size:
            results["interrupted"] = stop.report(done, size, "updates")
        return results


def train_regressions(name, cells, progress, stop=None):
    """`train_regression` of several runs at once: one joint Brian2 run per update.

    Every cell (one config with its data and initial network, the arguments
    of `train_regression`) keeps its own learners, sample order and results;
    the circuit learners (DI, SLDI) of all cells take each update together
    (`train_step_each`), so their circuits settle as one stack, and one
    closed-form side serves all cells (`ClosedFormSide`: in one companion
    process when every cell's ``config['parallel']`` asks for it, else
    inline), fed one message per update; every cell gets the numbers it would
    get alone. The cells must share the number of updates and the update and
    circuit options (see `dinv.experiments.stacking.can_stack`).

    Parameters
    ----------
    name : str
        Label of the progress bar.
    cells : sequence of tuple
        ``(config, specs, X, Y, base, rng)`` per run, optionally with a dict of
        model name to own circuit settings (see `RegressionCell`).
    progress : bool
    stop : StopRequests or None

    Returns
    -------
    list of dict
        The results of `train_regression` per cell.
    """
    built = [RegressionCell(*cell) for cell in cells]
    if any(cell.order.size != built[0].order.size or cell.update != built[0].update
           for cell in built):
        raise InputError("runs trained together need the same number of updates and the same "
                         "update and circuit options")
    side = None
    try:
        side = Companion(ClosedFormSide, ([cell.side_run() for cell in built], built[0].update,
                                          built[0].order.size),
                         parallel=all(cell.config.get("parallel", True) for cell in built),
                         batch=SIDE_BATCH)
        done = _online_pass(name, built, side, progress, stop)
        return [cell.results(done, stop, errors, values)
                for cell, (errors, values) in zip(built, side.finish("results"))]
    except BaseException:
        if side is not None:  # a failure or a second stop signal: leave at once
            side.kill()
        raise
    finally:
        if side is not None:
            side.close()


def _online_pass(name, cells, side, progress, stop=None):
    """One online update per sample of each cell's order: the circuit learners of
    every cell in one `train_step_each`, the rest on the closed-form ``side`` (a
    `Companion` of `ClosedFormSide`). Returns the number of updates done (fewer
    after a stop request)."""
    size, update = cells[0].order.size, cells[0].update
    members = [(cell, k) for cell in cells for k in cell.circuit]
    learners = [cell.learners[k] for cell, k in members]
    done = size
    with Progress(total=size, desc=name, unit="update", disable=not progress) as bar:
        for it in range(size):
            if stop_requested(stop):  # between updates: never inside a settle
                done = it
                break
            circuit = None
            if learners:
                xs = [cell.X[cell.order[it]:cell.order[it] + 1] for cell, _ in members]
                ts = [cell.Y[cell.order[it]:cell.order[it] + 1] for cell, _ in members]
                step = train_step_each(learners, xs, ts, update)
                _count_settles(cells, step)
                circuit = CircuitUpdate.of(learners, step, _restabilise(members, it))
            side.call("step", it, [cell.order[it] for cell in cells], circuit)
            bar.update(1)
    return done


def _count_settles(cells, step):
    """Add the settles of ``step`` (the `Step` of every cell's circuit learners, cell
    after cell) to each cell's statistics."""
    first = 0
    for cell in cells:
        count = len(cell.circuit)
        if count:
            cell.stats.add_step(cell.names, step.part(first, first + count))
        first += count


def _restabilise(members, it):
    """Re-stabilise the circuit learners ``members`` ((cell, index) pairs) of the cells
    that ask for it after update ``it``: one check of all of them (`unstable_feedback`;
    the cells of a pass share their circuits, hence their controllers), each repair
    with its cell's options, its event recorded in its cell. Returns the positions in
    ``members`` of the learners whose feedback changed."""
    checked = [j for j, (cell, _) in enumerate(members) if cell.config["restabilise"]]
    if not checked:
        return []
    first = members[checked[0]][0]
    found = unstable_feedback([members[j][0].learners[members[j][1]] for j in checked],
                              first.repair.get("controllers"))
    repaired = []
    for index, layer, before in found:
        cell, k = members[checked[index]]
        cell.events.append(repair_feedback(cell.learners[k], layer, before, it, **cell.repair))
        repaired.append(checked[index])
    return repaired


def repair_options(config, rinit):
    """Options of the re-stabilisations during training (`repair_feedback`): ``rinit``
    (`rinit_options`) updated by ``config['repair']``."""
    return {**rinit, **(config.get("repair") or {})}


def _regression_results(specs, learners, errors, values, events):
    """The results dict of `train_regression` from errors, curves and events."""
    names = [s.name for s in specs]
    normalised = nmse(dict(zip(names, errors)))
    members = [k for k, lrn in enumerate(learners) if lrn.rule.inverts]
    curves = {key: {names[k]: value[row] for row, k in enumerate(members)}
              for key, value in values.items()}
    return {
        "models": names,
        "rules": {s.name: s.rule for s in specs},
        "error": dict(zip(names, errors)),
        "nmse": normalised,
        "final": {
            name_: {"error_ratio": float(err[-1] / err[0]), "nmse": float(normalised[name_][-1])}
            for name_, err in zip(names, errors)
        },
        "curves": curves,
        # The x axes: error[i] after updates["error"][i] updates (0: before training),
        # curves[..][j] during update updates["curves"][j] (user guide: The results file).
        "updates": {"error": list(range(errors.shape[1])),
                    "curves": list(range(1, values["angle_ndi"].shape[-1] + 1))},
        "restabilised": events,
        "median_angle_ndi": {
            model: [float(np.nanmedian(layer)) if np.any(np.isfinite(layer)) else None
                    for layer in value]
            for model, value in curves["angle_ndi"].items()
        },
    }
