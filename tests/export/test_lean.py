"""Lean generation graphs (`tfaccel.export.lean`) and the CTranslate2 export."""

import collections
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from keras import ops
from qat_checks import ALL, fit, tiny_model
from serving_checks import replay_warmup

import tfaccel
from tfaccel.compression import factorize, shrink
from tfaccel.errors import UserError
from tfaccel.export import (
    api,
    architecture,
    ctranslate2,
    exporters,
    lean,
    lean_saved_model,
    tflite,
    tflite_metadata,
)

SOURCE, MAX_LENGTH = 12, 8


def _ids(model, batch=6, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, model.encoder_vocabulary_size, (batch, 9)).astype("int32")
    ids[1, 5:] = 0  # one padded source
    ids[2, 3:] = 0
    return ids


def _keras_steps(model, ids):
    """Keras's logits for the first decode steps (BOS, then token 5), as
    `tfaccel.export` computes its reference."""
    return exporters.ReferenceRun(model, ids, ids.shape[1], MAX_LENGTH).logits


@pytest.fixture(scope="module")
def trained():
    """The tiny model after a few steps, so greedy tokens vary by source."""
    return fit(tiny_model(), steps=12)


@pytest.fixture(scope="module")
def trained_fp32(trained):
    """The trained tiny model's lean float32 file."""
    return lean.convert_tflite(lean.build(trained, MAX_LENGTH + 1), "fp32")


def _ops(data, subgraph="decode_step"):
    return collections.Counter(
        row["op"] for row in tflite.op_report(data) if row["subgraph"] == subgraph
    )


def test_lean_graph_decodes_as_keras(trained, trained_fp32):
    ids = _ids(trained)
    keras_tokens = trained.generate(ids, MAX_LENGTH)
    assert len({tuple(row) for row in keras_tokens}) > 1  # not degenerate
    data = trained_fp32
    for loop in ("graph", "python"):
        runner = lean.LeanLiteRT(data, loop=loop)
        np.testing.assert_array_equal(runner.generate(ids, MAX_LENGTH), keras_tokens)
        np.testing.assert_allclose(
            runner.first_steps(ids), _keras_steps(trained, ids), atol=1e-4
        )
    # Without an EOS stop every row runs all steps, as Keras's.
    np.testing.assert_array_equal(
        lean.LeanLiteRT(data).generate(ids, 5, stop_at_eos=False),
        trained.generate(ids, 5, stop_at_eos=False),
    )


def test_lean_decode_step_has_no_transposes_and_one_matmul_per_projection():
    # Wide enough that every kernel has the 1,024 weights the converter
    # needs before it quantizes one.
    model = tiny_model(hidden_dim=48, intermediate_dim=96)
    data = lean.convert_tflite(lean.build(model, MAX_LENGTH + 1), "int8")
    step = _ops(data)
    layers = model.num_decoder_layers
    # Per decoder layer: fused QKV, self output, cross query, cross output,
    # two feedforward; then the head. Cross keys and values are in encode.
    assert step["FULLY_CONNECTED"] == 6 * layers + 1
    assert step["TRANSPOSE"] == 0 and step["GATHER"] == 1  # the token embedding
    assert step["BATCH_MATMUL"] == 4 * layers
    rows = [r for r in tflite.op_report(data) if r["op"] == "FULLY_CONNECTED"]
    assert {tuple(r["inputs"][:2]) for r in rows} == {("FLOAT32", "INT8")}
    assert all(r["weight_scales"] > 1 for r in rows)  # per output channel
    assert _ops(data, "generate")["WHILE"] == 1  # the loop is in the graph


def test_the_encoder_runs_only_the_real_source_width(trained, trained_fp32):
    ids = _ids(trained)[:1, :4]
    padded = np.pad(ids, [(0, 0), (0, SOURCE - 4)])
    runner = lean.LeanLiteRT(trained_fp32)
    encoded = runner._encode(encoder_token_ids=lean._trim(padded))
    assert encoded["cross_k_0"].shape[2] == 4
    np.testing.assert_array_equal(
        runner.generate(padded, MAX_LENGTH), trained.generate(padded, MAX_LENGTH)
    )


