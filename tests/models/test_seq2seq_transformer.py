import keras
import numpy as np
import pytest

from tfaccel.errors import UserError
from tfaccel.models import PRESETS, Seq2SeqTransformer, load_model


def _inputs(seed=0, batch=4, src=7, tgt=6, vocab=40):
    rng = np.random.default_rng(seed)
    enc = rng.integers(4, vocab, (batch, src)).astype("int32")
    dec = rng.integers(4, vocab, (batch, tgt)).astype("int32")
    dec[:, 0] = 1  # BOS
    for row in range(batch):  # ragged lengths, padded with 0
        enc[row, src - row :] = 0
    return enc, dec


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    return Seq2SeqTransformer.from_preset("tiny")


def _logits(model, enc, dec):
    return keras.ops.convert_to_numpy(
        model({"encoder_token_ids": enc, "decoder_token_ids": dec})
    )


def test_forward_shape(model):
    enc, dec = _inputs()
    assert _logits(model, enc, dec).shape == (4, 6, model.decoder_vocabulary_size)


def test_encoder_padding_is_ignored(model):
    enc, dec = _inputs()
    padded = np.pad(enc, [[0, 0], [0, 5]])
    np.testing.assert_allclose(
        _logits(model, enc, dec), _logits(model, padded, dec), atol=1e-5
    )


def test_decoder_is_causal(model):
    enc, dec = _inputs()
    changed = dec.copy()
    changed[:, 4:] = 9
    a, b = _logits(model, enc, dec), _logits(model, enc, changed)
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-5)
    assert np.abs(a[:, 4:] - b[:, 4:]).max() > 1e-4


def test_decode_step_matches_full_forward(model):
    enc, dec = _inputs(seed=3)
    full = _logits(model, enc, dec)
    cross_cache, mask = model.encode(enc)
    cache = model.init_cache(enc.shape[0], dec.shape[1])
    for index in range(dec.shape[1]):
        logits, cache = model.decode_step(
            dec[:, index : index + 1], index, cache, cross_cache, mask
        )
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(logits), full[:, index], atol=1e-4
        )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cached_and_uncached_generation_agree(seed):
    keras.utils.set_random_seed(seed)
    model = Seq2SeqTransformer.from_preset("tiny", decoder_vocabulary_size=12)
    enc, _ = _inputs(seed=seed, batch=8)
    cached = model.generate(enc, max_length=12, use_cache=True)
    uncached = model.generate(enc, max_length=12, use_cache=False)
    assert cached.shape == (8, 12)
    np.testing.assert_array_equal(cached, uncached)


def test_generation_stops_at_eos_and_pads():
    keras.utils.set_random_seed(0)
    model = Seq2SeqTransformer.from_preset("tiny", decoder_vocabulary_size=6)
    # Make EOS (id 2) the most likely token after the third step by biasing
    # the head; then everything after it must be padding.
    bias = model.lm_head.bias
    bias.assign(np.array([0, 0, 0, 5, 0, 0], "float32"))
    enc, _ = _inputs(batch=3)
    tokens = model.generate(enc, max_length=10)
    assert (tokens != 1).all() and tokens[:, 0].min() >= 2  # never PAD/BOS first
    bias.assign(np.array([0, 0, 50, 0, 0, 0], "float32"))
    tokens = model.generate(enc, max_length=10)
    np.testing.assert_array_equal(tokens[:, 0], 2)
    np.testing.assert_array_equal(tokens[:, 1:], 0)


def test_keras_round_trip_with_safe_mode(model, tmp_path):
    enc, dec = _inputs()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded, Seq2SeqTransformer)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(_logits(loaded, enc, dec), _logits(model, enc, dec))
    np.testing.assert_array_equal(
        loaded.generate(enc, max_length=8), model.generate(enc, max_length=8)
    )


