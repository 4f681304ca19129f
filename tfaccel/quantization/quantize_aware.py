"""`quantize_aware`: int8 quantization-aware training of any Keras 3 model."""

import keras
import numpy as np
from keras import ops

from tfaccel.core import registry, saving
from tfaccel.core.compiled import forget_compiled
from tfaccel.core.kernels import input_axes, owner_layers
from tfaccel.core.strategy import model_strategy
from tfaccel.core.targets import match_variables
from tfaccel.errors import UserError
from tfaccel.quantization import _state
from tfaccel.quantization._attention import quantize_attention
from tfaccel.quantization._fake_quant import (
    ActivationRange,
    quantize_weight,
    quantized_by,
    stamp,
)
from tfaccel.quantization.config import QATConfig

DEFAULT_TARGETS = (r".*kernel",)


def quantize_aware(model, targets=DEFAULT_TARGETS, config=None):
    """Adds int8 fake quantization to the layers that own `targets`, in place.

    Quantization-aware training (Jacob et al., 2018,
    https://arxiv.org/abs/1712.05877): the forward pass rounds weights and
    activations as int8 kernels will, and gradients pass straight through
    the rounding, so training learns weights that survive it.

    - `Dense` and `EinsumDense` (anywhere: keras-hub attention query, key,
      value and output projections, feedforward layers, plain layers):
      the input and output are fake-quantized with moving-average ranges,
      the kernel symmetrically, per output channel by default.
    - `MultiHeadAttention` whose query, key and value projections are all
      quantized: the inputs and outputs of the attention-score and value
      matmuls are quantized too, so TFLite runs them as int8 `BATCH_MATMUL`.
      Softmax and the mask stay float.
    - `Embedding` tables (weight-only, one scale per table) when targeted.
    - LayerNorm, softmax and everything untargeted stay float.

    Zeros in a targeted weight stay zero (`config.preserve_sparsity`), so a
    pruned model keeps its sparsity. `tfaccel.strip` bakes the weights onto
    the int8 grid and freezes the ranges; TFLite conversion of the result
    gives int8 kernels (see `tfaccel.export.tflite`).

    Args:
        model: a built Keras 3 model, changed in place.
        targets: list of regexes over variable paths (as `tfaccel.prune`);
            every layer owning a matched variable is quantized. Defaults to
            every kernel.
        config: a `QATConfig`; defaults to W8A8 per-channel.

    Returns:
        `model`, ready for `model.fit(..., callbacks=tfaccel.callbacks(model))`.

    Example:

    ```python
    model = tfaccel.quantize_aware(model, targets=[r".*kernel"])
    model.fit(ds, epochs=2, callbacks=tfaccel.callbacks(model))
    model = tfaccel.strip(model)
    ```
    """
    config = config or QATConfig()
    if not isinstance(config, QATConfig):
        raise UserError(
            f"`config` must be a tfaccel.QATConfig. Received: config={config!r}"
        )
    if not isinstance(model, keras.Model) or not model.built:
        raise UserError(
            "quantize_aware needs a built Keras model; call it on a batch first. "
            f"Received: model={model!r}"
        )
    if getattr(model, _state.ATTRIBUTE, None) is not None:
        raise UserError(
            f"Model '{model.name}' is already quantization-aware; call "
            "tfaccel.strip(model) before quantizing it again."
        )
    # A clustered layer's kernel is frozen (its centroids train), yet QAT
    # targets it: cluster-preserving QAT.
    frozen = registry.frozen_variables(model)
    variables = match_variables(model, list(targets), extra=frozen)
    owners = owner_layers(model)
    layers = _target_layers(variables, owners)
    with model_strategy(model).scope():
        records = [_quantize_layer(layer, path, config) for path, layer in layers]
        if config.quantize_attention:
            quantized = {id(r.layer): r for r in records}
            records += quantize_attention(model, quantized, config)
    object.__setattr__(model, _state.ATTRIBUTE, _state.QATState(config, records))
    forget_compiled(model)
    return saving.attach(model)


