"""The resume folder of a recipe run: where a killed run's checkpoints wait.

`<output_dir>/.<recipe name>.resume/` holds one folder per stage (its epoch
checkpoint, `tfaccel.recipe.checkpoint`, and once finished `result.json`),
the stages' TensorBoard logs, and `recipe.json`: the parts of the recipe that
shape the weights. A later run of the same recipe continues from there.
"""

import hashlib
import json
import pathlib
import shutil

from tfaccel._io import atomic_file


def resume_folder(
    recipe, output_root, restart, log, replicas=1, writable=True, inputs=()
):
    """Returns the resume folder of `recipe`, emptied if it cannot be used.

    The folder is keyed by everything that shapes the stages' weights: a
    recipe whose task, model, baseline, precision or stages changed since
    the killed run, a run on another number of replicas, or an input file
    (the starting model, a teacher) whose content changed, starts afresh
    (export and assert settings may change).

    A non-chief worker (`writable=False`) changes nothing: it gets the
    folder to read the chief's checkpoints from, or None where the chief
    starts afresh.
    """
    folder = pathlib.Path(output_root) / f".{recipe.name}.resume"
    shaping = {"task", "model", "baseline", "precision", "stages"}
    key = recipe.model_dump(mode="json", by_alias=True, include=shaping)
    if replicas > 1:
        key["replicas"] = replicas
    key["inputs"] = {str(path): file_digest(path) for path in inputs}
    key_file = folder / "recipe.json"
    if not writable:
        usable = not restart and key_file.is_file()
        return folder if usable and json.loads(key_file.read_text()) == key else None
    if folder.is_dir():
        if restart:
            log(f"--restart: removing the checkpoints in {folder}")
            shutil.rmtree(folder)
        elif not key_file.is_file() or json.loads(key_file.read_text()) != key:
            log(
                f"The recipe or an input file changed since {folder} was "
                "written; starting afresh"
            )
            shutil.rmtree(folder)
        else:
            log(f"Resuming from the checkpoints in {folder} (--restart discards them)")
    folder.mkdir(parents=True, exist_ok=True)
    if not key_file.is_file():
        with atomic_file(key_file) as tmp:
            tmp.write_text(json.dumps(key, indent=1, sort_keys=True))
    return folder


def file_digest(path):
    """Returns the SHA-256 of a file's bytes, or None if there is no file."""
    path = pathlib.Path(path)
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
