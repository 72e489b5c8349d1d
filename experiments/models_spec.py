"""Model specifications shared by the experiments: name, rule, leak, feedback."""

import dataclasses
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from brian2 import ms

from dinv.circuits import PopulationModel, SettleOptions
from dinv.circuits.populations import get_population_model, pid_controller, pid_gains
from dinv.errors import InputError
from dinv.experiments.settings import PID_DEFAULTS
from dinv.hints import FloatArray
from dinv.models.initialisation import init_direct_feedback, init_feedback, init_loop_feedback
from dinv.models.network import FeedforwardNetwork
from dinv.models.rules import Rule, get_rule
from dinv.models.stabilise import (
    stable_random_direct_feedback,
    stable_random_feedback,
    tau_ratio_of,
)
from dinv.models.training import Learner


def circuit_options(config, **options):
    """The `SettleOptions` of an experiment's circuits, from its settings.

    Uses ``steps``, ``dt``, ``system`` and ``controller`` (population models
    by registered name, the controller with the gains of `controller_model`),
    ``on_unsettled`` ('ignore': settles that fall short are counted in the
    results, not reported one by one; 'warn'; 'raise': stop at the first)
    and ``settle_tol``; a checkpoint of an older run without them gets the
    rate models, 'ignore' and 1e-3. ``options`` adds the rest (e.g.
    ``stop_tol``, ``record_every``).
    """
    return SettleOptions(steps=config["steps"], dt=config["dt"],
                         system=config.get("system", "rate-system"),
                         controller=controller_model(config),
                         on_unsettled=config.get("on_unsettled", "ignore"),
                         settle_tol=config.get("settle_tol", 1e-3), **options)


def controller_model(config):
    """The controller an experiment's settings name, with its PID gains.

    ``controller`` names a registered model; for a PID controller (e.g.
    ``pid-controller``) the settings ``pid_kp``, ``pid_kd`` and
    ``pid_filter_ratio`` (scalars; `PID_DEFAULTS`) give its gains
    (`dinv.circuits.pid_controller`). Gain matrices are a library feature:
    pass ``controller=pid_controller(K_p, K_d)`` in Python.

    Returns
    -------
    PopulationModel or str
        The named model itself when the gains are left at their defaults.

    Raises
    ------
    InputError
        For gains that are not finite numbers, a filter ratio that is not
        positive, or gains set for a controller that is not a PID controller.
    """
    name = config.get("controller", "rate-controller")
    gains = {key: config.get(key, default) for key, default in PID_DEFAULTS.items()}
    for key, value in gains.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not np.isfinite(value):
            raise InputError(f"setting {key} must be a finite number (a scalar gain; gain "
                             f"matrices: pid_controller in Python), got {value!r}")
    if not gains["pid_filter_ratio"] > 0:
        raise InputError(f"setting pid_filter_ratio (tau_d / tau_controller) must be "
                         f"positive, got {gains['pid_filter_ratio']!r}")
    if gains == PID_DEFAULTS:
        return name
    if pid_gains(get_population_model(name, "controller")) is None:
        changed = ", ".join(key for key in PID_DEFAULTS if gains[key] != PID_DEFAULTS[key])
        raise InputError(f"{changed} set, but controller={name!r} is not a PID controller; "
                         "add --set controller=pid-controller")
    return pid_controller(gains["pid_kp"], gains["pid_kd"], gains["pid_filter_ratio"])


SPIKING_SETTINGS = {
    # Neurons per represented dimension of each spiking model.
    "spiking_neurons_per_dim": {"scn": 32, "lif": 64},
    # Time constants (ms): a fast controller, so that the slow mode of a circuit with
    # small weights, rate alpha / (tau_c + alpha tau_s), is 20 ms at alpha = 0.1.
    "spiking_tau_system_ms": 10.0,
    "spiking_tau_controller_ms": 1.0,
    # Euler step in units of tau_controller (the fastest): 0.04 ms for scn (its
    # tau_readout / 500, spiking_scn_steps_per_readout), 0.1 ms for lif (tau_ref / 20).
    "spiking_dt": {"scn": 0.04, "lif": 0.1},
    "spiking_scn_steps_per_readout": 500.0,
    # Steps per settle: 100 ms (five times the slowest mode) for both.
    "spiking_steps": {"scn": 2500, "lif": 1000},
    # Radii: this times the largest component of each sample's closed-form state.
    "spiking_radius_margin": 1.5,
    # Updates the spiking models train on (the first ones of the pass; None: all).
    "spiking_updates": None,
}
"""Settings of the spiking DI models of a regression (`spiking_circuit`) and their
defaults."""

