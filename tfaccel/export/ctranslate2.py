"""CTranslate2 export: an `Architecture` written into CTranslate2's spec.

CTranslate2 (`pip install "tfaccel[ctranslate2]"`) is the engine many
teams pick for encoder-decoders on CPU. `convert` maps the description of
`tfaccel.export.architecture` into `ctranslate2.specs.TransformerSpec` and
saves a model folder CTranslate2's `Translator` loads; `CT2Model` runs it
with the `generate` of every tfaccel runner, so a task scores it as it
scores Keras.

What does not carry over, stated rather than approximated:

- one head count for all layers (CTranslate2's spec has one `num_heads`);
  a model shrunk by `tfaccel.compression.shrink` has one, so it converts;
- low-rank factors are multiplied back into full kernels;
- a QAT model's activation ranges are dropped: its on-grid weights are
  stored, and CTranslate2 quantizes activations itself (`int8` modes).

On an AMD CPU without VNNI (Zen 2 and older) CTranslate2's default int8
backend saturates u8 x s8 products: on the G2P baseline 96.3% of its words
equal Keras's (99.3% with `CT2_USE_MKL=1`, which is 4.5x slower there).
Which one to run is the user's choice, made in the environment before
CTranslate2 is imported; tfaccel leaves it alone.

Vocabularies: CTranslate2 runs tokens (strings). The real vocabularies
(`tfaccel.data.Vocabulary.tokens`, reserved tokens first) are written
when given; otherwise each id `i` becomes the token `"i"`, and the runner
maps ids both ways.
"""

import json
import pathlib

import numpy as np

from tfaccel.errors import UserError

COMPUTE_TYPES = ("float32", "int8", "int8_float32")
# The export format of each compute type (`tfaccel.export.formats`).
COMPUTE_TYPE_OF = {
    "ctranslate2": "float32",
    "ctranslate2_int8": "int8",
    "ctranslate2_int8_float32": "int8_float32",
}
# Written beside CTranslate2's files: the compute type the folder was
# quantized for, which `CT2Model` loads it with.
_SETTINGS = "tfaccel.json"


def check_available():
    """Raises a one-line `UserError` when CTranslate2 is not installed."""
    _require()


def _require():
    try:
        import ctranslate2
    except ImportError:
        raise UserError(
            "The ctranslate2 format needs CTranslate2: pip install "
            "'tfaccel[ctranslate2]'. Received: ctranslate2 not installed"
        ) from None
    return ctranslate2


def _tokens(given, size, side):
    if given is None:
        return [str(i) for i in range(size)]
    tokens = [str(t) for t in given]
    if len(tokens) > size or len(set(tokens)) != len(tokens):
        raise UserError(
            f"The {side} vocabulary must be unique tokens, at most one per "
            f"embedding row ({size}). Received: {len(tokens)} tokens, "
            f"{len(set(tokens))} unique"
        )
    # Rows no token uses (an embedding sized up) get placeholder names.
    return tokens + [f"<unused{i}>" for i in range(len(tokens), size)]


