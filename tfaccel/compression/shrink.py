"""`shrink`: structured pruning that returns a genuinely smaller model.

Unlike `tfaccel.prune`, which zeroes weights inside tensors of the same
shape, `shrink` removes whole attention heads, feedforward neurons and
transformer layers: it rebuilds the model from its config with smaller
sizes and copies the kept weights in, so the result is smaller and faster
on any runtime, with no sparse kernels.
"""

import dataclasses
import math

import numpy as np
from keras import ops

from tfaccel.compression import _architectures, _importance
from tfaccel.core import registry
from tfaccel.core.counts import parameter_count
from tfaccel.core.strategy import model_strategy
from tfaccel.errors import UserError

IMPORTANCES = ("magnitude", "activation")


def shrink(
    model, heads=None, ffn=None, layers=None, importance="magnitude", calibration=None
):
    """Returns a smaller copy of `model` without its least important parts.

    Structured pruning of encoder-decoder transformers: each attention layer
    keeps its most important heads (Michel et al., "Are Sixteen Heads Really
    Better than One?", 2019, https://arxiv.org/abs/1905.10650), each
    feedforward block its most important neurons, and each stack its most
    important layers (Fan et al., LayerDrop, 2019,
    https://arxiv.org/abs/1909.11556). The model is rebuilt from its config
    with the smaller sizes and the kept weights are copied in, so it is a
    plain model of the same class: it trains, saves, exports and generates
    as before. Fine-tune it (or distill into it) to recover accuracy.

    - Heads are chosen per attention layer (encoder self-, decoder self-
      and cross-attention), but every layer keeps the same number, since
      the config has one `num_heads`. The head width is kept:
      `Seq2SeqTransformer(head_dim=...)` is set to the original width.
    - Kept layers keep their order; the new layers are renumbered
      (`encoder_layer_0`, ...).
    - A ratio keeps `floor(ratio * n + 0.5)` of `n` (0.75 of 8 heads: 6);
      an int is a count. `None`, a ratio of 1.0 or the full count keeps
      all of that kind, with the same outputs.

    Importance (see `tfaccel/compression/_importance.py`):

    - `"magnitude"`, from weights alone: a head scores
      `||W_value[:, h]|| * ||W_output[h]||` (its query and key only shape
      attention weights, which sum to 1, so its output gain goes through
      value and output), a neuron `||W_in[:, j]|| * ||W_out[j]||`, and a
      layer the sum of its heads' and neurons' scores, a bound on how much
      its residual branches add to their input.
    - `"activation"`, on `calibration` batches, over non-padding tokens: a
      head scores the mean norm of its output through the output projection,
      a neuron its mean `|activation|` times `||W_out[j]||` (as Wanda, Sun
      et al., 2023, https://arxiv.org/abs/2306.11695), a layer its mean
      `1 - cosine(input, output)` (ShortGPT's block influence, Men et al.,
      2024, https://arxiv.org/abs/2403.03853). Ties, such as ReLU neurons
      that never fire on the calibration data, go to the larger weights.

    Args:
        model: a `tfaccel.models.Seq2SeqTransformer` (heads, ffn, layers) or
            a `keras_hub.models.BartBackbone` (ffn and layers: BART derives
            its head width from `hidden_dim // num_heads`). Not pruned,
            clustered, quantization-aware or quantized: shrink first.
        heads: attention heads to keep per attention layer: a ratio in
            (0, 1] or an int count. `None` keeps all.
        ffn: feedforward neurons to keep per layer: a ratio or a count.
        layers: layers to keep per stack: a ratio or count for both stacks,
            or a dict `{"encoder": ..., "decoder": ...}` (either key
            optional). BART keeps the same number in both.
        importance: `"magnitude"` or `"activation"`.
        calibration: for `"activation"`: a dict of input arrays (e.g.
            `{"encoder_token_ids": ..., "decoder_token_ids": ...}`, int32,
            0 = padding; BART's inputs include its padding masks), or a
            list of such dicts.

    Returns:
        A new, smaller, uncompiled model of the same class, built under the
        distribution strategy of `model`; `model` is unchanged.

    Example:

    ```python
    small = tfaccel.compression.shrink(model, heads=0.5, ffn=0.5, layers=2)
    tfaccel.compression.shrink_report(model, small)["parameters"]  # (before, after)
    ```
    """
    arch = _architectures.architecture(model)
    _check_plain(model)
    _check_importance(importance, calibration)
    num_heads = _count(
        "heads", heads, arch.num_heads, "attention heads", "each attention layer"
    )
    intermediate_dim = _count(
        "ffn",
        ffn,
        arch.intermediate_dim,
        "feedforward neurons",
        "each feedforward block",
    )
    num_layers = _layer_counts(arch, layers)
    arch.check_counts(heads, num_heads, num_layers)
    # Ranked by the chosen importance; ties (such as ReLU neurons that never
    # fire on the calibration data) go to the larger weights.
    ranking = [_importance.magnitude_scores(arch)]
    if importance == "activation":
        batches = _batches(arch, calibration)
        ranking.insert(0, _importance.activation_scores(arch, batches))
    plan = _plan(ranking, num_heads, intermediate_dim, num_layers)
    with model_strategy(model).scope():
        shrunk = arch.rebuild(num_heads, intermediate_dim, num_layers)
        _copy_weights(arch, _architectures.architecture(shrunk), plan)
    return shrunk


