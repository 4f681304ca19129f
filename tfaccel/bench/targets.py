"""The inputs of `tfaccel bench`: which artifacts to time, and on which task.

`find_targets` turns run folders and artifact paths (a `.keras` or `.tflite`
file, a SavedModel, ONNX or TensorRT folder) into `Target`s; `resolve_task`
reads the task from their run folders' metrics.json; `artifact_bytes` sizes
an artifact, raw and gzipped. Nothing here imports TensorFlow.
"""

import dataclasses
import gzip
import pathlib

from tfaccel._io import read_json
from tfaccel.errors import UserError


@dataclasses.dataclass
class Target:
    """One artifact to time: `format` ("keras" or an export format) picks the
    runtime; `run_dir` is the folder whose metrics.json describes it."""

    name: str
    format: str
    path: str
    run_dir: str | None = None


def find_targets(paths):
    """Returns the `Target`s of run folders and artifact paths, in order.

    A run folder (with `model.keras`) gives its Keras model and every export
    its metrics.json lists; an artifact is a `.keras` or `.tflite` file, a
    SavedModel version or base folder, or an ONNX or TensorRT folder.
    """
    targets = []
    for given in paths:
        path = pathlib.Path(given)
        if is_run_folder(path):
            targets += _run_targets(path)
        else:
            targets.append(_artifact_target(path, given))
    return _unique_names(targets)


def is_run_folder(path):
    """Returns whether `path` is a run folder: a folder with `model.keras`."""
    return path.is_dir() and (path / "model.keras").is_file()


def _run_targets(folder):
    targets = [Target("keras", "keras", str(folder / "model.keras"), str(folder))]
    for name, export in _metrics(folder).get("exports", {}).items():
        if name == "keras" or "file" not in export:  # "keras" is model.keras
            continue
        path = folder / str(export["file"])
        if not path.resolve().is_relative_to(pathlib.Path(folder).resolve()):
            raise UserError(
                f"{folder}/metrics.json lists the export {name} at '{export['file']}', "
                "outside the run folder; bench reads only the run's own files. "
                f"Received: file={export['file']!r}"
            )
        if not path.exists():
            raise UserError(
                f"{folder}/metrics.json lists the export {name}, but '{path}' is "
                f"missing. Export it again. Received: file={export['file']}"
            )
        fmt = name if "runtime" in export else "keras"  # keras_int8: a .keras
        targets.append(Target(name, fmt, str(path), str(folder)))
    return targets


def _artifact_target(path, given):
    from tfaccel.export import formats
    from tfaccel.export.lean_saved_model import CONTRACT_FILE  # TF-free

    run_dir = _run_dir_of(path)
    if path.is_file() and path.suffix == ".keras":
        name = "keras" if path.stem == "model" else path.stem.removeprefix("model_")
        return Target(name, "keras", str(path), run_dir)
    if path.is_file() and path.suffix == ".tflite":
        name = "tflite_" + path.stem.removeprefix("model_")
        fmt = name if name in formats.names(runtime="litert") else "tflite_fp32"
        return Target(name, fmt, str(path), run_dir)
    # A SavedModel version folder, or a base folder: its newest version. A
    # lean one carries its contract as an asset.
    versions = [
        p.parent for p in path.glob("[0-9]*/saved_model.pb") if p.parent.name.isdigit()
    ]
    versions = [path] if (path / "saved_model.pb").is_file() else versions
    for folder in sorted(versions, key=lambda p: -int(p.name)):
        lean = (folder / "assets" / CONTRACT_FILE).is_file()
        fmt = "saved_model_lean" if lean else "saved_model"
        return Target(fmt, fmt, str(folder), _run_dir_of(folder))
    # A folder named as `tfaccel.export` names it (onnx_lean, ctranslate2_int8).
    if path.is_dir() and path.name in formats.names(made_by="export"):
        return Target(path.name, path.name, str(path), run_dir)
    for fmt, file in (("onnx", "encode.onnx"), ("tensorrt", "encode.plan")):
        if (path / file).is_file():
            name = path.name if path.name.startswith(fmt) else fmt  # onnx_int8
            return Target(name, fmt, str(path), run_dir)
    raise UserError(
        f"No run folder or artifact at '{path}'. Pass a folder written by "
        "`tfaccel run`, a .keras or .tflite file, a SavedModel folder or an ONNX "
        f"export folder. Received: {given}"
    )


def _run_dir_of(path):
    # The folder with metrics.json beside (or one above) the artifact.
    for folder in (path.parent, path.parent.parent):
        if (folder / "metrics.json").is_file():
            return str(folder)
    return None


def _unique_names(targets):
    # The same name twice (two runs' tflite_fp32): prefix the folder names.
    names = [t.name for t in targets]
    for t in targets:
        if names.count(t.name) > 1:
            t.name = f"{pathlib.Path(t.path).parent.name}/{t.name}"
    names = [t.name for t in targets]
    if len(names) > len(set(names)):
        raise UserError(f"An artifact was given twice. Received: {names}")
    return targets


def _metrics(folder):
    path = pathlib.Path(folder) / "metrics.json"
    return read_json(path) if path.is_file() else {}


def resolve_task(targets, task=None):
    """Returns `(task name, max_examples)`: `task`, else the run folders'.

    `max_examples` is the run's data subset (smoke runs), so a run is scored
    on the test split it was trained against.
    """
    found = {run_task(t.run_dir) for t in targets if t.run_dir} - {None}
    if task is not None:
        from tfaccel.tasks import TASKS

        if task not in TASKS:
            raise UserError(
                f"Unknown task '{task}'. Use one of: {', '.join(TASKS)}. "
                f"Received: --task {task}"
            )
        found = {spec for spec in found if spec[0] == task} or {(task, None)}
    if len(found) != 1:
        raise UserError(
            "Cannot tell the task: pass --task g2p or --task translation. Received: "
            + (f"runs of {sorted(found, key=str)}" if found else "no metrics.json")
        )
    return found.pop()


def run_task(folder):
    """Returns `(task name, max_examples)` of a run or baseline folder, or None.

    Read from the folder's `metrics.json`; None when it has none or names no
    task. A run trained on a subset (`max_examples`) has that subset's
    vocabularies, which `tfaccel.tasks.get_task(name, max_examples)` rebuilds.

    Raises:
        UserError: `metrics.json` is unreadable or not what tfaccel writes.
    """
    data = _metrics(folder)
    try:
        if "recipe" in data:  # written by `tfaccel run`
            task = data["recipe"]["task"]
            found = task["name"], task.get("max_examples")
        elif "task" in data.get("config", {}):  # by `tfaccel baseline`
            found = data["config"]["task"], data["config"].get("max_examples")
        else:
            return None
    except (AttributeError, KeyError, TypeError):
        found = None
    if found is None or not isinstance(found[0], str):
        raise UserError(
            f"'{pathlib.Path(folder) / 'metrics.json'}' names no task in the form "
            "tfaccel writes; pass --task. Received: folder={!r}".format(str(folder))
        )
    if found[1] is not None and (
        isinstance(found[1], bool) or not isinstance(found[1], int)
    ):
        raise UserError(
            f"'{pathlib.Path(folder) / 'metrics.json'}' has a max_examples that is "
            f"not an int. Received: max_examples={found[1]!r}"
        )
    return found


def artifact_bytes(path):
    """Returns `(bytes, gzip_bytes)` of a file, or summed over a folder's files."""
    path = pathlib.Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*"))
    data = [p.read_bytes() for p in files if p.is_file()]
    return sum(map(len, data)), sum(len(gzip.compress(d)) for d in data)
