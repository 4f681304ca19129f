"""tfaccel: make Keras 3 encoder-decoder transformers small and fast.

The public API is re-exported here lazily, so that `import tfaccel.recipe`
and the CLI's `validate` stay free of TensorFlow.
"""

import importlib

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS = {
    # === Pruning ===
    "ConstantSparsity": "tfaccel.pruning",
    "PolynomialDecay": "tfaccel.pruning",
    "prune": "tfaccel.pruning",
    # === Clustering ===
    "cluster": "tfaccel.clustering",
    "clustering_summary": "tfaccel.clustering",
    # === Quantization ===
    "QATConfig": "tfaccel.quantization",
    "quantize_aware": "tfaccel.quantization",
    "quantization_summary": "tfaccel.quantization",
    # === Structured compression ===
    "factorize": "tfaccel.compression",
    "shrink": "tfaccel.compression",
    # === Distillation ===
    "Seq2SeqDistiller": "tfaccel.distillation",
    # === Every technique ===
    "callbacks": "tfaccel.techniques",
    "strip": "tfaccel.techniques",
    "summary": "tfaccel.techniques",
}
# Subpackages that are also callables: `tfaccel.export(model, path, formats)`.
_CALLABLE_PACKAGES = ("export",)
# Modules reachable as attributes after a bare `import tfaccel`, as README
# writes them (`tfaccel.distribute.get_strategy(...)`).
_SUBMODULES = (
    "bench",
    "clustering",
    "compression",
    "data",
    "distillation",
    "distribute",
    "models",
    "pruning",
    "quantization",
    "recipe",
    "tasks",
)

__all__ = sorted([*_EXPORTS, *_CALLABLE_PACKAGES, *_SUBMODULES])


def __getattr__(name):
    if name in _CALLABLE_PACKAGES or name in _SUBMODULES:
        return importlib.import_module(f"tfaccel.{name}")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tfaccel' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *__all__])