def _target_layers(variables, owners):
    """Returns `[(path, layer)]` of the layers owning `variables`, each once."""
    found = {}
    for variable in variables:
        layer = owners.get(id(variable))
        path = getattr(layer, "path", None) or variable.path.rsplit("/", 1)[0]
        if not isinstance(
            layer,
            keras.layers.Dense | keras.layers.EinsumDense | keras.layers.Embedding,
        ):
            kind = type(layer).__name__ if layer is not None else "unknown"
            raise UserError(
                f"Cannot quantize '{variable.path}' ({kind}): QAT handles Dense "
                "and EinsumDense kernels and Embedding tables; LayerNorm and "
                "position tables stay float, as TFLite runs them. Narrow "
                "`targets` so they do not match it, e.g. [r'.*kernel']."
            )
        if getattr(layer, "_kernel", True) is None:  # tfaccel.factorize's factors
            raise UserError(
                f"Cannot quantize '{variable.path}': its layer is factorized into "
                "two low-rank factors, which QAT does not handle yet. Narrow "
                "`targets` so they do not match it, e.g. [r'.*kernel'] (which "
                "leaves factorized layers in float)."
            )
        if isinstance(layer, keras.layers.Dense | keras.layers.EinsumDense):
            if (
                getattr(layer, "lora_enabled", False)
                or layer.dtype_policy.quantization_mode
            ):
                raise UserError(
                    f"Cannot quantize '{path}': it has LoRA or is already quantized "
                    f"({layer.dtype_policy.name}). Merge LoRA or start from the "
                    "float model."
                )
        found.setdefault(id(layer), (path, layer))
    return list(found.values())


def _quantize_layer(layer, path, config):
    if isinstance(layer, keras.layers.Embedding):
        return _quantize_embedding(layer, path, config)
    kind = "dense" if isinstance(layer, keras.layers.Dense) else "einsum_dense"
    weight = layer._kernel
    record = _state.QuantizedLayer(
        path=path,
        kind=kind,
        layer=layer,
        weight=weight,
        input_axes=input_axes(weight, layer),
        ranges={
            "input": ActivationRange(
                f"{layer.name}_input", config.activation_bits, config.range_decay
            ),
            "output": ActivationRange(
                f"{layer.name}_output", config.activation_bits, config.range_decay
            ),
        },
    )
    if not _fusable(layer.activation):
        # TFLite fuses only ReLU-like activations into FULLY_CONNECTED; any
        # other (GELU in BART) is its own int8 op and needs its input range.
        record.ranges["pre_activation"] = ActivationRange(
            f"{layer.name}_pre_activation", config.activation_bits, config.range_decay
        )
    _preserve_zeros(record, config)
    plan = _matmul_plan(layer, kind, weight)

    def activate(y, training):
        if layer.activation is None:
            return y
        if "pre_activation" in record.ranges:
            y = record.ranges["pre_activation"](y, training)
        return layer.activation(y)

    def call(inputs, training=None):
        x = inputs if quantized_by(inputs) else record.ranges["input"](inputs, training)
        w = _weight(record, config)
        if plan is None:
            y = ops.einsum(layer.equation, x, w)
            if layer.bias is not None:
                y = ops.add(y, layer.bias)
            y = activate(y, training)
            return stamp(record.ranges["output"](y, training), record.ranges["output"])
        # A 2-D matmul with bias and activation straight after it and the
        # output range right after those: the pattern TFLite fuses into one
        # int8 FULLY_CONNECTED. (A rank-3 matmul or an einsum lowers to a
        # reshape between the matmul and the bias add, which leaves the
        # matmul float.)
        lead = ops.shape(x)[: len(x.shape) - plan.contracted]
        if plan.permutation is not None:
            w = ops.transpose(w, plan.permutation)
        y = ops.matmul(
            ops.reshape(x, (-1, plan.in_size)), ops.reshape(w, (plan.in_size, -1))
        )
        if layer.bias is not None:
            bias = ops.broadcast_to(layer.bias, plan.out_shape)
            y = ops.add(y, ops.reshape(bias, (-1,)))
        y = activate(y, training)
        y = record.ranges["output"](y, training)
        return stamp(ops.reshape(y, (*lead, *plan.out_shape)), record.ranges["output"])

    _state.patch(record, "call", call)
    return record


class _MatmulPlan:
    """How a Dense or EinsumDense layer maps onto `(-1, in) @ (in, out)`."""

    def __init__(self, contracted, permutation, in_size, out_shape):
        self.contracted = contracted  # trailing input axes summed over
        self.permutation = permutation  # kernel transpose to (in..., out...)
        self.in_size = in_size
        self.out_shape = out_shape  # kernel output dims, in output order