def spec_of(arch):
    """Returns the `ctranslate2.specs.TransformerSpec` holding `arch`'s weights.

    Raises:
        UserError: the architecture has no CTranslate2 equivalent (per-layer
            head counts or head widths, or an activation it lacks).
    """
    ctranslate2 = _require()
    from ctranslate2.specs import common_spec, transformer_spec

    attentions = [b.self_attention for b in arch.encoder + arch.decoder]
    attentions += [b.cross_attention for b in arch.decoder]
    shapes = {(a.num_heads, a.head_dim) for a in attentions}
    if len(shapes) != 1:
        raise UserError(
            "CTranslate2's Transformer spec has one head count and width for "
            "every attention layer; this model has several. Export another "
            f"format. Received: (heads, head_dim) in {sorted(shapes)}"
        )
    activations = {
        "relu": common_spec.Activation.RELU,
        "gelu": common_spec.Activation.GELU,
    }
    if arch.activation not in activations:
        raise UserError(
            f"CTranslate2 has no {arch.activation!r} feedforward activation. "
            f"Received: activation={arch.activation!r}"
        )
    ((heads, head_dim),) = shapes
    options = dict(
        pre_norm=arch.normalize_first,
        activation=activations[arch.activation],
        head_dim=head_dim,
    )
    encoder = transformer_spec.TransformerEncoderSpec(
        len(arch.encoder), heads, **options
    )
    decoder = transformer_spec.TransformerDecoderSpec(
        len(arch.decoder), heads, **options
    )
    if arch.normalize_first:
        raise UserError(
            "CTranslate2 export of pre-norm models needs the final norms, which "
            "the description does not hold yet. Received: normalize_first=True"
        )
    spec = transformer_spec.TransformerSpec(encoder, decoder)
    epsilons = {b.self_norm.epsilon for b in arch.encoder + arch.decoder}
    spec.config.layer_norm_epsilon = float(max(epsilons))
    for side, embedding, positions in (
        (encoder, arch.source_embedding, arch.source_positions),
        (decoder, arch.target_embedding, arch.target_positions),
    ):
        # keras-hub adds learned positions to unscaled token embeddings.
        side.scale_embeddings = False
        embeddings = (
            side.embeddings[0] if isinstance(side.embeddings, list) else side.embeddings
        )
        embeddings.weight = embedding
        side.position_encodings.encodings = positions
    for layer, block in zip(encoder.layer, arch.encoder, strict=True):
        _self_attention(layer.self_attention, block.self_attention, block.self_norm)
        _ffn(layer.ffn, block)
    for layer, block in zip(decoder.layer, arch.decoder, strict=True):
        _self_attention(layer.self_attention, block.self_attention, block.self_norm)
        cross = block.cross_attention
        _linear(layer.attention.linear[0], cross.query)
        _fused(layer.attention.linear[1], [cross.key, cross.value])
        _linear(layer.attention.linear[2], cross.output)
        _norm(layer.attention.layer_norm, block.cross_norm)
        _ffn(layer.ffn, block)
    _linear(decoder.projection, arch.lm_head)
    del ctranslate2
    return spec


def _bias(linear):
    if linear.bias is not None:
        return linear.bias
    return np.zeros(linear.shape[1], np.float32)


def _linear(target, linear):
    # CTranslate2 stores (out, in), the transpose of Keras's kernels.
    target.weight = np.ascontiguousarray(linear.kernel.T)
    target.bias = _bias(linear)


def _fused(target, linears):
    # One projection for several reading the same input (QKV, or KV).
    kernels = [linear.kernel for linear in linears]
    target.weight = np.ascontiguousarray(np.concatenate(kernels, axis=1).T)
    target.bias = np.concatenate([_bias(linear) for linear in linears])


def _norm(target, norm):
    target.gamma = norm.gamma
    target.beta = norm.beta


def _self_attention(target, attention, norm):
    _fused(target.linear[0], [attention.query, attention.key, attention.value])
    _linear(target.linear[1], attention.output)
    _norm(target.layer_norm, norm)


def _ffn(target, block):
    _linear(target.linear_0, block.ffn_in)
    _linear(target.linear_1, block.ffn_out)
    _norm(target.layer_norm, block.ffn_norm)


def convert(
    arch, folder, source_tokens=None, target_tokens=None, compute_type="float32"
):
    """Writes `arch` as a CTranslate2 model folder.

    Args:
        arch: an `Architecture`.
        folder: an empty or missing folder.
        source_tokens, target_tokens: the full vocabularies by id (reserved
            tokens first), or None for the ids as tokens.
        compute_type: one of `COMPUTE_TYPES`; the weights are stored
            quantized for it, and `CT2Model` loads the folder with it.
    """
    _require()
    if compute_type not in COMPUTE_TYPES:
        raise UserError(
            f"compute_type must be one of {', '.join(COMPUTE_TYPES)}. "
            f"Received: compute_type={compute_type!r}"
        )
    spec = spec_of(arch)
    spec.register_source_vocabulary(
        _tokens(source_tokens, arch.source_embedding.shape[0], "source")
    )
    spec.register_target_vocabulary(
        _tokens(target_tokens, arch.target_embedding.shape[0], "target")
    )
    spec.config.unk_token = _special(target_tokens, 3, "<unk>")
    spec.config.bos_token = _special(target_tokens, arch.bos_id, "<s>")
    spec.config.eos_token = _special(target_tokens, arch.eos_id, "</s>")
    spec.config.decoder_start_token = spec.config.bos_token
    spec.validate()
    spec.optimize(quantization=None if compute_type == "float32" else compute_type)
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec.save(str(folder))
    (folder / _SETTINGS).write_text(json.dumps({"compute_type": compute_type}))


