"""Export and serving: verified SavedModel, TFLite, ONNX and TensorRT exports.

`tfaccel.export` is both this package and its main function:

```python
result = tfaccel.export(model, "savedmodels/g2p", formats=["saved_model", "onnx"])
```

Calling the package calls `tfaccel.export.api.export` (see there). The
submodules hold one runtime each: `saved_model`, `tflite`, `onnx`,
`tensorrt`, plus the shared `signatures`, `generation` and `verify`.
TensorFlow is imported only when an export runs.
"""

import sys
import types

FORMATS = (
    "saved_model",
    "tflite_fp32",
    "tflite_fp16",
    "tflite_dynamic",
    "tflite_int8",
    "onnx",
    "onnx_int8",
    "tensorrt",
)


def export(model, path, formats, **kwargs):
    """Exports `model` to each of `formats` under `path`, each verified.

    See `tfaccel.export.api.export` for the arguments; returns an
    `ExportResult`.
    """
    from tfaccel.export import api

    return api.export(model, path, formats, **kwargs)


class _CallableModule(types.ModuleType):
    # `tfaccel.export` is the package (for `tfaccel.export.tflite`) and,
    # called, the function: DESIGN.md's `tfaccel.export(model, ...)`.
    def __call__(self, model, path, formats, **kwargs):
        return export(model, path, formats, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
