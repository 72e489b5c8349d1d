"""Exceptions and warnings of the package (no Brian2 here: every layer imports them)."""


class InputError(ValueError):
    """A parameter has the wrong shape, sign or value; the message names the fix."""


class CircuitDivergedError(RuntimeError):
    """The simulated state became non-finite or exploded during a run, or (with
    ``on_unsettled='raise'``) a run ended before its circuit settled."""


class NotSettledError(CircuitDivergedError):
    """With ``on_unsettled='raise'``: a run ended before its circuit settled."""


class CircuitUnstableError(NotSettledError):
    """With ``on_unsettled='raise'``: a run ended unsettled because its circuit is
    unstable, its state growing instead of settling."""


class NotSettledWarning(RuntimeWarning):
    """A run ended before the circuit reached its steady state."""


class CompiledKernelWarning(RuntimeWarning):
    """A compiled kernel could not be built and its numpy equivalent was used
    instead: the same values to rounding, more slowly."""
