"""Where the cells of a sweep run: a Dask cluster, and how its workers are set up.

`ClusterOptions` says which cluster; `connect` yields a client on it:

- by default an embedded ``LocalCluster``: one worker process per core, one
  thread each (Dask's nanny also sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``
  and ``OPENBLAS_NUM_THREADS`` to 1 in them). On Linux its workers are forked
  from this process (``FORK_WORKERS``): they start with everything imported;
  elsewhere they are spawned, as Dask does by default;
- ``scheduler``: an existing Dask cluster (its workers must have one thread
  each, and dinv installed);
- ``slurm``: SLURM jobs through dask-jobqueue's ``SLURMCluster``
  (`SlurmOptions`; `slurm_job_script` shows the script without submitting).

Every worker gets the `WorkerSetup` plugin before its first cell.
"""

import logging
import os
import re
import signal
import sys
import tempfile
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from distributed import WorkerPlugin

from dinv.errors import InputError


def _brian_cache_dir(template, worker_name):
    """``template`` with ``{worker}`` (the worker's name) and ``{tmp}`` (this
    machine's temporary folder) filled in, ``~`` and ``$VARS`` expanded."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(worker_name))
    path = template.format(worker=name, tmp=tempfile.gettempdir())
    return os.path.expandvars(os.path.expanduser(path))


FORK_WORKERS = sys.platform.startswith("linux")
"""Whether the embedded LocalCluster forks its worker processes from this one.

