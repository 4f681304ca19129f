"""`factorize`: SVD factors, FLOP counts, training, saving, exports, errors."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import tfaccel
from tfaccel.compression import (
    FactorizedModel,
    LowRankDense,
    LowRankEinsumDense,
    factorization_summary,
    factorize,
    kernel_macs,
    parameter_count,
)
from tfaccel.core import kernels
from tfaccel.errors import UserError
from tfaccel.models import Seq2SeqTransformer, load_model, save_model

FF = r".*feedforward.*kernel"
QUERY = "encoder_layer_0/self_attention_layer/query/kernel"
OUTPUT = "encoder_layer_0/self_attention_layer/attention_output/kernel"
FF_IN = "encoder_layer_0/feedforward_intermediate_dense/kernel"


def _inputs(batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "encoder_token_ids": rng.integers(3, 64, (batch, 7)).astype("int32"),
        "decoder_token_ids": rng.integers(3, 48, (batch, 5)).astype("int32"),
    }


def _tiny(seed=0):
    keras.utils.set_random_seed(seed)
    model = Seq2SeqTransformer.from_preset("tiny")
    model(_inputs())
    return model


def _numpy(x):
    return ops.convert_to_numpy(x)


def _kernels(model):
    return {v.path: _numpy(v) for v in model.weights if v.path.endswith("/kernel")}


def _layer(model, path):
    """Returns the layer that owns (or owned) the kernel at `path`."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if layer.path == path.rsplit("/", 1)[0]:
            return layer
    raise KeyError(path)


def _dense_model(kernel, bias=True):
    """A functional model of one Dense layer holding `kernel` (in, out)."""
    inputs = keras.Input((kernel.shape[0],))
    layer = keras.layers.Dense(kernel.shape[1], use_bias=bias, name="dense")
    model = keras.Model(inputs, layer(inputs))
    layer.kernel.assign(kernel)
    return model


def _with_singular_values(s, rows, cols, seed=0):
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(rows, len(s))))
    v, _ = np.linalg.qr(rng.normal(size=(cols, len(s))))
    return (u * s) @ v.T  # (rows, cols) with singular values s, then zeros


# === Numerics ===


def test_full_rank_factors_reproduce_the_model():
    model = _tiny()
    x = _inputs()
    before = _numpy(model(x))
    factorize(model, [r".*kernel"], rank=16, only_if_smaller=False)
    np.testing.assert_allclose(_numpy(model(x)), before, atol=1e-5)
    query, output = _layer(model, QUERY), _layer(model, OUTPUT)
    assert type(query) is LowRankEinsumDense and type(output) is LowRankEinsumDense
    assert type(_layer(model, FF_IN)) is LowRankDense
    assert isinstance(model, FactorizedModel) and isinstance(model, Seq2SeqTransformer)
    # (hidden, heads, head_dim) -> (hidden, r), (r, heads, head_dim).
    assert tuple(query.kernel_a.shape) == (16, 16)
    assert tuple(query.kernel_b.shape) == (16, 2, 8)
    # (heads, head_dim, hidden) -> (heads, head_dim, r), (r, hidden).
    assert tuple(output.kernel_a.shape) == (2, 8, 16)
    assert tuple(output.kernel_b.shape) == (16, 16)
    assert not any(v.path.endswith("/kernel") for v in model.weights)
    rows = {r["path"]: r for r in factorization_summary(model, print_fn=len)}
    assert rows[OUTPUT]["shape"] == (2, 8, 16)
    assert (rows[OUTPUT]["in"], rows[OUTPUT]["out"]) == (16, 16)
    np.testing.assert_allclose(rows[OUTPUT]["energy"], 1.0)


def test_truncated_factors_have_the_eckart_young_error():
    model = _tiny()
    originals = _kernels(model)
    factorize(model, [FF, QUERY, OUTPUT], rank=3)
    for path in [FF_IN, QUERY, OUTPUT]:
        layer = _layer(model, path)
        axes = (0, 1) if path == OUTPUT else (0,)
        view = kernels.to_matrix(originals[path], axes)
        s = np.linalg.svd(view.astype(np.float64), compute_uv=False)
        error = np.linalg.norm(_numpy(layer.kernel) - originals[path])
        np.testing.assert_allclose(error, np.sqrt(np.sum(s[3:] ** 2)), rtol=1e-4)
        # sqrt(S) is split evenly: A^T A = B B^T = diag(s[:r]).
        a = _numpy(layer.kernel_a).reshape(-1, 3)
        b = _numpy(layer.kernel_b).reshape(3, -1)
        np.testing.assert_allclose(a.T @ a, np.diag(s[:3]), atol=1e-4)
        np.testing.assert_allclose(b @ b.T, np.diag(s[:3]), atol=1e-4)


