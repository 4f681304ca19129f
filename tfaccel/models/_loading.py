"""Loading `.keras` models safely, with errors that say what to do."""

import json
import pathlib
import zipfile

import keras

from tfaccel.core import registry
from tfaccel.errors import UserError


def archive_entry(name):
    """Returns the `.keras` archive entry that keeps technique `name`'s spec."""
    return f"tfaccel/{name}.json"


# Archive entry with a QAT model's frozen int8 ranges (see `save_model`).
QUANTIZATION_ENTRY = archive_entry("quantization")


def load_model(path):
    """Loads a `.keras` model with `safe_mode=True`.

    Args:
        path: path to a `.keras` file.

    Returns:
        The Keras model.

    Raises:
        UserError: if the path is missing, not a file, or not a readable
            `.keras` archive.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise UserError(
            f"Cannot load model: '{path}' {what}. Pass the path of a `.keras` "
            f"file (e.g. savedmodels/baseline-g2p-small/model.keras). "
            f"Received: path={str(path)!r}"
        )
    if not zipfile.is_zipfile(path):
        raise UserError(
            f"Cannot load model: '{path}' is not a `.keras` archive. Save models "
            f"with `model.save('model.keras')`. Received: path={str(path)!r}"
        )
    import tfaccel.models  # noqa: F401  (registers tfaccel's serializable classes)
    from tfaccel import techniques

    # Factorized models and low-rank layers; each technique's `load_spec`.
    techniques.load_techniques()

    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UserError(
            f"Cannot load model '{path}': {first[:200]}. Check that it was saved "
            f"by Keras 3 and that its custom layers are importable. "
            f"Received: path={str(path)!r}"
        ) from error
    return _restore_specs(model, path)


def save_model(model, path):
    """Saves `model` as a `.keras` file without its optimizer state.

    Keras stores the optimizer's slots (2x the weights for Adam) in `.keras`
    files of compiled models. Baselines and compressed models are reloaded
    for inference or for a new training stage with a new optimizer, so they
    are saved as an uncompiled copy with the same weights.

    Args:
        model: a Keras model whose class supports `from_config`.
        path: the `.keras` file to write.
    """
    for technique in registry.techniques():
        if not technique.savable and technique.find_states(model):
            raise UserError(
                f"The model is still {technique.label}; call tfaccel.strip(model) "
                f"before saving it. Received: model={model.name!r}"
            )
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    copy.save(path)
    specs = {
        technique.name: technique.save_spec(model)
        for technique in registry.techniques()
        if technique.save_spec is not None
    }
    specs = {name: spec for name, spec in specs.items() if spec is not None}
    if specs:
        # Keras reads only its own entries of the archive; these carry what
        # the weights cannot, such as QAT's frozen int8 activation ranges,
        # for `load_model`.
        with zipfile.ZipFile(path, "a") as archive:
            for name, spec in specs.items():
                archive.writestr(archive_entry(name), json.dumps(spec, indent=1))


def _restore_specs(model, path):
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        specs = {
            technique: json.loads(archive.read(archive_entry(technique.name)))
            for technique in registry.techniques()
            if technique.load_spec is not None
            and archive_entry(technique.name) in names
        }
    for technique, spec in specs.items():
        model = technique.load_spec(model, spec)
    return model
