"""Exports: generation signatures and TFLite (more formats to come)."""