SPIKING_DESCRIPTIONS = {
    "spiking_neurons_per_dim": "neurons per represented dimension of the spiking DI models, "
                               "by population ('scn', 'lif')",
    "spiking_tau_system_ms": "time constant (ms) of the spiking DI models' systems",
    "spiking_tau_controller_ms": "time constant (ms) of the spiking DI models' controllers",
    "spiking_dt": "Euler step of the spiking DI models by population, in units of the "
                  "faster time constant",
    "spiking_scn_steps_per_readout": "steps per scn readout time constant (the scn step "
                                     "limit)",
    "spiking_steps": "Euler steps per settle of the spiking DI models, by population",
    "spiking_radius_margin": "radii of the spiking populations: this times the largest "
                             "component of each sample's closed-form state",
    "spiking_updates": "updates the spiking DI models train on, the first of the pass "
                       "(null: all)",
}
"""One line per spiking setting (``--help`` of the experiments that have them)."""


def spiking_circuit(config, population):
    """The `SettleOptions` of a spiking DI model (``population`` 'scn' or 'lif').

    Both populations of every layer pair are ``population`` with
    ``spiking_neurons_per_dim[population]`` neurons per dimension, time
    constants ``spiking_tau_system_ms`` and ``spiking_tau_controller_ms``,
    ``spiking_dt[population]`` (units of the faster tau) and
    ``spiking_steps[population]`` steps per settle; ``on_unsettled`` and
    ``settle_tol`` as the experiment's. An ``scn`` population allows steps of
    tau_readout / ``spiking_scn_steps_per_readout`` (500: 0.04 ms, twice the
    default's; as accurate on the regression's layer pair, at half the cost).
    """
    from dinv.circuits import lif_population, scn_population
    from dinv.circuits.scn import SCNEnsemble

    makers: dict[str, Callable[[str, int], PopulationModel]] = {
        "scn": scn_population, "lif": lif_population}
    if population not in makers:
        raise InputError(f"population must be one of {sorted(makers)}, got {population!r}")
    settings = {key: config.get(key, default) for key, default in SPIKING_SETTINGS.items()}
    for key in ("spiking_neurons_per_dim", "spiking_dt", "spiking_steps"):
        if not isinstance(settings[key], dict) or population not in settings[key]:
            raise InputError(f"setting {key} must be a JSON object with a value for "
                             f"{population!r}, got {settings[key]!r}")
    per_dim = settings["spiking_neurons_per_dim"][population]
    models = [makers[population](kind, per_dim) for kind in ("system", "controller")]
    if population == "scn":  # a coarser step than scn_population's default allows
        ratio = settings["spiking_scn_steps_per_readout"]
        models = [dataclasses.replace(m, ensemble=dataclasses.replace(
            cast(SCNEnsemble, m.ensemble),  # what scn_population builds
            steps_per_readout=float(ratio))) for m in models]
    return SettleOptions(steps=settings["spiking_steps"][population],
                         dt=settings["spiking_dt"][population],
                         tau_system=settings["spiking_tau_system_ms"] * ms,
                         tau_controller=settings["spiking_tau_controller_ms"] * ms,
                         system=models[0], controller=models[1],
                         on_unsettled=config.get("on_unsettled", "ignore"),
                         settle_tol=config.get("settle_tol", 1e-3))


DIRECT_SETTINGS = {
    # Meulemans et al. (2021), the published toy configuration of Deep Feedback Control
    # (configs/toy_experiments/configs_fig3/config_dfc.py of their release):
    # k_p 1.5, time_constant_ratio tau_v / tau_u 0.2, dt_di 0.005 tau_u (0.025 tau_v),
    # tmax_di 1000 steps, target_stepsize 0.05.
    "dfc_kp": 1.5,
    "dfc_tau_ratio": 0.2,
    "dfc_dt": 0.025,
    "dfc_steps": 1000,
    "target_step": 0.05,
}
"""Settings of the models of direct feedback control (`direct_circuit`) and of the
rules of targets (``target_step``), and their defaults."""

