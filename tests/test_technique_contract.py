"""Every technique keeps the shared contract of `run_technique_test`.

On a hand-written functional model and on tfaccel's `Seq2SeqTransformer`,
each technique alone and pruning, clustering and QAT composed. keras-hub
BART and T5 run the same techniques in each technique's own tests.
"""

import keras
import pytest
from technique_checks import (
    functional_mlp,
    mlp_data,
    run_technique_test,
    seq2seq_data,
    tiny_model,
)

import tfaccel

MLP_TARGETS = ["hidden/kernel", "out/kernel"]
SEQ2SEQ_TARGETS = ["re:.*(attention|feedforward).*kernel"]


def _prune(targets):
    return lambda m: tfaccel.prune(m, targets, tfaccel.ConstantSparsity(0.5, 0, 1))


def _cluster(targets):
    return lambda m: tfaccel.cluster(m, targets, 4, update_freq=2)


def _qat(targets):
    return lambda m: tfaccel.quantize_aware(m, targets=targets)


def _all(targets):
    def apply(model):
        for step in (_prune(targets), _cluster(targets), _qat(targets)):
            model = step(model)
        return model

    return apply


TECHNIQUES = {"prune": _prune, "cluster": _cluster, "qat": _qat, "all": _all}
# QAT's strip bakes the weights onto the int8 grid and freezes the ranges:
# the forward pass was already fake-quantized, so outputs move by rounding.
ATOL = {"prune": 1e-6, "cluster": 1e-5, "qat": 2e-2, "all": 2e-2}


@pytest.mark.parametrize("technique", sorted(TECHNIQUES))
def test_a_functional_model(technique):
    model = functional_mlp()
    x, y = mlp_data()

    def fit(model, callbacks):
        model.compile("adam", "mse")
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=callbacks)

    apply = TECHNIQUES[technique](MLP_TARGETS)
    run_technique_test(model, apply, fit, x, atol=ATOL[technique])


@pytest.mark.parametrize("technique", sorted(TECHNIQUES))
def test_the_reference_seq2seq_model(technique):
    model = tiny_model(build=True)
    x, y = seq2seq_data(model, batch=8)

    def fit(model, callbacks):
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=callbacks)

    apply = TECHNIQUES[technique](SEQ2SEQ_TARGETS)
    run_technique_test(model, apply, fit, x, atol=ATOL[technique])
