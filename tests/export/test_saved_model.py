"""SavedModel version folders for TF Serving: signatures, warm-up, atomicity."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from qat_checks import tiny_model
from serving_checks import replay_warmup

from tfaccel.errors import UserError
from tfaccel.export import saved_model

SOURCE, LENGTH = 12, 8


def _ids(model):
    rng = np.random.default_rng(0)
    ids = rng.integers(3, model.encoder_vocabulary_size, (4, 9)).astype("int32")
    ids[1, 4:] = 0
    return ids


def test_versions_signatures_warmup_and_generation(tmp_path):
    model = tiny_model()
    ids = _ids(model)
    first = saved_model.export_saved_model(model, tmp_path / "g2p", SOURCE, LENGTH, ids)
    second = saved_model.export_saved_model(
        model, tmp_path / "g2p", SOURCE, LENGTH, ids
    )
    assert (first["version"], second["version"]) == (1, 2)
    assert sorted(p.name for p in (tmp_path / "g2p").iterdir()) == ["1", "2"]
    assert first["max_difference"] <= 1e-4 and first["bytes"] > 0
    folder = Path(first["path"])
    loaded = tf.saved_model.load(str(folder))
    assert {"serving_default", "encode", "decode_step"} <= set(loaded.signatures)
    # The warm-up file runs every signature, each request as TF Serving
    # would replay it.
    assert replay_warmup(folder) == ["serving_default", "encode", "decode_step"]
    runner = saved_model.SavedModelRunner(folder)
    expected = model.generate(ids, LENGTH)
    np.testing.assert_array_equal(runner.generate(ids, LENGTH), expected)
    np.testing.assert_array_equal(runner.generate_signature(ids), expected)
    # Each weight is stored once (keras-team/keras#23553 stores it twice).
    reader = tf.train.load_checkpoint(str(folder / "variables" / "variables"))
    stored = sum(
        int(np.prod(shape))
        for name, shape in reader.get_variable_to_shape_map().items()
        if name.endswith("VARIABLE_VALUE")
    )
    assert model.count_params() <= stored <= model.count_params() + 64


def test_failed_verification_publishes_nothing(tmp_path):
    model = tiny_model()
    with pytest.raises(UserError, match="verification failed.*nothing was published"):
        saved_model.export_saved_model(
            model, tmp_path / "g2p", SOURCE, LENGTH, _ids(model), atol=-1.0
        )
    assert list((tmp_path / "g2p").iterdir()) == []


def test_unwritable_root_and_missing_folder_are_clear_errors(tmp_path):
    model = tiny_model()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="Cannot write SavedModel versions"):
        saved_model.export_saved_model(
            model, blocker / "g2p", SOURCE, LENGTH, _ids(model)
        )
    with pytest.raises(UserError, match="No SavedModel"):
        saved_model.SavedModelRunner(tmp_path / "missing")
