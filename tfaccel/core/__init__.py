"""What every technique shares: targets, kernel layouts, counts and a registry.

`counts` is where every figure about weights is counted (zeros, sparsity,
distinct values, parameters), for the summaries, callbacks, recipe runner,
bench and CLI alike.

Technique packages (`tfaccel.pruning`, `tfaccel.clustering`,
`tfaccel.quantization`, `tfaccel.compression`) import from here and never
from each other's private modules; `tfaccel.core` imports no technique. A
technique registers itself in its package's `__init__`
(`registry.register`), and composition goes through the registry.
"""
