"""The reference encoder-decoder transformer, built from keras-hub layers."""

import inspect

import keras
import keras_hub
from keras import ops

from tfaccel.errors import UserError
from tfaccel.models._generation import BOS_ID, EOS_ID, PAD_ID, CachedGeneration
from tfaccel.models._transformer_layers import TransformerDecoder, TransformerEncoder

__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "PRESETS", "Seq2SeqTransformer"]

# Architecture presets. Vocabulary sizes and lengths default to the G2P task;
# other tasks pass their own through `from_preset(name, **overrides)`.
PRESETS = {
    # For tests: tiny, so a whole train/export round trip takes seconds.
    "tiny": dict(
        hidden_dim=16,
        num_heads=2,
        intermediate_dim=32,
        num_encoder_layers=2,
        num_decoder_layers=2,
        dropout=0.0,
    ),
    # The G2P model: trains to WER < 40% on 2 CPU cores in under 30 minutes.
    "small": dict(
        hidden_dim=128,
        num_heads=8,
        intermediate_dim=512,
        num_encoder_layers=3,
        num_decoder_layers=3,
        dropout=0.1,
    ),
    # For timing: the size of a transformer-base (Vaswani et al., 2017).
    "base": dict(
        hidden_dim=512,
        num_heads=8,
        intermediate_dim=2048,
        num_encoder_layers=6,
        num_decoder_layers=6,
        dropout=0.1,
    ),
}


