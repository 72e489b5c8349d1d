"""The loop over the steps of a circuit's run, compiled.

After a circuit's first run, every step is a fixed sequence of calls: the
dense couplings' kernels and the compiled code of each Brian2 object (state
updates, thresholds, resets), then the clock advances
(`dinv.circuits.brian_internals.LeanRun`). The run controller keeps its books
(checks, records, phase switches, averaging windows) only at the steps that
need them (`dinv.circuits.runner`), so between two of them the steps run in
one loop. `run_steps` runs that loop in C: the calls are made through the
C API, without a Python frame per step, and the clock's arrays are written
directly. Each call is the same object with the same arguments as in
Brian2's own loop, so the numbers are the same to the bit.

The loop is built with Brian2's compiler settings into Brian2's Cython cache,
once per machine (`dinv.circuits.brian_internals.compile_cython`); when it
cannot be built, the same loop runs in Python (slower; the same numbers), with a
warning (`CompiledKernelWarning`).
"""

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from dinv.circuits.brian_internals import compile_cython
from dinv.errors import CompiledKernelWarning

SOURCE = r'''
#cython: language_level=3, boundscheck=False, wraparound=False
cimport numpy as cnp
cnp.import_array()


def run_steps(tuple calls, long steps, cnp.ndarray timestep, cnp.ndarray t, double dt):
    """``steps`` steps: every call of ``calls`` in order, then the clock advanced."""
    cdef cnp.int64_t *step_array = <cnp.int64_t *> cnp.PyArray_DATA(timestep)
    cdef double *time_array = <double *> cnp.PyArray_DATA(t)
    cdef cnp.int64_t step = step_array[0]
    cdef Py_ssize_t j, count = len(calls)
    cdef long k
    for k in range(steps):
        for j in range(count):
            calls[j]()
        step += 1
        step_array[0] = step
        time_array[0] = step * dt
'''

_built: dict[str, Callable[..., None]] = {}


def _python_steps(calls: Sequence[Callable[[], object]], steps: int, timestep: np.ndarray,
                  t: np.ndarray, dt: float) -> None:
    """`run_steps` in Python: the fallback when the loop cannot be compiled."""
    step = int(timestep[0])
    for _ in range(steps):
        for call in calls:
            call()
        step += 1
        timestep[0] = step
        t[0] = step * dt


def _loop() -> Callable[..., None]:
    """The compiled ``run_steps``, or the Python one (built once per process)."""
    if "loop" not in _built:
        try:
            _built["loop"] = compile_cython(SOURCE, "step_loop").run_steps
        except Exception as exc:  # noqa: BLE001 - any failure to build: the Python loop
            _built["loop"] = _python_steps
            first = str(exc).splitlines()[0] if str(exc) else ""
            warnings.warn(f"could not compile the circuits' step loop ({type(exc).__name__}: "
                          f"{first}); the steps run in a Python loop instead (slower; the same "
                          "values)", CompiledKernelWarning, stacklevel=3)
    return _built["loop"]


def run_steps(calls: Sequence[Callable[[], object]], steps: int, timestep: np.ndarray,
              t: np.ndarray, dt: float) -> None:
    """Run ``steps`` steps: every call of ``calls`` in order, then the clock advanced.

    Parameters
    ----------
    calls : tuple of callable
        The calls of one step, without arguments.
    steps : int
    timestep : numpy.ndarray of int64, shape (1,)
        The clock's step counter, set to its value + k after step k.
    t : numpy.ndarray of float64, shape (1,)
        The clock's time (second), set to timestep * dt after every step.
    dt : float
        The clock's step (second).
    """
    if timestep.dtype != np.int64 or t.dtype != np.float64:
        _python_steps(calls, steps, timestep, t, dt)
        return
    _loop()(tuple(calls), int(steps), timestep, t, float(dt))
