"""Benchmark helpers: timing harness and machine description."""
