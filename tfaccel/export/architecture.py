"""An encoder-decoder described by its architecture and weights, without Keras.

`Architecture` is what the lean exporters (`tfaccel.export.lean`,
`tfaccel.export.ctranslate2`) read: the embeddings, each layer's
projections and norms, the head, and the handful of choices that tell one
transformer from another (norm placement, activation, head counts). Models
are mapped into it by a function per architecture, as CTranslate2 maps each
framework into its specs, so an exporter never sees the training graph:

```python
arch = architecture.describe(model)  # a Seq2SeqTransformer, stripped or not
arch.decoder[0].self_attention.num_heads
```

Weights are float32 numpy arrays in `(in, out)` layout. A factorized
projection keeps its two factors (`Linear.factors`); a QAT model's weights
are already on the int8 grid after `strip_quantization`, so they are read
as they are.
"""

import dataclasses

import numpy as np

from tfaccel.errors import UserError


@dataclasses.dataclass
class Linear:
    """A projection `x @ kernel + bias`, or `(x @ a) @ b + bias` when factored.

    Attributes:
        kernel: `(in, out)` float32, the product when `factors` is set.
        bias: `(out,)` float32 or None.
        factors: None, or `(a (in, rank), b (rank, out))`.
    """

    kernel: np.ndarray
    bias: np.ndarray | None = None
    factors: tuple | None = None

    @property
    def shape(self):
        return self.kernel.shape


@dataclasses.dataclass
class Norm:
    """Layer normalization: `(x - mean) / sqrt(var + epsilon) * gamma + beta`."""

    gamma: np.ndarray
    beta: np.ndarray
    epsilon: float


@dataclasses.dataclass
class Attention:
    """Multi-head attention's four projections.

    Attributes:
        query, key, value: `(hidden, heads * head_dim)` projections.
        output: `(heads * head_dim, hidden)`.
        num_heads, head_dim: ints.
    """

    query: Linear
    key: Linear
    value: Linear
    output: Linear
    num_heads: int
    head_dim: int


@dataclasses.dataclass
class Block:
    """One encoder or decoder layer. `cross_*` are None in an encoder."""

    self_attention: Attention
    self_norm: Norm
    ffn_in: Linear
    ffn_out: Linear
    ffn_norm: Norm
    cross_attention: Attention | None = None
    cross_norm: Norm | None = None


@dataclasses.dataclass
class Architecture:
    """A whole encoder-decoder.

    Attributes:
        source_embedding: `(source vocabulary, hidden)`.
        source_positions: `(max source length, hidden)`, learned, added.
        target_embedding: `(target vocabulary, hidden)`.
        target_positions: `(max target length, hidden)`.
        encoder, decoder: lists of `Block`.
        lm_head: `(hidden, target vocabulary)`.
        normalize_first: pre-norm (True) or post-norm (False) blocks.
        activation: the feedforward activation, `"relu"` or `"gelu"`.
        pad_id, bos_id, eos_id: the special token ids.
    """

    source_embedding: np.ndarray
    source_positions: np.ndarray
    target_embedding: np.ndarray
    target_positions: np.ndarray
    encoder: list
    decoder: list
    lm_head: Linear
    normalize_first: bool
    activation: str
    pad_id: int
    bos_id: int
    eos_id: int

    @property
    def hidden_dim(self):
        return int(self.target_embedding.shape[1])

    @property
    def max_source_length(self):
        return int(self.source_positions.shape[0])

    @property
    def max_target_length(self):
        return int(self.target_positions.shape[0])

    @property
    def vocabulary_size(self):
        return int(self.lm_head.kernel.shape[1])

    def kernel_bytes(self, bytes_per_weight=1):
        """Bytes of the projections one decode step reads (the memory floor).

        Counts every decoder projection that runs per step (self-attention's
        four, cross-attention's query and output, the feedforward's two) and
        the LM head; cross-attention keys and values are computed once per
        sequence by `encode`.
        """
        total = self.lm_head.kernel.size
        for block in self.decoder:
            for linear in (
                block.self_attention.query,
                block.self_attention.key,
                block.self_attention.value,
                block.self_attention.output,
                block.cross_attention.query,
                block.cross_attention.output,
                block.ffn_in,
                block.ffn_out,
            ):
                total += _stored_size(linear)
        return total * bytes_per_weight


