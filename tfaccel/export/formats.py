"""The export formats, described in one place, without TensorFlow.

Each `Format` says what its artifact is, which runtime runs it, which
function exports it and which class runs it (as dotted names, imported only
when used), how its export is verified, and what a model trained with QAT
allows. The CLI, the recipe schema, `tfaccel.export`, the bench harness and
the tools read this registry instead of keeping their own lists:

```python
from tfaccel.export import formats

formats.names()                      # every format, recipe-only ones too
formats.names(made_by="export")      # what tfaccel.export makes
formats.get("tflite_int8").verified_by  # "tokens"
```

Importing this module imports no TensorFlow (the recipe schema reads it).
"""

import dataclasses
import importlib

from tfaccel.errors import UserError, error_line

# How an export is checked against the Keras model: its first decode steps'
# logits within `atol` (float arithmetic), or its greedy tokens (formats
# that round weights or activations on purpose). Both are always measured.
VERIFIED_BY = ("logits", "tokens")
# What a model trained with `tfaccel.quantize_aware` allows: the format is
# exported as for a float model, exported as the full-int8 graph its
# FakeQuant ranges describe, or refused (with `qat_reason`).
QAT_RULES = ("export", "int8", "refuse")
# Who writes the artifact: `tfaccel.export`, or only the recipe runner
# (`tfaccel.recipe.publish`), as with the Keras files.
MADE_BY = ("export", "recipe")
DEVICES = ("cpu", "gpu")
# Bytes each kernel weight takes in a decode step (`tfaccel.bench.roofline`).
WEIGHTS = ("fp32", "fp16", "int8")


@dataclasses.dataclass(frozen=True)
class Format:
    """One export format.

    Attributes:
        name: the format's name, e.g. `"tflite_int8"`.
        runtime: the runtime that runs it: `"tensorflow"`, `"litert"`,
            `"onnxruntime"`, `"tensorrt"` or `"keras"`.
        artifact: where it goes under the output folder: a file or folder
            name, or `"<version>"` (`"<folder>/<version>"`) for a numbered
            SavedModel folder: `tfaccel.export` writes the next version and
            a rerun carries the earlier ones over (`api.copy_versions`).
        verified_by: `"logits"` or `"tokens"` (see `VERIFIED_BY`).
        exporter: `"module:function"` building, verifying and publishing it
            (`tfaccel.export.exporters`), or None for recipe-only formats.
        runner: `"module:callable"` taking the artifact's path (and
            `num_threads=` when `threads` is true) and returning an object
            with `generate`.
        threads: whether `runner` takes `num_threads`.
        qat: what a QAT model allows (see `QAT_RULES`).
        qat_reason: why a QAT model is refused, for the error message.
        made_by: `"export"` or `"recipe"` (see `MADE_BY`).
        device: `"cpu"`, or `"gpu"` when it needs an NVIDIA GPU.
        weights: the kernels' storage type in a decode step (see `WEIGHTS`).
        modules: what a process imports before it loads the artifact (the
            bench harness measures memory from there).
    """

    name: str
    runtime: str
    artifact: str
    verified_by: str
    exporter: str | None = None
    runner: str | None = None
    threads: bool = False
    qat: str = "export"
    qat_reason: str = ""
    made_by: str = "export"
    device: str = "cpu"
    weights: str = "fp32"
    modules: tuple = ()

    def __post_init__(self):
        for field, allowed in (
            ("verified_by", VERIFIED_BY),
            ("qat", QAT_RULES),
            ("made_by", MADE_BY),
            ("device", DEVICES),
            ("weights", WEIGHTS),
        ):
            value = getattr(self, field)
            if value not in allowed:
                raise ValueError(
                    f"Format `{field}` must be one of {', '.join(allowed)}. "
                    f"Received: {field}={value!r}"
                )
        if self.qat == "refuse" and not self.qat_reason:
            raise ValueError(
                f"Format {self.name!r} refuses QAT models; give `qat_reason`. "
                f"Received: qat_reason={self.qat_reason!r}"
            )
        if self.made_by == "export" and not (self.exporter and self.runner):
            raise ValueError(
                f"Format {self.name!r} is made by tfaccel.export: give `exporter` "
                f"and `runner`. Received: exporter={self.exporter!r}, "
                f"runner={self.runner!r}"
            )

    def export_function(self):
        """Imports and returns the exporter (see `tfaccel.export.exporters`)."""
        return _resolve(self.exporter)

    def load(self, path, threads=None):
        """Returns the runner of an artifact of this format.

        Args:
            path: the artifact's file or folder.
            threads: the runner's `num_threads` where it takes one; None
                keeps its default.

        Raises:
            UserError: the runtime cannot read the artifact (a corrupt or
                truncated file): one line, whatever the runtime raised.
        """
        options = (
            {} if threads is None or not self.threads else {"num_threads": threads}
        )
        runner = _resolve(self.runner)
        try:
            return runner(path, **options)
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001  a corrupt artifact is a bad file
            raise UserError(
                f"Cannot load the {self.name} artifact at '{path}': "
                f"{error_line(error, 200)}. Export it again. "
                f"Received: path={str(path)!r}"
            ) from None


