"""Loading `.keras` models safely, with errors that say what to do."""

import json
import pathlib
import zipfile

import keras

from tfaccel.errors import UserError

# Archive entry with a QAT model's frozen int8 ranges (see `save_model`).
QUANTIZATION_ENTRY = "tfaccel/quantization.json"


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
    import tfaccel.compression  # noqa: F401  (factorized models, low-rank layers)
    import tfaccel.models  # noqa: F401  (registers tfaccel's serializable classes)

    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UserError(
            f"Cannot load model '{path}': {first[:200]}. Check that it was saved "
            f"by Keras 3 and that its custom layers are importable. "
            f"Received: path={str(path)!r}"
        ) from error
    return _restore_quantization(model, path)


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
    from tfaccel.clustering import _state as cluster_state

    if cluster_state.find_states(model):
        raise UserError(
            "The model is still clustered; call tfaccel.strip(model) before "
            f"saving it. Received: model={model.name!r}"
        )
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    copy.save(path)
    spec = _quantization_spec(model)
    if spec is not None:
        # Keras reads only its own entries of the archive; this one carries
        # the frozen int8 activation ranges for `load_model`.
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(QUANTIZATION_ENTRY, json.dumps(spec, indent=1))


def _quantization_spec(model):
    from tfaccel.quantization import _state
    from tfaccel.quantization.strip import export_spec

    if not _state.find_states(model):
        return None
    return export_spec(model)


def _restore_quantization(model, path):
    with zipfile.ZipFile(path) as archive:
        if QUANTIZATION_ENTRY not in archive.namelist():
            return model
        spec = json.loads(archive.read(QUANTIZATION_ENTRY))
    from tfaccel.quantization.strip import restore

    return restore(model, spec)
