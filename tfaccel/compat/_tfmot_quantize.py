"""The QAT half of the tfmot peer: what tfmot's quantization takes and refuses.

`apply_qat` tries tfmot 0.8's `quantize_model` on the whole pruned twin,
then annotates the layer classes its default 8-bit registry lacks one at a
time to record tfmot's own error for each (`Refusal`), and finally applies
QAT, with the prune-preserving scheme, to every layer it accepts. Used by
`tfaccel.compat.tfmot_prune_qat`.
"""

import dataclasses

from tfaccel.compat._deps import tf_keras, tfmot


@dataclasses.dataclass
class Refusal:
    """A layer class that tfmot's QAT would not take, with its error.

    Attributes:
        layer_class: str, such as `"MultiHeadAttention"`.
        layers: list of str, the twin's layers of that class.
        error: str, tfmot's error, shortened to its telling lines.
    """

    layer_class: str
    layers: list
    error: str


def apply_qat(pruned, pruned_names, freeze_unquantized):
    """Applies tfmot QAT to what it takes of `pruned`; records what it refuses.

    Args:
        pruned: the stripped, pruned tf_keras twin (left untouched).
        pruned_names: names of its pruned layers.
        freeze_unquantized: bool. Freeze the pruned layers QAT leaves float.

    Returns:
        `(qat, details)`: the QAT model, and a dict of the `TfmotRecord`
        fields `quantize_model_error`, `unsupported`, `quantized`,
        `float_layers` and `frozen`.
    """
    quantize = tfmot().quantization.keras
    # tfmot wraps the layers it is given: the attempts share one copy, so
    # that `pruned` keeps no trace of them.
    scratch = copy_model(pruned)
    error = ""
    try:
        quantize.quantize_model(scratch)
    except Exception as caught:  # tfmot raises many kinds
        error = short_error(caught)
    refusals = _refusals(scratch)
    refused = {refusal.layer_class for refusal in refusals}
    qat = _annotate_and_apply(copy_model(pruned), refused)
    unwrapped = [layer for layer in qat.layers if not _is_quantize_wrapper(layer)]
    frozen = []
    if freeze_unquantized:
        for layer in unwrapped:
            if layer.name in pruned_names:
                layer.trainable = False
                frozen.append(layer.name)
    details = {
        "quantize_model_error": error,
        "unsupported": refusals,
        "quantized": _quantized(qat),
        "float_layers": [layer.name for layer in unwrapped if layer.weights],
        "frozen": frozen,
    }
    return qat, details


def _refusals(model):
    """Annotates, one class at a time, the classes tfmot's registry lacks.

    Classes that the registry takes (Dense, Add, Dropout) are tried in the
    final `quantize_apply`; for the others this records what tfmot itself
    says when asked to quantize them.
    """
    registry = tfmot().quantization.keras.default_8bit.Default8BitQuantizeRegistry()
    classes = {
        type(layer).__name__: layer
        for layer in model.layers
        if not isinstance(layer, tf_keras().layers.InputLayer)
    }
    return [
        refusal
        for name, layer in sorted(classes.items())
        if not registry.supports(layer) and (refusal := _probe(model, name)) is not None
    ]


def _probe(model, layer_class):
    """Annotates only `layer_class`'s layers; returns a `Refusal` if tfmot fails."""
    try:
        _annotate_and_apply(model, refused=None, only=layer_class)
    except Exception as caught:  # tfmot raises many kinds
        names = [
            layer.name for layer in model.layers if type(layer).__name__ == layer_class
        ]
        return Refusal(layer_class, names, short_error(caught))
    return None


def _annotate_and_apply(model, refused, only=None):
    keras2 = tf_keras()
    tfmot_module = tfmot()
    quantize = tfmot_module.quantization.keras

    def annotate(layer):
        name = type(layer).__name__
        if name == "InputLayer" or (only and name != only):
            return layer
        if refused and name in refused:
            return layer
        return quantize.quantize_annotate_layer(layer)

    # Annotation wraps `model`'s own layers; `quantize_apply` then clones the
    # result with its weights.
    annotated = keras2.models.clone_model(model, clone_function=annotate)
    scheme = tfmot_module.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    return quantize.quantize_apply(annotated, scheme)


def _quantized(qat):
    kinds = {}
    for layer in qat.layers:
        if not _is_quantize_wrapper(layer):
            continue
        config = layer.quantize_config
        if config.get_weights_and_quantizers(layer.layer):
            kinds[layer.layer.name] = "weights+outputs"
        elif config.get_output_quantizers(layer.layer):
            kinds[layer.layer.name] = "outputs"
        else:
            kinds[layer.layer.name] = "none"
    return kinds


def _is_quantize_wrapper(layer):
    return type(layer).__name__.startswith("QuantizeWrapper")


def copy_model(model):
    """Returns a tf_keras clone of `model` with its weights."""
    copy = tf_keras().models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def short_error(error, limit=300):
    """The telling lines of a (long, nested) tfmot or Keras error message.

    Drops the traceback that Keras puts inside the message ("in user code",
    `File` lines and the source line under each, the call arguments) and
    the node dump of TensorFlow shape errors.
    """
    kept, skip_next = [], False
    for line in str(error).splitlines():
        line = line.strip()
        if skip_next or not line:
            skip_next = False
            continue
        if line.startswith("File "):
            skip_next = True
            continue
        if line.startswith("Call arguments"):
            break
        if line != "in user code:":
            kept.append(line.split(" for '{{node")[0])
    text = f"{type(error).__name__}: " + " | ".join(kept)
    return text if len(text) <= limit else text[: limit - 3] + "..."