@keras.saving.register_keras_serializable(package="tfaccel")
class Seq2SeqTransformer(CachedGeneration, keras.Model):
    """A post-norm encoder-decoder transformer made of keras-hub layers.

    The model is called the keras-hub way, with a dict of token ids, and
    returns decoder logits. Id 0 is padding, 1 starts a target sequence and 2
    ends it. Greedy generation runs with a fixed-size key/value cache, so each
    new token costs one decoder position rather than the whole prefix
    (`encode`, `init_cache`, `decode_step` and `generate` come from
    `tfaccel.models._generation.CachedGeneration`).

    Args:
        encoder_vocabulary_size: int. Size of the source vocabulary.
        decoder_vocabulary_size: int. Size of the target vocabulary.
        hidden_dim: int. Width of every layer's input and output.
        num_heads: int. Attention heads per attention layer.
        intermediate_dim: int. Width of the feedforward layers.
        num_encoder_layers: int. Number of `TransformerEncoder` layers.
        num_decoder_layers: int. Number of `TransformerDecoder` layers.
        max_encoder_length: int. Longest source sequence (position table).
        max_decoder_length: int. Longest target sequence, BOS included.
        dropout: float. Dropout rate inside the transformer layers.
        activation: str. Feedforward activation, `"relu"` or `"gelu"`.
        head_dim: int or None. Width of each attention head. `None` means
            `hidden_dim // num_heads` (which must then divide evenly); a
            model with heads removed by `tfaccel.compression.shrink` keeps
            its original head width here.
        **kwargs: passed to `keras.Model`.

    Example:

    ```python
    model = Seq2SeqTransformer.from_preset("tiny")
    logits = model({
        "encoder_token_ids": np.array([[5, 6, 7, 0]]),
        "decoder_token_ids": np.array([[1, 9, 8]]),
    })  # (1, 3, decoder_vocabulary_size)
    tokens = model.generate(np.array([[5, 6, 7, 0]]), max_length=8)
    ```
    """

    def __init__(
        self,
        encoder_vocabulary_size=64,
        decoder_vocabulary_size=48,
        hidden_dim=128,
        num_heads=8,
        intermediate_dim=512,
        num_encoder_layers=3,
        num_decoder_layers=3,
        max_encoder_length=48,
        max_decoder_length=48,
        dropout=0.1,
        activation="relu",
        head_dim=None,
        **kwargs,
    ):
        _check_positive(
            encoder_vocabulary_size=encoder_vocabulary_size,
            decoder_vocabulary_size=decoder_vocabulary_size,
            hidden_dim=hidden_dim,
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            num_encoder_layers=num_encoder_layers,
            num_decoder_layers=num_decoder_layers,
            max_encoder_length=max_encoder_length,
            max_decoder_length=max_decoder_length,
        )
        if head_dim is not None:
            _check_positive(head_dim=head_dim)
        elif hidden_dim % num_heads:
            raise ValueError(
                "`hidden_dim` must be divisible by `num_heads`. "
                f"Received: hidden_dim={hidden_dim}, num_heads={num_heads}"
            )

        # === Layers ===
        self.encoder_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size=encoder_vocabulary_size,
            sequence_length=max_encoder_length,
            embedding_dim=hidden_dim,
            name="encoder_embedding",
        )
        self.decoder_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size=decoder_vocabulary_size,
            sequence_length=max_decoder_length,
            embedding_dim=hidden_dim,
            name="decoder_embedding",
        )
        self.encoder_layers = [
            TransformerEncoder(
                intermediate_dim=intermediate_dim,
                num_heads=num_heads,
                head_dim=head_dim,
                dropout=dropout,
                activation=activation,
                name=f"encoder_layer_{i}",
            )
            for i in range(num_encoder_layers)
        ]
        self.decoder_layers = [
            TransformerDecoder(
                intermediate_dim=intermediate_dim,
                num_heads=num_heads,
                head_dim=head_dim,
                dropout=dropout,
                activation=activation,
                name=f"decoder_layer_{i}",
            )
            for i in range(num_decoder_layers)
        ]
        self.lm_head = keras.layers.Dense(decoder_vocabulary_size, name="lm_head")

        # === Functional Model ===
        encoder_ids = keras.Input(
            shape=(None,), dtype="int32", name="encoder_token_ids"
        )
        decoder_ids = keras.Input(
            shape=(None,), dtype="int32", name="decoder_token_ids"
        )
        encoder_out, encoder_mask = self._encode(encoder_ids)
        logits = self._decode(decoder_ids, encoder_out, encoder_mask)
        super().__init__(
            inputs={"encoder_token_ids": encoder_ids, "decoder_token_ids": decoder_ids},
            outputs=logits,
            **kwargs,
        )

        # === Config ===
        self.encoder_vocabulary_size = encoder_vocabulary_size
        self.decoder_vocabulary_size = decoder_vocabulary_size
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.num_encoder_layers = num_encoder_layers
        self.num_decoder_layers = num_decoder_layers
        self.max_encoder_length = max_encoder_length
        self.max_decoder_length = max_decoder_length
        self.dropout = dropout
        self.activation = activation
        # The argument as given (None by default); `head_dim` is the resolved
        # width.
        self._head_dim = head_dim
        # Compiled generation loops, keyed by their settings. Set around
        # Keras and TensorFlow attribute tracking, so exports do not try to
        # save them.
        object.__setattr__(self, "_generate_functions", {})

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder_vocabulary_size": self.encoder_vocabulary_size,
            "decoder_vocabulary_size": self.decoder_vocabulary_size,
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "num_encoder_layers": self.num_encoder_layers,
            "num_decoder_layers": self.num_decoder_layers,
            "max_encoder_length": self.max_encoder_length,
            "max_decoder_length": self.max_decoder_length,
            "dropout": self.dropout,
            "activation": self.activation,
            "head_dim": self._head_dim,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_preset(cls, preset, **overrides):
        """Builds an untrained model from a named preset.

        Args:
            preset: str. One of `"tiny"`, `"small"` or `"base"`.
            **overrides: constructor arguments that replace the preset's,
                such as `encoder_vocabulary_size=8000`.

        Returns:
            A `Seq2SeqTransformer`.
        """
        if preset not in PRESETS:
            raise UserError(
                f"Unknown model preset '{preset}'. Use one of: "
                f"{', '.join(PRESETS)}. Received: preset={preset!r}"
            )
        allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
        unknown = sorted(set(overrides) - allowed)
        if unknown:
            raise UserError(
                f"Unknown model override(s) {unknown}. Allowed: "
                f"{', '.join(sorted(allowed))}. Received: overrides={overrides}"
            )
        return cls(**{**PRESETS[preset], **overrides})

    # === Forward passes ===

    def _encode(self, encoder_token_ids, training=None):
        padding_mask = ops.not_equal(encoder_token_ids, PAD_ID)
        x = self.encoder_embedding(encoder_token_ids)
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=padding_mask, training=training)
        return x, padding_mask  # (batch, src, hidden), (batch, src)

    def _decode(self, decoder_token_ids, encoder_out, encoder_mask, training=None):
        decoder_mask = ops.not_equal(decoder_token_ids, PAD_ID)
        x = self.decoder_embedding(decoder_token_ids)
        for layer in self.decoder_layers:
            x = layer(
                x,
                encoder_out,
                decoder_padding_mask=decoder_mask,
                encoder_padding_mask=encoder_mask,
                training=training,
            )
        return self.lm_head(x)  # (batch, tgt, vocab)

    @property
    def head_dim(self):
        """Width of each attention head: `head_dim`, or `hidden_dim // num_heads`."""
        if self._head_dim is not None:
            return self._head_dim
        return self.hidden_dim // self.num_heads


def _check_positive(**values):
    for name, value in values.items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(
                f"`{name}` must be a positive integer. Received: {name}={value!r}"
            )
