"""QAT state kept beside a model: one record per quantized layer.

As with pruning, the state is a plain Python object (`model._tfaccel_qat`),
outside `model.weights`; `tfaccel.core.saving` saves its ranges and masks
with the model's weights. Quantized layers get an instance-level `call`
(or `_compute_attention`) that adds fake quantization, the way Keras's own
`Layer.quantize()` changes a layer in place; `strip` bakes the weights and
freezes the ranges, and `forget` puts the original methods back.
"""

import dataclasses

ATTRIBUTE = "_tfaccel_qat"


@dataclasses.dataclass(eq=False)
class QuantizedLayer:
    """One layer changed by QAT."""

    path: str  # the layer's path, e.g. "decoder_layer_0/.../query"
    kind: str  # "dense", "einsum_dense", "attention" or "embedding"
    layer: object
    weight: object = None  # the quantized keras.Variable, if any
    input_axes: tuple = ()
    ranges: dict = dataclasses.field(default_factory=dict)  # name -> ActivationRange
    mask: object = None  # fixed sparsity mask (prune-preserving), if any
    original_constraint: object = None
    patched: tuple = ()  # names of the instance methods set on `layer`
    baked: bool = False  # the weight holds its quantized values (stripped)


@dataclasses.dataclass(eq=False)
class QATState:
    """Everything `quantize_aware` adds to a model."""

    config: object  # QATConfig
    layers: list  # of QuantizedLayer
    stripped: bool = False

    def ranges(self):
        """Yields `(name, ActivationRange)` for every tracked activation."""
        for record in self.layers:
            for name, quantizer in record.ranges.items():
                yield f"{record.path}/{name}", quantizer


def find_states(model):
    """Returns `(layer, state)` for `model` and every nested layer with QAT."""
    return [
        (layer, getattr(layer, ATTRIBUTE))
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if getattr(layer, ATTRIBUTE, None) is not None
    ]


def marks(model):
    """Returns the ids of the quantization-aware layers of `model`."""
    return {
        id(record.layer) for _, state in find_states(model) for record in state.layers
    }


def training(model):
    """Returns whether `model` has QAT that is not stripped yet."""
    return any(not state.stripped for _, state in find_states(model))


def patch(record, name, function):
    """Sets `function` as the instance method `name` of the record's layer."""
    # An instance attribute shadows the class method; Keras's __setattr__
    # would try to track it, so go around it.
    object.__setattr__(record.layer, name, function)
    record.patched = (*record.patched, name)


def unpatch(record):
    """Removes the instance methods set by `quantize_aware`."""
    for name in record.patched:
        object.__delattr__(record.layer, name)
    record.patched = ()


def untracked_variables(model):
    """Returns the fixed sparsity masks and activation ranges, per layer.

    The ranges are sorted by name within a layer, so the order does not
    depend on the order they were created in.
    """
    found = []
    for _, state in find_states(model):
        for record in state.layers:
            if record.mask is not None:
                found.append(record.mask)
            for _, quantizer in sorted(record.ranges.items()):
                found.extend([quantizer.low, quantizer.high, quantizer.count])
    return found


def describe(model):
    """Returns `{id(weight): "int8 QAT"}`, or "int8 (stripped)" once baked."""
    found = {}
    for _, state in find_states(model):
        bits = state.config.weight_bits
        for record in state.layers:
            if record.weight is not None:
                done = " (stripped)" if state.stripped else " QAT"
                found[id(record.weight)] = f"int{bits}{done}"
    return found