def test_factorized_and_shrunk_models_carry_over(trained):
    ids = _ids(trained)
    factored = fit(tiny_model(), steps=12)
    factorize(factored, [r".*feedforward.*kernel", r".*query/kernel"], rank=4)
    shrunk = shrink(fit(tiny_model(), steps=12), heads=0.5, ffn=0.5)
    for model, atol in ((factored, 1e-4), (shrunk, 1e-4)):
        data = lean.convert_tflite(lean.build(model, MAX_LENGTH + 1), "fp32")
        runner = lean.LeanLiteRT(data)
        np.testing.assert_allclose(
            runner.first_steps(ids), _keras_steps(model, ids), atol=atol
        )
        np.testing.assert_array_equal(
            runner.generate(ids, MAX_LENGTH), model.generate(ids, MAX_LENGTH)
        )
    # Each factored projection is two matmuls, and a QKV with a factored
    # query is three projections: per decoder layer q 2, k 1, v 1, self
    # output 1, cross query 2, cross output 1, feedforward 2 + 2.
    arch = architecture.describe(factored)
    assert arch.decoder[0].ffn_in.factors[0].shape == (16, 4)
    data = lean.convert_tflite(lean.build(factored, MAX_LENGTH + 1), "fp32")
    assert _ops(data)["FULLY_CONNECTED"] == 2 * 12 + 1
    assert architecture.describe(shrunk).decoder[0].self_attention.num_heads == 1


def test_a_per_tensor_qat_model_keeps_its_weight_grid():
    # Per-tensor QAT (as the default recipe trains): its weights sit on one
    # grid per kernel, so the lean file stores one scale per kernel.
    qat = tiny_model(hidden_dim=48, intermediate_dim=96)
    config = tfaccel.QATConfig(per_channel=False)
    tfaccel.quantize_aware(qat, targets=ALL, config=config)
    qat = tfaccel.strip(fit(qat, steps=6))
    assert exporters.weights_per_channel(qat) is False
    data = lean.convert_tflite(lean.build(qat, MAX_LENGTH + 1), "int8", False)
    rows = [r for r in tflite.op_report(data) if r["op"] == "FULLY_CONNECTED"]
    assert rows and all(r["weight_scales"] == 1 for r in rows)
    # The trained decoder feedforward kernels are in the file (LiteRT shows
    # the tensors of its first subgraph, the decode step) as int8 values
    # times one scale. The converter folds the post-norm layer norm's gamma,
    # the constant that multiplies the kernel's input, into the kernel and
    # rounds the product again: what is stored is gamma * W within half an
    # int8 step, so a QAT kernel after a layer norm leaves its trained grid
    # by up to half a step (stated in the README).
    interpreter = lean.LeanLiteRT(data).interpreter
    stored = [
        (
            interpreter.get_tensor(t["index"]).astype(np.float64)
            * t["quantization_parameters"]["scales"][0],
            t["quantization_parameters"]["scales"][0],
        )
        for t in interpreter.get_tensor_details()
        if t["dtype"] == np.int8 and tuple(t["shape"]) == (96, 48)
    ]
    for layer in qat.decoder_layers:
        kernel = ops.convert_to_numpy(layer._feedforward_intermediate_dense.kernel)
        gamma = ops.convert_to_numpy(layer._cross_attention_layer_norm.gamma)
        folded = (gamma[:, None] * kernel).T
        assert any(np.abs(w - folded).max() <= scale * 0.51 for w, scale in stored), (
            layer.name
        )
    # Activations run float (dynamic-range kernels), where Keras fake-quantizes
    # them; tokens are what the G2P benchmark compares (README).
    tokens = lean.LeanLiteRT(data).generate(_ids(qat), MAX_LENGTH)
    assert tokens.shape == (6, MAX_LENGTH)