DIRECT_DESCRIPTIONS = {
    "dfc_kp": "DFC: proportional gain k_p of the output controller (Meulemans et al. 2021: 1.5)",
    "dfc_tau_ratio": "DFC: tau_system / tau_controller (Meulemans et al. 2021: 0.2)",
    "dfc_dt": "DFC: Euler step in units of tau_system (Meulemans et al. 2021: 0.005 tau_u)",
    "dfc_steps": "DFC: Euler steps of a settle (Meulemans et al. 2021: 1000)",
    "target_step": "DI of targets and DFC: the output target is a_L - target_step * delta_L "
                   "(Meulemans et al. 2021: 0.05)",
}
"""One line per setting of `DIRECT_SETTINGS`."""


def _setting(config, key):
    return config.get(key, DIRECT_SETTINGS[key])


def direct_circuit(config: dict) -> SettleOptions:
    """The `SettleOptions` of a DFC model: ``dfc_steps`` of ``dfc_dt`` (units of
    tau_system), tau_controller = tau_system / ``dfc_tau_ratio``, the experiment's
    system model and a rate controller (which the circuit gives the rule's k_p);
    ``on_unsettled`` and ``settle_tol`` as the experiment's."""
    tau_system = 10 * ms
    return SettleOptions(steps=_setting(config, "dfc_steps"), dt=_setting(config, "dfc_dt"),
                         tau_system=tau_system,
                         tau_controller=tau_system / _setting(config, "dfc_tau_ratio"),
                         system=config.get("system", "rate-system"),
                         on_unsettled=config.get("on_unsettled", "ignore"),
                         settle_tol=config.get("settle_tol", 1e-3))


def own_settings(config: dict, spec: "ModelSpec") -> tuple[Rule, SettleOptions | None]:
    """The rule and circuit of a model that has settings of its own, from the experiment's.

    Rules of targets get ``target_step``; DFC and NDFC get ``dfc_kp`` and
    their own circuit (`direct_circuit`: NDFC, which has none, keeps its time
    constants for its stability checks); spiking DI its spiking circuit
    (`spiking_circuit`).

    Returns
    -------
    rule : Rule
    circuit : SettleOptions or None
    """
    rule = get_rule(spec.rule)
    changes = {}
    if rule.target_step is not None:
        changes["target_step"] = _setting(config, "target_step")
    if rule.kp is not None:
        changes["kp"] = _setting(config, "dfc_kp")
    rule = rule.with_settings(**changes) if changes else rule
    if spec.population is not None:
        if rule.feedback == "direct" and rule.kp:
            raise InputError(f"model {spec.name!r}: a spiking controller has no proportional "
                             "part; set dfc_kp to 0 for spiking DFC")
        return rule, spiking_circuit(config, spec.population)
    if rule.feedback == "direct":
        return rule, direct_circuit(config)
    return rule, None


def pair_controllers(options, pairs):
    """Per layer pair, the PID gains of its controller in ``options``, for R-Init.

    Parameters
    ----------
    options : SettleOptions
        The circuits' settings: one controller model (and time constants) for
        every layer, or one per layer.
    pairs : int
        Layer pairs (W_2, B_2) .. (W_L, B_L).

    Returns
    -------
    list of (dict or None)
        `dinv.circuits.populations.pid_gains` with ``tau_ratio``
        (tau_system / tau_controller of the pair), or None for a controller
        that is not a PID controller (as `dinv.models.stabilise.stabilise_pair`
        takes them).
    """
    def per_pair(value, j):
        return value[j] if isinstance(value, tuple) else value

    controllers = []
    for j in range(pairs):
        gains = pid_gains(per_pair(options.controller, j))
        if gains is not None:
            gains["tau_ratio"] = float(per_pair(options.tau_system, j)
                                       / per_pair(options.tau_controller, j))
        controllers.append(gains)
    return controllers


def rinit_options(config, circuit, depth):
    """``config['rinit']`` (the options of R-Init and re-stabilisation) with the
    per-pair ``controllers`` of ``circuit`` (the experiment's `SettleOptions`) for a
    network of ``depth`` weight layers."""
    return {**config["rinit"], "controllers": pair_controllers(circuit, depth - 1)}


# The R-Init feedback of each alpha, shared by the models of a run (`ModelSpec.learner`).
SharedFeedback = dict[tuple[Any, ...], list[FloatArray]]