_REGISTRY = {}


def register(fmt, replace=False):
    """Adds a `Format`; names stay in registration order.

    Raises:
        ValueError: the name is taken and `replace` is false.
    """
    if not isinstance(fmt, Format):
        raise TypeError(f"register takes a Format. Received: {type(fmt).__name__}")
    if fmt.name in _REGISTRY and not replace:
        raise ValueError(
            f"Export format {fmt.name!r} is already registered; pass replace=True "
            f"to redefine it. Received: name={fmt.name!r}"
        )
    _REGISTRY[fmt.name] = fmt
    return fmt


def unregister(name):
    """Removes a format (e.g. one a test registered); returns it."""
    return _REGISTRY.pop(name)


def get(name):
    """Returns the `Format` called `name`.

    Raises:
        UserError: no format has that name.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UserError(
            f"Unknown export format {name!r}. Use any of: {', '.join(names())}. "
            f"Received: format={name!r}"
        ) from None


def names(**where):
    """Names of the registered formats whose attributes equal `where`'s.

    ```python
    names(made_by="export", device="cpu")  # what runs without a GPU
    names(runtime="litert")                # the TFLite variants
    ```
    """
    unknown = [key for key in where if key not in Format.__dataclass_fields__]
    if unknown:
        raise TypeError(
            f"names() filters on Format fields. Received: {', '.join(unknown)}"
        )
    return tuple(
        fmt.name
        for fmt in _REGISTRY.values()
        if all(getattr(fmt, key) == value for key, value in where.items())
    )


def qat_refused(formats):
    """The names in `formats` that a QAT model refuses, in their order."""
    return [name for name in formats if name in _REGISTRY and get(name).qat == "refuse"]


def check_qat(formats, qat):
    """Raises a one-line `UserError` for formats a QAT model refuses.

    Args:
        formats: format names.
        qat: whether the model was trained with `tfaccel.quantize_aware`.
    """
    refused = qat_refused(formats)
    if qat and refused:
        reason = get(refused[0]).qat_reason
        raise UserError(
            f"{', '.join(refused)} of a QAT model {reason}. Received: formats={refused}"
        )


def _resolve(dotted):
    module, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module), attribute)


# === The formats ===

_EXPORTERS = "tfaccel.export.exporters"
_TFLITE_MODULES = ("ai_edge_litert.interpreter", "tfaccel.export.tflite")
_ONNX_MODULES = ("onnxruntime", "tfaccel.export.onnx")
# A QAT graph carries FakeQuant ranges: with any optimization the TFLite
# converter writes the full-int8 model, whatever the variant's name says.
_FULL_INT8_AGAIN = (
    "would be the full-int8 model again: its FakeQuant ranges make the TFLite "
    "converter quantize everything. Export tflite_int8 (and tflite_fp32 for float)"
)

register(
    Format(
        "saved_model",
        runtime="tensorflow",
        artifact="<version>",
        verified_by="logits",
        exporter=f"{_EXPORTERS}:export_saved_model",
        runner="tfaccel.export.saved_model:SavedModelRunner",
        modules=("tfaccel.export.saved_model",),
    )
)
for _mode, _verified, _qat, _weights in (
    ("fp32", "logits", "export", "fp32"),
    ("fp16", "tokens", "refuse", "fp16"),
    ("dynamic", "tokens", "refuse", "int8"),
    ("int8", "tokens", "int8", "int8"),
):
    register(
        Format(
            f"tflite_{_mode}",
            runtime="litert",
            artifact=f"model_{_mode}.tflite",
            verified_by=_verified,
            exporter=f"{_EXPORTERS}:export_tflite",
            runner="tfaccel.export.tflite:LiteRTModel",
            threads=True,
            qat=_qat,
            qat_reason=_FULL_INT8_AGAIN if _qat == "refuse" else "",
            weights=_weights,
            modules=_TFLITE_MODULES,
        )
    )
for _name, _verified, _weights in (
    ("onnx", "logits", "fp32"),
    ("onnx_int8", "tokens", "int8"),
):
    register(
        Format(
            _name,
            runtime="onnxruntime",
            artifact=_name,
            verified_by=_verified,
            exporter=f"{_EXPORTERS}:export_onnx",
            runner="tfaccel.export.onnx:ORTModel",
            threads=True,
            weights=_weights,
            modules=_ONNX_MODULES,
        )
    )
register(
    Format(
        "tensorrt",
        runtime="tensorrt",
        artifact="tensorrt",
        verified_by="logits",
        exporter=f"{_EXPORTERS}:export_tensorrt",
        runner="tfaccel.export.tensorrt:TensorRTModel",
        device="gpu",
        modules=("tfaccel.export.tensorrt",),
    )
)
# Lean graphs (`tfaccel.export.lean`, `lean_onnx`): written from the
# architecture description rather than traced; their runners decode with
# the graph's own `generate` loop. CTranslate2 (the optional extra
# `tfaccel[ctranslate2]`) is written from the same description.
_LEAN_TFLITE = ("ai_edge_litert.interpreter", "tfaccel.export.tflite_metadata")
_LEAN_TFLITE += ("tfaccel.export.lean_runner",)
_LEAN_ONNX = ("onnxruntime", "tfaccel.export.lean_onnx")
_CT2 = ("ctranslate2", "tfaccel.export.ctranslate2")
for _name, _runtime, _artifact, _verified, _weights, _exporter, _runner, _modules in (
    ("tflite_lean", "litert", "model_lean.tflite", "tokens", "int8",
     "export_lean_tflite", "tfaccel.export.lean_runner:LeanLiteRT", _LEAN_TFLITE),
    ("tflite_lean_fp32", "litert", "model_lean_fp32.tflite", "logits", "fp32",
     "export_lean_tflite", "tfaccel.export.lean_runner:LeanLiteRT", _LEAN_TFLITE),
    ("saved_model_lean", "tensorflow", "saved_model_lean/<version>", "logits",
     "fp32", "export_lean_saved_model",
     "tfaccel.export.lean_saved_model:LeanSavedModel",
     ("tfaccel.export.lean_saved_model",)),
    ("onnx_lean", "onnxruntime", "onnx_lean", "logits", "fp32",
     "export_lean_onnx", "tfaccel.export.lean_onnx:LeanORT", _LEAN_ONNX),
    ("onnx_lean_int8", "onnxruntime", "onnx_lean_int8", "tokens", "int8",
     "export_lean_onnx", "tfaccel.export.lean_onnx:LeanORT", _LEAN_ONNX),
    ("ctranslate2", "ctranslate2", "ctranslate2", "logits", "fp32",
     "export_ctranslate2", "tfaccel.export.ctranslate2:CT2Model", _CT2),
    ("ctranslate2_int8", "ctranslate2", "ctranslate2_int8", "tokens", "int8",
     "export_ctranslate2", "tfaccel.export.ctranslate2:CT2Model", _CT2),
    ("ctranslate2_int8_float32", "ctranslate2", "ctranslate2_int8_float32", "tokens",
     "int8", "export_ctranslate2", "tfaccel.export.ctranslate2:CT2Model", _CT2),
):  # fmt: skip
    register(
        Format(
            _name,
            runtime=_runtime,
            artifact=_artifact,
            verified_by=_verified,
            exporter=f"{_EXPORTERS}:{_exporter}",
            runner=_runner,
            threads=_runtime != "tensorflow",  # TF's threads are the process's
            weights=_weights,
            modules=_modules,
        )
    )
# Written by the recipe runner (`tfaccel.recipe.publish`), run in Keras.
register(
    Format(
        "keras",
        runtime="keras",
        artifact="model.keras",
        verified_by="logits",
        runner="tfaccel.models:load_model",
        made_by="recipe",
    )
)
register(
    Format(
        "keras_int8",
        runtime="keras",
        artifact="model_keras_int8.keras",
        verified_by="tokens",
        runner="tfaccel.models:load_model",
        made_by="recipe",
        weights="int8",
    )
)
del _mode, _verified, _qat, _weights, _name, _runtime, _artifact, _exporter
del _runner, _modules