def test_a_truncated_layer_changes_outputs_by_at_most_the_dropped_singular_value():
    kernel = np.random.default_rng(1).normal(size=(24, 20)).astype("float32")
    model = _dense_model(kernel)
    x = np.random.default_rng(2).normal(size=(16, 24)).astype("float32")
    before = _numpy(model(x))
    factorize(model, ["dense/kernel"], rank=5)
    change = np.linalg.norm(_numpy(model(x)) - before, axis=1)
    s = np.linalg.svd(kernel.astype(np.float64), compute_uv=False)
    # ||x (W - AB)|| <= ||x|| * s_6, the spectral norm of the dropped part.
    bound = np.linalg.norm(x, axis=1) * s[5]
    assert np.all(change <= bound * (1 + 1e-4)) and np.all(change > 0)


@pytest.mark.parametrize(
    "energy, rank",
    [(0.5, 1), (0.8, 2), (25 / 30, 2), (0.84, 3), (0.97, 4), (1.0, 4)],
)
def test_energy_picks_the_smallest_rank_that_keeps_it(energy, rank):
    # Squared singular values 16, 9, 4, 1 of 30: rank r keeps 16, 25, 29, 30.
    kernel = _with_singular_values([4.0, 3.0, 2.0, 1.0], 32, 24)
    model = _dense_model(kernel.astype("float32"))
    factorize(model, ["dense/kernel"], energy=energy)
    (row, total) = factorization_summary(model, print_fn=lambda text: None)
    kept = [16 / 30, 25 / 30, 29 / 30, 1.0][rank - 1]
    assert row["rank"] == rank and row["factorized"]
    np.testing.assert_allclose(row["energy"], kept, rtol=1e-5)
    assert (row["params_before"], row["params_after"]) == (32 * 24, rank * 56)
    assert total["params_after"] == rank * 56
    u, s, vt = np.linalg.svd(kernel)
    truncated = (u[:, :rank] * s[:rank]) @ vt[:rank]
    np.testing.assert_allclose(_numpy(model.layers[1].kernel), truncated, atol=1e-5)


def test_rank_wins_over_energy():
    kernel = _with_singular_values([4.0, 3.0, 2.0, 1.0], 32, 24)
    model = _dense_model(kernel.astype("float32"))
    factorize(model, ["dense/kernel"], rank=3, energy=0.5)
    assert model.layers[1].rank == 3


# === FLOPs and parameters ===


def test_macs_and_parameters_follow_the_formula():
    model = _tiny()
    hidden, inner, vocab = 16, 32, 48
    attention = 4 * hidden * hidden  # query, key, value, output
    feedforward = 2 * hidden * inner
    encoder, decoder = attention + feedforward, 2 * attention + feedforward
    expected = 2 * encoder + 2 * decoder + hidden * vocab
    assert kernel_macs(model) == expected == 11008
    assert parameter_count(model) == model.count_params()
    params = parameter_count(model)

    factorize(model, [FF], rank=4)
    saved = 8 * (hidden * inner - 4 * (hidden + inner))  # 8 feedforward kernels
    assert kernel_macs(model) == expected - saved
    assert parameter_count(model) == params - saved == model.count_params()
    rows = factorization_summary(model, print_fn=lambda text: None)
    assert len(rows) == 9 and all(row["rank"] == 4 for row in rows[:-1])
    assert rows[-1]["params_before"] - rows[-1]["params_after"] == saved


def test_kernels_that_would_not_shrink_are_skipped():
    model = _tiny()
    originals = _kernels(model)
    with pytest.warns(UserWarning, match="24 of 33 targeted kernels are kept"):
        factorize(model, [r".*kernel"], rank=10)
    # (16, 16) attention kernels: 10 * 32 >= 256, kept; (16, 32), (32, 16)
    # and the (16, 48) lm_head shrink: 480 < 512, 640 < 768.
    assert type(_layer(model, QUERY)) is keras.layers.EinsumDense
    np.testing.assert_array_equal(_kernels(model)[QUERY], originals[QUERY])
    assert type(_layer(model, FF_IN)) is LowRankDense
    assert type(_layer(model, "lm_head/kernel")) is LowRankDense
    printed = []
    rows = factorization_summary(model, print_fn=printed.append)
    skipped = {row["path"] for row in rows[:-1] if not row["factorized"]}
    assert len(rows) == 34 and len(skipped) == 24 and QUERY in skipped
    for row in rows[:-1]:
        if row["factorized"]:
            assert row["params_after"] == 10 * (row["in"] + row["out"])
        else:
            assert row["params_after"] == row["params_before"] == 256
    assert "(skipped)" in printed[0]