def test_export_publishes_verified_lean_and_ctranslate2_artifacts(trained, tmp_path):
    source = ["<pad>", "<s>", "</s>", "<unk>"] + [f"s{i}" for i in range(60)]
    target = ["<pad>", "<s>", "</s>", "<unk>"] + [f"t{i}" for i in range(44)]
    names = ["tflite_lean", "tflite_lean_fp32", "onnx_lean", "onnx_lean_int8"]
    names += ["ctranslate2"]
    options = dict(
        sample_inputs=_ids(trained),
        source_length=SOURCE,
        max_length=MAX_LENGTH,
        vocabularies=(source, target),
    )
    result = tfaccel.export(trained, tmp_path, names, **options)
    # CTranslate2's default int8 backend saturates on CPUs without VNNI
    # (README): this barely trained model's close logits then give other
    # tokens, so its share is measured here, not required.
    int8 = tfaccel.export(
        trained, tmp_path, ["ctranslate2_int8"], min_agreement=0.0, **options
    )
    assert 0.0 < int8["ctranslate2_int8"].agreement <= 1.0
    result.artifacts += int8.artifacts
    names += ["ctranslate2_int8"]
    for name in ("tflite_lean_fp32", "onnx_lean", "ctranslate2"):
        assert result[name].max_difference < 1e-4, name
        assert result[name].agreement == 1.0, name
    assert result["ctranslate2"].runtime.startswith("CTranslate2 4.")
    folder = tmp_path / "ctranslate2"
    assert json.loads((folder / "target_vocabulary.json").read_text())[:5] == [
        *target[:4],
        "t0",
    ]
    # The int8 ONNX folder has no generate.onnx (its loop would stay float):
    # its runner drives the quantized decode_step.
    assert not (tmp_path / "onnx_lean_int8" / "generate.onnx").exists()
    assert api.load("onnx_lean_int8", result["onnx_lean_int8"].path).loop == "python"
    assert api.load("onnx_lean", result["onnx_lean"].path).loop == "graph"
    int8 = ctranslate2.CT2Model(tmp_path / "ctranslate2_int8")
    assert int8.compute_type == "int8"
    ids = _ids(trained)
    np.testing.assert_array_equal(
        ctranslate2.CT2Model(folder).generate(ids, MAX_LENGTH),
        trained.generate(ids, MAX_LENGTH),
    )
    # Every artifact loads through the registry, as the bench harness loads it.
    for name in names:
        runner = api.load(name, result[name].path)
        assert runner.generate(ids, MAX_LENGTH).shape == (len(ids), MAX_LENGTH)


def test_ctranslate2_states_what_it_cannot_hold(trained, tmp_path):
    arch = architecture.describe(trained)
    arch.decoder[0].cross_attention.num_heads = 1
    with pytest.raises(UserError, match="one head count") as error:
        ctranslate2.convert(arch, tmp_path / "a")
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="unique tokens"):
        ctranslate2.convert(
            architecture.describe(trained), tmp_path / "b", ["a", "a"], None
        )
    with pytest.raises(UserError, match="compute_type"):
        ctranslate2.convert(
            architecture.describe(trained), tmp_path / "c", compute_type="int4"
        )


def test_describe_refuses_models_it_cannot_map():
    import keras

    plain = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(UserError, match="Received: model of class Sequential"):
        architecture.describe(plain)


