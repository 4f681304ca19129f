"""Loading `.keras` models safely, with errors that say what to do."""

import pathlib
import zipfile

import keras

from tfaccel.core import saving
from tfaccel.errors import UserError


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

    # Factorized models and low-rank layers; each technique's `load_spec`,
    # which a model saved mid-technique applies again as it loads.
    techniques.load_techniques()

    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001  any corruption is a bad file
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UserError(
            f"Cannot load model '{path}': {first[:200]}. Check that it was saved "
            f"by Keras 3 and that its custom layers are importable. "
            f"Received: path={str(path)!r}"
        ) from error
    return model


def save_model(model, path):
    """Saves `model` as a `.keras` file without its optimizer state.

    Keras stores the optimizer's slots (2x the weights for Adam) in `.keras`
    files of compiled models. Baselines and compressed models are reloaded
    for inference or for a new training stage with a new optimizer, so they
    are saved as an uncompiled copy with the same weights and the same
    technique state (a stripped QAT model's frozen ranges, for one).

    Args:
        model: a Keras model whose class supports `from_config`.
        path: the `.keras` file to write.
    """
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    saving.copy_state(model, copy)
    copy.save(path)