A spawned worker starts a new interpreter and imports Dask, then (for its
first cell) dinv, Brian2, scipy and matplotlib: measured on the 2-core machine
class, the cluster took 2.6 s to start and 0.6 s to close with spawned
workers, 0.2 s and under 0.1 s with forked ones, whose first cell also starts
with its modules imported. Fork is Linux's default start method; on macOS
(where system libraries are not fork-safe) and Windows the workers are spawned.
"""


class WorkerSetup(WorkerPlugin):
    """Dask worker plugin: how every worker of a sweep runs its cells.

    - Brian2 is imported here, in the worker's main thread (Brian2 installs a
      SIGINT handler when imported), and SIGINT is then ignored: a Ctrl-C at
      the terminal reaches every process of the group, and only the client
      decides how the sweep stops (its cluster ends the workers). SIGTERM
      gets its default action back (a forked worker inherits the client's
      handler, which would only note the request): the cluster's SIGTERM
      ends a worker;
    - Brian2's Cython cache: ``cache_dir`` (None: Brian2's default, shared with
      ``dinv run``) with ``{worker}`` and ``{tmp}`` filled in, and Brian2's
      file lock per compiled module on (``multiprocess_safe``), so no two
      workers write the same module at once;
    - BLAS and OpenMP pools limited to ``threads`` threads (threadpoolctl).
    """

    name = "dinv-sweep-worker-setup"

    def __init__(self, cache_dir=None, threads=1):
        self.cache_dir = cache_dir
        self.threads = threads
        self._limits = None

    def setup(self, worker):
        import matplotlib
        matplotlib.use("Agg")
        from brian2 import prefs
        from threadpoolctl import threadpool_limits

        import dinv.experiments.registry  # noqa: F401 - every experiment, imported once

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        prefs.codegen.runtime.cython.multiprocess_safe = True
        if self.cache_dir is not None:
            path = _brian_cache_dir(self.cache_dir, worker.name)
            Path(path).mkdir(parents=True, exist_ok=True)
            prefs.codegen.runtime.cython.cache_dir = path
        self._limits = threadpool_limits(limits=self.threads)

    def teardown(self, worker):
        pass


# --------------------------------------------------------------------------- the cluster


@dataclass(frozen=True)
class SlurmOptions:
    """The SLURM jobs of ``dinv sweep --slurm`` (dask-jobqueue's ``SLURMCluster``).

    Each job is one allocation of ``cores`` CPUs and ``memory``, running
    ``cores`` single-threaded worker processes for up to ``walltime``;
    ``jobs`` of them are submitted.
    """

    queue: str | None = None
    account: str | None = None
    cores: int = 1
    memory: str = "4GB"
    walltime: str = "01:00:00"
    jobs: int = 1
    directives: tuple[str, ...] = ()
    prologue: tuple[str, ...] = ()
    local_directory: str | None = None
    log_directory: str | None = None

    def cluster(self):
        """A ``SLURMCluster`` (jobs not submitted yet)."""
        from dask_jobqueue import SLURMCluster

        prologue = ["export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1",
                    *self.prologue]
        return SLURMCluster(
            queue=self.queue, account=self.account, cores=self.cores,
            processes=self.cores, memory=self.memory, walltime=self.walltime,
            job_extra_directives=list(self.directives), job_script_prologue=prologue,
            local_directory=self.local_directory, log_directory=self.log_directory,
            python=sys.executable, job_name="dinv-sweep",
            scheduler_options={"dashboard": False})


@dataclass(frozen=True)
class ClusterOptions:
    """Where a sweep's cells run.

    Attributes
    ----------
    workers : int or None
        Embedded LocalCluster: worker processes (None: one per core).
    scheduler : str or None
        Address of a running Dask scheduler (its workers need one thread each
        and dinv installed).
    slurm : SlurmOptions or None
        Submit SLURM jobs through dask-jobqueue.
    retries : int
        A task that raised is tried again this often; a task whose worker died
        is given to another worker as long as no more than ``retries`` + 1
        workers died running it (the scheduler's ``allowed-failures``, for the
        clusters this command starts).
    brian_cache : str or None
        Brian2's Cython cache on the workers (see `WorkerSetup`); SLURM's
        default is a folder in each node's temporary folder.
    paired : bool
        Embedded LocalCluster only: every task takes two cores, its worker's
        and one for a companion process (the regressions' closed-form side,
        ``parallel``), so there is one worker per two cores and the workers
        may fork (Dask's worker processes are daemonic otherwise). Set by the
        sweep where it pays (`can_pair`).
    """

    workers: int | None = None
    scheduler: str | None = None
    slurm: SlurmOptions | None = None
    retries: int = 2
    brian_cache: str | None = None
    paired: bool = False

    def expected_workers(self):
        """How many workers the sweep plans its tasks for."""
        if self.slurm is not None:
            return self.slurm.jobs * self.slurm.cores
        if self.workers is not None:
            return self.workers
        cores = len(os.sched_getaffinity(0))
        return max(1, cores // 2) if self.paired else cores

    def can_pair(self):
        """Whether tasks may take two cores each here: an embedded LocalCluster
        sized by this machine's cores (not ``--workers``), with two or more."""
        return (self.scheduler is None and self.slurm is None and self.workers is None
                and len(os.sched_getaffinity(0)) >= 2)


@contextmanager
def connect(options):
    """A Dask client on the cluster ``options`` asks for, with `WorkerSetup` on every
    worker; the cluster (when started here) is closed on leaving.

    Yields
    ------
    distributed.Client
    """
    import dask
    from distributed import Client, LocalCluster

    with ExitStack() as stack:
        # Paired tasks fork a companion process, which a daemonic worker may not.
        # Dask's statistical profiler walks the running task's stack every 10 ms:
        # a cell's Python-level simulation loop then runs markedly slower.
        stack.enter_context(dask.config.set({
            "distributed.scheduler.allowed-failures": options.retries + 1,
            "distributed.worker.daemon": not options.paired,
            "distributed.worker.profile.enabled": False,
            "distributed.worker.multiprocessing-method": "fork" if FORK_WORKERS else "spawn"}))
        cache = options.brian_cache
        if options.scheduler is not None:
            try:
                client = stack.enter_context(Client(options.scheduler, timeout="30s"))
            except OSError as exc:
                raise InputError(f"cannot reach the Dask scheduler at {options.scheduler}: "
                                 f"{exc}") from None
        elif options.slurm is not None:
            cluster = stack.enter_context(options.slurm.cluster())
            cluster.scale(jobs=options.slurm.jobs)
            client = stack.enter_context(Client(cluster))
            cache = cache or "{tmp}/dinv-brian-cache"
        else:
            cluster = stack.enter_context(LocalCluster(
                n_workers=options.expected_workers(), threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        client.register_plugin(WorkerSetup(cache, threads=1), name=WorkerSetup.name)
        yield client


def check_workers(client):
    """Workers that run two cells at once in one process would share Brian2's state."""
    info = client.scheduler_info()["workers"]
    threaded = sorted({w["nthreads"] for w in info.values() if w["nthreads"] != 1})
    if threaded:
        raise InputError(f"the cluster's workers have {threaded[0]} threads each; dinv sweep "
                         "needs one thread per worker process (start them with "
                         "`dask worker ADDRESS --nthreads 1 --nworkers N`)")


def slurm_job_script(options):
    """The job script ``--slurm`` would submit (``--slurm --dry-run`` prints it)."""
    cluster = options.cluster()
    try:
        return cluster.job_script()
    finally:
        cluster.close()