def test_presets():
    assert set(PRESETS) == {"tiny", "small", "base"}
    base = PRESETS["base"]
    assert base["hidden_dim"] == 512
    assert base["num_encoder_layers"] == base["num_decoder_layers"] == 6
    small = Seq2SeqTransformer.from_preset("small", encoder_vocabulary_size=33)
    assert small.encoder_vocabulary_size == 33
    assert len(small.encoder_layers) == PRESETS["small"]["num_encoder_layers"]


def test_nested_variable_paths_reach_keras_hub_sublayers(model):
    paths = {v.path for v in model.weights}
    assert "decoder_layer_1/cross_attention/query/kernel" in paths
    assert "encoder_layer_0/feedforward_intermediate_dense/kernel" in paths
    assert "decoder_layer_0/self_attention/attention_output/kernel" in paths


def test_bad_arguments():
    with pytest.raises(UserError, match="Unknown model preset 'huge'.*tiny, small"):
        Seq2SeqTransformer.from_preset("huge")
    with pytest.raises(UserError, match=r"Unknown model override.*\['hiden_dim'\]"):
        Seq2SeqTransformer.from_preset("tiny", hiden_dim=8)
    with pytest.raises(ValueError, match="divisible by `num_heads`"):
        Seq2SeqTransformer.from_preset("tiny", hidden_dim=10, num_heads=4)
    with pytest.raises(ValueError, match="positive integer.*num_encoder_layers=0"):
        Seq2SeqTransformer.from_preset("tiny", num_encoder_layers=0)
    model = Seq2SeqTransformer.from_preset("tiny", max_decoder_length=8)
    with pytest.raises(ValueError, match="max_length"):
        model.generate(np.ones((1, 3), "int32"), max_length=8)


def test_head_dim_sets_the_head_width_apart_from_hidden_dim(tmp_path):
    # Three heads of width 8 in a 16-wide model: hidden_dim need not divide.
    model = Seq2SeqTransformer.from_preset("tiny", num_heads=3, head_dim=8)
    assert model.head_dim == 8 and model.get_config()["head_dim"] == 8
    paths = {v.path: tuple(v.shape) for v in model.weights}
    assert paths["encoder_layer_0/self_attention_layer/query/kernel"] == (16, 3, 8)
    assert paths["decoder_layer_1/cross_attention/attention_output/kernel"] == (
        3,
        8,
        16,
    )
    assert len(paths) == len(model.weights)  # the replaced sublayers are gone
    enc, dec = _inputs()
    assert model.init_cache(4, 6).shape == (4, 2, 2, 6, 3, 8)
    np.testing.assert_array_equal(
        model.generate(enc, max_length=6),
        model.generate(enc, max_length=6, use_cache=False),
    )
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(_logits(loaded, enc, dec), _logits(model, enc, dec))
    assert Seq2SeqTransformer.from_preset("tiny").get_config()["head_dim"] is None
    with pytest.raises(ValueError, match="positive integer.*head_dim=0"):
        Seq2SeqTransformer.from_preset("tiny", head_dim=0)


def test_load_model_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(UserError, match="is a folder"):
        load_model(tmp_path)
    junk = tmp_path / "junk.keras"
    junk.write_text("not a zip")
    with pytest.raises(UserError, match="not a `.keras` archive"):
        load_model(junk)


def test_save_model_drops_optimizer_state(tmp_path):
    from tfaccel.models import save_model

    keras.utils.set_random_seed(0)
    model = Seq2SeqTransformer.from_preset("tiny")
    enc, dec = _inputs()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit({"encoder_token_ids": enc, "decoder_token_ids": dec}, dec, verbose=0)
    model.save(tmp_path / "with_optimizer.keras")
    save_model(model, tmp_path / "plain.keras")
    plain = (tmp_path / "plain.keras").stat().st_size
    assert plain < 0.6 * (tmp_path / "with_optimizer.keras").stat().st_size
    loaded = load_model(tmp_path / "plain.keras")
    np.testing.assert_allclose(_logits(loaded, enc, dec), _logits(model, enc, dec))
