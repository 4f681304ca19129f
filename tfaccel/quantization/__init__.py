"""Int8 quantization for Keras 3: QAT, its strip and summary, PTQ helpers.

`quantize_aware` adds fake quantization in place, `QuantizationRanges`
reports the tracked ranges during `model.fit`, `strip_quantization` bakes
the int8-grid weights and freezes the ranges for TFLite conversion, and
`quantization_summary` lists what is quantized.
"""

from tfaccel.quantization.callback import QuantizationRanges
from tfaccel.quantization.config import QATConfig
from tfaccel.quantization.quantize_aware import quantize_aware
from tfaccel.quantization.strip import export_spec, forget, restore, strip_quantization
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
