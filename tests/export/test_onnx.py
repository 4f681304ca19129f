"""ONNX export of the generation signatures, run in ONNX Runtime."""

import collections

import keras
import numpy as np
import onnx
import pytest
from keras import ops
from qat_checks import tiny_model

from tfaccel.errors import UserError
from tfaccel.export import _onnx_ops
from tfaccel.export import onnx as onnx_export
from tfaccel.models.seq2seq_transformer import EOS_ID

SOURCE, TARGET = 12, 8
# Dense kernels per graph: encode has 2 encoder layers x 6 and the 2 decoder
# layers' cross-attention keys and values; decode_step has 2 decoder layers
# x 8 and the head.
KERNELS = {"encode": 16, "decode_step": 17}


def _copy_data(count, seed=0, length=6):
    """A copy task: the target is the source, then EOS."""
    rng = np.random.default_rng(seed)
    source = rng.integers(3, 40, (count, length)).astype("int32")
    decoder = np.concatenate([np.ones((count, 1), "int32"), source], axis=1)
    target = np.concatenate([source, np.full((count, 1), EOS_ID, "int32")], axis=1)
    return {"encoder_token_ids": source, "decoder_token_ids": decoder}, target


def _ids(batch=6, seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 40, (batch, 9)).astype("int32")
    ids[1, 5:] = 0  # one padded source
    return ids


def _pad(ids):
    padded = np.zeros((len(ids), SOURCE), np.int32)
    padded[:, : ids.shape[1]] = ids
    return padded


def _step_logits(model, runner, ids):
    """Logits of the first two decode steps, from Keras and from ORT."""
    padded = _pad(ids)
    cross, mask = model.encode(padded)
    cache = model.init_cache(len(ids), TARGET)
    encoded = runner._encode(encoder_token_ids=padded)
    ort_cache = np.zeros(ops.shape(cache), np.float32)
    tokens = np.ones((len(ids), 1), np.int32)
    ours, theirs = [], []
    for index in range(2):
        logits, cache = model.decode_step(tokens, index, cache, cross, mask)
        out = runner._decode(
            token_ids=tokens,
            index=np.array(index, np.int32),
            self_cache=ort_cache,
            cross_cache=encoded["cross_cache"],
            encoder_mask=encoded["encoder_mask"],
        )
        ort_cache = out["self_cache"]
        ours.append(ops.convert_to_numpy(logits))
        theirs.append(out["logits"])
        tokens = np.full((len(ids), 1), 5 + index, np.int32)
    return np.concatenate(ours), np.concatenate(theirs)


def _op_counts(path):
    return collections.Counter(node.op_type for node in onnx.load(path).graph.node)


def _matmul_weights(path):
    """Shapes of the float initializers that are MatMul weights, by name."""
    graph = onnx.load(path).graph
    weights = {node.input[1] for node in graph.node if node.op_type == "MatMul"}
    return {
        t.name: list(t.dims)
        for t in graph.initializer
        if t.name in weights and t.data_type == onnx.TensorProto.FLOAT
    }


def _int8_weights(path):
    """Shapes of the int8 weights ORT quantization stored, by float name."""
    return {
        t.name.removesuffix("_quantized"): list(t.dims)
        for t in onnx.load(path).graph.initializer
        if t.name.endswith("_quantized") and t.data_type == onnx.TensorProto.INT8
    }


@pytest.fixture(scope="module")
def trained():
    # `qat_checks.fit` trains on random targets, after which greedy decoding
    # repeats one token; a copy task gives varied tokens and EOS.
    model = tiny_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = _copy_data(1024)
    model.fit(x, y, batch_size=32, epochs=4, shuffle=False, verbose=0)
    return model


