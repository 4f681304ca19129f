"""What `shrink` needs to know about each model it can shrink.

An architecture names a model's two stacks of keras-hub transformer layers
and rebuilds the model from its config with fewer heads, feedforward
neurons or layers. Every other layer with weights (embeddings, layer norms,
the vocabulary head) is copied whole, by name.
"""

import keras_hub

from tfaccel.errors import UserError
from tfaccel.models import Seq2SeqTransformer

STACKS = ("encoder", "decoder")
SUPPORTED = "tfaccel.models.Seq2SeqTransformer and keras_hub.models.BartBackbone"


class Seq2SeqArchitecture:
    """`tfaccel.models.Seq2SeqTransformer`: heads, feedforward and layers."""

    name = "Seq2SeqTransformer"

    def __init__(self, model):
        self.model = model
        self.stacks = {"encoder": model.encoder_layers, "decoder": model.decoder_layers}
        self.num_heads = model.num_heads
        self.intermediate_dim = model.intermediate_dim

    def check_counts(self, heads, num_heads, num_layers):
        pass  # every combination keeps the head width through `head_dim`

    def rebuild(self, num_heads, intermediate_dim, num_layers):
        config = {
            **self.model.get_config(),
            "intermediate_dim": intermediate_dim,
            "num_encoder_layers": num_layers["encoder"],
            "num_decoder_layers": num_layers["decoder"],
        }
        if num_heads != self.num_heads:
            # Fewer heads of the same width, not wider ones.
            config.update(num_heads=num_heads, head_dim=self.model.head_dim)
        return type(self.model).from_config(config)


class BartArchitecture:
    """`keras_hub.models.BartBackbone`: feedforward and layers, not heads."""

    name = "BartBackbone"

    def __init__(self, model):
        self.model = model
        self.stacks = {
            "encoder": model.encoder_transformer_layers,
            "decoder": model.decoder_transformer_layers,
        }
        self.num_heads = model.num_heads
        self.intermediate_dim = model.intermediate_dim

    def check_counts(self, heads, num_heads, num_layers):
        if heads is not None:
            raise UserError(
                "BartBackbone heads cannot be shrunk: BART sizes each head as "
                "hidden_dim // num_heads, so fewer heads would be wider ones and "
                "the kept weights would not fit. Shrink `ffn` or `layers` "
                "instead, or shrink heads on a tfaccel.models.Seq2SeqTransformer. "
                f"Received: heads={heads!r}"
            )
        if num_layers["encoder"] != num_layers["decoder"]:
            raise UserError(
                "BartBackbone has one `num_layers` for its encoder and decoder, so "
                "both must keep the same number of layers. Pass one count or "
                "ratio as `layers`. Received: layers="
                f"{{'encoder': {num_layers['encoder']}, "
                f"'decoder': {num_layers['decoder']}}}"
            )

    def rebuild(self, num_heads, intermediate_dim, num_layers):
        config = {
            **self.model.get_config(),
            "intermediate_dim": intermediate_dim,
            "num_layers": num_layers["encoder"],
        }
        return type(self.model).from_config(config)


def architecture(model):
    """Returns the architecture of `model`, or raises a `UserError`."""
    if isinstance(model, Seq2SeqTransformer):
        return Seq2SeqArchitecture(model)
    if isinstance(model, keras_hub.models.BartBackbone):
        return BartArchitecture(model)
    raise UserError(
        f"`shrink` supports {SUPPORTED}; it cannot shrink a "
        f"{type(model).__name__}. Received: model={type(model).__name__}"
    )


def attentions(layer):
    """Yields `(attribute, MultiHeadAttention)` for each attention of a layer."""
    for attribute in ("_self_attention_layer", "_cross_attention_layer"):
        attention = getattr(layer, attribute, None)
        if attention is not None:
            yield attribute, attention


def token_mask(batch, stack):
    """Non-padding tokens of a calibration batch: `(batch, seq)` bool array.

    The `{stack}_padding_mask` input when the model takes one (BART), else
    token ids other than 0.
    """
    mask = batch.get(f"{stack}_padding_mask")
    if mask is not None:
        return mask.astype(bool)
    return batch[f"{stack}_token_ids"] != 0
