"""Reference models: the keras-hub encoder-decoder and its presets."""

from tfaccel.models._loading import load_model, save_model
from tfaccel.models.seq2seq_transformer import PRESETS, Seq2SeqTransformer
from tfaccel.models.smoothed_sparse_crossentropy import SmoothedSparseCrossentropy

__all__ = [
    "PRESETS",
    "Seq2SeqTransformer",
    "SmoothedSparseCrossentropy",
    "load_model",
    "save_model",
]
