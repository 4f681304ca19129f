"""Every technique keeps the shared contract of `run_technique_test`.

On a hand-written functional model, on tfaccel's `Seq2SeqTransformer` and on
a keras-hub `BartSeq2SeqLM` built from a config: each technique alone and
cluster-preserving QAT. keras-hub
BART and T5 run the same techniques in each technique's own tests.
"""

import keras
import pytest
from technique_checks import (
    bart_data,
    functional_mlp,
    mlp_data,
    numpy,
    run_technique_test,
    seq2seq_data,
    tiny_bart,
    tiny_model,
)

import tfaccel
from tfaccel.core import counts, kernels
from tfaccel.core.targets import match_variables
from tfaccel.errors import UserError

MLP_TARGETS = ["hidden/kernel", "out/kernel"]
SEQ2SEQ_TARGETS = ["re:.*(attention|feedforward).*kernel"]


def _prune(targets):
    schedule = tfaccel.ConstantSparsity(0.5, begin_step=0, frequency=1)
    return lambda m: tfaccel.prune(m, targets, schedule)


def _cluster(targets):
    return lambda m: tfaccel.cluster(m, targets, 4, update_freq=2)


def _qat(targets):
    return lambda m: tfaccel.quantize_aware(m, targets=targets)


def _cluster_qat(targets):
    # Cluster-preserving QAT, applied at once. (Pruning composes in stages:
    # a kernel clustered before its first mask update keeps no zeros; see
    # tests/clustering/test_cluster_qat_pipeline.py.)
    return lambda m: _qat(targets)(_cluster(targets)(m))


TECHNIQUES = {
    "prune": _prune,
    "cluster": _cluster,
    "qat": _qat,
    "cluster_qat": _cluster_qat,
}
# QAT's strip bakes the weights onto the int8 grid and freezes the ranges:
# the forward pass was already fake-quantized, so outputs move by rounding.
ATOL = {"prune": 1e-6, "cluster": 1e-5, "qat": 2e-2, "cluster_qat": 2e-2}


@pytest.mark.parametrize("technique", sorted(TECHNIQUES))
def test_a_functional_model(technique):
    model = functional_mlp()
    x, y = mlp_data()

    def fit(model, callbacks):
        model.compile("adam", "mse")
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=callbacks)

    apply = TECHNIQUES[technique](MLP_TARGETS)
    run_technique_test(model, apply, fit, x, atol=ATOL[technique])
    _check_summary(model, MLP_TARGETS, technique)


@pytest.mark.parametrize("technique", sorted(TECHNIQUES))
def test_the_reference_seq2seq_model(technique):
    model = tiny_model(build=True)
    x, y = seq2seq_data(model, batch=8)

    fit = _token_fit(x, y)
    apply = TECHNIQUES[technique](SEQ2SEQ_TARGETS)
    run_technique_test(model, apply, fit, x, atol=ATOL[technique])
    _check_summary(model, SEQ2SEQ_TARGETS, technique)


@pytest.mark.parametrize("technique", sorted(TECHNIQUES))
def test_a_keras_hub_bart(technique):
    model = tiny_bart()
    x, y = bart_data()

    fit = _token_fit(x, y)
    apply = TECHNIQUES[technique](SEQ2SEQ_TARGETS)
    run_technique_test(model, apply, fit, x, atol=ATOL[technique])
    _check_summary(model, SEQ2SEQ_TARGETS, technique)


def _token_fit(x, y):
    """Returns `fit(model, callbacks)` for an encoder-decoder on token ids."""

    def fit(model, callbacks):
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=callbacks)

    return fit


def _check_summary(model, targets, technique):
    # What each technique leaves in the stripped weights, measured.
    rows = tfaccel.summary(model, targets=targets, print_fn=lambda text: None)
    assert len(rows) > 1 and rows[-1]["path"] == "total"
    for row in rows[:-1]:
        if technique == "prune":
            assert row["sparsity"] == 0.5, row
        elif technique == "cluster":
            assert row["distinct"] <= 4, row
        elif technique == "qat":
            assert row["distinct"] > 4, row
    if technique == "cluster_qat":
        # Rounded onto each output channel's int8 grid: 4 values per channel.
        owners = kernels.owner_layers(model)
        for variable in match_variables(model, targets):
            axes = kernels.input_axes(variable, owners[id(variable)])
            columns = kernels.to_matrix(numpy(variable), axes)  # (in, out)
            assert max(counts.distinct_per_column(columns)) <= 4, variable.path


def test_one_summary_names_every_technique_on_each_weight():
    model = functional_mlp()
    tfaccel.prune(model, ["hidden/kernel"], tfaccel.ConstantSparsity(0.5), "2:4")
    tfaccel.cluster(model, MLP_TARGETS, 4)
    tfaccel.quantize_aware(model, targets=MLP_TARGETS)
    lines = []
    rows = tfaccel.summary(model, print_fn=lines.append)
    assert [row["path"] for row in rows] == ["hidden/kernel", "out/kernel", "total"]
    assert rows[0]["techniques"] == {
        "pruning": "2:4",
        "clustering": "4 clusters",
        "quantization": "int8 QAT",
    }
    assert rows[0]["structure"] == "2:4" and rows[1]["structure"] == ""
    assert rows[1]["techniques"] == {
        "clustering": "4 clusters",
        "quantization": "int8 QAT",
    }
    # Values are what the forward pass reads: the clustered weights.
    assert rows[1]["distinct"] <= 4
    assert "clustering: 4 clusters" in lines[0]


def test_summary_of_a_plain_model_needs_targets():
    with pytest.raises(UserError, match="Received: targets=None"):
        tfaccel.summary(functional_mlp(), print_fn=lambda text: None)


def test_summary_checks_the_structure_label_as_prune_does():
    model = functional_mlp()
    with pytest.raises(UserError, match="Received: structure='2:3x'"):
        tfaccel.summary(model, targets=MLP_TARGETS, structure="2:3x")
    rows = tfaccel.summary(
        model, targets=MLP_TARGETS, block=(1, 4), print_fn=lambda text: None
    )
    assert {row["structure"] for row in rows[:-1]} == {"block 1x4"}
