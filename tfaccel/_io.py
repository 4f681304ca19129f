"""Atomic publishing of files and folders.

Everything tfaccel writes for others to read (a baseline, an export, a
report) is built under a temporary name next to its target and renamed into
place only when complete, so a reader never sees a half-written folder.
"""

import contextlib
import os
import pathlib
import shutil
import uuid


def _sibling(path, tag):
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:8]}")


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
    tmp = _sibling(path, "tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
