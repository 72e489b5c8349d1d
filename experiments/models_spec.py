"""Model specifications shared by the experiments: name, rule, leak, feedback."""

from dataclasses import dataclass

from circuits.errors import InputError
from models.initialisation import init_feedback, init_loop_feedback
from models.rules import FEEDBACK_RULES, get_rule
from models.training import Learner


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
        Feedback init ('transpose' = Tr-Init, 'random' = FA's U(-0.5, 0.5)).
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

    def learner(self, net, rng):
        """A `Learner` training a copy of ``net`` with this model's rule."""
        get_rule(self.rule)
        net = net.copy()
        feedback = []
        if self.rule in FEEDBACK_RULES:
            if self.feedback is None:
                raise InputError(f"model {self.name!r} ({self.rule}) needs a feedback init")
            if self.rule == "sldi":
                feedback = [init_loop_feedback(net.weights, self.feedback, rng)]
            else:
                feedback = [init_feedback(W, self.feedback, rng) for W in net.weights[1:]]
        return Learner(self.name, self.rule, net, feedback, self.alpha, self.architecture,
                       self.controller)


def select_models(specs, names):
    """The specs whose names are in ``names`` (all when ``names`` is None)."""
    if names is None:
        return list(specs)
    known = {s.name: s for s in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(
            f"unknown model(s) {', '.join(unknown)}; this experiment has {', '.join(known)}"
        )
    return [known[n] for n in names]