@dataclass(frozen=True)
class ModelSpec:
    """One model of an experiment.

    Attributes
    ----------
    name : str
        Label in results and figures.
    rule : str
        Backward rule (a name of `dinv.models.rules.RULES`).
    alpha : float
        Controller leak (NDI, DI, SLDI, DI of targets, DFC).
    feedback : str or None
        Feedback init ('transpose' = Tr-Init, for DFC Q_l = J_l^T; 'random' =
        FA's U(-0.5, 0.5); 'stable-random' = R-Init: random, then stabilised
        for this alpha).
    architecture : str
        DI chain, 'sequential' (the paper's) or 'repeat'.
    controller : str
        DI controller, 'linear' (Eq. 17, the paper's) or 'nonlinear' (Eq. 14).
    population : str or None
        DI with spiking populations: the registered spiking model ('scn' or
        'lif') of every system and controller, with the experiment's
        ``spiking_*`` settings (`spiking_circuit`); None: the experiment's
        populations (``system``, ``controller``).
    optional : bool
        Runs only when named in the experiment's ``models`` (models beyond
        the paper's figure, e.g. DI of targets and DFC).
    """

    name: str
    rule: str
    alpha: float | tuple[float, ...] = 0.0
    feedback: str | None = None
    architecture: str = "sequential"
    controller: str = "linear"
    population: str | None = None
    optional: bool = False

    def learner(self, net: FeedforwardNetwork, seed: int, stabilise: dict[str, Any] | None = None,
                shared: SharedFeedback | None = None,
                circuit: SettleOptions | None = None, margin: float = 1.5,
                rule: Rule | None = None) -> Learner:
        """A `Learner` training a copy of ``net`` with this model's rule (or ``rule``, the
        same rule with the experiment's settings, `own_settings`).

        Random feedback is drawn from a generator seeded by ``seed`` and the
        model's name (R-Init: by its alpha), so a model starts the same
        whichever other models run beside it. ``stabilise`` holds the options
        of `dinv.models.stabilise.stable_random_feedback` for R-Init
        ('stable-random'; with ``controllers``, see `rinit_options`);
        ``shared`` (a dict) keeps the R-Init feedback of each alpha, so NDI, DI
        and SLDI models with R-Init start from the same stabilised B (as in the
        paper). ``circuit`` (a `SettleOptions` or None) and ``margin`` are the
        learner's own circuit settings and radius margin (`Learner.circuit`).
        DFC feedback: 'transpose' is Q_l = J_l^T at the origin, 'stable-random'
        random Q stabilised for the learner's circuit (`stable_random_direct_feedback`).
        """
        rule = get_rule(self.rule if rule is None else rule)
        net = net.copy()
        feedback = []
        if rule.feedback:
            if self.feedback is None:
                raise InputError(f"model {self.name!r} ({self.rule}) needs a feedback init")
            if rule.feedback == "direct":
                feedback = self._direct_feedback(rule, net, seed, stabilise, shared, circuit)
            elif self.feedback == "stable-random":
                shared = {} if shared is None else shared
                key = ("stable-random", self.alpha)
                if key not in shared:
                    shared[key] = stable_random_feedback(
                        net.weights, self.alpha, _generator(seed, f"R-Init {self.alpha!r}"),
                        **(stabilise or {}))
                pairs = [B.copy() for B in shared[key]]
                if rule.feedback == "loop":
                    loop = pairs[0]
                    for B in pairs[1:]:
                        loop = loop @ B
                    # Each B_l stands in for -W_l^T, the loop for -(W_L ... W_2)^T.
                    feedback = [(-1.0) ** net.depth * loop]
                else:
                    feedback = pairs
            elif rule.feedback == "loop":
                feedback = [init_loop_feedback(net.weights, self.feedback,
                                               _generator(seed, self.name))]
            else:
                rng = _generator(seed, self.name)
                feedback = [init_feedback(W, self.feedback, rng) for W in net.weights[1:]]
        return Learner(self.name, rule, net, feedback, self.alpha, self.architecture,
                       self.controller, circuit, margin)

    def _direct_feedback(self, rule: Rule, net: FeedforwardNetwork, seed: int,
                         stabilise: dict[str, Any] | None, shared: SharedFeedback | None,
                         circuit: SettleOptions | None) -> list[FloatArray]:
        """Q_1 .. Q_{L-1} of a DFC model (R-Init shared by the DFC models of one alpha)."""
        if self.feedback is None:
            raise InputError(f"model {self.name!r} ({self.rule}) needs a feedback init")
        if self.feedback != "stable-random":
            return init_direct_feedback(net.weights, self.feedback, _generator(seed, self.name))
        if isinstance(self.alpha, tuple):
            raise InputError(f"model {self.name!r}: DFC has one controller and one leak alpha, "
                             f"got {self.alpha!r}")
        ratio = tau_ratio_of(circuit)
        shared = {} if shared is None else shared
        key = ("stable-random-direct", self.alpha, rule.kp, ratio)
        if key not in shared:
            shared[key] = stable_random_direct_feedback(
                net.weights, float(self.alpha),
                _generator(seed, f"R-Init direct {self.alpha!r}"),
                kp=rule.kp or 0.0, tau_ratio=ratio, **(stabilise or {}))
        return [Q.copy() for Q in shared[key]]