def test_the_file_carries_its_decoding_contract(trained, trained_fp32):
    data = trained_fp32
    contract = json.loads(tflite_metadata.read(data)[lean.CONTRACT])
    assert (contract["pad_id"], contract["bos_id"], contract["eos_id"]) == (0, 1, 2)
    assert contract["target_length"] == MAX_LENGTH + 1
    assert contract["max_source_length"] == trained.max_encoder_length
    assert contract["self_cache"]["heads"] == [trained.num_heads] * 2
    # Written again under the same name, an entry is replaced, not added.
    again = tflite_metadata.add(data, lean.CONTRACT, b"{}")
    assert tflite_metadata.read(again)[lean.CONTRACT] == b"{}"
    with pytest.raises(ValueError, match="Not a TFLite file"):
        tflite_metadata.read(b"\0" * 16)
    runner = lean.LeanLiteRT(data)
    # init_cache gives the zero caches of the contract's shapes.
    start = runner._init(batch_size=np.array(3, np.int32))
    assert sorted(start) == sorted(f"self_{k}_{i}" for i in range(2) for k in "kv")
    shape = (3, trained.num_heads, MAX_LENGTH + 1, trained.head_dim)
    assert all(v.shape == shape and not v.any() for v in start.values())
    too_wide = np.ones((1, trained.max_encoder_length + 1), np.int32)
    with pytest.raises(UserError, match="do not fit this model's"):
        runner.generate(too_wide, MAX_LENGTH)


def test_ctranslate2_missing_is_one_line_before_any_export(
    trained, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import fails
    with pytest.raises(UserError, match="pip install 'tfaccel\\[ctranslate2\\]'"):
        tfaccel.export(trained, tmp_path / "out", ["tflite_lean", "ctranslate2"])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_lean_saved_model_serves_every_signature_without_xla(trained, tmp_path):
    ids = _ids(trained)
    result = tfaccel.export(
        trained,
        tmp_path,
        ["saved_model_lean", "saved_model"],
        sample_inputs=ids,
        source_length=SOURCE,
        max_length=MAX_LENGTH,
    )
    artifact = result["saved_model_lean"]
    folder = tmp_path / "saved_model_lean" / "1"
    assert artifact.path == str(folder)
    assert artifact.max_difference < 1e-4 and artifact.agreement == 1.0
    assert artifact.runtime.startswith("tensorflow ")
    runner = api.load("saved_model_lean", folder)
    expected = trained.generate(ids, MAX_LENGTH)
    np.testing.assert_array_equal(runner.serve(ids), expected)
    np.testing.assert_array_equal(runner.generate(ids, MAX_LENGTH), expected)
    python = lean_saved_model.LeanSavedModel(folder, loop="python")
    np.testing.assert_array_equal(python.generate(ids, MAX_LENGTH), expected)
    contract = json.loads((folder / "assets" / "tfaccel.contract.json").read_text())
    assert contract["eos_id"] == 2 and contract["target_length"] == MAX_LENGTH + 1
    # TF Serving's stock build: no XLA-only op (the traced `saved_model`
    # writes its cache with XlaDynamicUpdateSlice), and the warm-up file
    # runs every signature.
    assert lean_saved_model.xla_ops(folder) == []
    assert lean_saved_model.xla_ops(tmp_path / "1") == ["XlaDynamicUpdateSlice"]
    assert replay_warmup(folder) == [
        "serving_default",
        "generate",
        "encode",
        "init_cache",
        "decode_step",
    ]
    # A second export is the next version; the first is never touched.
    before = sorted(p.name for p in folder.rglob("*"))
    again = tfaccel.export(
        trained, tmp_path, ["saved_model_lean"], sample_inputs=ids,
        source_length=SOURCE, max_length=MAX_LENGTH,
    )  # fmt: skip
    assert again["saved_model_lean"].path == str(tmp_path / "saved_model_lean" / "2")
    assert sorted(p.name for p in folder.rglob("*")) == before
    # A recipe rerun carries both kinds of versions over.
    carried = tmp_path / "rerun"
    api.copy_versions(tmp_path, carried)
    assert sorted(p.name for p in (carried / "saved_model_lean").iterdir()) == [
        "1",
        "2",
    ]
    assert (carried / "1" / "saved_model.pb").is_file()
    # `tfaccel bench` tells the two kinds of version folders apart.
    from tfaccel.bench.targets import find_targets

    found = find_targets([tmp_path / "saved_model_lean", tmp_path / "1"])
    assert [(t.format, Path(t.path).name) for t in found] == [
        ("saved_model_lean", "2"),
        ("saved_model", "1"),
    ]
