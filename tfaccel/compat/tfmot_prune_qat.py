"""The tfmot peer: prune, then quantization-aware training, on the tf_keras twin.

This is the path a tf_keras user takes today with
tensorflow-model-optimization 0.8: `prune_low_magnitude` with a
`PolynomialDecay` schedule and the `UpdatePruningStep` callback, then
`strip_pruning`; then `quantize_model`, and where that refuses the model,
`quantize_annotate_layer` on the layers it supports and `quantize_apply`
with the prune-preserving scheme (PQAT), so the pruned zeros stay zero
through QAT. Scheme: tfmot's default 8-bit, per-tensor symmetric weights
for `Dense`, asymmetric per-tensor activations (Jacob et al., 2018,
arXiv:1712.05877); magnitude pruning after Zhu and Gupta, 2017
(arXiv:1710.01878).

Nothing is patched to make tfmot succeed: what it refuses is recorded in a
`TfmotRecord`, with its own error text, and the rest is measured. On the
twin, tfmot 0.8.1 prunes every targeted kernel (its registry knows
`MultiHeadAttention`'s four projections), but QAT takes only `Dense`,
`Add` and `Dropout`: `quantize_model` on the whole twin fails inside an
attention projection ("Shape must be rank 3 but is rank 6": its annotation
wrapper re-nests the attention layer's inputs), and annotated one class at
a time, `MultiHeadAttention` and `LayerNormalization` are "not supported",
`Embedding` fails on a FakeQuant of its int32 ids, and the mask ops
(`TFOpLambda`) break the attention layers' inputs as `quantize_model` does.
The attention layers therefore stay float through QAT; they are frozen
then (`freeze_unquantized`), or training would undo their pruning.
"""

import dataclasses
import re

from tfaccel.compat._deps import tf_keras, tfmot
from tfaccel.compat._tfmot_quantize import Refusal, apply_qat, copy_model
from tfaccel.core import counts

__all__ = [
    "DEFAULT_TARGETS",
    "Refusal",
    "TfmotRecord",
    "TfmotResult",
    "tfmot_prune_qat",
]

# Layers whose kernels tfaccel's recipes prune (`.*(attention|feedforward).*`).
DEFAULT_TARGETS = r".*(attention|feedforward).*"
# The layer classes whose kernels tfmot prunes here.
_PRUNABLE = ("Dense", "MultiHeadAttention")


@dataclasses.dataclass
class TfmotRecord:
    """What tfmot could and could not do to the twin.

    Attributes:
        pruned: dict, layer name -> fraction of zeros in its kernels after
            `strip_pruning`.
        quantize_model_error: str, the error of `quantize_model` on the
            whole twin (`""` if it worked).
        unsupported: list of `Refusal`, one per layer class that
            `quantize_apply` refused when annotated on its own.
        quantized: dict, layer name -> `"weights+outputs"` (kernel and
            output fake-quantized), `"outputs"` or `"none"` (wrapped, but
            nothing to quantize, as `Dropout`), for every wrapped layer.
        float_layers: list of str, layers with weights left float by QAT.
        frozen: list of str, pruned layers left float and frozen during QAT
            so that their zeros survive it.
        final_sparsity: dict, layer name -> fraction of zeros in its kernels
            in the returned QAT model.
    """

    pruned: dict
    quantize_model_error: str
    unsupported: list
    quantized: dict
    float_layers: list
    frozen: list
    final_sparsity: dict


@dataclasses.dataclass
class TfmotResult:
    """The output of `tfmot_prune_qat`.

    Attributes:
        model: the QAT tf_keras model (convert it with `to_tflite_int8`).
        pruned: the stripped, pruned float model, before QAT.
        record: a `TfmotRecord`.
    """

    model: object
    pruned: object
    record: TfmotRecord


