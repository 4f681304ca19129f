"""Atomic publishing of files and folders, and locks on what is published.

Everything tfaccel writes for others to read (a baseline, an export, a
report) is built under a temporary name next to its target and renamed into
place only when complete, so a reader never sees a half-written folder.
`exclusive` keeps a second process off a target another one is writing.
"""

import contextlib
import fcntl
import glob
import json
import os
import pathlib
import re
import shutil
import tempfile
import uuid

from tfaccel.errors import UserError


def _sibling(path, tag):
    # The pid lets a later writer recognise leftovers of a killed process.
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(path):
    """Removes temporary siblings of `path` left by processes that died.

    A process killed with SIGKILL cannot clean up after itself; its partial
    folder keeps a hidden `.name.tmp-<pid>-...` name that no reader looks at,
    and the next writer of the same target removes it here.
    """
    path = pathlib.Path(path)
    if not path.parent.is_dir():
        return
    for sibling in path.parent.glob(f".{glob.escape(path.name)}.*-*-*"):
        pid = sibling.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            if sibling.is_dir():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                sibling.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path, replace=False):
    """Yields a temporary folder that becomes `path` when the block succeeds.

    Args:
        path: the folder to publish.
        replace: if True an existing `path` is swapped out; if False an
            existing `path` is an error (existing versions are never
            overwritten).

    On an exception the temporary folder is removed and `path` is untouched.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = _sibling(path, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        _publish(tmp, path, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(tmp, path, replace):
    if not path.exists():
        os.rename(tmp, path)
        return
    if not replace:
        raise FileExistsError(f"Refusing to overwrite existing '{path}'.")
    old = _sibling(path, "old")
    os.rename(path, old)
    os.rename(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path):
    """Yields a temporary file path that is renamed to `path` on success."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = _sibling(path, "tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def exclusive(path, what):
    """Holds an OS lock on `path` for the block; another holder is an error.

    The lock is `flock` on a hidden `.<name>.lock` file beside `path`, which
    holds the pid of the process that has it and is removed on release. The
    kernel releases the lock when that process ends, however it ends, so a
    killed run never leaves a lock that blocks the next one (only its file,
    which the next holder takes over).

    Args:
        path: the folder or file the block writes.
        what: what it is, for the error ("Run folder", "Export folder").

    Raises:
        UserError: another process holds the lock; it names that pid.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    handle = _lock_file(lock, path, what)
    try:
        os.ftruncate(handle, 0)
        os.pwrite(handle, str(os.getpid()).encode(), 0)
        yield
    finally:
        # Unlinked before it is unlocked: a process that opened this file
        # meanwhile finds it is no longer the file at `lock`, and retries.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(handle)


def _lock_file(lock, path, what):
    """Returns an open descriptor of `lock` that holds its `flock`."""
    while True:
        handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip()
            os.close(handle)
            raise UserError(
                f"{what} '{path}' is being written by process {holder or '?'}; "
                f"wait for it to end, or stop it. Received: path={str(path)!r}"
            ) from None
        try:
            same = os.stat(lock).st_ino == os.fstat(handle).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return handle
        os.close(handle)  # the last holder removed it as we opened it


def carry_over(source, target):
    """Copies into `target` every entry of folder `source` that it lacks.

    Files are hard-linked where the file system allows (they are never
    rewritten in place: a publish renames whole folders), else copied.
    """
    source, target = pathlib.Path(source), pathlib.Path(target)
    if not source.is_dir():
        return
    for entry in sorted(source.iterdir()):
        destination = target / entry.name
        if destination.exists() or destination.is_symlink():
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), destination)
        elif entry.is_dir():
            shutil.copytree(entry, destination, symlinks=True, copy_function=_link)
        else:
            _link(entry, destination)


def _link(source, destination):
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def read_json(path):
    """Returns the JSON object (a dict) in file `path`.

    Raises:
        UserError: the file cannot be read, is not JSON, or holds another
            JSON value than an object (`[]`, a number).
    """
    path = pathlib.Path(path)
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        reason = " ".join(str(error).split())[:200]
        raise UserError(
            f"Cannot read '{path}': {reason}. Received: path={str(path)!r}"
        ) from None
    if not isinstance(data, dict):
        raise UserError(
            f"'{path}' holds a JSON {type(data).__name__}, not the object tfaccel "
            f"wrote there. Received: path={str(path)!r}"
        )
    return data


_SCRATCH_PID = re.compile(r"^tfaccel-.+-pid(\d+)-")


@contextlib.contextmanager
def scratch_dir(kind):
    """Yields a temporary folder `tfaccel-<kind>-pid<pid>-...`, removed after.

    A process killed with SIGKILL leaves its scratch folders behind; each new
    one first removes those of processes that are gone.
    """
    root = pathlib.Path(tempfile.gettempdir())
    for folder in root.glob("tfaccel-*-pid*-*"):
        match = _SCRATCH_PID.match(folder.name)
        if match and folder.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"tfaccel-{kind}-pid{os.getpid()}-") as tmp:
        yield tmp
