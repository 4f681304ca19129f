"""The trained reference models shipped in `savedmodels/`, and their manifest.

`savedmodels/manifest.json` lists each shipped model folder with the
SHA-256 of every file in it, the command that made it, the library versions
it was made with, and its test scores. The recipe cache finds a shipped
baseline where it looks for any baseline (`baseline-<task>-<preset>/`), so
a fresh clone starts its recipes without training one. `check` tells
whether the files on disk are still the ones listed.

Example:

```python
from tfaccel import reference

problems = reference.check("savedmodels")   # [] when every file matches
entry = reference.add("savedmodels", "baseline-g2p-small",
                      command="tfaccel baseline --task g2p --preset small")
```
"""

import hashlib
import json
import pathlib
import platform

from tfaccel._io import atomic_file
from tfaccel.errors import UserError

MANIFEST = "manifest.json"
# Made by training, not part of the model: TensorBoard event files.
_SKIPPED = ("logs",)


def sha256(path):
    """Returns the hex SHA-256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digests(folder):
    """Returns `{relative path: sha256}` for the model files in `folder`."""
    folder = pathlib.Path(folder)
    return {
        path.relative_to(folder).as_posix(): sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).parts[0] not in _SKIPPED
    }


def load_manifest(root="savedmodels"):
    """Returns the manifest of `root` as a dict (`{"models": [...]}`)."""
    path = pathlib.Path(root) / MANIFEST
    if not path.is_file():
        return {"models": []}
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(
            f"{path} is not valid JSON ({error}). Restore it with `git checkout "
            f"{path}`. Received: path={str(path)!r}"
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), list):
        raise UserError(
            f'{path} should hold {{"models": [...]}}. Restore it with `git '
            f"checkout {path}`. Received: path={str(path)!r}"
        )
    return manifest


def library_versions():
    """Returns the versions of Python and the libraries that shape a model."""
    import keras
    import keras_hub
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_hub": keras_hub.__version__,
    }


def add(root, folder, command):
    """Adds (or refreshes) the manifest entry of `root/folder`; returns it.

    Args:
        root: the folder holding the manifest, e.g. "savedmodels".
        folder: the model folder, relative to `root`; it must hold
            `model.keras` and `metrics.json` (as `tfaccel baseline` writes).
        command: the command that made the folder, for people to rerun.
    """
    root = pathlib.Path(root)
    path = root / folder
    metrics_path = path / "metrics.json"
    if not (path / "model.keras").is_file() or not metrics_path.is_file():
        raise UserError(
            f"{path} needs model.keras and metrics.json, as `tfaccel baseline` "
            f"writes them. Received: folder={str(folder)!r}"
        )
    metrics = json.loads(metrics_path.read_text())
    entry = {
        "folder": pathlib.PurePath(folder).as_posix(),
        "command": command,
        "versions": library_versions(),
        "config": metrics.get("config", {}),
        "test": {k: metrics["test"][k] for k in ("wer", "per", "examples")},
        "files": file_digests(path),
    }
    manifest = load_manifest(root)
    models = [m for m in manifest["models"] if m["folder"] != entry["folder"]]
    manifest["models"] = sorted([*models, entry], key=lambda m: m["folder"])
    with atomic_file(root / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return entry


def check(root="savedmodels"):
    """Returns one line per shipped file that is missing or changed; [] if none."""
    root = pathlib.Path(root)
    problems = []
    for entry in load_manifest(root)["models"]:
        for name, expected in entry["files"].items():
            path = root / entry["folder"] / name
            if not path.is_file():
                problems.append(f"{path}: missing")
            elif sha256(path) != expected:
                problems.append(f"{path}: sha256 differs from {MANIFEST}")
    return problems