def _special(tokens, index, default):
    if tokens is None:
        return str(index)
    return list(tokens)[index] if index < len(tokens) else default


class CT2Model:
    """A CTranslate2 model folder, with tfaccel's `generate`.

    Args:
        folder: the model folder (`convert`).
        num_threads: intra-op threads.
        compute_type: one of `COMPUTE_TYPES`, or None for the one the
            folder was written for.

    Attributes:
        runtime: `"CTranslate2 <version>"`.
    """

    def __init__(self, folder, num_threads=1, compute_type=None):
        ctranslate2 = _require()
        folder = pathlib.Path(folder)
        if compute_type is None:
            settings = folder / _SETTINGS
            compute_type = (
                json.loads(settings.read_text())["compute_type"]
                if settings.is_file()
                else "float32"
            )
        if compute_type not in COMPUTE_TYPES:
            raise UserError(
                f"compute_type must be one of {', '.join(COMPUTE_TYPES)}. "
                f"Received: compute_type={compute_type!r}"
            )
        self.translator = ctranslate2.Translator(
            str(folder),
            device="cpu",
            compute_type=compute_type,
            intra_threads=num_threads,
            inter_threads=1,
        )
        self.runtime = f"CTranslate2 {ctranslate2.__version__}"
        self.compute_type = compute_type
        self._source_tokens = _read_vocabulary(folder, "source")
        self._target_tokens = _read_vocabulary(folder, "target")
        self._target_ids = {t: i for i, t in enumerate(self._target_tokens)}
        config = json.loads((folder / "config.json").read_text())
        self._eos = self._target_ids[config["eos_token"]]

    def _sources(self, ids):
        return [[self._source_tokens[i] for i in row if i != 0] for row in ids]

    def first_steps(self, padded_ids, tokens=(1, 5)):
        """Logits of the first two decode steps: BOS, then `tokens[1]`.

        CTranslate2 returns a step's logits with `return_logits_vocab`; the
        second step's input is forced with a one-token target prefix.
        """
        if len(tokens) != 2 or tokens[0] != 1:
            raise ValueError(
                f"first_steps feeds BOS then one token. Received: {tokens}"
            )
        sources = self._sources(np.asarray(padded_ids))
        # At its last allowed step CTranslate2 forces EOS, so each call
        # allows one step more than it reads.
        first = self.translator.translate_batch(
            sources, beam_size=1, max_decoding_length=2, return_logits_vocab=True
        )
        second = self.translator.translate_batch(
            sources,
            beam_size=1,
            max_decoding_length=3,
            target_prefix=[[self._target_tokens[tokens[1]]]] * len(sources),
            return_logits_vocab=True,
        )
        steps = [
            [np.asarray(r.logits[0][0], np.float32) for r in first],
            [np.asarray(r.logits[0][1], np.float32) for r in second],
        ]
        logits = np.concatenate([np.stack(step) for step in steps])
        # CTranslate2 never ends a sequence at its first step: it reports
        # EOS's logit there as the lowest float. That logit is unknown, not
        # different.
        logits[logits <= np.finfo(np.float32).min / 2] = np.nan
        return logits

    def generate(self, encoder_token_ids, max_length=32, stop_at_eos=True):
        """Greedy decoding: int32 `(batch, max_length)`, EOS included, 0 after."""
        ids = np.asarray(encoder_token_ids)
        sources = self._sources(ids)
        max_length = int(max_length or 32)
        results = self.translator.translate_batch(
            sources,
            beam_size=1,
            max_decoding_length=max_length,
            # Without an EOS stop every row decodes max_length tokens (timing).
            min_decoding_length=1 if stop_at_eos else max_length,
        )
        tokens = np.zeros((len(ids), max_length), np.int32)
        for row, result in enumerate(results):
            out = [self._target_ids[t] for t in result.hypotheses[0]]
            if stop_at_eos and len(out) < max_length:
                out.append(self._eos)
            out = out[:max_length]
            tokens[row, : len(out)] = out
        return tokens


def _read_vocabulary(folder, side):
    for name in (f"{side}_vocabulary.json", f"{side}_vocabulary.txt"):
        path = folder / name
        if path.is_file():
            if name.endswith(".json"):
                return json.loads(path.read_text())
            return path.read_text().split("\n")[:-1]
    raise UserError(
        f"No {side} vocabulary in the CTranslate2 folder '{folder}'. "
        f"Received: {sorted(p.name for p in folder.iterdir())}"
    )
