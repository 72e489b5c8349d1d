"""The output folder of a run: checked, locked and tidied before any work.

`OutputFolder` is what the ``dinv`` command holds while a run writes into a
folder:

- it creates the folder (remembering which levels it created) and takes the
  lock file ``.dinv.lock`` (created exclusively, holding the process id, host,
  command and start time). Creating that file is also the check that the run
  can write there: a folder it cannot write into is refused before any work;
- a second run into a folder whose lock names a live process is refused with
  that process's id and command; a lock whose process is gone (killed) is
  taken over;
- on leaving, it removes its lock and every folder level it created that is
  still empty (an argument error leaves nothing behind).
"""

import errno
import json
import os
import socket
import sys
import time
from pathlib import Path

from dinv.errors import InputError
from dinv.experiments.results import FIGURE, RESULTS
from dinv.experiments.supervised import CHECKPOINT

LOCK = ".dinv.lock"
"""File name of the lock inside an output folder."""

RUN_FILES = (RESULTS, FIGURE, CHECKPOINT, "null_share.png")
"""The files a run writes into its folder (``--overwrite`` removes them first; the last:
the second-order study's second figure)."""


def _process_alive(pid):
    """Whether process ``pid`` of this host exists (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _describe(holder):
    started = holder.get("started")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started)) \
        if isinstance(started, (int, float)) else ""
    return f"process {holder.get('pid')} on {holder.get('host')}{when}: {holder.get('command')}"


class OutputFolder:
    """Context manager holding an output folder for one run.

    Parameters
    ----------
    path : Path
        The folder.
    create : bool
        Create it (and missing parents) if needed; otherwise it must exist.
    """

    def __init__(self, path, create=True):
        self.path = Path(path)
        self.create = create
        self._created = []
        self._locked = False

    @property
    def lock(self):
        """Path of the lock file."""
        return self.path / LOCK

    def __enter__(self):
        try:
            self._make()
            self._take_lock()
        except BaseException:
            self._tidy()
            raise
        return self

    def __exit__(self, *exc):
        self._tidy()
        return False

    def _make(self):
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"the output folder {self.path} is a file, not a folder; "
                             "choose another --out")
        if not self.create:
            if not self.path.is_dir():
                raise InputError(f"{self.path} does not exist")
            return
        missing = []
        level = self.path.absolute()
        while not level.exists() and level != level.parent:
            missing.append(level)
            level = level.parent
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._created = [p for p in missing if p.is_dir()]
            raise InputError(f"cannot create the output folder {self.path}: "
                             f"{exc.strerror}; choose another --out") from None
        self._created = missing  # deepest first

    def _take_lock(self):
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "command": " ".join(sys.argv), "started": time.time()}
        for _ in range(3):
            try:
                fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over_or_refuse()
                continue
            except OSError as exc:
                raise self._unwritable(exc) from None
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(json.dumps(record))
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:  # e.g. a full disk
                self.lock.unlink(missing_ok=True)
                raise self._unwritable(exc) from None
            self._locked = True
            return
        raise InputError(f"could not lock {self.path}: another run keeps taking "
                         f"{self.lock}; choose another --out")

    def _unwritable(self, exc):
        return InputError(f"cannot write into the output folder {self.path}: "
                          f"{exc.strerror or exc}; choose another --out "
                          "(or make the folder writable)")

    def _take_over_or_refuse(self):
        """An existing lock: remove it if its process is gone, else refuse."""
        try:
            text = self.lock.read_text()
        except FileNotFoundError:
            return  # released meanwhile: try again
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            holder = json.loads(text)
            pid, host = int(holder["pid"]), holder["host"]
            if pid <= 0:
                raise ValueError(pid)
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{self.path} is locked by another dinv run ({self.lock} is "
                             f"being written or damaged); if no run uses the folder, delete "
                             f"{self.lock}") from None
        if host != socket.gethostname():
            raise InputError(f"{self.path} is in use by dinv {_describe(holder)}; if that "
                             f"run is gone, delete {self.lock}, or choose another --out")
        if pid == os.getpid() or _process_alive(pid):
            raise InputError(f"{self.path} is in use by dinv {_describe(holder)}; wait "
                             f"for it to end, or choose another --out (if no dinv run uses "
                             f"the folder, delete {self.lock})")
        try:  # the holder is gone (killed): its lock is stale
            if self.lock.read_text() == text:
                self.lock.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._unwritable(exc) from None

    def _tidy(self):
        if self._locked:
            self._locked = False
            try:
                holder = json.loads(self.lock.read_text())
                if holder.get("pid") == os.getpid():
                    self.lock.unlink()
            except (OSError, ValueError):
                pass
        for level in self._created:
            try:
                level.rmdir()
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    raise
                break
        self._created = []

    def remove_run_files(self):
        """Delete the files of an earlier run (and their temporary files), for ``--overwrite``."""
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
            for stale in self.path.glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)