def shrink_report(original, shrunk):
    """Returns the sizes of a model before and after `shrink`.

    Args:
        original: the model given to `shrink`.
        shrunk: the model it returned.

    Returns:
        A dict: `"parameters"`, `"num_heads"`, `"intermediate_dim"`,
        `"encoder_layers"` and `"decoder_layers"` as `(before, after)`
        pairs, and `"parameter_ratio"` (after / before).
    """
    before, after = (_architectures.architecture(m) for m in (original, shrunk))
    sizes = {
        "parameters": (parameter_count(original), parameter_count(shrunk)),
        "num_heads": (before.num_heads, after.num_heads),
        "intermediate_dim": (before.intermediate_dim, after.intermediate_dim),
    }
    for stack in _architectures.STACKS:
        sizes[f"{stack}_layers"] = (len(before.stacks[stack]), len(after.stacks[stack]))
    sizes["parameter_ratio"] = sizes["parameters"][1] / sizes["parameters"][0]
    return sizes


# === Checks ===


def _check_plain(model):
    # "pruned", "clustered", "quantization-aware": each technique whose state
    # the model (or an enclosing model, on its layers) carries.
    found = [technique.label for technique in registry.applied(model)]
    flat = list(model._flatten_layers(include_self=True, recursive=True))
    if any(_quantized(layer) for layer in flat):
        found.append("quantized or LoRA-enabled")
    if found:
        raise UserError(
            f"Model '{model.name}' is {' and '.join(found)}; `shrink` needs the "
            "plain float model. Shrink before pruning/clustering/QAT: shrink "
            "first, then apply those to the smaller model. "
            f"Received: model={model.name!r}"
        )


def _quantized(layer):
    policy = getattr(layer, "dtype_policy", None)
    mode = getattr(policy, "quantization_mode", None)
    return bool(mode) or bool(getattr(layer, "lora_enabled", False))


def _check_importance(importance, calibration):
    if importance not in IMPORTANCES:
        raise UserError(
            f"Unknown `importance` {importance!r}; use one of "
            f"{', '.join(map(repr, IMPORTANCES))}. Received: importance={importance!r}"
        )
    if importance == "activation" and calibration is None:
        raise UserError(
            "importance='activation' measures heads, neurons and layers on data: "
            "pass `calibration`, a dict of input batches such as "
            "{'encoder_token_ids': ..., 'decoder_token_ids': ...} (or a list of "
            "them), or use importance='magnitude'. Received: calibration=None"
        )
    if importance == "magnitude" and calibration is not None:
        raise UserError(
            "`calibration` is only read with importance='activation'; pass that, "
            "or drop `calibration`. Received: importance='magnitude'"
        )


def _count(name, value, total, unit, holder):
    """Resolves a ratio in (0, 1] or an int count into a count in [1, total]."""
    if value is None:
        return total
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise UserError(
            f"`{name}` must be a ratio in (0, 1] or an int count of {unit} to "
            f"keep. Received: {name}={value!r}"
        )
    if isinstance(value, int | np.integer):
        count = int(value)
    elif not 0 < value <= 1:
        raise UserError(
            f"A ratio `{name}` is the fraction of {unit} to keep and must be in "
            f"(0, 1]; to keep a number of them, pass an int. Received: {name}={value!r}"
        )
    else:
        count = math.floor(value * total + 0.5)
    if count < 1:
        raise UserError(
            f"`{name}={value!r}` keeps none of the {total} {unit}, but {holder} "
            "must keep at least one. Pass a count >= 1 or a larger ratio. "
            f"Received: {name}={value!r}"
        )
    if count > total:
        raise UserError(
            f"`{name}={value!r}` asks to keep more {unit} than the model has "
            f"({total}). Pass a count <= {total} or a ratio in (0, 1]. "
            f"Received: {name}={value!r}"
        )
    return count


def _layer_counts(arch, layers):
    if not isinstance(layers, dict):
        layers = dict.fromkeys(_architectures.STACKS, layers)
    unknown = sorted(set(layers) - set(_architectures.STACKS), key=str)
    if unknown:
        raise UserError(
            f"Unknown `layers` key(s) {unknown}; use 'encoder' and/or 'decoder'. "
            f"Received: layers={layers!r}"
        )
    return {
        stack: _count(
            f"layers['{stack}']",
            layers.get(stack),
            len(arch.stacks[stack]),
            f"{stack} layers",
            f"the {stack}",
        )
        for stack in _architectures.STACKS
    }