def _matmul_plan(layer, kind, weight):
    """Returns a `_MatmulPlan`, or None if the einsum is not a plain matmul.

    An einsum is a plain matmul when the input ends with the contracted
    letters, the output ends with the kernel's other letters, and the
    leading letters of both match, as in every keras-hub projection
    (`"abc,cde->abde"`, `"abcd,cde->abe"`).
    """
    shape = tuple(int(d) for d in weight.shape)
    if kind == "dense":
        return _MatmulPlan(1, None, shape[0], (shape[1],))
    equation = layer.equation.replace(" ", "")
    if "..." in equation:
        return None
    inputs, rest = equation.split(",")
    kernel, output = rest.split("->")
    contracted = [c for c in kernel if c not in output]
    produced = [c for c in kernel if c in output]
    n_in, n_out = len(contracted), len(produced)
    if (
        not n_in
        or set(inputs[len(inputs) - n_in :]) != set(contracted)
        or set(output[len(output) - n_out :]) != set(produced)
        or inputs[: len(inputs) - n_in] != output[: len(output) - n_out]
        or any(c in inputs for c in produced)
    ):
        return None
    order = [kernel.index(c) for c in inputs[len(inputs) - n_in :]]
    order += [kernel.index(c) for c in output[len(output) - n_out :]]
    permutation = None if order == list(range(len(kernel))) else order
    in_size = int(np.prod([shape[kernel.index(c)] for c in contracted]))
    out_shape = tuple(shape[kernel.index(c)] for c in output[len(output) - n_out :])
    if layer.bias is not None:
        try:
            np.broadcast_shapes(tuple(layer.bias.shape), out_shape)
        except ValueError:
            return None
    return _MatmulPlan(n_in, permutation, in_size, out_shape)


_FUSABLE = ("linear", "relu", "relu6")


def _fusable(activation):
    return activation is None or getattr(activation, "__name__", None) in _FUSABLE


def _quantize_embedding(layer, path, config):
    clustered = getattr(layer, "_tfaccel_clustered", None)
    # A clustered table's `embeddings` property is the shared-value tensor;
    # the record keeps the variable, which strip bakes into.
    weight = clustered.variable if clustered is not None else layer.embeddings
    record = _state.QuantizedLayer(
        path=path, kind="embedding", layer=layer, weight=weight, input_axes=(1,)
    )
    _preserve_zeros(record, config)
    original = layer.call

    def call(inputs, *args, **kwargs):
        if args or kwargs.get("reverse"):
            return original(inputs, *args, **kwargs)
        ids = ops.cast(inputs, "int32")
        return ops.take(_weight(record, config), ids, axis=0)

    _state.patch(record, "call", call)
    return record


def _weight(record, config):
    """The fake-quantized weight; once stripped, the baked weight itself.

    Per-tensor weights and embedding tables keep their FakeQuant op once
    baked (idempotent on baked values), which TFLite reads as the weight's
    one scale; embedding tables then become int8 GATHERs. Per-channel
    kernels are baked without one (see `tfaccel.export.tflite`), and the
    converter derives the same per-channel scales from the values.
    """
    # Cluster-preserving QAT: quantize the shared-value kernel, so the
    # centroids train through the fake quantization and the kernel keeps at
    # most `num_clusters` values (tfaccel.cluster).
    shared = None if record.baked else registry.layer_weight(record.layer)
    if shared is not None:
        weight = shared
    else:
        weight = ops.convert_to_tensor(record.weight)
    if record.mask is not None:
        weight = ops.multiply(weight, ops.convert_to_tensor(record.mask))
    if record.kind == "embedding":
        return quantize_weight(
            weight, record.input_axes, config.weight_bits, per_channel=False
        )
    if record.baked and config.per_channel:
        return weight
    return quantize_weight(
        weight, record.input_axes, config.weight_bits, config.per_channel
    )


def effective_weights(model):
    """Returns `{id(weight): its fake-quantized value}` for every quantized weight."""
    return {
        id(record.weight): _weight(record, state.config)
        for _, state in _state.find_states(model)
        for record in state.layers
        if record.weight is not None  # attention matmuls have none
    }


def _preserve_zeros(record, config):
    """Fixes the zeros of a pruned weight with a mask applied after each step."""
    if not config.preserve_sparsity:
        return
    values = ops.convert_to_numpy(record.weight)
    if not np.any(values == 0):
        return
    fix_mask(record, (values != 0).astype(np.float32))


def fix_mask(record, mask):
    """Gives the record's weight a fixed mask, applied after each update."""
    record.mask = keras.Variable(
        mask, trainable=False, name=f"{record.layer.name}_qat_mask"
    )
    record.original_constraint = record.weight.constraint
    record.weight.constraint = _FixedMask(record.mask, record.original_constraint)


class _FixedMask(keras.constraints.Constraint):
    def __init__(self, mask, original=None):
        self.mask = mask
        self.original = original

    def __call__(self, weight):
        if self.original is not None:
            weight = self.original(weight)
        return ops.multiply(weight, ops.cast(self.mask, weight.dtype))
