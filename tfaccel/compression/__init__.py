"""Structured compression: models that are genuinely smaller, not sparse."""

from tfaccel.compression.factorization_summary import factorization_summary
from tfaccel.compression.factorize import factorize
from tfaccel.compression.factorized_model import FactorizedModel
from tfaccel.compression.flops import kernel_macs, parameter_count
from tfaccel.compression.low_rank_dense import LowRankDense
from tfaccel.compression.low_rank_einsum_dense import LowRankEinsumDense
from tfaccel.compression.shrink import shrink, shrink_report

__all__ = [
    "FactorizedModel",
    "LowRankDense",
    "LowRankEinsumDense",
    "factorization_summary",
    "factorize",
    "kernel_macs",
    "parameter_count",
    "shrink",
    "shrink_report",
]
