"""Model specifications shared by the experiments: name, rule, leak, feedback."""

import zlib
from dataclasses import dataclass

import numpy as np

from dinv.circuits import SettleOptions
from dinv.errors import InputError
from dinv.models.initialisation import init_feedback, init_loop_feedback
from dinv.models.stabilise import stable_random_feedback
from dinv.models.rules import get_rule
from dinv.models.training import Learner


def circuit_options(config, **options):
    """The `SettleOptions` of an experiment's circuits, from its settings.

    Uses ``steps``, ``dt``, ``system`` and ``controller`` (population models
    by registered name), ``on_unsettled`` ('ignore': settles that fall short
    are counted in the results, not reported one by one; 'warn'; 'raise':
    stop at the first) and ``settle_tol``; a checkpoint of an older run
    without them gets the rate models, 'ignore' and 1e-3. ``options`` adds
    the rest (e.g. ``stop_tol``, ``record_every``).
    """
    return SettleOptions(steps=config["steps"], dt=config["dt"],
                         system=config.get("system", "rate-system"),
                         controller=config.get("controller", "rate-controller"),
                         on_unsettled=config.get("on_unsettled", "ignore"),
                         settle_tol=config.get("settle_tol", 1e-3), **options)


@dataclass(frozen=True)
class ModelSpec:
    """One model of an experiment.

    Attributes
    ----------
    name : str
        Label in results and figures.
    rule : str
        Backward rule ('bp', 'fa', 'pbp', 'ndi', 'di').
    alpha : float
        Controller leak (NDI, DI).
    feedback : str or None
        Feedback init ('transpose' = Tr-Init, 'random' = FA's U(-0.5, 0.5),
        'stable-random' = R-Init: random, then stabilised for this alpha).
    architecture : str
        DI chain, 'sequential' (the paper's) or 'repeat'.
    controller : str
        DI controller, 'linear' (Eq. 17, the paper's) or 'nonlinear' (Eq. 14).
    """

    name: str
    rule: str
    alpha: float = 0.0
    feedback: str = None
    architecture: str = "sequential"
    controller: str = "linear"

    def learner(self, net, seed, stabilise=None, shared=None):
        """A `Learner` training a copy of ``net`` with this model's rule.

        Random feedback is drawn from a generator seeded by ``seed`` and the
        model's name (R-Init: by its alpha), so a model starts the same
        whichever other models run beside it. ``stabilise`` holds the options
        of `dinv.models.stabilise.stabilise_feedback` for R-Init ('stable-random');
        ``shared`` (a dict) keeps the R-Init feedback of each alpha, so NDI, DI
        and SLDI models with R-Init start from the same stabilised B (as in the
        paper).
        """
        rule = get_rule(self.rule)
        net = net.copy()
        feedback = []
        if rule.feedback:
            if self.feedback is None:
                raise InputError(f"model {self.name!r} ({self.rule}) needs a feedback init")
            if self.feedback == "stable-random":
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
        return Learner(self.name, self.rule, net, feedback, self.alpha, self.architecture,
                       self.controller)


def _generator(seed, label):
    """A random generator for one purpose of one run: (seed, label) -> stream."""
    return np.random.default_rng([int(seed), zlib.crc32(label.encode())])


def select_models(specs, names):
    """The specs whose names are in ``names`` (all when ``names`` is None)."""
    if names is None:
        return list(specs)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise InputError(f"models must be a list of model names, got {names!r}")
    known = {s.name: s for s in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(
            f"unknown model(s) {', '.join(unknown)}; this experiment has {', '.join(known)}"
        )
    return [known[n] for n in names]
