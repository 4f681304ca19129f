"""What every technique shares: targets, kernel layouts and a registry.

Technique packages (`tfaccel.pruning`, `tfaccel.clustering`,
`tfaccel.quantization`, `tfaccel.compression`) import from here and never
from each other's private modules; `tfaccel.core` imports no technique. A
technique registers itself in its package's `__init__`
(`registry.register`), and composition goes through the registry.
"""
