"""tfaccel: make Keras 3 encoder-decoder transformers small and fast."""

__version__ = "0.1.0"
