"""Private helpers for the user cache directory and atomic file writes."""

import os
import pathlib
import tempfile


def cache_dir(override=None):
    """Returns the tfaccel cache directory, creating it if needed.

    The directory is `override` if given, else `$TFACCEL_CACHE_DIR`, else
    `$XDG_CACHE_HOME/tfaccel`, else `~/.cache/tfaccel`.
    """
    if override is not None:
        path = pathlib.Path(override)
    elif os.environ.get("TFACCEL_CACHE_DIR"):
        path = pathlib.Path(os.environ["TFACCEL_CACHE_DIR"])
    elif os.environ.get("XDG_CACHE_HOME"):
        path = pathlib.Path(os.environ["XDG_CACHE_HOME"]) / "tfaccel"
    else:
        path = pathlib.Path.home() / ".cache" / "tfaccel"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_atomic(path, data):
    """Writes `data` (bytes or str) to `path` via a temp file and `os.replace`."""
    path = pathlib.Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private (0o600).
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