# === Training, saving, exporting ===


@pytest.mark.large
def test_fine_tuning_trains_the_factors():
    model = _tiny()
    factorize(model, [FF, r".*query/kernel"], rank=4)
    # Eager: tracing the train step would take most of the test's time.
    model.compile(
        keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", run_eagerly=True
    )
    x = _inputs(batch=16, seed=1)
    y = np.random.default_rng(3).integers(3, 48, (16, 5))
    layer = _layer(model, FF_IN)
    a, b = _numpy(layer.kernel_a), _numpy(_layer(model, QUERY).kernel_b)
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert np.abs(_numpy(layer.kernel_a) - a).max() > 1e-4
    assert np.abs(_numpy(_layer(model, QUERY).kernel_b) - b).max() > 1e-4


def test_save_and_load_give_identical_outputs(tmp_path):
    model = _tiny()
    factorize(model, [FF], rank=4)
    factorize(model, [r".*attention_output/kernel"], energy=0.5)
    x = _inputs()
    expected = _numpy(model(x))
    rows = factorization_summary(model, print_fn=lambda text: None)[:-1]
    ranks = model.get_config()["factorized"]
    assert ranks == {row["path"]: row["rank"] for row in rows if row["factorized"]}
    assert len(ranks) > 8 and ranks[FF_IN] == 4

    model.save(tmp_path / "keras.keras")
    save_model(model, tmp_path / "tfaccel.keras")
    for path in ("keras.keras", "tfaccel.keras"):
        loaded = load_model(tmp_path / path)
        assert type(loaded) is type(model)
        assert loaded.get_config()["factorized"] == ranks
        np.testing.assert_array_equal(_numpy(loaded(x)), expected)


def test_a_functional_model_saves_its_low_rank_layers(tmp_path):
    inputs = keras.Input((12,))
    hidden = keras.layers.Dense(10, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(8, name="out")(hidden))
    factorize(model, ["hidden/kernel"], rank=3)
    config = model.get_config()["model"]
    assert [layer["class_name"] for layer in config["layers"]][1] == "LowRankDense"
    x = np.random.default_rng(0).normal(size=(4, 12)).astype("float32")
    model.save(tmp_path / "mlp.keras")
    loaded = keras.saving.load_model(tmp_path / "mlp.keras")
    np.testing.assert_array_equal(_numpy(loaded(x)), _numpy(model(x)))
    assert loaded.get_layer("hidden").rank == 3