def _batches(arch, calibration):
    """Checks `calibration` and returns it as a list of dicts of NumPy arrays."""
    batches = [calibration] if isinstance(calibration, dict) else calibration
    if (
        not isinstance(batches, list | tuple)
        or not batches
        or not all(isinstance(batch, dict) for batch in batches)
    ):
        raise UserError(
            "`calibration` must be a dict of input arrays, e.g. "
            "{'encoder_token_ids': ..., 'decoder_token_ids': ...}, or a "
            f"non-empty list of them. Received: calibration={type(calibration)}"
        )
    names = sorted(arch.model.input)
    for batch in batches:
        missing = [name for name in names if name not in batch]
        if missing:
            raise UserError(
                f"A calibration batch lacks the model input(s) {missing}; each "
                f"needs {names}. Received: keys={sorted(batch)}"
            )
    batches = [{name: np.asarray(batch[name]) for name in names} for batch in batches]
    for stack in _architectures.STACKS:
        if not any(_architectures.token_mask(b, stack).any() for b in batches):
            raise UserError(
                f"The calibration batches hold no {stack} tokens other than "
                f"padding (id 0), so nothing can be measured. Pass real "
                f"sequences. Received: {len(batches)} batch(es)"
            )
    return batches


# === Plan and copy ===


@dataclasses.dataclass
class _Plan:
    """The indices `shrink` keeps, into the original model's weights."""

    layers: dict  # stack -> kept layer indices, in order
    heads: dict  # (stack, layer index, attention attribute) -> kept heads
    neurons: dict  # (stack, layer index) -> kept feedforward neurons


def _plan(ranking, num_heads, intermediate_dim, num_layers):
    """Keeps the top of `ranking`, a list of `Scores`, the first deciding."""

    def top(kind, key, k):
        return _top([getattr(scores, kind)[key] for scores in ranking], k)

    first = ranking[0]
    return _Plan(
        layers={
            stack: top("layers", stack, num_layers[stack]) for stack in first.layers
        },
        heads={key: top("heads", key, num_heads) for key in first.heads},
        neurons={key: top("neurons", key, intermediate_dim) for key in first.neurons},
    )


def _top(keys, k):
    # The k best by the first key, then by the next; full ties keep the
    # first. Returned in their original order.
    order = np.lexsort([-np.asarray(key) for key in reversed(keys)])
    return np.sort(order[:k])


def _copy_weights(arch, new_arch, plan):
    """Copies the kept weights of `arch.model` into `new_arch.model`."""
    stacked = {id(layer) for layers in arch.stacks.values() for layer in layers}
    for layer in arch.model.layers:
        if id(layer) not in stacked and layer.weights:
            new_arch.model.get_layer(layer.name).set_weights(layer.get_weights())
    for stack, kept in plan.layers.items():
        for new_layer, i in zip(new_arch.stacks[stack], kept, strict=True):
            old_layer = arch.stacks[stack][i]
            heads = {
                attribute: plan.heads[stack, i, attribute]
                for attribute, _ in _architectures.attentions(old_layer)
            }
            chosen = _selections(old_layer, heads, plan.neurons[stack, i])
            _copy_layer(old_layer, new_layer, chosen)


def _selections(layer, heads, neurons):
    """Maps `id(variable)` of `layer` to `(axis, kept indices)` to slice it."""
    chosen = {}
    for attribute, attention in _architectures.attentions(layer):
        kept = heads[attribute]
        for dense in (
            attention._query_dense,
            attention._key_dense,
            attention._value_dense,
        ):
            chosen[id(dense.kernel)] = (1, kept)  # (hidden, heads, head_dim)
            if dense.bias is not None:
                chosen[id(dense.bias)] = (0, kept)  # (heads, head_dim)
        chosen[id(attention._output_dense.kernel)] = (
            0,
            kept,
        )  # (heads, head_dim, hidden)
    inner = layer._feedforward_intermediate_dense
    chosen[id(inner.kernel)] = (1, neurons)  # (hidden, ffn)
    if inner.bias is not None:
        chosen[id(inner.bias)] = (0, neurons)  # (ffn,)
    chosen[id(layer._feedforward_output_dense.kernel)] = (0, neurons)  # (ffn, hidden)
    return chosen


def _copy_layer(old, new, chosen):
    # Matched by path inside the layer: keras-hub's names, whatever the order.
    sources = {_relative(variable, old): variable for variable in old.weights}
    for variable in new.weights:
        source = sources.pop(_relative(variable, new))
        value = ops.convert_to_numpy(source)
        if id(source) in chosen:
            axis, kept = chosen[id(source)]
            value = np.take(value, kept, axis=axis)
        variable.assign(value)
    if sources:
        raise RuntimeError(f"shrink left weights of '{old.name}' uncopied: {sources}")


def _relative(variable, layer):
    return variable.path.removeprefix(f"{layer.path}/")
