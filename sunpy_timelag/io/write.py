"""
Atomic output: a crash never leaves a half-written file or store, and inputs are never overwritten.

Every output of the package (result maps and figures, Zarr stores, cached PSFs, synthetic frames)
goes through `write_atomically`. The writer of ``folder/name`` works in a staging folder beside it,
``folder/.name.partial``, which it holds locked for the whole write (`fcntl.flock`: the system drops
the lock when the process ends, however it ends):

1. the output, a file or a folder, is written in full to ``.name.partial/new-name``;
2. it is renamed to ``name``: one atomic rename for a file; a folder that replaces another is
   swapped in two renames, the previous one moving to ``.name.partial/old-name`` first;
3. the staging folder is removed.

A process killed at any moment therefore leaves at ``name`` either the previous output or the new
one, complete, plus at most a staging folder that nobody holds. The next write of the same path, or a
read that calls `recover`, finds it: a replacement cut between its two renames is completed (the new
output was complete), whatever else is there is removed, and an
`~sunpy_timelag.exceptions.InterruptedWriteWarning` says so. Writers of one path take turns.

`lock_folder` holds a whole folder for one process, e.g. a results folder for one run.
"""
import contextlib
import errno
import json
import os
import shutil
import socket
import time
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: writes stay atomic, but concurrent writers are not kept apart
    fcntl = None

from ..exceptions import InterruptedWriteWarning, OutputPathError

__all__ = ["write_atomically", "recover", "lock_folder"]


def write_atomically(path, write, protected=(), *, check_existing=None):
    """
    Write ``path`` (a file or a folder) through a staging folder beside it, then rename it into place.

    Parameters
    ----------
    path : str or os.PathLike
        The file or folder to (over)write; its parent folders are created.
    write : callable
        ``write(temporary_path)`` writes the whole output (a file or a folder) to the path it is
        given, a `str` in the same folder as ``path`` that ends with ``path``'s name (so format
        detection by suffix works) and does not exist yet.
    protected : iterable of str or os.PathLike
        Input files that must not be overwritten.
    check_existing : callable, optional
        ``check_existing(path)`` is called, with ``path`` locked, when something exists at ``path``:
        it raises to refuse replacing it. By default an existing output is replaced.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ~sunpy_timelag.exceptions.OutputPathError
        If ``path`` is one of the ``protected`` files.

    Warns
    -----
    ~sunpy_timelag.exceptions.InterruptedWriteWarning
        If an earlier write of ``path`` was interrupted: its leftovers are resolved first.

    Notes
    -----
    A failing ``write`` (an exception) leaves ``path`` as it was and nothing beside it; a killed
    process leaves ``path`` as it was or complete, see `sunpy_timelag.io.write`.
    """
    path = Path(path)
    if any(path.resolve() == Path(p).resolve() for p in protected):
        raise OutputPathError(f"refusing to write {path}: it is one of the inputs")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _Staging(path) as staging:
        if check_existing is not None and os.path.lexists(path):
            check_existing(path)
        try:
            write(str(staging.new))
            if not os.path.lexists(staging.new):
                raise OSError(f"writing {path} produced nothing at {staging.new}")
            staging.commit()
        except BaseException:
            _remove(staging.new)
            raise
    return path


def recover(path):
    """
    Resolve what an interrupted write of ``path`` left behind, as the next write would.

    Readers call this before reading ``path``. It does nothing when no write of ``path`` was cut short
    or when one is under way in another process.

    Parameters
    ----------
    path : str or os.PathLike

    Warns
    -----
    ~sunpy_timelag.exceptions.InterruptedWriteWarning
        If leftovers were found (and resolved, or not for want of permission).
    """
    staging = _Staging(path)
    if not os.path.lexists(staging.folder):
        return
    try:
        if staging.acquire(blocking=False):
            staging.release()
    except OSError as error:
        warnings.warn(f"{path}: could not resolve what an interrupted write left in {staging.folder}: {error}",
                      InterruptedWriteWarning, stacklevel=2)