def test_a_keras_hub_bart_backbone_factorizes_and_reloads(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras_hub.models.BartBackbone(
        vocabulary_size=64,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=16,
    )
    x = {
        "encoder_token_ids": np.arange(3, 9)[None].repeat(2, 0),
        "encoder_padding_mask": np.ones((2, 6), bool),
        "decoder_token_ids": np.arange(4, 9)[None].repeat(2, 0),
        "decoder_padding_mask": np.ones((2, 5), bool),
    }
    before = model(x)["decoder_sequence_output"]
    macs = kernel_macs(model)
    factorize(model, [FF], rank=4)
    assert kernel_macs(model) == macs - 8 * (16 * 32 - 4 * 48)
    after = _numpy(model(x)["decoder_sequence_output"])
    assert after.shape == (2, 5, 16) and np.all(np.isfinite(after))
    assert 0 < np.abs(after - _numpy(before)).max() < 1
    model.save(tmp_path / "bart.keras")
    loaded = keras.saving.load_model(tmp_path / "bart.keras")
    assert isinstance(loaded, keras_hub.models.BartBackbone)
    np.testing.assert_array_equal(_numpy(loaded(x)["decoder_sequence_output"]), after)


@pytest.mark.large
def test_a_factorized_model_exports_to_tflite_and_generates(tmp_path):
    model = _tiny()
    factorize(model, [FF, r".*(query|value)/kernel", "lm_head/kernel"], rank=6)
    ids = _inputs(batch=4)["encoder_token_ids"]
    cached = model.generate(ids, 7)
    np.testing.assert_array_equal(cached, model.generate(ids, 7, use_cache=False))
    result = tfaccel.export(
        model,
        tmp_path / "out",
        ["tflite_fp32"],
        sample_inputs=ids,
        source_length=12,
        max_length=8,
    )
    artifact = result["tflite_fp32"]
    assert artifact.max_difference <= 1e-4 and artifact.agreement == 1.0


def test_mirrored_strategy_matches_one_device(mirrored_strategy):
    kernel = np.random.default_rng(4).normal(size=(12, 10)).astype("float32")
    x = np.random.default_rng(5).normal(size=(16, 12)).astype("float32")
    y = np.random.default_rng(6).normal(size=(16, 10)).astype("float32")
    trained = []
    for strategy in (mirrored_strategy, tf.distribute.get_strategy()):
        with strategy.scope():
            model = _dense_model(kernel)
        factorize(model, ["dense/kernel"], rank=3)  # under the model's strategy
        with strategy.scope():
            model.compile(keras.optimizers.SGD(0.1), "mse")
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        trained.append(model.layers[1])
    mirrored, single = trained
    for name in ("kernel_a", "kernel_b"):
        variable = getattr(mirrored, name)
        assert isinstance(variable.value, tf.distribute.DistributedValues)
        first, second = (r.numpy() for r in variable.value.values)
        np.testing.assert_array_equal(first, second)
        np.testing.assert_allclose(
            first, _numpy(getattr(single, name)), rtol=1e-5, atol=1e-7
        )


# === Errors ===


def _pruned(model):
    schedule = tfaccel.ConstantSparsity(0.5, begin_step=0)
    return tfaccel.prune(model, [FF_IN], schedule)


def _clustered(model):
    return tfaccel.cluster(model, [FF_IN], num_clusters=4)


def _quantized(model):
    return tfaccel.quantize_aware(model, [FF_IN])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(rank=17),
            r"larger than min\(in, out\) = 16 of '.*query/kernel' \(shape \(16, 2, 8\)",
        ),
        (dict(rank=0), "`rank` must be an int >= 1"),
        (dict(rank=2.5), "`rank` must be an int >= 1"),
        (dict(energy=0.0), r"`energy` must be in \(0, 1\]"),
        (dict(energy=1.5), r"`energy` must be in \(0, 1\]"),
        (dict(energy="high"), "`energy` must be a number"),
        (dict(targets=[r".*no_such_kernel"]), "matches no trainable variable path"),
        (
            dict(targets=[r".*token_embedding/embeddings"]),
            r"ReversibleEmbedding\): only the kernels",
        ),
        (
            dict(targets=[r".*feedforward_layer_norm/gamma"]),
            r"LayerNormalization\): only the kernels",
        ),
        (dict(targets=[r".*intermediate_dense/.*"]), r"bias' \(Dense\): only the"),
        (dict(targets=[r"re:(.*"]), "Invalid target regex"),
    ],
)
def test_bad_arguments_get_a_clear_error(kwargs, message):
    model = _tiny()
    kwargs = {"targets": [r".*kernel"], **kwargs}
    with pytest.raises(UserError, match=message) as error:
        factorize(model, **kwargs)
    assert "Received:" in str(error.value)
    assert type(model) is Seq2SeqTransformer  # nothing changed
    assert not any(isinstance(layer, LowRankDense) for layer in model._flatten_layers())


@pytest.mark.parametrize(
    "prepare, state",
    [
        (_pruned, "pruned"),
        (_clustered, "clustered"),
        (_quantized, "quantization-aware"),
    ],
)
def test_compressed_layers_are_refused(prepare, state):
    model = prepare(_tiny())
    with pytest.raises(UserError, match=f"its layer is {state}.*Received: path="):
        factorize(model, [FF_IN], rank=4)


def test_a_kernel_is_factorized_once():
    model = factorize(_tiny(), [FF], rank=4)
    with pytest.raises(
        UserError, match=r"feedforward.*is already factorized \(rank 4\)"
    ):
        factorize(model, [FF], rank=2)
    with pytest.raises(UserError, match="already factorized"):
        factorize(model, [r".*feedforward.*kernel_a"], rank=2)
    factorize(model, [r".*query/kernel"], rank=4)  # other kernels still can be
    assert type(_layer(model, QUERY)) is LowRankEinsumDense


def test_qat_refuses_factorized_layers_and_leaves_them_float_by_default():
    model = factorize(_tiny(), [FF], rank=4)
    with pytest.raises(UserError, match=r"factorized into two low-rank factors"):
        tfaccel.quantize_aware(model, targets=[r".*feedforward.*kernel_a"])
    tfaccel.quantize_aware(model, targets=[r".*kernel"])
    from tfaccel.quantization import _state

    quantized = [r.path for _, state in _state.find_states(model) for r in state.layers]
    assert quantized and not any("feedforward" in path for path in quantized)


def test_an_unbuilt_model_is_refused():
    model = keras.Sequential([keras.layers.Dense(4)])
    with pytest.raises(UserError, match="needs a built Keras 3 model"):
        factorize(model, [r".*kernel"], rank=2)


def test_a_summary_of_an_unfactorized_model_is_refused():
    with pytest.raises(UserError, match="has no factorized kernel"):
        factorization_summary(_tiny())
