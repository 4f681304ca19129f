"""`strip_quantization`, and saving the int8 ranges with a model.

A stripped QAT model is the same Keras model object, whose weights sit
exactly on the int8 grid; its quantized layers keep an inference-only
`call` that applies the frozen activation ranges, which is what the TFLite
converter reads to build int8 kernels. Nothing in it is trained or updated
any more: the range variables, step counts and sparsity masks are gone.

The frozen ranges are plain numbers, so `save_spec` (then `export_spec`)
gives them in a JSON-able dict that the saved model's config keeps, and
`keras.saving.load_model` applies again with `restore` (`tfaccel.core.saving`).
While QAT trains, the spec lists the layers only; the range variables and
masks travel in the weights file.
"""

import re

import keras
import numpy as np
from keras import ops

from tfaccel.core import saving
from tfaccel.core.compiled import forget_compiled
from tfaccel.errors import UserError
from tfaccel.quantization import _state
from tfaccel.quantization.config import QATConfig
from tfaccel.quantization.quantize_aware import _weight, fix_mask, quantize_aware

SPEC_VERSION = 1


def strip_quantization(model):
    """Bakes quantized weights and freezes activation ranges, in place.

    Every quantized weight is replaced by its fake-quantized value (with its
    sparsity mask applied), its constraint is restored, and every activation
    range is fixed to its trained value. A model without QAT is returned
    unchanged; stripping twice changes nothing.

    Args:
        model: a model changed by `tfaccel.quantize_aware`.

    Returns:
        `model` itself.

    Example:

    ```python
    model = tfaccel.quantization.strip_quantization(model)
    tfaccel.export.tflite.convert(model, "qat")
    ```
    """
    for layer, state in _state.find_states(model):
        if state.stripped:
            continue
        for record in state.layers:
            if record.weight is not None:
                baked = ops.convert_to_numpy(_weight(record, state.config))
                record.weight.assign(baked)
                record.baked = True
                if record.mask is not None:
                    record.weight.constraint = record.original_constraint
                    record.mask = None
            for quantizer in record.ranges.values():
                quantizer.freeze()
        state.stripped = True
        forget_compiled(layer)
    return model


def export_spec(model):
    """Returns the frozen quantization of a stripped model as plain data, or None."""
    states = _state.find_states(model)
    if not states:
        return None
    (_, state), *rest = states
    if rest:
        raise UserError("export_spec handles one quantized model, not nested ones.")
    if not state.stripped:
        raise UserError(
            "The model still trains its quantization ranges; call "
            "tfaccel.strip(model) before saving or exporting it."
        )
    return {
        "version": SPEC_VERSION,
        "config": state.config.get_config(),
        "layers": [
            {
                "path": record.path,
                "kind": record.kind,
                "ranges": {name: list(q.values()) for name, q in record.ranges.items()},
            }
            for record in state.layers
        ],
    }


def restore(model, spec):
    """Applies a spec from `save_spec` or `export_spec` to a rebuilt model.

    A stripped model's weights are already baked, so they are not quantized
    again; its layers get back their frozen activation ranges. A model that
    still trains gets its ranges and sparsity masks as placeholders, which
    loading its weights then fills (`tfaccel.core.saving`).
    """
    if spec.get("version") != SPEC_VERSION:
        raise UserError(
            f"Unknown tfaccel quantization spec version {spec.get('version')!r}; "
            f"this tfaccel reads version {SPEC_VERSION}. Upgrade tfaccel."
        )
    config = QATConfig.from_config(spec["config"])
    by_path = {
        layer.path: layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
    }
    weighted = [e for e in spec["layers"] if e["kind"] != "attention"]
    missing = [e["path"] for e in spec["layers"] if e["path"] not in by_path]
    if missing:
        raise UserError(
            f"The saved quantization names layers this model lacks: {missing[:3]}. "
            "Was the .keras file edited or the model rebuilt with other names?"
        )
    variables = [_layer_weight(by_path[e["path"]]) for e in weighted]
    targets = ["|".join(_escape(v.path) for v in variables)]
    # Zeros are not looked for in the rebuilt weights: the spec says which
    # layers have a sparsity mask.
    unmasked = QATConfig.from_config({**spec["config"], "preserve_sparsity": False})
    quantize_aware(model, targets=targets, config=unmasked)
    state = getattr(model, _state.ATTRIBUTE)
    state.config = config
    records = {record.path: record for record in state.layers}
    stripped = spec.get("stripped", True)
    for entry in spec["layers"]:
        record = records.get(entry["path"])
        if record is None:
            raise UserError(f"Cannot restore quantization of '{entry['path']}'.")
        if entry.get("mask"):
            fix_mask(record, np.ones(record.weight.shape, "float32"))
        if stripped:
            record.baked = record.weight is not None
            for name, (low, high) in entry["ranges"].items():
                record.ranges[name].set_values(low, high)
    state.stripped = stripped
    forget_compiled(model)
    return model


def save_spec(model):
    """Returns how `model` itself is quantized, or None without QAT.

    Stripped, it is `export_spec(model)`: the frozen ranges are in it. While
    training, the ranges and masks are weights: it lists the layers, their
    kind and which have a sparsity mask.
    """
    state = getattr(model, _state.ATTRIBUTE, None)
    if state is None:
        return None
    if state.stripped:
        return export_spec(model)
    return {
        "version": SPEC_VERSION,
        "config": state.config.get_config(),
        "stripped": False,
        "layers": [
            {"path": record.path, "kind": record.kind, "mask": record.mask is not None}
            for record in state.layers
        ],
    }


def forget(model):
    """Removes QAT entirely: original layer methods, no ranges (weights stay)."""
    for layer, state in _state.find_states(model):
        for record in state.layers:
            _state.unpatch(record)
            if record.mask is not None:
                record.weight.constraint = record.original_constraint
        object.__delattr__(layer, _state.ATTRIBUTE)
        forget_compiled(layer)
        saving.release(layer)
    return model


def _layer_weight(layer):
    if isinstance(layer, keras.layers.Embedding):
        return layer.embeddings
    return layer._kernel


def _escape(text):
    return re.escape(text)
