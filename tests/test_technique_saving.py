"""A model in the middle of any technique saves, reloads and resumes with Keras.

For pruning, clustering, QAT and prune-cluster-QAT, on a functional model a
user wrote and on a keras-hub `BartSeq2SeqLM` built from a config: after an
epoch of training, `model.save` and `keras.saving.load_model(...,
safe_mode=True)` give a model with the same outputs, state and counters,
and one more epoch of both gives what the uninterrupted run gives: the
same weights, masks, sparsity, ranges and cluster counts.
"""

import keras
import numpy as np
import pytest
from technique_checks import bart_data, functional_mlp, mlp_data, numpy, tiny_bart

import tfaccel
from tfaccel.core import counts, registry

MLP_TARGETS = ["hidden/kernel", "out/kernel"]
BART_TARGETS = ["re:.*(attention|feedforward).*kernel"]


def _prune(model, targets):
    # Masks change in the second epoch too (8 steps an epoch): the reloaded
    # model must take them on from where the saved one was.
    schedule = tfaccel.PolynomialDecay(
        0.0, 0.75, begin_step=0, end_step=12, frequency=2
    )
    return tfaccel.prune(model, targets, schedule)


def _cluster(model, targets):
    return tfaccel.cluster(model, targets, num_clusters=4, update_freq=3)


def _qat(model, targets):
    return tfaccel.quantize_aware(model, targets=targets)


TECHNIQUES = {
    "prune": [_prune],
    "cluster": [_cluster],
    "qat": [_qat],
    # In stages: pruned for an epoch, then clustered (zeros kept) and
    # quantized, all three still training when it is saved.
    "prune_cluster_qat": [_prune, lambda m, t: _qat(_cluster(m, t), t)],
}


def _mlp():
    x, y = mlp_data()

    def compile_model(model):
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")

    return functional_mlp(), MLP_TARGETS, x, y, compile_model


def _bart():
    x, y = bart_data()

    def compile_model(model):
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )

    # 4 steps an epoch: two epochs per stage reach the same step counts.
    return tiny_bart(), BART_TARGETS, x, y, compile_model


MODELS = {"functional": _mlp, "keras_hub_bart": _bart}


def _fit(model, x, y, epochs=1):
    batch = 4 if isinstance(x, np.ndarray) else 2
    model.fit(
        x,
        y,
        batch_size=batch,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=tfaccel.callbacks(model),
    )


def _trained(model_name, technique):
    model, targets, x, y, compile_model = MODELS[model_name]()
    for stage in TECHNIQUES[technique]:
        stage(model, targets)
        compile_model(model)
        _fit(model, x, y)
    return model, x, y


def _state(model):
    """Everything the techniques keep, as arrays: weights, state, counters."""
    return {
        "weights": [numpy(v) for v in model.weights],
        "untracked": [numpy(v) for v in registry.untracked_variables(model)],
        "counters": registry.counters(model),
        "optimizer": [numpy(v) for v in model.optimizer.variables],
    }


def _assert_same(got, want):
    assert got["counters"] == want["counters"]
    for key in ("weights", "untracked", "optimizer"):
        assert len(got[key]) == len(want[key]), key
        for mine, theirs in zip(got[key], want[key], strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-6, err_msg=key)


def _measured(model):
    """Sparsity and distinct values of each weight the forward pass reads."""
    return tfaccel.summary(model, print_fn=lambda text: None)


@pytest.mark.parametrize("technique", sorted(TECHNIQUES))
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_save_reload_and_resume_as_if_never_interrupted(
    model_name, technique, tmp_path
):
    model, x, y = _trained(model_name, technique)
    applied = [t.name for t in registry.applied(model)]
    path = tmp_path / "mid.keras"
    model.save(path)

    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert type(reloaded).__name__ == type(model).__name__
    assert [t.name for t in registry.applied(reloaded)] == applied
    assert [t.name for t in registry.techniques() if t.is_training(reloaded)]
    np.testing.assert_array_equal(numpy(reloaded(x)), numpy(model(x)))
    _assert_same(_state(reloaded), _state(model))

    _fit(reloaded, x, y)
    _fit(model, x, y)  # the uninterrupted run
    _assert_same(_state(reloaded), _state(model))
    assert _measured(reloaded) == _measured(model)

    # Stripped, it is the plain model again, with its optimizer.
    tfaccel.strip(reloaded)
    stripped = tmp_path / "stripped.keras"
    reloaded.save(stripped)
    again = keras.saving.load_model(stripped, safe_mode=True)
    np.testing.assert_allclose(numpy(again(x)), numpy(reloaded(x)), atol=1e-6)


def test_the_techniques_change_what_the_second_epoch_reaches():
    # The resume test is only worth something if state moves after the save.
    model, x, y = _trained("functional", "prune_cluster_qat")
    before = _state(model)
    _fit(model, x, y)
    after = _state(model)
    assert after["counters"] != before["counters"]
    kernel = numpy(model.get_layer("hidden").kernel)
    assert counts.distinct(kernel[kernel != 0]) <= 4
    assert counts.sparsity(kernel) >= 0.5


def test_a_plain_model_and_a_stripped_one_keep_their_own_class(tmp_path):
    model = functional_mlp()
    plain = type(model)
    _prune(model, MLP_TARGETS)
    assert type(model) is not plain and isinstance(model, plain)
    tfaccel.strip(model)
    assert type(model) is plain
    assert not hasattr(model, "_tfaccel_state")
