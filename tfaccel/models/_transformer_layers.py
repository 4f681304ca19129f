"""keras-hub transformer layers whose attention heads have a set width.

keras-hub's `TransformerEncoder` and `TransformerDecoder` size each head as
`hidden_dim // num_heads`, so a model with fewer heads would also get wider
ones. These subclasses take a `head_dim`: after keras-hub's own `build`, an
attention sublayer whose heads are not `head_dim` wide is rebuilt from its
own config with `key_dim = value_dim = head_dim`, under the same name, so
variable paths stay as keras-hub makes them. With `head_dim=None` (or equal
to `hidden_dim // num_heads`) nothing is rebuilt: the layer is keras-hub's.
"""

import keras
import keras_hub

from tfaccel._tracking import unlocked


@keras.saving.register_keras_serializable(package="tfaccel")
class TransformerEncoder(keras_hub.layers.TransformerEncoder):
    """keras-hub's `TransformerEncoder` with a `head_dim` argument.

    Args:
        head_dim: int or None. Width of each attention head; `None` means
            `hidden_dim // num_heads`, as in keras-hub.
        **kwargs: the arguments of `keras_hub.layers.TransformerEncoder`.
    """

    def __init__(self, *args, head_dim=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_dim = head_dim

    def build(self, inputs_shape):
        super().build(inputs_shape)
        _set_head_dim(self, "_self_attention_layer", self.head_dim, inputs_shape)

    def get_config(self):
        return {**super().get_config(), "head_dim": self.head_dim}


@keras.saving.register_keras_serializable(package="tfaccel")
class TransformerDecoder(keras_hub.layers.TransformerDecoder):
    """keras-hub's `TransformerDecoder` with a `head_dim` argument.

    Args:
        head_dim: int or None. Width of each attention head, in self- and
            cross-attention; `None` means `hidden_dim // num_heads`.
        **kwargs: the arguments of `keras_hub.layers.TransformerDecoder`.
    """

    def __init__(self, *args, head_dim=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_dim = head_dim

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        super().build(decoder_sequence_shape, encoder_sequence_shape)
        _set_head_dim(
            self, "_self_attention_layer", self.head_dim, decoder_sequence_shape
        )
        if encoder_sequence_shape:
            _set_head_dim(
                self,
                "_cross_attention_layer",
                self.head_dim,
                decoder_sequence_shape,
                encoder_sequence_shape,
            )

    def get_config(self):
        return {**super().get_config(), "head_dim": self.head_dim}


def _set_head_dim(layer, attribute, head_dim, query_shape, value_shape=None):
    """Rebuilds `layer.<attribute>` (a MultiHeadAttention) with `head_dim` heads."""
    old = getattr(layer, attribute)
    if head_dim is None or head_dim == old.key_dim:
        return
    config = {**old.get_config(), "key_dim": head_dim, "value_dim": head_dim}
    new = type(old).from_config(config)
    new.build(query_shape=query_shape, value_shape=value_shape or query_shape)
    # Forget the replaced sublayer, so its weights leave `layer.weights`.
    with unlocked(layer):
        setattr(layer, attribute, new)
        layer._tracker.untrack(old)
