"""Run an object beside the main process: calls go out, results come back at the end.

The simulation is single-threaded (Brian2's loop), so the second core is free
for work that only consumes what the simulation produces. `Companion` builds
an object in a forked process and forwards method calls to it without
waiting (``batch`` calls to a message: every message wakes the companion,
which on a busy machine costs the simulation's process time too);
``finish`` collects a final result. With ``parallel=False`` the same object
runs inline, on copies of its arguments, exactly as the forked one would
(same numbers either way).
"""

import copy
import multiprocessing
import signal
import traceback

from threadpoolctl import threadpool_limits


def _serve(connection, factory, args):
    """Child process: build the object, then serve calls until told to stop.

    It ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process group, a
    scheduler signals every process of a job): the parent decides when to
    stop, and its end closes the connection, which ends this process.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    try:
        with threadpool_limits(limits=1):  # leave the other core to the simulation
            target = factory(*args)
            while True:
                message = connection.recv()
                if message is None:
                    break
                kind, calls = message
                for name, call_args in calls:
                    result = getattr(target, name)(*call_args)
                if kind == "finish":
                    connection.send(("ok", result))
    except BaseException as exc:  # noqa: BLE001 - sent back and re-raised in the parent
        try:
            connection.send(("error", exc, traceback.format_exc()))
        except Exception:  # noqa: BLE001, S110 - the parent sees the dead process instead
            pass
    finally:
        connection.close()


class Companion:
    """An object living in a companion process (or inline).

    Parameters
    ----------
    factory : callable
        Builds the object from ``args``.
    args : tuple
        Constructor arguments (inherited by the forked process, not pickled).
    parallel : bool
        Fork a process; otherwise run inline on deep copies.
    batch : int
        Calls sent to the process together, in one message (``finish`` sends
        those still pending first).
    """

    def __init__(self, factory, args, parallel=True, batch=1):
        self._process = None
        self._pending, self._batch = [], batch
        if not parallel:
            self._target = factory(*copy.deepcopy(args))
            return
        context = multiprocessing.get_context("fork")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, factory, args),
                                        daemon=True)
        self._process.start()
        child.close()

    def call(self, name, *args):
        """Call ``name(*args)`` on the object without waiting for it."""
        if self._process is None:
            getattr(self._target, name)(*copy.deepcopy(args))
            return
        self._pending.append((name, args))
        if len(self._pending) < self._batch:
            return
        self._raise_if_failed()
        try:
            self._connection.send(("calls", self._pending))
        except (BrokenPipeError, EOFError, OSError):
            self._raise_if_failed(block=True)
        self._pending = []

    def finish(self, name):
        """Call ``name()`` after all earlier calls and return its result."""
        if self._process is None:
            return getattr(self._target, name)()
        try:
            self._connection.send(("finish", self._pending + [(name, ())]))
        except (BrokenPipeError, EOFError, OSError):
            pass
        self._pending = []
        return self._receive()

    def _receive(self):
        try:
            reply = self._connection.recv()
        except (EOFError, OSError):
            raise RuntimeError("the companion process died (out of memory?); rerun with "
                               "--set parallel=false to run everything in one process") from None
        if reply[0] == "error":
            raise reply[1] from RuntimeError(f"in the companion process:\n{reply[2]}")
        return reply[1]

    def _raise_if_failed(self, block=False):
        if block or self._connection.poll():
            self._receive()

    def kill(self):
        """End the companion process at once, dropping the calls it has not served (and
        those not sent)."""
        if self._process is not None:
            self._process.kill()
            self._process.join()
            self._connection.close()
            self._process = None

    def close(self):
        """Stop the companion process (if any); calls not sent yet are dropped."""
        if self._process is not None:
            if self._process.is_alive():
                try:
                    self._connection.send(None)
                except (BrokenPipeError, OSError):
                    pass
                self._process.join(timeout=10)
                if self._process.is_alive():  # it ignores SIGTERM: see _serve
                    self._process.kill()
                    self._process.join()
            self._process = None
