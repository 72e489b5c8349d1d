"""Settling quality of a run: how well every circuit model's settles converged.

Every settle of a DI or SLDI circuit ends with a residual (the relative rate
of change of its readouts, `dinv.circuits.settling`); above ``settle_tol`` the
settle *fell short*. A run keeps, per model, the number of settles, how many
fell short, how many of those were unstable circuits (not merely slow ones),
the worst residual and a histogram of the residuals (100 bins per decade, so
the median is exact to 1.2 %, and the counts fit a checkpoint). Results
carry the summary as ``"settling"``; a model whose settles fell short more
often than `SHORTFALL` of the time gets a warning at the end of the run.
"""

import math

SHORTFALL = 0.01
"""A run warns about a model when more than this fraction of its settles fell short."""

BINS_PER_DECADE = 100
"""Resolution of the residual histogram (the median is exact to 10^(1/100), 1.2 %)."""


class SettleStats:
    """Running settle statistics of the circuit models of one run.

    Parameters
    ----------
    tolerance : float
        ``settle_tol``: a larger residual fell short of settling.
    state : dict or None
        Counters of a run so far (`state`), e.g. from a checkpoint; updated
        in place.
    """

    def __init__(self, tolerance, state=None):
        self.tolerance = float(tolerance)
        self.models = {} if state is None else state

    def add(self, name, residual, unstable=False):
        """Count one settle of model ``name`` with final ``residual``."""
        entry = self.models.setdefault(name, {"settles": 0, "unsettled": 0, "unstable": 0,
                                              "worst": 0.0, "zero": 0, "bins": {}})
        residual = float(residual)
        entry["settles"] += 1
        entry["unsettled"] += residual > self.tolerance
        entry["unstable"] += bool(unstable)
        entry["worst"] = max(entry["worst"], residual)
        if residual > 0:
            key = str(math.floor(math.log10(residual) * BINS_PER_DECADE))
            entry["bins"][key] = entry["bins"].get(key, 0) + 1
        else:
            entry["zero"] += 1

    def add_step(self, names, step):
        """Count the settles of a training `dinv.models.training.Step`.

        ``names[k]`` names learner k of the step (its index in the step's learners).
        """
        for k, residual in step.residuals.items():
            self.add(names[k], residual, step.unstable.get(k, False))

    def state(self):
        """The counters (JSON types), to save in a checkpoint."""
        return self.models

    def summary(self):
        """Per model: ``settles``, ``unsettled``, ``tolerance``, ``worst_residual``,
        ``median_residual`` and ``unstable`` (of the unsettled settles, those whose
        circuit was unstable)."""
        return {name: {"settles": entry["settles"], "unsettled": entry["unsettled"],
                       "tolerance": self.tolerance, "worst_residual": entry["worst"],
                       "median_residual": _median(entry), "unstable": entry["unstable"]}
                for name, entry in self.models.items()}


def _median(entry):
    """The (lower) median residual, from the histogram: the centre of its bin
    (at most the worst residual)."""
    if not entry["settles"]:
        return None
    rank = (entry["settles"] - 1) // 2
    if rank < entry["zero"]:
        return 0.0
    seen = entry["zero"]
    for key in sorted(entry["bins"], key=int):
        seen += entry["bins"][key]
        if seen > rank:
            return min(10.0 ** ((int(key) + 0.5) / BINS_PER_DECADE), entry["worst"])
    return entry["worst"]


def describe(entry):
    """One phrase for a summary line: 'settles: 12 of 300 unsettled (worst ..., median ...)'."""
    if not entry["settles"]:
        return "settles: none"
    text = (f"settles: {entry['unsettled']} of {entry['settles']} unsettled (worst residual "
            f"{entry['worst_residual']:.2g}, median {entry['median_residual']:.2g})")
    if entry["unstable"]:
        text += f", {entry['unstable']} unstable"
    return text


MORE_STEPS = "run more steps (--set steps=N)"
"""How a stable circuit that fell short gets more time, in most experiments."""


def shortfall_warnings(settling, more_time=None):
    """One line per model whose settles fell short more than `SHORTFALL` of the time.

    Each names the model, the fraction, the worst residual and the fix;
    ``more_time`` (model -> text; default `MORE_STEPS`) says how to give a
    model's circuit more time where its experiment has no ``steps`` setting.
    """
    more_time = more_time or {}
    lines = []
    for name, entry in (settling or {}).items():
        settles, short = entry["settles"], entry["unsettled"]
        if not settles or short <= SHORTFALL * settles:
            continue
        if entry["unstable"]:
            fix = (f"its circuit was unstable in {entry['unstable']} of them: use a larger "
                   "alpha or stable feedback (B = -W^T is always stable)")
        else:
            fix = (f"{more_time.get(name, MORE_STEPS)}, or use a larger alpha, a slower "
                   "controller or a smaller dt")
        lines.append(f"{name}: {short} of {settles} settles ({short / settles:.1%}) fell "
                     f"short of settle_tol={entry['tolerance']:g} (worst residual "
                     f"{entry['worst_residual']:.2g}, median {entry['median_residual']:.2g}); "
                     f"{fix}")
    return lines