def _generator(seed, label):
    """A random generator for one purpose of one run: (seed, label) -> stream."""
    return np.random.default_rng([int(seed), zlib.crc32(label.encode())])


def select_models(specs, names):
    """The specs whose names are in ``names`` (when ``names`` is None, all but the
    optional ones, which run only when named)."""
    if names is None:
        return [spec for spec in specs if not spec.optional]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise InputError(f"models must be a list of model names, got {names!r}")
    known = {s.name: s for s in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(
            f"unknown model(s) {', '.join(unknown)}; this experiment has {', '.join(known)}"
        )
    return [known[n] for n in names]


def learners_of(specs: "list[ModelSpec]", config: dict[str, Any],
                start: "Callable[[ModelSpec], tuple[FeedforwardNetwork, SharedFeedback]]"
                ) -> list[Learner]:
    """One `Learner` per spec, with the spec's own settings (`own_settings`) and the
    experiment's R-Init options (`rinit_options`), each training a copy of the network
    that ``start(spec)`` gives, with its shared R-Init feedback."""
    learners = []
    for spec in specs:
        base, shared = start(spec)
        rule, circuit = own_settings(config, spec)
        rinit = rinit_options(config, circuit_options(config), base.depth)
        learners.append(spec.learner(base, config["seed"], rinit, shared, rule=rule,
                                     circuit=circuit))
    return learners


def paper_models(alphas: tuple[float, float]) -> tuple[ModelSpec, ...]:
    """The paper's comparison of rules (Figs. 3 and 4a): BP, FA, PBP, NDI and DI with
    Tr-Init feedback (B = -W^T) at each leak of ``alphas``, and NDI and DI with R-Init
    feedback (random, stabilised) at 0.01; named e.g. ``'DI a=0.01'``."""
    return (
        ModelSpec("BP", "bp"),
        ModelSpec("FA", "fa", feedback="random"),
        ModelSpec("PBP", "pbp"),
        *(ModelSpec(f"{rule.upper()} a={alpha:g}", rule, alpha, "transpose")
          for rule in ("ndi", "di") for alpha in alphas),
        ModelSpec("NDI R-Init a=0.01", "ndi", 0.01, "stable-random"),
        ModelSpec("DI R-Init a=0.01", "di", 0.01, "stable-random"),
    )


SPIKING_MODELS = (
    ModelSpec("NDI a=0.1", "ndi", 0.1, "transpose"),
    # Spiking DI: both populations of the layer pair spiking, settled
    # (time-averaged) readouts as the backward pass; settings: SPIKING_SETTINGS.
    ModelSpec("DI-SCN a=0.1", "di", 0.1, "transpose", population="scn"),
    ModelSpec("DI-LIF a=0.1", "di", 0.1, "transpose", population="lif"),
)
"""Spiking DI (``--spiking``) and NDI at their leak, their exact counterpart (the
regressions and the classification)."""

TARGET_MODELS = (
    ModelSpec("NDI-T a=0.01", "ndi-targets", 0.01, "transpose", optional=True),
    ModelSpec("DI-T a=0.01", "di-targets", 0.01, "transpose", optional=True),
    ModelSpec("NDFC a=0.0015", "ndfc", 0.0015, "transpose", optional=True),
    ModelSpec("DFC a=0.0015", "dfc", 0.0015, "transpose", optional=True),
)
"""Beyond the paper, run when named (``--models``): inversion of targets (NDI-T,
DI-T; Tr-Init) and direct feedback control (NDFC, DFC; Q_l = J_l^T, the leak and
the other settings of Meulemans et al. 2021's toy, ``dfc_*``)."""
