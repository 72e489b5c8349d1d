"""Runs that train together: stacked cells of a sweep.

The circuits settle stacks of independent problems (n models in one Brian2
run, `dinv.circuits.chains.settle_chains`). Runs of an experiment whose
configs differ only in what the circuits stack (the seed, and with it the
data, the initial weights and the random feedback; the models and with them
the leaks; the R-Init and re-stabilisation options; the precision of the
error measure) can therefore train side by side in one process: every update
settles the DI and SLDI circuits of all of them in one Brian2 run, and each
run gets exactly the numbers it gets alone (tested bit for bit).

``can_stack(name, configs)`` groups configs that can train together;
``run_stacked(name, configs)`` runs one such group and returns, per config,
what ``Experiment.run(config, progress, stop)`` returns for it alone. The runs
share one closed-form side (their closed-form models and curves computed as
one stack, `dinv.experiments.regression.ClosedFormSide`; one companion
process for the group when every config's ``parallel`` asks for it, else
inline); each keeps its own error measure and its own results.

A failure of one run (a circuit that diverges, a bad setting) ends the whole
group with that error: run its configs alone to find which.
"""

from dinv.errors import InputError
from dinv.experiments import linear_regression, nonlinear_regression
from dinv.experiments.models_spec import select_models
from dinv.experiments.regression import train_regressions

STACKERS = {
    "linear-regression": linear_regression,
    "nonlinear-regression": nonlinear_regression,
}
"""Experiments whose runs can train together, by name: modules with ``prepare``
(config -> arguments of `train_regression`) and ``NAME``."""

FREE = frozenset({"seed", "models", "rinit", "repair", "init_scale", "teacher_scale",
                  "restabilise", "error_dtype", "parallel", "quick"})
"""Settings in which stacked runs may differ: they change what is stacked (data,
initial weights, feedback, models and their leaks), never the shared circuit or
the update. Every other setting must be equal within a group."""


def _shared(config):
    """The part of a config that runs trained together must share (a hashable key)."""
    return tuple(sorted((key, repr(value)) for key, value in config.items()
                        if key not in FREE))


def _stackable(module, config):
    """Whether this config of the experiment ``module`` can train beside others at all."""
    # A 'raise' on an unsettled settle, or a run that stops once the circuit has
    # settled (stop_tol: every problem of the stack), would tie runs together;
    # spiking DI models train in passes of their own (train_regression).
    spiking = any(spec.population is not None
                  for spec in select_models(module.MODELS, config.get("models")))
    return config.get("on_unsettled", "ignore") != "raise" and \
        config.get("stop_tol") is None and not spiking


def can_stack(experiment_name, configs):
    """Group configs whose runs can train together in one process.

    Parameters
    ----------
    experiment_name : str
        A registered experiment (`dinv list`).
    configs : sequence of dict
        Full configs (`dinv.experiments.registry.make_config`).

    Returns
    -------
    list of list of int
        Indices into ``configs``; every index in exactly one group, groups in
        order of their first index, indices ascending. Configs of experiments
        that do not stack, and configs that cannot share a run, are alone in
        their group.
    """
    if experiment_name not in STACKERS:
        return [[k] for k in range(len(configs))]
    groups: list[list[int]] = []
    by_key: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for k, config in enumerate(configs):
        if not _stackable(STACKERS[experiment_name], config):
            groups.append([k])
            continue
        key = _shared(config)
        if key in by_key:
            by_key[key].append(k)
        else:
            by_key[key] = [k]
            groups.append(by_key[key])
    return groups


def run_stacked(experiment_name, configs, progress=True, stop=None):
    """Train the runs of ``configs`` together; their results, one dict per config.

    Parameters
    ----------
    experiment_name : str
    configs : sequence of dict
        One group of `can_stack` (a single config runs alone, as
        ``Experiment.run`` does).
    progress : bool
        One progress bar for the group.
    stop : StopRequests or None
        Looked at between updates; after a request every run's results hold
        the updates done and ``interrupted``.

    Returns
    -------
    list of dict
        Per config, exactly what ``Experiment.run(config, progress, stop)``
        returns for it alone (same keys, same numbers).

    Raises
    ------
    InputError
        When the configs cannot train together (see `can_stack`).
    """
    configs = list(configs)
    if not configs:
        return []
    if len(configs) == 1 or experiment_name not in STACKERS:
        if len(configs) > 1:
            raise InputError(f"runs of {experiment_name!r} do not train together; "
                             f"stackable experiments: {', '.join(STACKERS)}")
        from dinv.experiments.registry import get_experiment
        return [get_experiment(experiment_name).run(configs[0], progress=progress,
                                                    stop=stop)]
    if len(can_stack(experiment_name, configs)) != 1:
        raise InputError("these configs cannot train together: they differ in settings "
                         f"other than {', '.join(sorted(FREE))}, or one has "
                         "on_unsettled='raise', stop_tol or spiking models (see can_stack)")
    module = STACKERS[experiment_name]
    label = f"{module.NAME} x{len(configs)}"
    return train_regressions(label, [module.prepare(config) for config in configs],
                             progress, stop)
