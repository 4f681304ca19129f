"""Importance scores of attention heads, feedforward neurons and whole layers.

Scores are compared within one attention layer (heads), one feedforward
block (neurons) or one stack (layers); the highest are kept.

- `magnitude` (weights only). A head only reaches the residual stream
  through its value and output projections (its query and key only shape
  attention weights that sum to 1), so its score is
  `||W_value[:, h, :]|| * ||W_output[h, :, :]||` (Frobenius norms), a bound
  on its output gain. A feedforward neuron `j` scores
  `||W_in[:, j]|| * ||W_out[j, :]||` for the same reason. A whole layer
  scores the sum of its heads' and neurons' scores: a bound on how much its
  residual branches can add to their input, so the layer whose branches
  add least is dropped first.
- `activation` (calibration data; non-padding tokens only). A head scores
  the mean norm of its output, `||context_h @ W_output[h]||`, a neuron the
  mean `|activation|` times `||W_out[j, :]||`, and a layer the mean
  `1 - cosine(input, output)`: how much it changes its input.
"""

import collections
import contextlib
import dataclasses
import inspect

import numpy as np
from keras import ops

from tfaccel.compression._architectures import attentions, token_mask


@dataclasses.dataclass
class Scores:
    """Importance of every head, neuron and layer of one model."""

    heads: dict  # (stack, layer index, attention attribute) -> (num_heads,)
    neurons: dict  # (stack, layer index) -> (intermediate_dim,)
    layers: dict  # stack -> (num_layers,)


def magnitude_scores(arch):
    """Returns weight-magnitude `Scores` for the model of `arch`."""
    scores = Scores({}, {}, {})
    for stack, layers in arch.stacks.items():
        totals = []
        for i, layer in enumerate(layers):
            total = 0.0
            for attribute, attention in attentions(layer):
                heads = _head_gains(attention)
                scores.heads[stack, i, attribute] = heads
                total += heads.sum()
            neurons = _input_norms(layer) * _output_norms(layer)
            scores.neurons[stack, i] = neurons
            totals.append(total + neurons.sum())
        scores.layers[stack] = np.array(totals)
    return scores


def activation_scores(arch, batches):
    """Returns `Scores` measured on `batches` (dicts of NumPy model inputs)."""
    sums = Scores(*(collections.defaultdict(float) for _ in range(3)))
    tokens = collections.defaultdict(float)
    for batch in batches:
        with _recording(arch) as records:
            arch.model(batch, training=False)
        for stack, layers in arch.stacks.items():
            mask = token_mask(batch, stack).astype("float32")  # (batch, seq)
            tokens[stack] += mask.sum()
            changes = [_change(*records[stack, i], mask) for i in range(len(layers))]
            sums.layers[stack] += np.array(changes)
            for i, layer in enumerate(layers):
                for attribute, attention in attentions(layer):
                    context = records[stack, i, attribute]
                    sums.heads[stack, i, attribute] += _head_outputs(
                        attention, context, mask
                    )
                activations = np.abs(records[stack, i, "ffn"])  # (batch, seq, ffn)
                sums.neurons[stack, i] += np.einsum("bsf,bs->f", activations, mask)
    return _means(arch, sums, tokens)


def _means(arch, sums, tokens):
    scores = Scores({}, {}, {})
    for (stack, *rest), value in sums.heads.items():
        scores.heads[(stack, *rest)] = value / tokens[stack]
    for (stack, i), value in sums.neurons.items():
        layer = arch.stacks[stack][i]
        scores.neurons[stack, i] = value / tokens[stack] * _output_norms(layer)
    for stack, value in sums.layers.items():
        scores.layers[stack] = value / tokens[stack]
    return scores


def _head_gains(attention):
    value = _numpy(attention._value_dense.kernel)  # (hidden, heads, head_dim)
    output = _numpy(attention._output_dense.kernel)  # (heads, head_dim, hidden)
    return _norm(value, axis=(0, 2)) * _norm(output, axis=(1, 2))


def _input_norms(layer):
    kernel = _numpy(layer._feedforward_intermediate_dense.kernel)  # (hidden, ffn)
    return _norm(kernel, axis=0)


def _output_norms(layer):
    kernel = _numpy(layer._feedforward_output_dense.kernel)  # (ffn, hidden)
    return _norm(kernel, axis=1)


def _head_outputs(attention, context, mask):
    # context: (batch, query, heads, head_dim), before the output projection.
    output = _numpy(attention._output_dense.kernel)  # (heads, head_dim, hidden)
    per_head = np.einsum("bqhd,hdm->bqhm", context, output)
    return np.einsum("bqh,bq->h", np.linalg.norm(per_head, axis=-1), mask)


def _change(inputs, outputs, mask):
    # 1 - cosine(input, output) per token, summed over non-padding tokens.
    dot = np.sum(inputs * outputs, axis=-1)  # (batch, seq)
    norms = np.linalg.norm(inputs, axis=-1) * np.linalg.norm(outputs, axis=-1)
    return np.sum((1.0 - dot / np.maximum(norms, 1e-12)) * mask)


@contextlib.contextmanager
def _recording(arch):
    """Records, per call, what the activation scores need (NumPy arrays).

    `(stack, i)`: the layer's input and output; `(stack, i, attribute)`: the
    per-head context entering the attention's output projection;
    `(stack, i, "ffn")`: the feedforward activations. Each watched layer
    gets an instance-level `call` that is removed again on exit.
    """
    records, watched = {}, []

    def watch(layer, key, pick):
        original = layer.call
        first = next(iter(inspect.signature(original).parameters))

        def call(*args, **kwargs):
            outputs = original(*args, **kwargs)
            inputs = args[0] if args else kwargs[first]
            records[key] = pick(inputs, outputs)
            return outputs

        object.__setattr__(layer, "call", call)
        watched.append(layer)

    for stack, layers in arch.stacks.items():
        for i, layer in enumerate(layers):
            watch(layer, (stack, i), _inputs_and_outputs)
            for attribute, attention in attentions(layer):
                watch(attention._output_dense, (stack, i, attribute), _first_input)
            watch(layer._feedforward_intermediate_dense, (stack, i, "ffn"), _outputs)
    try:
        yield records
    finally:
        for layer in watched:
            object.__delattr__(layer, "call")


def _inputs_and_outputs(inputs, outputs):
    # A decoder called with caches returns (x, caches...); x comes first.
    outputs = outputs[0] if isinstance(outputs, tuple) else outputs
    return _numpy(inputs), _numpy(outputs)


def _first_input(inputs, outputs):
    return _numpy(inputs)


def _outputs(inputs, outputs):
    return _numpy(outputs)


def _numpy(x):
    return ops.convert_to_numpy(x).astype("float32")


def _norm(x, axis):
    return np.sqrt(np.sum(np.square(x), axis=axis))