@contextlib.contextmanager
def lock_folder(folder, name=".sunpy-timelag.lock"):
    """
    Hold ``folder`` for this process: an exclusive lock on the file ``folder/name``, removed on exit.

    The lock file records the holder (process id, host, start time). The system drops the lock when
    the holder ends, so a lock file left by a killed process is recognised as such and taken over.

    Parameters
    ----------
    folder : str or os.PathLike
        An existing folder.
    name : str, optional
        Name of the lock file.

    Yields
    ------
    dict or None
        What the lock file says of an earlier holder that ended without releasing it (``pid``,
        ``host``, ``started``), or `None`.

    Raises
    ------
    ~sunpy_timelag.exceptions.OutputPathError
        If another process holds the folder, or the lock file cannot be created (the folder is not
        writable).
    """
    path = Path(folder) / name
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise OutputPathError(f"cannot write to the folder {folder}: {error.strerror}") from error
        if not _lock(descriptor, blocking=False):
            holder = _describe(_read_holder(descriptor))
            os.close(descriptor)
            raise OutputPathError(f"{folder} is in use by another process ({holder}): wait for it to end, "
                                  "or choose another folder")
        if _is_current(descriptor, path):
            break
        os.close(descriptor)  # its holder removed it just before we locked it: start again
    try:
        yield _take_over(descriptor)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(descriptor)


class _Staging:
    """The staging folder ``.name.partial`` of one output path, held by one writer at a time."""

    def __init__(self, path):
        self.path = Path(path)
        self.folder = self.path.with_name(f".{self.path.name}.partial")
        self.new = self.folder / f"new-{self.path.name}"
        self.old = self.folder / f"old-{self.path.name}"
        self._lock_file = self.folder / "lock"
        self._descriptor = None

    def __enter__(self):
        self.acquire(blocking=True)
        return self

    def __exit__(self, *exception):
        self.release()

    def acquire(self, blocking):
        """Create and lock the staging folder, then resolve what an earlier writer left in it; `False` if busy."""
        while True:
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.folder)
            try:
                descriptor = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # its last writer removed the folder meanwhile
                continue
            if not _lock(descriptor, blocking):
                os.close(descriptor)
                return False
            if _is_current(descriptor, self._lock_file):
                break
            os.close(descriptor)  # locked a lock file its writer had already removed: start again
        self._descriptor = descriptor
        try:
            self._resolve(_take_over(descriptor))
        except BaseException:
            self.release()
            raise
        return True

    def _resolve(self, earlier):
        """Resolve what a writer killed while holding the folder left (``earlier``: its record in the lock file)."""
        leftovers = [self.folder / entry for entry in os.listdir(self.folder) if entry != self._lock_file.name]
        if not leftovers and earlier is None:
            return
        if not os.path.lexists(self.path) and os.path.lexists(self.old):  # killed between the two renames
            if os.path.lexists(self.new):
                os.rename(self.new, self.path)
                outcome = "completed its replacement by the new output, which was complete"
            else:
                os.rename(self.old, self.path)
                outcome = "restored the previous output"
        else:
            outcome = "removed its partial output" if os.path.lexists(self.new) else "removed what it left"
        for leftover in leftovers:
            _remove(leftover)
        warnings.warn(f"an earlier write of {self.path} ({_describe(earlier)}) was interrupted: {outcome} "
                      f"({self.folder.name})", InterruptedWriteWarning, stacklevel=4)

    def commit(self):
        """Move the new output to the path: one rename, or two when a folder is involved."""
        if os.path.isdir(self.new) or os.path.isdir(self.path):
            if os.path.lexists(self.path):
                os.rename(self.path, self.old)
            os.rename(self.new, self.path)
        else:
            os.replace(self.new, self.path)

    def release(self):
        """Remove the staging folder and unlock it."""
        if self._descriptor is None:
            return
        try:
            _remove(self.old)
            os.unlink(self._lock_file)  # from here on another writer may take the folder over
        finally:
            os.close(self._descriptor)
            self._descriptor = None
        with contextlib.suppress(OSError):  # not empty: another writer has begun
            os.rmdir(self.folder)


def _lock(descriptor, blocking):
    """Lock an open file exclusively; `False` if another process holds it and ``blocking`` is False."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        # a file system without locks: writes stay atomic, but concurrent writers are not kept apart
    return True


def _is_current(descriptor, path):
    """Whether the open file is still the one at ``path`` (not removed or replaced since it was opened)."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (opened.st_dev, opened.st_ino) == (current.st_dev, current.st_ino)


def _take_over(descriptor):
    """
    Record this process as the holder in a lock file just locked; return the earlier record, if any.

    A holder removes its lock file before it releases it, so a record found in it is that of a holder
    that ended without releasing it: a process killed, or a machine that went down.
    """
    earlier = _read_holder(descriptor)
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }).encode(), 0)
    return earlier


def _read_holder(descriptor):
    """The holder recorded in a lock file, or `None` if it is empty or unreadable."""
    try:
        return json.loads(os.pread(descriptor, 4096, 0).decode() or "null")
    except ValueError:
        return None


def _describe(holder):
    if not isinstance(holder, dict):
        return "process unknown"
    return f"process {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"


def _remove(path):
    """Remove a file or a folder tree, if there."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
