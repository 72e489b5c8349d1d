"""Exceptions and warnings of the package (no Brian2 here: every layer imports them)."""


class InputError(ValueError):
    """A parameter has the wrong shape, sign or value; the message names the fix."""


class CircuitDivergedError(RuntimeError):
    """The simulated state became non-finite or exploded during a run."""


class NotSettledWarning(RuntimeWarning):
    """A run ended before the circuit reached its steady state."""
