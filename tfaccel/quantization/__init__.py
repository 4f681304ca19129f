"""Int8 quantization for Keras 3: QAT, its strip and summary, PTQ helpers.

`quantize_aware` adds fake quantization in place, `QuantizationRanges`
reports the tracked ranges during `model.fit`, `strip_quantization` bakes
the int8-grid weights and freezes the ranges for TFLite conversion, and
`quantization_summary` lists what is quantized.
"""

from tfaccel.core import registry
from tfaccel.quantization import _state
from tfaccel.quantization.callback import QuantizationRanges
from tfaccel.quantization.config import QATConfig
from tfaccel.quantization.quantize_aware import effective_weights as _effective_weights
from tfaccel.quantization.quantize_aware import quantize_aware
from tfaccel.quantization.strip import (
    export_spec,
    forget,
    restore,
    strip_quantization,
)
from tfaccel.quantization.strip import (
    save_spec as _save_spec,
)
from tfaccel.quantization.summary import quantization_summary

__all__ = [
    "QATConfig",
    "QuantizationRanges",
    "export_spec",
    "forget",
    "quantization_summary",
    "quantize_aware",
    "restore",
    "strip_quantization",
]

# === Registration ===

registry.register(
    registry.Technique(
        name="quantization",
        label="quantization-aware",
        order=30,  # applied last: it quantizes pruned and clustered kernels
        strip_order=20,  # after clustering's strip, before pruning's
        find_states=_state.find_states,
        strip=strip_quantization,
        callback=QuantizationRanges,
        training=_state.training,
        marks=_state.marks,
        untracked_variables=_state.untracked_variables,
        describe=_state.describe,
        effective_weights=_effective_weights,
        save_spec=_save_spec,
        load_spec=restore,
    )
)
