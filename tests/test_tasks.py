"""Tasks size the model so that every padded batch fits its position tables."""

import pytest

from tfaccel import tasks
from tfaccel.errors import UserError


def _check_batches_fit(task):
    overrides = task.model_overrides()
    for split in ("train", "valid", "test"):
        for inputs, targets, weights in task.dataset(split, 64):
            assert (
                inputs["encoder_token_ids"].shape[1] <= overrides["max_encoder_length"]
            )
            assert (
                inputs["decoder_token_ids"].shape[1] <= overrides["max_decoder_length"]
            )
            assert targets.shape == weights.shape


def test_g2p_batches_fit_the_model():
    task = tasks.get_task("g2p", max_examples=3000)
    _check_batches_fit(task)
    assert task.model_overrides()["max_decoder_length"] == 33


@pytest.mark.large
def test_translation_batches_fit_the_model():
    pytest.importorskip("pysword")
    try:
        task = tasks.get_task("translation")
    except UserError as error:  # Debian modules missing on this machine
        pytest.skip(str(error))
    _check_batches_fit(task)


def test_unknown_task():
    with pytest.raises(UserError, match="Unknown task 'ocr'.*g2p, translation"):
        tasks.get_task("ocr")
