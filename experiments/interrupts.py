"""Stopping a run on SIGINT or SIGTERM at a safe point, never inside a settle.

Brian2 installs a SIGINT handler when it is imported (its preference
``core.stop_on_keyboard_interrupt``): a first Ctrl-C ends the running
``Network.run`` early, and the circuit's cut-short state would be used as if
it had settled; a second one raises ``KeyboardInterrupt`` wherever the
program happens to be. `StopRequests` replaces the handlers of SIGINT and
SIGTERM (which cluster schedulers send before they kill a job) for the
duration of a run and restores the earlier ones afterwards:

- the first signal only records a request; the training loops look at
  ``stop.requested`` between updates (`train_epochs`, the online regression,
  the loops of settles of the alpha sweep and the timescale study), write a
  checkpoint where the experiment has them, and return the results so far,
  marked with ``stop.report(...)``;
- a second signal raises `StopNow` at once (the command exits with a
  message, writing nothing more); from then on the signals' default
  actions apply, so a third one ends the process even if unwinding hangs.

Exit status of an interrupted run: 128 + the signal number (130 for SIGINT,
143 for SIGTERM), as a shell reports a process ended by that signal.
"""

import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that ask a run to stop."""


def exit_status(signum):
    """The exit status of a command stopped by signal ``signum`` (128 + its number)."""
    return 128 + int(signum)


class StopNow(BaseException):
    """A second stop signal: leave at once (a `BaseException`, like `KeyboardInterrupt`,
    so that no ``except Exception`` on the way swallows it)."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopRequests:
    """Context manager: SIGINT and SIGTERM request a stop at the next safe point.

    Attributes
    ----------
    requested : int or None
        The first signal received (None: none).

    Outside the main thread signals cannot be caught; there the block runs
    with the handlers as they were and ``requested`` stays None.
    """

    def __init__(self, stream=None):
        self.requested = None
        self._stream = stream
        self._previous = {}

    @property
    def signal_name(self):
        """Name of the first signal received ('SIGINT', 'SIGTERM') or None."""
        return None if self.requested is None else signal.Signals(self.requested).name

    def __enter__(self):
        # Brian2 installs its SIGINT handler when it is first imported: imported later,
        # inside the block (the command line imports it lazily), it would take SIGINT
        # over and stop a settle midway. Imported now, its handler is the one replaced.
        import brian2  # noqa: F401

        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        return False

    def _handle(self, signum, frame):
        stream = self._stream or sys.stderr
        name = signal.Signals(signum).name
        if self.requested is None:
            self.requested = signum
            print(f"\ndinv: {name} received: stopping after the current update "
                  f"(send it again to stop at once)", file=stream, flush=True)
            return
        for other in self._previous:
            signal.signal(other, signal.SIG_DFL)
        raise StopNow(signum)

    def report(self, done, total, unit):
        """What an interrupted loop records: the signal and how far it got.

        Parameters
        ----------
        done, total : int
            Units of work completed, and planned.
        unit : str
            What was counted ('samples', 'updates', 'settles').

        Returns
        -------
        dict
            ``signal``, ``done``, ``total``, ``unit``.
        """
        return {"signal": self.signal_name, "done": int(done), "total": int(total),
                "unit": unit}


def stop_requested(stop):
    """Whether ``stop`` (a `StopRequests` or None) holds a request."""
    return stop is not None and stop.requested is not None