@pytest.fixture(scope="module")
def fp32_folder(trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx") / "fp32"
    onnx_export.convert(trained, folder, SOURCE, TARGET)
    return folder


@pytest.fixture(scope="module")
def int8_folder(fp32_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx") / "int8"
    onnx_export.quantize_dynamic(fp32_folder, folder)
    return folder


@pytest.mark.large
def test_graphs_take_the_signature_names_and_match_keras(trained, fp32_folder):
    assert sorted(p.name for p in fp32_folder.iterdir()) == [
        "decode_step.onnx",
        "encode.onnx",
    ]
    runner = onnx_export.ORTModel(fp32_folder)
    encode, decode = runner.sessions["encode"], runner.sessions["decode_step"]
    assert [(i.name, i.shape) for i in encode.get_inputs()] == [
        ("encoder_token_ids", ["batch", SOURCE])
    ]
    assert [o.name for o in encode.get_outputs()] == ["cross_cache", "encoder_mask"]
    assert [(i.name, i.type) for i in decode.get_inputs()] == [
        ("token_ids", "tensor(int32)"),
        ("index", "tensor(int32)"),
        ("self_cache", "tensor(float)"),
        ("cross_cache", "tensor(float)"),
        ("encoder_mask", "tensor(float)"),
    ]
    assert [o.name for o in decode.get_outputs()] == ["logits", "updated_self_cache"]
    assert decode.get_inputs()[2].shape == ["batch", 2, 2, TARGET, 2, 8]
    assert (runner.source_length, runner.target_length) == (SOURCE, TARGET)
    ours, theirs = _step_logits(trained, runner, _ids())
    np.testing.assert_allclose(theirs, ours, atol=1e-4)
    first = runner.first_step_logits(_pad(_ids()))
    np.testing.assert_allclose(first, ours[: len(first)], atol=1e-4)


@pytest.mark.large
def test_generates_what_keras_generates(trained, fp32_folder):
    runner = onnx_export.ORTModel(fp32_folder, num_threads=2)
    ids = _ids()
    expected = trained.generate(ids, TARGET)
    # Not degenerate: varied tokens, and sequences that end.
    assert len(np.unique(expected)) > 10
    assert (expected == EOS_ID).any(axis=1).sum() >= 4
    np.testing.assert_array_equal(runner.generate(ids, TARGET), expected)
    # Batch size is dynamic: one row alone, run to full length.
    np.testing.assert_array_equal(
        runner.generate(ids[:1], TARGET, stop_at_eos=False),
        trained.generate(ids[:1], TARGET, stop_at_eos=False),
    )


def test_exact_gelu_erfc_becomes_one_minus_erf(tmp_path):
    model = tiny_model(activation="gelu")
    with onnx_export._saved_model(model, SOURCE, TARGET) as loaded:
        graph = loaded.signatures["encode"].graph.as_graph_def()
    tf_ops = {node.op for f in graph.library.function for node in f.node_def}
    assert "Erfc" in tf_ops  # tf.nn.gelu(approximate=False): 0.5 x erfc(-x/√2)
    paths = onnx_export.convert(model, tmp_path, SOURCE, TARGET)
    for path in paths.values():
        counts = _op_counts(path)
        assert counts["Erf"] == 2 and "Erfc" not in counts  # one per layer
    runner = onnx_export.ORTModel(tmp_path)
    ours, theirs = _step_logits(model, runner, _ids())
    np.testing.assert_allclose(theirs, ours, atol=1e-4)


def test_int8_stores_int8_weights_and_runs_integer_matmuls(tmp_path):
    # On the 16-wide model the graph outweighs the weights: widen.
    model = tiny_model(hidden_dim=64, intermediate_dim=256)
    onnx_export.convert(model, tmp_path / "fp32", SOURCE, TARGET)
    onnx_export.quantize_dynamic(tmp_path / "fp32", tmp_path / "int8")
    for name, file in onnx_export.FILES.items():
        fp32, int8 = tmp_path / "fp32" / file, tmp_path / "int8" / file
        assert int8.stat().st_size < 0.55 * fp32.stat().st_size
        counts = _op_counts(int8)
        assert counts["MatMulInteger"] == KERNELS[name]
        assert counts["DynamicQuantizeLinear"] >= 1
        # Every constant MatMul weight is stored as int8, with its shape.
        assert _int8_weights(int8) == _matmul_weights(fp32)
        assert len(_matmul_weights(fp32)) == KERNELS[name]
    runner = onnx_export.ORTModel(tmp_path / "int8")
    assert runner.generate(_ids(), TARGET).shape == (6, TARGET)


@pytest.mark.large
def test_int8_generation_agrees_with_keras(trained, int8_folder):
    runner = onnx_export.ORTModel(int8_folder)
    ours, theirs = _step_logits(trained, runner, _ids())
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.999
    ids = _copy_data(64, seed=2)[0]["encoder_token_ids"]
    expected = trained.generate(ids, TARGET)
    assert (runner.generate(ids, TARGET) == expected).mean() > 0.9


def test_a_failed_conversion_writes_nothing(tmp_path, monkeypatch):
    # Without the cache-update handler, decode_step keeps a TensorFlow op
    # after encode has converted: nothing may be written.
    monkeypatch.setattr(_onnx_ops, "_dynamic_update_slice_handler", lambda *args: None)
    folder = tmp_path / "onnx"
    with pytest.raises(UserError, match="XlaDynamicUpdateSlice.*'decode_step'"):
        onnx_export.convert(tiny_model(), folder, SOURCE, TARGET)
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_failed_write_removes_the_files_written(tmp_path):
    graph = onnx.helper.make_graph([], "empty", [], [])
    protos = {name: onnx.helper.make_model(graph) for name in onnx_export.FILES}
    (tmp_path / "decode_step.onnx").mkdir()  # blocks the second file
    with pytest.raises(UserError, match="Cannot write ONNX files"):
        onnx_export._write_all(protos, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["decode_step.onnx"]


def test_errors_are_clear(tmp_path):
    with pytest.raises(UserError, match="No ONNX export.*encode.onnx"):
        onnx_export.ORTModel(tmp_path)
    with pytest.raises(UserError, match="No ONNX export"):
        onnx_export.quantize_dynamic(tmp_path, tmp_path / "int8")
    with pytest.raises(ValueError, match="Received: opset=9"):
        onnx_export.convert(None, tmp_path, SOURCE, TARGET, opset=9)
