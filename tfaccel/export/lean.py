"""Lean generation graphs, written from an `Architecture` instead of traced.

The traced Keras graph of one `base` decode step is 627 TFLite ops, of
which the 49 matmuls are a small part of the time (issue 22). This module
writes `encode`, `decode_step` and a whole-loop `generate` directly in
TensorFlow ops, choosing what LiteRT and ONNX Runtime run well:

- every cache is `(batch, heads, length, head_dim)`: a step's key and value
  reshape into it and the attention matmuls read it, with no transpose;
- each self-attention has one fused QKV projection (one FULLY_CONNECTED),
  and the query scale `1/sqrt(head_dim)` is folded into its weights;
- a step writes its key and value with a one-hot row (`cache + onehot *
  new`: the slot is still zero), and reads its causal mask as one row of a
  constant table: nothing is built per step but a slice;
- the position is a slice of the position table, not a gather;
- the encoder takes any source width, so it does the work of the real
  source length (one word: its letters, not 32 padded positions);
- `generate` is the whole greedy loop as a `tf.while_loop`, so a client
  makes one call per batch of sequences.

`LeanModule` builds the `tf.Module` (its `module`); `convert_tflite` turns
it into a `.tflite` file (float32, or int8 weights with float activations),
and `LeanLiteRT` (`tfaccel.export.lean_runner`) runs that file
(`tfaccel.export.lean_onnx` converts the same module to ONNX). Signatures
(inputs and outputs by name):

- `encode(encoder_token_ids int32 (batch, source))` -> `cross_k_<i>`,
  `cross_v_<i>` `(batch, heads, source, head_dim)` per decoder layer, and
  `encoder_bias` float32 `(batch, 1, 1, source)`, 0 for tokens and -1e9
  for padding;
- `decode_step(token_ids int32 (batch, 1), index int32 (), self_k_<i>,
  self_v_<i> (batch, heads, max_target, head_dim), cross_k_<i>, cross_v_<i>,
  encoder_bias)` -> `logits (batch, vocab)` and the updated `self_k_<i>`,
  `self_v_<i>`;
- `generate(encoder_token_ids, max_length int32 (), stop_at_eos bool ())`
  -> `tokens int32 (batch, max_target - 1)`: greedy ids, EOS included, 0
  after it (with `stop_at_eos` false, every row runs `max_length` steps);
- `init_cache(batch_size int32 ())` -> the zero `self_k_<i>`, `self_v_<i>`
  a sequence starts `decode_step` with.
"""

import json

import numpy as np

from tfaccel.export import tflite_metadata
from tfaccel.export.architecture import describe
from tfaccel.export.lean_runner import (  # noqa: F401  (LeanRunner, _trim: re-exported)
    CONTRACT,
    DECODE_STEP,
    ENCODE,
    GENERATE,
    INIT_CACHE,
    SIGNATURES,
    LeanLiteRT,
    LeanRunner,
    _trim,
)

_NEG = -1e9


