"""The tf_keras / tfmot bridge: the peer that benchmarks compare tfaccel with.

A tf_keras (Keras 2) twin of `Seq2SeqTransformer` is pruned and trained
quantization-aware with tensorflow-model-optimization, the way tf_keras
users do it today, converted to TFLite and decoded greedily in LiteRT.
What tfmot cannot do to the model is recorded, not worked around.

tf_keras and tfmot are imported only when a function here runs; they come
with `pip install 'tfaccel[tfmot]'`.

Example:

```python
from tfaccel import compat

twin = compat.twin_from_model(model)
result = compat.tfmot_prune_qat(twin, train_dataset)
print(result.record.unsupported)  # MultiHeadAttention, LayerNormalization, ...
lite = compat.LiteRTTwin(compat.to_tflite_int8(result.model, target_length=32))
tokens = lite.generate(source_ids)
```
"""

from tfaccel.compat.tf_keras_twin import build_twin, copy_weights, twin_from_model
from tfaccel.compat.tfmot_prune_qat import (
    Refusal,
    TfmotRecord,
    TfmotResult,
    tfmot_prune_qat,
)
from tfaccel.compat.twin_tflite import LiteRTTwin, op_summary, to_tflite_int8

__all__ = [
    "LiteRTTwin",
    "Refusal",
    "TfmotRecord",
    "TfmotResult",
    "build_twin",
    "copy_weights",
    "op_summary",
    "tfmot_prune_qat",
    "to_tflite_int8",
    "twin_from_model",
]
