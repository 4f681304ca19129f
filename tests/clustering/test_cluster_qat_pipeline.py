"""Prune, cluster, then QAT: zeros and shared values survive into int8 TFLite."""

import numpy as np
import pytest
from cluster_checks import distinct_nonzero, fit_seq2seq, numpy, tiny_model

import tfaccel
from tfaccel.export import tflite

K = 4
FEEDFORWARD = r".*feedforward.*kernel"


def _pruned_tiny():
    model = tiny_model()
    model.generate(np.full((1, 4), 5, np.int32), 2)  # builds it
    tfaccel.prune(
        model,
        targets=[FEEDFORWARD],
        schedule=tfaccel.ConstantSparsity(0.5, begin_step=0, frequency=1),
    )
    fit_seq2seq(model, steps=2, callbacks=tfaccel.callbacks(model))
    return model


def _feedforward(model):
    return {w.path: numpy(w) for w in model.weights if "feedforward" in w.path}


@pytest.mark.large
def test_qat_through_clusters_keeps_zeros_and_shared_values():
    model = _pruned_tiny()
    zeros = {p: v == 0 for p, v in _feedforward(model).items() if p.endswith("kernel")}
    assert all(abs(z.mean() - 0.5) < 0.01 for z in zeros.values())
    tfaccel.cluster(model, targets=[FEEDFORWARD], num_clusters=K)
    fit_seq2seq(model, steps=3, callbacks=tfaccel.callbacks(model))
    tfaccel.quantize_aware(model, config=tfaccel.QATConfig(per_channel=False))
    clustered = {r.variable.path for _, s in _clustered(model) for r in s.weights}
    assert clustered == set(zeros)
    fit_seq2seq(model, steps=3, callbacks=tfaccel.callbacks(model))
    before = _logits(model)
    tfaccel.strip(model)
    np.testing.assert_allclose(_logits(model), before, atol=1e-5)
    for path, values in _feedforward(model).items():
        if path in zeros:
            np.testing.assert_array_equal(values == 0, zeros[path])
            assert 2 <= distinct_nonzero(values) <= K, path
    rows = tfaccel.summary(model, targets=[FEEDFORWARD], print_fn=lambda text: None)
    assert len(rows) == 1 + 8
    for row in rows[:-1]:
        assert row["sparsity"] == 0.5 and 3 <= row["distinct"] <= K + 1, row

    rows = [
        r
        for r in tflite.op_report(tflite.convert(model, "qat", 12, 8))
        if r["op"] == "FULLY_CONNECTED" and r["weight_zeros"] is not None
    ]
    halves = [r for r in rows if abs(r["weight_zeros"] - 0.5) < 0.01]
    # The encoder's 2 layers x 2 feedforward kernels, the decoder's likewise.
    assert len(halves) == 8
    for row in halves:
        assert row["weight_distinct"] <= K + 1  # the shared values, and zero


def _clustered(model):
    from tfaccel.clustering import _state

    return _state.find_states(model)


def _logits(model):
    ids = np.arange(3, 11, dtype=np.int32).reshape(1, 8) % 30 + 3
    return numpy(model({"encoder_token_ids": ids, "decoder_token_ids": ids}))
