"""Progress bars of the experiments, with a compiling phase before the first step.

The first settle of a run compiles Brian2's code (Cython; minutes on a fresh machine),
so the time of the first step says nothing about the others: a bar that counted it
would show an ETA of hours. `Progress` shows "compiling" with the elapsed time until
the first step is done, then starts its clock (rate and ETA) afresh.
"""

from typing import Any

from tqdm import tqdm

COMPILING = "first step: compiling Brian2 code if needed"
"""What the bar shows until its first step is done."""

COMPILING_FORMAT = "{desc}: {n_fmt}/{total_fmt} [" + COMPILING + ", {elapsed}]"


class Progress(tqdm):
    """A tqdm bar whose first `update` ends a compiling phase (see the module docstring).

    Until then it shows `COMPILING` and the elapsed time, no rate or ETA; the first
    update restarts the clock, so that rate and ETA count only the steps after it.
    Takes tqdm's arguments (``mininterval`` defaults to 1 s).
    """

    n: float
    """Steps counted so far (tqdm's)."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("mininterval", 1.0)
        self._final_format = kwargs.pop("bar_format", None)
        self.compiling = True
        super().__init__(*args, bar_format=COMPILING_FORMAT, **kwargs)

    def update(self, n: float = 1) -> bool | None:
        """Count ``n`` more steps; the first call ends the compiling phase."""
        if not self.compiling:
            return super().update(n)
        self.compiling = False
        done = self.n + n
        self.bar_format = self._final_format
        self.reset(total=self.total)
        self.n = self.last_print_n = self.initial = done
        if not self.disable:
            self.refresh()
        return True
