"""`shrink`: exact copies, parameter counts, what is kept, and clear errors."""

import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from tfaccel.clustering import cluster
from tfaccel.compression import shrink, shrink_report
from tfaccel.errors import UserError
from tfaccel.models import Seq2SeqTransformer, load_model, save_model
from tfaccel.pruning import ConstantSparsity, prune
from tfaccel.quantization import quantize_aware

ATTENTIONS = ("_self_attention_layer", "_cross_attention_layer")


def _model(seed=0):
    # Four heads of width 4 and three encoder layers, so each kind can shrink.
    keras.utils.set_random_seed(seed)
    return Seq2SeqTransformer.from_preset("tiny", num_heads=4, num_encoder_layers=3)


def _copy(model):
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def _inputs(seed=0, batch=4, src=7, tgt=6):
    rng = np.random.default_rng(seed)
    enc = rng.integers(3, 60, (batch, src)).astype("int32")
    dec = rng.integers(3, 45, (batch, tgt)).astype("int32")
    dec[:, 0] = 1  # BOS
    for row in range(batch):  # ragged lengths, padded with 0
        enc[row, src - row :] = 0
        dec[row, tgt - row // 2 :] = 0
    return {"encoder_token_ids": enc, "decoder_token_ids": dec}


def _logits(model, inputs):
    return ops.convert_to_numpy(model(inputs, training=False))


def _params(
    hidden,
    heads,
    head_dim,
    ffn,
    encoder_layers,
    decoder_layers,
    vocab=(64, 48),
    length=48,
):
    """Parameter count of a Seq2SeqTransformer, by formula."""
    attention = 3 * (hidden * heads * head_dim + heads * head_dim)  # q, k, v
    attention += heads * head_dim * hidden + hidden  # output projection
    feedforward = 2 * hidden * ffn + ffn + hidden
    encoder = attention + feedforward + 2 * 2 * hidden  # two layer norms
    decoder = 2 * attention + feedforward + 3 * 2 * hidden
    embeddings = (sum(vocab) + 2 * length) * hidden
    lm_head = hidden * vocab[1] + vocab[1]
    return embeddings + encoder_layers * encoder + decoder_layers * decoder + lm_head


def _attentions(model):
    """Yields `(k, attention)` for every attention layer of `model`, in order."""
    layers = [*model.encoder_layers, *model.decoder_layers]
    found = [getattr(layer, a, None) for layer in layers for a in ATTENTIONS]
    yield from enumerate(a for a in found if a is not None)


def _scale_rows(variable, rows, factor, axis=0):
    value = ops.convert_to_numpy(variable)
    index = [slice(None)] * value.ndim
    index[axis] = rows
    value[tuple(index)] *= factor
    variable.assign(value)


def _relative_weights(layer):
    return {
        v.path.removeprefix(f"{layer.path}/"): ops.convert_to_numpy(v)
        for v in layer.weights
    }


@pytest.fixture(scope="module")
def model():
    return _model()


# === Exact copies and sizes ===


@pytest.mark.parametrize(
    "importance, keep",
    [
        ("magnitude", dict(heads=1.0, ffn=1.0, layers=1.0)),
        ("activation", dict(heads=4, ffn=32, layers={"encoder": 3, "decoder": 2})),
    ],
)
def test_keeping_everything_reproduces_the_outputs(model, importance, keep):
    inputs = _inputs()
    calibration = inputs if importance == "activation" else None
    shrunk = shrink(model, **keep, importance=importance, calibration=calibration)
    assert shrunk is not model and isinstance(shrunk, Seq2SeqTransformer)
    assert shrunk.count_params() == model.count_params()
    assert shrunk.get_config() == model.get_config()
    np.testing.assert_allclose(
        _logits(shrunk, inputs), _logits(model, inputs), atol=1e-5
    )


@pytest.mark.parametrize(
    "keep, sizes",
    [
        (dict(heads=0.5), dict(heads=2)),
        (dict(heads=3), dict(heads=3)),
        (dict(ffn=0.25), dict(ffn=8)),
        (dict(layers={"encoder": 1}), dict(encoder_layers=1)),
        (dict(layers=0.5), dict(encoder_layers=2, decoder_layers=1)),
        (
            dict(heads=1, ffn=5, layers={"decoder": 0.5}),
            dict(heads=1, ffn=5, decoder_layers=1),
        ),
    ],
)
def test_parameter_count_matches_the_formula(model, keep, sizes):
    full = dict(heads=4, ffn=32, encoder_layers=3, decoder_layers=2)
    assert model.count_params() == _params(16, head_dim=4, **full)
    shrunk = shrink(model, **keep)
    assert shrunk.count_params() == _params(16, head_dim=4, **{**full, **sizes})
    assert shrunk.head_dim == 4  # fewer heads, same width
    report = shrink_report(model, shrunk)
    assert report["parameters"] == (model.count_params(), shrunk.count_params())
    assert report["num_heads"] == (4, {**full, **sizes}["heads"])
    assert report["encoder_layers"] == (3, {**full, **sizes}["encoder_layers"])
    assert report["parameter_ratio"] == pytest.approx(
        shrunk.count_params() / model.count_params()
    )


# === What is kept ===


@pytest.mark.parametrize("importance", ["magnitude", "activation"])
def test_heads_and_neurons_that_add_nothing_are_the_ones_dropped(model, importance):
    # Each attention layer gets two dead heads (a zero output projection) and
    # each feedforward block 16 dead neurons (a zero output row), different
    # ones in every layer: dropping exactly them leaves the outputs as they
    # were; dropping any other changes them.
    dead = _copy(model)
    for k, attention in _attentions(dead):
        _scale_rows(attention._output_dense.kernel, [k % 4, (k + 1) % 4], 0.0)
    layers = [*dead.encoder_layers, *dead.decoder_layers]
    for k, layer in enumerate(layers):
        rows = np.arange(32)[(np.arange(32) + k) % 2 == 0]
        _scale_rows(layer._feedforward_output_dense.kernel, rows, 0.0)
    inputs = _inputs()
    calibration = _inputs(seed=1) if importance == "activation" else None
    shrunk = shrink(
        dead, heads=2, ffn=16, importance=importance, calibration=calibration
    )
    assert shrunk.count_params() == _params(16, 2, 4, 16, 3, 2)
    np.testing.assert_allclose(
        _logits(shrunk, inputs), _logits(dead, inputs), atol=1e-5
    )
    # A wrong choice would show: keeping the dead heads changes the outputs.
    for k, attention in _attentions(dead):
        _scale_rows(attention._output_dense.kernel, [(k + 2) % 4], 0.0)
    assert np.abs(_logits(shrunk, inputs) - _logits(dead, inputs)).max() > 1e-3


def test_activation_importance_drops_neurons_that_never_fire(model):
    # Half the neurons get large weights but a bias that keeps ReLU at zero on
    # every input: magnitude keeps them (and loses the live ones), while
    # activation importance sees they never fire and drops exactly them.
    dead = _copy(model)
    for k, layer in enumerate([*dead.encoder_layers, *dead.decoder_layers]):
        rows = np.arange(32)[(np.arange(32) + k) % 2 == 1]
        inner = layer._feedforward_intermediate_dense
        _scale_rows(inner.kernel, rows, 4.0, axis=1)
        bias = ops.convert_to_numpy(inner.bias)
        bias[rows] = -100.0
        inner.bias.assign(bias)
        _scale_rows(layer._feedforward_output_dense.kernel, rows, 4.0)
    inputs = _inputs()
    calibration = [_inputs(seed=1), _inputs(seed=2, batch=2)]
    active = shrink(dead, ffn=0.5, importance="activation", calibration=calibration)
    np.testing.assert_allclose(
        _logits(active, inputs), _logits(dead, inputs), atol=1e-5
    )
    by_weight = shrink(dead, ffn=0.5)
    assert np.abs(_logits(by_weight, inputs) - _logits(dead, inputs)).max() > 1e-2


def _silence(layer):
    # Zero every residual branch: the layer then only re-normalizes its input.
    for attribute in ATTENTIONS:
        attention = getattr(layer, attribute, None)
        if attention is not None:
            _scale_rows(attention._output_dense.kernel, slice(None), 0.0)
    _scale_rows(layer._feedforward_output_dense.kernel, slice(None), 0.0)


@pytest.mark.parametrize("importance", ["magnitude", "activation"])
def test_the_layer_that_changes_least_is_dropped(model, importance):
    quiet = _copy(model)
    _silence(quiet.encoder_layers[1])  # its input is already layer-normed
    inputs = _inputs()
    calibration = inputs if importance == "activation" else None
    shrunk = shrink(
        quiet, layers={"encoder": 2}, importance=importance, calibration=calibration
    )
    kept = [quiet.encoder_layers[0], quiet.encoder_layers[2]]
    for new, old in zip(shrunk.encoder_layers, kept, strict=True):
        expected = _relative_weights(old)
        for path, value in _relative_weights(new).items():
            np.testing.assert_array_equal(value, expected[path])
    assert [layer.name for layer in shrunk.encoder_layers] == [
        "encoder_layer_0",
        "encoder_layer_1",
    ]
    # Re-normalizing normalized vectors is the identity up to LayerNorm's
    # epsilon, so the outputs barely move.
    np.testing.assert_allclose(
        _logits(shrunk, inputs), _logits(quiet, inputs), atol=1e-4
    )


def test_decoder_layers_are_chosen_on_their_own(model):
    quiet = _copy(model)
    _silence(quiet.decoder_layers[0])
    shrunk = shrink(quiet, layers={"decoder": 1})
    assert len(shrunk.encoder_layers) == 3
    expected = _relative_weights(quiet.decoder_layers[1])
    for path, value in _relative_weights(shrunk.decoder_layers[0]).items():
        np.testing.assert_array_equal(value, expected[path])


# === The shrunk model works like any other ===


def test_shrunk_model_generates_saves_and_loads(model, tmp_path):
    shrunk = shrink(model, heads=2, ffn=0.5, layers={"encoder": 2})
    enc = _inputs()["encoder_token_ids"]
    cached = shrunk.generate(enc, max_length=8)
    np.testing.assert_array_equal(
        cached, shrunk.generate(enc, max_length=8, use_cache=False)
    )
    assert shrunk.init_cache(2, 5).shape == (2, 2, 2, 5, 2, 4)
    path = tmp_path / "shrunk.keras"
    save_model(shrunk, path)
    loaded = load_model(path)
    assert loaded.get_config() == shrunk.get_config()
    assert loaded.get_config()["head_dim"] == 4
    inputs = _inputs()
    np.testing.assert_allclose(
        _logits(loaded, inputs), _logits(shrunk, inputs), atol=1e-6
    )
    np.testing.assert_array_equal(loaded.generate(enc, max_length=8), cached)


def test_shrunk_model_keeps_the_distribution_strategy(mirrored_strategy):
    with mirrored_strategy.scope():
        model = _model()
    shrunk = shrink(model, heads=2)  # called outside the scope
    assert shrunk.distribute_strategy is mirrored_strategy
    inputs = _inputs()
    assert _logits(shrunk, inputs).shape == (4, 6, 48)


@pytest.mark.large
def test_shrunk_model_exports_to_tflite(model, tmp_path):
    from tfaccel.export import api

    shrunk = shrink(model, heads=2, ffn=0.5, layers=0.5)
    result = api.export(
        shrunk, tmp_path / "out", ["tflite_fp32"], source_length=12, max_length=8
    )
    lite = result["tflite_fp32"]
    assert lite.max_difference <= 1e-3 and lite.agreement == 1.0
    ids = _inputs()["encoder_token_ids"]
    runner = api.load(lite.format, lite.path)
    np.testing.assert_array_equal(runner.generate(ids, 8), shrunk.generate(ids, 8))


# === BART ===


@pytest.fixture(scope="module")
def bart():
    keras.utils.set_random_seed(0)
    return keras_hub.models.BartBackbone(
        vocabulary_size=64,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=16,
    )


def _bart_inputs(seed=0):
    inputs = _inputs(seed)
    for stack in ("encoder", "decoder"):
        inputs[f"{stack}_padding_mask"] = (inputs[f"{stack}_token_ids"] != 0).astype(
            "int32"
        )
    return inputs


def _bart_params(layers, ffn, hidden=16, heads=2, vocab=64, length=16):
    attention = 4 * (
        hidden * hidden + hidden
    )  # q, k, v, output: heads x width = hidden
    feedforward = 2 * hidden * ffn + ffn + hidden
    encoder = attention + feedforward + 2 * 2 * hidden
    decoder = 2 * attention + feedforward + 3 * 2 * hidden
    embeddings = vocab * hidden + 2 * length * hidden + 2 * 2 * hidden
    return embeddings + layers * (encoder + decoder)


def _bart_outputs(model, inputs):
    outputs = model(inputs, training=False)
    return {name: ops.convert_to_numpy(value) for name, value in outputs.items()}


def test_bart_keeping_everything_reproduces_the_outputs(bart):
    inputs = _bart_inputs()
    shrunk = shrink(bart, ffn=1.0, layers=2)
    assert isinstance(shrunk, keras_hub.models.BartBackbone)
    ours, theirs = _bart_outputs(shrunk, inputs), _bart_outputs(bart, inputs)
    for name in theirs:
        np.testing.assert_allclose(ours[name], theirs[name], atol=1e-5)


@pytest.mark.parametrize("importance", ["magnitude", "activation"])
def test_bart_feedforward_and_layers_shrink(bart, importance):
    assert bart.count_params() == _bart_params(layers=2, ffn=32)
    calibration = [_bart_inputs(1)] if importance == "activation" else None
    shrunk = shrink(
        bart, ffn=0.5, layers=1, importance=importance, calibration=calibration
    )
    assert shrunk.count_params() == _bart_params(layers=1, ffn=16)
    assert (shrunk.num_layers, shrunk.intermediate_dim) == (1, 16)
    outputs = _bart_outputs(shrunk, _bart_inputs())
    assert outputs["decoder_sequence_output"].shape == (4, 6, 16)
    assert np.isfinite(outputs["decoder_sequence_output"]).all()


def test_bart_heads_and_uneven_layers_are_refused(bart):
    with pytest.raises(UserError, match=r"hidden_dim // num_heads.*`ffn` or `layers`"):
        shrink(bart, heads=1)
    with pytest.raises(UserError, match="one `num_layers`.*Received: layers="):
        shrink(bart, layers={"encoder": 1})


# === Errors ===


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            dict(heads=0),
            r"none of the 4 attention heads.*each attention layer.*heads=0",
        ),
        (dict(heads=0.1), r"keeps none of the 4 attention heads.*Received: heads=0.1"),
        (dict(ffn=0), r"keeps none of the 32 feedforward neurons"),
        (dict(layers=0), r"keeps none of the 3 encoder layers, but the encoder"),
        (dict(layers={"decoder": 0.2}), r"keeps none of the 2 decoder layers"),
        (dict(heads=5), r"more attention heads than the model has \(4\)"),
        (dict(layers={"encoder": 4}), r"more encoder layers than the model has \(3\)"),
        (dict(ffn=-3), r"keeps none of the 32 feedforward neurons.*ffn=-3"),
        (dict(ffn=1.5), r"must be in \(0, 1\].*pass an int.*Received: ffn=1.5"),
        (dict(heads=-0.5), r"must be in \(0, 1\]"),
        (dict(heads="half"), r"ratio in \(0, 1\] or an int count.*heads='half'"),
        (dict(heads=True), r"ratio in \(0, 1\] or an int count.*heads=True"),
        (dict(layers={"middle": 1}), r"Unknown `layers` key.*'encoder' and/or"),
        (dict(importance="random"), r"Unknown `importance` 'random'.*'magnitude'"),
        (dict(importance="activation"), r"pass `calibration`.*calibration=None"),
        (dict(calibration={}), r"only read with importance='activation'"),
        (dict(importance="activation", calibration=[]), r"non-empty list"),
        (
            dict(importance="activation", calibration={"encoder_token_ids": [[3]]}),
            r"lacks the model input\(s\) \['decoder_token_ids'\]",
        ),
        (
            dict(
                importance="activation",
                calibration={
                    "encoder_token_ids": np.zeros((2, 3), "int32"),
                    "decoder_token_ids": np.ones((2, 3), "int32"),
                },
            ),
            r"no encoder tokens other than\s+padding",
        ),
    ],
)
def test_bad_arguments_get_a_clear_error(model, arguments, message):
    with pytest.raises(UserError, match=message):
        shrink(model, **arguments)


@pytest.mark.parametrize(
    "technique, state",
    [
        (
            lambda m: prune(m, [".*feedforward.*kernel"], ConstantSparsity(0.5)),
            "pruned",
        ),
        (lambda m: cluster(m, [".*feedforward_output_dense/kernel"], 4), "clustered"),
        (lambda m: quantize_aware(m), "quantization-aware"),
        (lambda m: m.lm_head.quantize("int8"), "quantized or LoRA-enabled"),
    ],
)
def test_compressed_models_are_refused(model, technique, state):
    copy = _copy(model)
    technique(copy)
    with pytest.raises(UserError, match=f"is {state};.*Shrink before pruning"):
        shrink(copy, ffn=0.5)


def test_other_models_are_refused():
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(UserError, match="supports tfaccel.models.Seq2SeqTransformer"):
        shrink(dense, ffn=0.5)
