"""Reference models: the keras-hub encoder-decoder and its presets."""

from tfaccel.models.seq2seq_transformer import PRESETS, Seq2SeqTransformer

__all__ = ["PRESETS", "Seq2SeqTransformer"]