def _stored_size(linear):
    if linear.factors is not None:
        return sum(f.size for f in linear.factors)
    return linear.kernel.size


# === Mapping models into the description ===


def describe(model):
    """Returns the `Architecture` of `model`.

    Raises:
        UserError: no mapping knows the model's class.
    """
    from tfaccel.models.seq2seq_transformer import Seq2SeqTransformer

    if isinstance(model, Seq2SeqTransformer):
        return _describe_seq2seq(model)
    raise UserError(
        "Lean export needs a model whose architecture tfaccel can describe "
        "(tfaccel.models.Seq2SeqTransformer). "
        f"Received: model of class {type(model).__name__}"
    )


def _array(variable):
    from keras import ops

    return np.asarray(ops.convert_to_numpy(variable), np.float32)


def _linear(layer):
    """A Dense or EinsumDense (or their low-rank versions) as a `Linear`."""
    kernel = _array(layer.kernel)
    bias = _array(layer.bias) if getattr(layer, "bias", None) is not None else None
    factors = None
    if hasattr(layer, "kernel_a"):
        a, b = _array(layer.kernel_a), _array(layer.kernel_b)
        factors = (a.reshape(-1, a.shape[-1]), b.reshape(b.shape[0], -1))
    return _flat_linear(kernel, bias, factors)


def _flat_linear(kernel, bias, factors):
    # EinsumDense kernels: query/key/value (hidden, heads, head_dim), output
    # (heads, head_dim, hidden). As (in, out): the output's leading axes are
    # its input, the others' trailing axes their output.
    if kernel.ndim == 3 and bias is not None and bias.ndim == 2:
        kernel = kernel.reshape(kernel.shape[0], -1)
        bias = bias.reshape(-1)
    elif kernel.ndim == 3:
        kernel = kernel.reshape(-1, kernel.shape[-1])
    return Linear(kernel, bias, factors)


def _attention(layer):
    return Attention(
        query=_linear(layer._query_dense),
        key=_linear(layer._key_dense),
        value=_linear(layer._value_dense),
        output=_linear(layer._output_dense),
        num_heads=int(layer.num_heads),
        head_dim=int(layer.key_dim),
    )


def _norm(layer):
    return Norm(_array(layer.gamma), _array(layer.beta), float(layer.epsilon))


def _describe_seq2seq(model):
    from tfaccel.models._generation import BOS_ID, EOS_ID, PAD_ID

    def block(layer, cross):
        return Block(
            self_attention=_attention(layer._self_attention_layer),
            self_norm=_norm(layer._self_attention_layer_norm),
            ffn_in=_linear(layer._feedforward_intermediate_dense),
            ffn_out=_linear(layer._feedforward_output_dense),
            ffn_norm=_norm(layer._feedforward_layer_norm),
            cross_attention=_attention(layer._cross_attention_layer) if cross else None,
            cross_norm=_norm(layer._cross_attention_layer_norm) if cross else None,
        )

    first = model.encoder_layers[0] if model.encoder_layers else model.decoder_layers[0]
    return Architecture(
        source_embedding=_array(model.encoder_embedding.token_embedding.embeddings),
        source_positions=_array(
            model.encoder_embedding.position_embedding.position_embeddings
        ),
        target_embedding=_array(model.decoder_embedding.token_embedding.embeddings),
        target_positions=_array(
            model.decoder_embedding.position_embedding.position_embeddings
        ),
        encoder=[block(layer, False) for layer in model.encoder_layers],
        decoder=[block(layer, True) for layer in model.decoder_layers],
        lm_head=_linear(model.lm_head),
        normalize_first=bool(first.normalize_first),
        activation=str(model.activation),
        pad_id=PAD_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
    )