class LeanModule:
    """Builds the lean `tf.Module` of an `Architecture` (see the module doc).

    Args:
        arch: a `tfaccel.export.architecture.Architecture`.
        target_length: the self-attention cache length: the most tokens a
            sequence decodes, BOS included (at most `arch.max_target_length`).

    Attributes:
        module: the `tf.Module` with `encode`, `decode_step` and `generate`
            as `tf.function`s with input signatures.
    """

    def __init__(self, arch, target_length=None):
        import tensorflow as tf

        self.arch = arch
        self.target_length = int(target_length or arch.max_target_length)
        if not 1 < self.target_length <= arch.max_target_length:
            raise ValueError(
                "`target_length` must be in [2, max_target_length]. Received: "
                f"target_length={target_length}, max_target_length="
                f"{arch.max_target_length}"
            )
        module = tf.Module()
        self._constants = []
        self.module = module
        self._build_weights(tf)
        layers = len(arch.decoder)
        heads = [b.self_attention.num_heads for b in arch.decoder]
        dims = [b.self_attention.head_dim for b in arch.decoder]
        cross_heads = [b.cross_attention.num_heads for b in arch.decoder]
        cross_dims = [b.cross_attention.head_dim for b in arch.decoder]
        t = self.target_length

        ids = tf.TensorSpec((None, None), tf.int32, "encoder_token_ids")
        module.encode = tf.function(
            self._encode, input_signature=[ids], autograph=False
        )
        step_specs = [
            tf.TensorSpec((None, 1), tf.int32, "token_ids"),
            tf.TensorSpec((), tf.int32, "index"),
        ]
        for i in range(layers):
            step_specs += [
                tf.TensorSpec((None, heads[i], t, dims[i]), tf.float32, f"self_k_{i}"),
                tf.TensorSpec((None, heads[i], t, dims[i]), tf.float32, f"self_v_{i}"),
            ]
        for i in range(layers):
            shape = (None, cross_heads[i], None, cross_dims[i])
            step_specs += [
                tf.TensorSpec(shape, tf.float32, f"cross_k_{i}"),
                tf.TensorSpec(shape, tf.float32, f"cross_v_{i}"),
            ]
        step_specs.append(tf.TensorSpec((None, 1, 1, None), tf.float32, "encoder_bias"))
        module.decode_step = tf.function(
            self._decode_step_flat, input_signature=step_specs, autograph=False
        )
        module.generate = tf.function(
            self._generate,
            input_signature=[
                ids,
                tf.TensorSpec((), tf.int32, "max_length"),
                tf.TensorSpec((), tf.bool, "stop_at_eos"),
            ],
            # No autograph: the loop is an explicit `tf.while_loop`, and
            # tracing does not depend on re-reading this file's source.
            autograph=False,
        )
        module.init_cache = tf.function(
            self._init_cache,
            input_signature=[tf.TensorSpec((), tf.int32, "batch_size")],
            autograph=False,
        )

    def contract(self):
        """What a decode loop needs to drive the signatures, as a dict.

        Written into every lean file (`CONTRACT`), so that the file alone
        says how to use it.
        """
        arch = self.arch
        return {
            "version": 1,
            "pad_id": arch.pad_id,
            "bos_id": arch.bos_id,
            "eos_id": arch.eos_id,
            "max_source_length": arch.max_source_length,
            "target_length": self.target_length,
            "decoder_layers": len(arch.decoder),
            "self_cache": {
                "inputs": "self_k_<layer>, self_v_<layer>",
                "layout": "batch, heads, target_length, head_dim",
                "heads": [b.self_attention.num_heads for b in arch.decoder],
                "head_dim": [b.self_attention.head_dim for b in arch.decoder],
                "start": "zeros",
            },
            "position_input": "index",
            # Greedy decoding never picks these (padding and BOS).
            "suppressed_ids": list(range(arch.eos_id)),
            "signatures": list(SIGNATURES),
        }

    # === Weights ===

    def _build_weights(self, tf):
        arch = self.arch
        keep = self._constants

        def const(value, name):
            variable = tf.Variable(
                np.asarray(value, np.float32), trainable=False, name=name
            )
            keep.append(variable)
            return variable

        def linear(spec, name, scale=None):
            # (kernel or factors, bias) with `scale` folded into the output.
            if spec.factors is not None:
                a, b = spec.factors
                b = b * scale if scale is not None else b
                weights = (const(a, f"{name}_a"), const(b, f"{name}_b"))
            else:
                kernel = spec.kernel * scale if scale is not None else spec.kernel
                weights = (const(kernel, name),)
            bias = spec.bias
            if bias is not None and scale is not None:
                bias = bias * scale
            return weights, (const(bias, f"{name}_bias") if bias is not None else None)

        def fused(specs, name, scales):
            # One projection for several that read the same input, when none
            # is factored; otherwise each keeps its own.
            if any(s.factors is not None for s in specs):
                return [
                    linear(s, f"{name}{i}", c)
                    for i, (s, c) in enumerate(zip(specs, scales, strict=True))
                ]
            kernels, biases = [], []
            for spec, scale in zip(specs, scales, strict=True):
                c = 1.0 if scale is None else scale
                kernels.append(spec.kernel * c)
                bias = spec.bias if spec.bias is not None else np.zeros(spec.shape[1])
                biases.append(bias * c)
            joined = np.concatenate(kernels, axis=1)
            return [
                ((const(joined, name),), const(np.concatenate(biases), f"{name}_bias"))
            ]

        def norm(spec, name):
            return (
                const(spec.gamma, f"{name}_g"),
                const(spec.beta, f"{name}_b"),
                spec.epsilon,
            )

        def block(spec, name):
            sa = spec.self_attention
            scale = 1.0 / np.sqrt(sa.head_dim)
            out = {
                "qkv": fused(
                    [sa.query, sa.key, sa.value], f"{name}_qkv", [scale, None, None]
                ),
                "sizes": [sa.query.shape[1], sa.key.shape[1], sa.value.shape[1]],
                "self_out": linear(sa.output, f"{name}_self_out"),
                "self_norm": norm(spec.self_norm, f"{name}_self_norm"),
                "heads": sa.num_heads,
                "dim": sa.head_dim,
                "ffn_in": linear(spec.ffn_in, f"{name}_ffn_in"),
                "ffn_out": linear(spec.ffn_out, f"{name}_ffn_out"),
                "ffn_norm": norm(spec.ffn_norm, f"{name}_ffn_norm"),
            }
            ca = spec.cross_attention
            if ca is not None:
                cscale = 1.0 / np.sqrt(ca.head_dim)
                out.update(
                    cross_q=linear(ca.query, f"{name}_cross_q", cscale),
                    cross_kv=fused(
                        [ca.key, ca.value], f"{name}_cross_kv", [None, None]
                    ),
                    cross_sizes=[ca.key.shape[1], ca.value.shape[1]],
                    cross_out=linear(ca.output, f"{name}_cross_out"),
                    cross_norm=norm(spec.cross_norm, f"{name}_cross_norm"),
                    cross_heads=ca.num_heads,
                    cross_dim=ca.head_dim,
                )
            return out

        self.source_embedding = const(arch.source_embedding, "source_embedding")
        self.source_positions = const(arch.source_positions, "source_positions")
        self.target_embedding = const(arch.target_embedding, "target_embedding")
        t = self.target_length
        self.target_positions = const(arch.target_positions[:t], "target_positions")
        # Row i: 0 where a key position j <= i may be attended, -1e9 after.
        causal = np.where(np.tril(np.ones((t, t), bool)), 0.0, _NEG)
        self.causal = const(causal, "causal_bias")
        self.one_hot = const(np.eye(t), "one_hot")
        self.encoder = [block(b, f"enc{i}") for i, b in enumerate(arch.encoder)]
        self.decoder = [block(b, f"dec{i}") for i, b in enumerate(arch.decoder)]
        self.lm_head = linear(arch.lm_head, "lm_head")
        self.module.weights = keep

    # === Building blocks ===

    def _apply(self, tf, x, weights, activation=None):
        kernels, bias = weights
        for kernel in kernels:
            x = tf.matmul(x, kernel)
        if bias is not None:
            x = x + bias
        if activation == "relu":
            x = tf.nn.relu(x)
        elif activation == "gelu":
            x = tf.nn.gelu(x, approximate=False)
        return x

    def _project(self, tf, x, parts, sizes):
        # The fused projection, split back into its parts.
        if len(parts) == 1:
            return tf.split(self._apply(tf, x, parts[0]), sizes, axis=-1)
        return [self._apply(tf, x, p) for p in parts]

    def _norm(self, tf, x, weights):
        gamma, beta, epsilon = weights
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        centered = x - mean
        variance = tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True)
        return centered * tf.math.rsqrt(variance + epsilon) * gamma + beta

    def _heads(self, tf, x, heads, dim):
        # (batch, length, heads * dim) -> (batch, heads, length, dim)
        shape = tf.shape(x)
        x = tf.reshape(x, [shape[0], shape[1], heads, dim])
        return tf.transpose(x, [0, 2, 1, 3])

    def _attend(self, tf, q, k, v, bias):
        scores = tf.matmul(q, k, transpose_b=True) + bias
        return tf.matmul(tf.nn.softmax(scores, axis=-1), v)

    def _residual(self, tf, x, sublayer, norm):
        # Pre-norm: x + f(norm(x)); post-norm: norm(x + f(x)).
        if self.arch.normalize_first:
            return x + sublayer(self._norm(tf, x, norm))
        return self._norm(tf, x + sublayer(x), norm)

    # === Signatures ===

    def _encode(self, encoder_token_ids):
        import tensorflow as tf

        ids = encoder_token_ids
        width = tf.shape(ids)[1]
        x = tf.gather(self.source_embedding, ids)
        x = x + tf.slice(self.source_positions, [0, 0], [width, -1])
        bias = tf.where(tf.equal(ids, self.arch.pad_id), _NEG, 0.0)
        bias = tf.expand_dims(tf.expand_dims(bias, 1), 1)  # (batch, 1, 1, source)
        for layer in self.encoder:

            def attention(h, layer=layer):
                q, k, v = self._project(tf, h, layer["qkv"], layer["sizes"])
                q, k, v = (
                    self._heads(tf, t, layer["heads"], layer["dim"]) for t in (q, k, v)
                )
                out = self._attend(tf, q, k, v, bias)
                out = tf.transpose(out, [0, 2, 1, 3])
                out = tf.reshape(out, [tf.shape(h)[0], width, -1])
                return self._apply(tf, out, layer["self_out"])

            def ffn(h, layer=layer):
                h = self._apply(tf, h, layer["ffn_in"], self.arch.activation)
                return self._apply(tf, h, layer["ffn_out"])

            x = self._residual(tf, x, attention, layer["self_norm"])
            x = self._residual(tf, x, ffn, layer["ffn_norm"])
        outputs = {"encoder_bias": bias}
        for i, layer in enumerate(self.decoder):
            k, v = self._project(tf, x, layer["cross_kv"], layer["cross_sizes"])
            outputs[f"cross_k_{i}"] = self._heads(
                tf, k, layer["cross_heads"], layer["cross_dim"]
            )
            outputs[f"cross_v_{i}"] = self._heads(
                tf, v, layer["cross_heads"], layer["cross_dim"]
            )
        return outputs

    def _decode_step_flat(self, token_ids, index, *tensors):
        n = len(self.decoder)
        self_cache = [(tensors[2 * i], tensors[2 * i + 1]) for i in range(n)]
        cross = [(tensors[2 * n + 2 * i], tensors[2 * n + 2 * i + 1]) for i in range(n)]
        logits, cache = self._step(
            token_ids[:, 0], index, self_cache, cross, tensors[-1]
        )
        outputs = {"logits": logits}
        for i, (k, v) in enumerate(cache):
            outputs[f"self_k_{i}"] = k
            outputs[f"self_v_{i}"] = v
        return outputs

    def _step(self, token, index, self_cache, cross, encoder_bias):
        """One decode position: `(logits (batch, vocab), new self caches)`."""
        import tensorflow as tf

        x = tf.gather(self.target_embedding, token)  # (batch, hidden)
        x = x + tf.slice(self.target_positions, [index, 0], [1, -1])
        causal = tf.slice(self.causal, [index, 0], [1, -1])  # (1, T)
        one_hot = tf.reshape(tf.slice(self.one_hot, [index, 0], [1, -1]), [1, 1, -1, 1])
        new_cache = []
        for layer, (k_cache, v_cache), (cross_k, cross_v) in zip(
            self.decoder, self_cache, cross, strict=True
        ):

            def attention(h, layer=layer, k_cache=k_cache, v_cache=v_cache):
                heads, dim = layer["heads"], layer["dim"]
                q, k, v = self._project(tf, h, layer["qkv"], layer["sizes"])
                # (batch, heads * dim) -> (batch, heads, 1, dim): no transpose.
                q, k, v = (tf.reshape(t, [-1, heads, 1, dim]) for t in (q, k, v))
                k_all = k_cache + one_hot * k
                v_all = v_cache + one_hot * v
                new_cache.append((k_all, v_all))
                out = self._attend(tf, q, k_all, v_all, causal)
                return self._apply(
                    tf, tf.reshape(out, [-1, heads * dim]), layer["self_out"]
                )

            def cross_attention(h, layer=layer, cross_k=cross_k, cross_v=cross_v):
                ch, cd = layer["cross_heads"], layer["cross_dim"]
                q = tf.reshape(self._apply(tf, h, layer["cross_q"]), [-1, ch, 1, cd])
                out = self._attend(tf, q, cross_k, cross_v, encoder_bias)
                return self._apply(
                    tf, tf.reshape(out, [-1, ch * cd]), layer["cross_out"]
                )

            def ffn(h, layer=layer):
                h = self._apply(tf, h, layer["ffn_in"], self.arch.activation)
                return self._apply(tf, h, layer["ffn_out"])

            x = self._residual(tf, x, attention, layer["self_norm"])
            x = self._residual(tf, x, cross_attention, layer["cross_norm"])
            x = self._residual(tf, x, ffn, layer["ffn_norm"])
        return self._apply(tf, x, self.lm_head), new_cache

    def _zero_cache(self, batch):
        import tensorflow as tf

        cache = []
        for layer in self.decoder:
            shape = [batch, layer["heads"], self.target_length, layer["dim"]]
            cache += [tf.zeros(shape), tf.zeros(shape)]
        return cache

    def _init_cache(self, batch_size):
        cache = self._zero_cache(batch_size)
        names = [f"self_{kind}_{i}" for i in range(len(self.decoder)) for kind in "kv"]
        return dict(zip(names, cache, strict=True))

    def _generate(self, encoder_token_ids, max_length, stop_at_eos):
        import tensorflow as tf

        arch = self.arch
        encoded = self._encode(encoder_token_ids)
        n = len(self.decoder)
        cross = [(encoded[f"cross_k_{i}"], encoded[f"cross_v_{i}"]) for i in range(n)]
        batch = tf.shape(encoder_token_ids)[0]
        steps = self.target_length - 1
        max_length = tf.minimum(max_length, steps)
        cache = self._zero_cache(batch)
        vocab = arch.vocabulary_size
        # Padding and BOS are never outputs (`generation.greedy`).
        banned = tf.constant(
            np.where(np.arange(vocab) < arch.eos_id, _NEG, 0.0), tf.float32
        )
        tokens = tf.zeros([batch, steps], tf.int32)
        token = tf.fill([batch], arch.bos_id)
        done = tf.zeros([batch], tf.bool)
        positions = tf.range(steps)

        def cond(index, token, done, tokens, *cache):
            running = tf.logical_not(tf.logical_and(stop_at_eos, tf.reduce_all(done)))
            return tf.logical_and(index < max_length, running)

        def body(index, token, done, tokens, *cache):
            pairs = [(cache[2 * i], cache[2 * i + 1]) for i in range(n)]
            logits, new = self._step(
                token, index, pairs, cross, encoded["encoder_bias"]
            )
            next_token = tf.cast(tf.argmax(logits + banned, axis=-1), tf.int32)
            next_token = tf.where(done, arch.pad_id, next_token)
            written = tf.cast(tf.equal(positions, index), tf.int32)[None, :]
            tokens = tokens + written * next_token[:, None]
            ended = tf.logical_and(stop_at_eos, tf.equal(next_token, arch.eos_id))
            done = tf.logical_or(done, ended)
            flat = [t for pair in new for t in pair]
            return (index + 1, next_token, done, tokens, *flat)

        loop = tf.while_loop(cond, body, (tf.constant(0), token, done, tokens, *cache))
        return {"tokens": loop[3]}


