"""Export and serving: verified SavedModel, TFLite, ONNX and TensorRT exports.

`tfaccel.export` is both this package and its main function:

```python
result = tfaccel.export(model, "savedmodels/g2p", formats=["saved_model", "onnx"])
```

Calling the package calls `tfaccel.export.api.export` (see there). The
submodules hold one runtime each: `saved_model`, `tflite`, `onnx`,
`tensorrt`, plus the shared `formats` (the registry of export formats),
`exporters`, `runner`, `signatures`, `generation` and `verify`.
TensorFlow is imported only when an export runs.

`FORMATS` is the names of the registered formats that `tfaccel.export`
makes, read from `tfaccel.export.formats` each time it is asked for.
"""

import sys
import types


def __getattr__(name):
    if name == "FORMATS":
        from tfaccel.export import formats

        return formats.names(made_by="export")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