def tfmot_prune_qat(
    twin,
    dataset,
    prune_epochs=4,
    qat_epochs=2,
    final_sparsity=0.5,
    targets=DEFAULT_TARGETS,
    learning_rate=1e-3,
    qat_learning_rate=2e-4,
    steps_per_epoch=None,
    freeze_unquantized=True,
    verbose=0,
):
    """Prunes the twin with tfmot, then trains it quantization-aware.

    Pruning: unstructured magnitude pruning of the kernels of the `Dense`
    and `MultiHeadAttention` layers whose names match `targets`, from 0 to
    `final_sparsity` on a cubic `PolynomialDecay` that ends one epoch before
    the last (as tfaccel's `g2p-prune50` recipe). QAT: see the module
    docstring; tfmot's `quantize_model` is tried first and its refusal is
    recorded.

    Args:
        twin: a tf_keras twin (`tfaccel.compat.twin_from_model`). Not changed.
        dataset: a `tf.data.Dataset` of `(inputs, targets, sample_weights)`
            batches, as tfaccel's tasks give.
        prune_epochs: int. Epochs of pruning.
        qat_epochs: int. Epochs of QAT (0 builds the QAT model untrained).
        final_sparsity: float in (0, 1). Fraction of zeros to reach.
        targets: str, a regular expression over twin layer names.
        learning_rate: float. Adam's learning rate while pruning.
        qat_learning_rate: float. Adam's learning rate during QAT.
        steps_per_epoch: int or None. Batches per epoch; `None` counts them.
        freeze_unquantized: bool. Freeze pruned layers that QAT cannot wrap
            (`MultiHeadAttention`), so their zeros stay; with `False` they
            train on in float and lose them.
        verbose: int, passed to `fit`.

    Returns:
        A `TfmotResult`.

    Example:

    ```python
    twin = twin_from_model(model)
    result = tfmot_prune_qat(twin, task.train_dataset(32))
    print(result.record.unsupported)
    tflite_bytes = to_tflite_int8(result.model)
    ```
    """
    if not 0.0 < final_sparsity < 1.0:
        raise ValueError(
            "`final_sparsity` must be in (0, 1). "
            f"Received: final_sparsity={final_sparsity}"
        )
    steps = steps_per_epoch or _count_batches(dataset)
    pruned = _prune(
        twin,
        dataset,
        prune_epochs,
        final_sparsity,
        targets,
        steps,
        learning_rate,
        verbose,
    )
    pruned_names = [layer.name for layer in pruned.layers if _matches(layer, targets)]
    qat, details = apply_qat(pruned, pruned_names, freeze_unquantized)
    if qat_epochs:
        _fit(qat, dataset, qat_epochs, qat_learning_rate, steps, [], verbose)
    record = TfmotRecord(
        pruned={name: _sparsity(pruned, name) for name in pruned_names},
        final_sparsity={name: _sparsity(qat, name) for name in pruned_names},
        **details,
    )
    return TfmotResult(model=qat, pruned=pruned, record=record)


# === Pruning ===


def _prune(twin, dataset, epochs, final_sparsity, targets, steps, rate, verbose):
    keras2, sparsity = tf_keras(), tfmot().sparsity.keras
    end_step, frequency = _schedule_steps(epochs, steps)
    schedule = sparsity.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=final_sparsity,
        begin_step=0,
        end_step=end_step,
        frequency=frequency,
    )

    def wrap(layer):
        if _matches(layer, targets):
            return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    # The clone function gets the copy's own layers, so the twin is untouched.
    wrapped = keras2.models.clone_model(copy_model(twin), clone_function=wrap)
    callbacks = [sparsity.UpdatePruningStep()]
    _fit(wrapped, dataset, epochs, rate, steps, callbacks, verbose)
    return sparsity.strip_pruning(wrapped)


def _schedule_steps(epochs, steps):
    """`end_step` and `frequency` of the pruning schedule.

    The final sparsity is reached one epoch before the end (on the last step
    with a single epoch), with about ten mask updates. tfmot updates the
    mask only on steps that are a multiple of `frequency` from `begin_step`,
    so `end_step` is rounded down to one of them.
    """
    end = steps * (epochs - 1) if epochs > 1 else steps - 1
    if end < 1:
        raise ValueError(
            "Pruning needs at least two training steps. "
            f"Received: prune_epochs={epochs}, steps_per_epoch={steps}"
        )
    frequency = max(1, end // 10)
    return frequency * (end // frequency), frequency


def _matches(layer, targets):
    return type(layer).__name__ in _PRUNABLE and re.fullmatch(targets, layer.name)


# === Shared ===


def _fit(model, dataset, epochs, learning_rate, steps, callbacks, verbose=0):
    keras2 = tf_keras()
    model.compile(
        optimizer=keras2.optimizers.Adam(learning_rate),
        loss=keras2.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        dataset.repeat(),
        epochs=epochs,
        steps_per_epoch=steps,
        callbacks=callbacks,
        verbose=verbose,
    )


def _count_batches(dataset):
    import tensorflow as tf

    count = int(dataset.cardinality())
    if count == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "The dataset is infinite; pass `steps_per_epoch`. "
            "Received: steps_per_epoch=None"
        )
    return count if count > 0 else sum(1 for _ in dataset)


def _sparsity(model, name):
    """Fraction of zeros over a layer's kernels, wrapped (QAT) or not."""
    layer = _find(model, name)
    # A QAT wrapper replaces `layer.kernel` by its fake-quantized tensor;
    # the variables are still in `weights`, under their own names.
    kernels = [
        w.numpy() for w in layer.weights if w.name.rsplit("/", 1)[-1] == "kernel:0"
    ]
    return counts.total_sparsity(kernels)


def _find(model, name):
    for layer in model.layers:
        if getattr(layer, "layer", layer).name == name:
            return layer
    raise ValueError(f"No layer named '{name}' in the model. Received: name={name}")