def build(model, target_length=None):
    """Returns the `LeanModule` of a model (`architecture.describe`)."""
    return LeanModule(describe(model), target_length)


def convert_tflite(lean, weights="int8", per_channel=True):
    """Converts a `LeanModule` to `.tflite` bytes with its four signatures.

    Args:
        lean: a `LeanModule`.
        weights: `"fp32"`, or `"int8"`: weights stored as int8, activations
            float (LiteRT's dynamic-range kernels). A QAT model's weights
            sit on the int8 grid with the same max-|w| scales, so they are
            stored exactly when `per_channel` matches its QAT config; its
            activation ranges are not used.
        per_channel: one int8 scale per output channel (True) or per
            kernel.
    """
    import tensorflow as tf

    from tfaccel._io import scratch_dir

    signatures = {
        name: getattr(lean.module, name).get_concrete_function() for name in SIGNATURES
    }
    with scratch_dir("lean") as folder:
        tf.saved_model.save(lean.module, str(folder), signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            str(folder), signature_keys=list(signatures)
        )
        if weights == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter._experimental_disable_per_channel = not per_channel
        elif weights != "fp32":
            raise ValueError(f"weights must be 'fp32' or 'int8'. Received: {weights!r}")
        data = converter.convert()
    contract = json.dumps(lean.contract(), sort_keys=True).encode()
    return tflite_metadata.add(data, CONTRACT, contract)
