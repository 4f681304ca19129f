"""`tfaccel.export`: every format, each verified in its runtime, then published.

```python
result = tfaccel.export(
    model, "savedmodels/g2p", formats=["saved_model", "tflite_int8", "onnx"],
    sample_inputs=source_ids,
)
print(result)
```

Layout of the output folder (a TF Serving model base path):

- `saved_model`: `<path>/<version>/`, the next integer version; existing
  versions are never touched, and TF Serving ignores everything that is not
  a numbered folder;
- `tflite_<mode>`: `<path>/model_<mode>.tflite`;
- `onnx`, `onnx_int8`: `<path>/onnx/` and `<path>/onnx_int8/`, each with
  `encode.onnx` and `decode_step.onnx`;
- `tensorrt`: `<path>/tensorrt/`, with `encode.plan` and `decode_step.plan`;
- `saved_model_lean`: `<path>/saved_model_lean/<version>/`, versioned as
  `saved_model` is (its own TF Serving model base path);
- the other lean and CTranslate2 formats: a file or folder named as
  `tfaccel.export.formats` says.

Each artifact is built under a temporary name next to its target, run in
its own runtime on the sample inputs, compared with the Keras model, and
only then renamed into place. Every requested format is tried: one that
fails is reported (`tfaccel.errors.ExportFailedError`, one line per format)
after the others were published. A file or folder of the same name from an
earlier export is replaced in one rename; a SavedModel version never is.
"""

import contextlib
import dataclasses
import os
import pathlib
import shutil
import tempfile

import numpy as np

from tfaccel._io import exclusive
from tfaccel.errors import ExportFailedError, UserError, error_line
from tfaccel.export import formats as registry
from tfaccel.export.exporters import Artifact, ReferenceRun, is_qat

# Lists of `tfaccel.export.formats`, kept for their readers.
TFLITE_FORMATS = registry.names(runtime="litert")
# Formats that keep float32 arithmetic: checked by their logits. The others
# round weights or activations on purpose: checked by their greedy tokens.
FLOAT_FORMATS = registry.names(made_by="export", verified_by="logits")
# TFLite variants that quantize a float graph: a QAT model's graph carries
# FakeQuant ranges, and with any optimization the converter then writes the
# same full-int8 model as `tflite_int8`, whatever the variant's name says.
QAT_REDUNDANT = registry.names(qat="refuse")
REQUIRED = ("encode", "decode_step", "init_cache")
__all__ = [
    "FLOAT_FORMATS",
    "QAT_REDUNDANT",
    "REQUIRED",
    "TFLITE_FORMATS",
    "Artifact",
    "ExportResult",
    "ReferenceRun",
    "check_qat_formats",
    "copy_versions",
    "export",
    "load",
]


@dataclasses.dataclass
class ExportResult:
    """What `tfaccel.export` wrote. Prints as a table."""

    path: str
    artifacts: list

    def __getitem__(self, format):
        for artifact in self.artifacts:
            if artifact.format == format:
                return artifact
        raise KeyError(format)

    def as_dict(self):
        return {a.format: dataclasses.asdict(a) for a in self.artifacts}

    def __str__(self):
        rows = [("format", "MB", "gzip MB", "max |Δlogit|", "tokens", "runtime")]
        for a in self.artifacts:
            rows.append(
                (
                    a.format,
                    f"{a.bytes / 1e6:.2f}",
                    f"{a.gzip_bytes / 1e6:.2f}",
                    f"{a.max_difference:.2e}",
                    f"{a.agreement:.2%}",
                    a.runtime,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
            for row in rows
        ]
        return "\n".join([f"Exported to {self.path}:", *lines])


def export(
    model,
    path,
    formats,
    sample_inputs=None,
    representative=None,
    source_length=None,
    max_length=None,
    atol=1e-3,
    min_agreement=0.9,
    log=None,
    lock=True,
    vocabularies=None,
):
    """Exports a seq2seq model to each format, verifies it, and publishes it.

    Args:
        model: an encoder-decoder with `encode`, `decode_step` and
            `init_cache` (a `tfaccel.models.Seq2SeqTransformer`), stripped
            if it was compressed.
        path: the output folder, e.g. `"savedmodels/g2p"`.
        formats: list of names from `FORMATS`.
        sample_inputs: int array `(batch, <= source_length)` of real source
            ids, for verification (and the SavedModel warm-up request).
            Defaults to 16 seeded random sources.
        representative: source ids from the training split to calibrate
            `tflite_int8` on (an array or a list of arrays). Defaults to
            `sample_inputs`; needed for `tflite_int8` of a float model.
        source_length: the exported encoder width. Defaults to the model's
            `max_encoder_length`.
        max_length: the self-attention cache length: the most tokens
            generated. Defaults to the model's `max_decoder_length - 1`.
        atol: the largest logit difference allowed for the float formats
            (`FLOAT_FORMATS`).
        min_agreement: the smallest share of greedy tokens equal to Keras's
            allowed for the reduced-precision formats.
        log: callable for progress lines (e.g. `print`), or None.
        lock: True to hold an OS lock on `path` while exporting, so that a
            second process exporting there stops with an error that names
            this one (a recipe run, which locks its run folder, passes False).
        vocabularies: `(source tokens, target tokens)`, each the full list by
            id (`Vocabulary.all_tokens`), for formats that store strings
            (`ctranslate2*`); None writes each id as its token.

    Returns:
        An `ExportResult`, one `Artifact` per format.

    Raises:
        UserError: before anything is written: an unknown format, an
            unwritable path, a model without the generation methods, a
            missing extra or device.
        ExportFailedError: after every format was tried, when some failed
            (a converter error, or an artifact that differs from Keras
            beyond `atol` or `min_agreement`): those were not published, the
            others were; its `result` lists them.
    """
    log = log or (lambda line: None)
    # Every check runs before anything is written.
    formats = _check_formats(formats)
    _check_model(model)
    source_length, max_length = _check_lengths(model, source_length, max_length)
    samples = _samples(model, sample_inputs, source_length)
    if "tensorrt" in formats:
        from tfaccel.export import tensorrt

        tensorrt.check_available()
    if any(registry.get(f).runtime == "ctranslate2" for f in formats):
        from tfaccel.export import ctranslate2

        ctranslate2.check_available()
    if "tflite_int8" in formats and not is_qat(model):
        representative = _representative(representative, sample_inputs)
    check_qat_formats(formats, is_qat(model))
    path = _writable(path)
    with exclusive(path, "Export folder") if lock else contextlib.nullcontext():
        reference = ReferenceRun(
            model, samples, source_length, max_length, vocabularies
        )
        artifacts, failures = _export_each(
            model, path, formats, reference, representative, atol, min_agreement, log
        )
    result = ExportResult(str(path), artifacts)
    if failures:
        raise ExportFailedError(result, failures)
    return result


def _export_each(
    model, path, formats, reference, representative, atol, min_agreement, log
):
    artifacts, failures = [], {}
    for fmt in formats:
        log(f"Exporting {fmt} ...")
        exporter = registry.get(fmt).export_function()
        try:
            artifact = exporter(
                model, path, fmt, reference, representative, atol, min_agreement
            )
        except (KeyboardInterrupt, SystemExit):
            raise
        except UserError as error:
            failures[fmt] = " ".join(str(error).split())
            log(f"  {fmt} failed: {failures[fmt]}")
            continue
        except Exception as error:  # noqa: BLE001  a converter's dump, cut
            failures[fmt] = (
                f"{fmt} could not be converted: {error_line(error, 300)}. "
                "Export the other formats, or report this with the model's config."
            )
            log(f"  {fmt} failed: {failures[fmt]}")
            continue
        log(
            f"  {artifact.path}: {artifact.bytes / 1e6:.2f} MB, verified in "
            f"{artifact.runtime}: max |Δlogit| {artifact.max_difference:.2e}, "
            f"tokens equal to Keras {artifact.agreement:.2%}"
        )
        artifacts.append(artifact)
    return artifacts, failures


def _check_formats(formats):
    if isinstance(formats, str):
        formats = [formats]
    formats = list(dict.fromkeys(formats))
    allowed = registry.names(made_by="export")
    unknown = [f for f in formats if f not in allowed]
    if unknown or not formats:
        raise UserError(
            f"Unknown export format {', '.join(map(repr, unknown)) or '(none)'}. "
            f"Use any of: {', '.join(allowed)}."
        )
    return formats


def _check_model(model):
    missing = [name for name in REQUIRED if not callable(getattr(model, name, None))]
    if missing:
        raise UserError(
            f"tfaccel.export needs an encoder-decoder with cached generation, and "
            f"{type(model).__name__} has no {', '.join(missing)}. Required: "
            "encode(encoder_token_ids) -> (cross_cache, encoder_mask), "
            "decode_step(token_ids, index, self_cache, cross_cache, encoder_mask) "
            "-> (logits, self_cache) and init_cache(batch, length), as "
            "tfaccel.models.Seq2SeqTransformer has. For a plain Keras model use "
            "model.export() or tfaccel.export.tflite.convert_model()."
        )


def _check_lengths(model, source_length, max_length):
    source_length = int(source_length or model.max_encoder_length)
    # Position max_decoder_length - 1 is the last the embedding has.
    max_length = int(max_length or model.max_decoder_length - 1)
    if not 0 < source_length <= model.max_encoder_length:
        raise UserError(
            f"source_length must be in [1, {model.max_encoder_length}] (the "
            f"model's max_encoder_length). Received: source_length={source_length}"
        )
    if not 0 < max_length < model.max_decoder_length:
        raise UserError(
            f"max_length must be in [1, {model.max_decoder_length - 1}] (the "
            f"model's max_decoder_length - 1). Received: max_length={max_length}"
        )
    return source_length, max_length


def _writable(path):
    path = pathlib.Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise UserError(
            f"Cannot write exports to '{path}': {error.strerror or error}. Pass a "
            "writable folder with --out (or path=)."
        ) from error
    if not os.access(path, os.W_OK):
        raise UserError(f"Cannot write exports to '{path}': permission denied.")
    return path


def _samples(model, sample_inputs, source_length, count=16, seed=0):
    if sample_inputs is None:
        rng = np.random.default_rng(seed)
        ids = np.zeros((count, source_length), np.int32)
        for row, length in enumerate(rng.integers(2, source_length + 1, count)):
            ids[row, :length] = rng.integers(3, model.encoder_vocabulary_size, length)
        return ids
    ids = np.asarray(sample_inputs)
    if ids.ndim != 2 or ids.shape[1] > source_length or ids.dtype.kind not in "iu":
        raise UserError(
            f"sample_inputs must be integer source ids of shape (batch, <= "
            f"{source_length}). Received: shape={ids.shape}, dtype={ids.dtype}"
        )
    padded = np.zeros((len(ids), source_length), np.int32)
    padded[:, : ids.shape[1]] = ids
    return padded


def _representative(representative, sample_inputs):
    if representative is None:
        representative = sample_inputs
    if representative is None:
        raise UserError(
            "tflite_int8 of a float model is calibrated on real inputs: pass "
            "representative= (source ids from the training split), or "
            "sample_inputs=."
        )
    if isinstance(representative, np.ndarray):
        representative = [representative]
    return representative


def check_qat_formats(formats, qat):
    """Refuses the formats a QAT model refuses (TFLite fp16 and dynamic-range).

    Args:
        formats: export format names.
        qat: whether the model was trained with `tfaccel.quantize_aware`.

    Raises:
        UserError: naming the formats and what to export instead.
    """
    registry.check_qat(formats, qat)


def load(format, path, threads=None):
    """Returns the runner of an exported artifact, with its `generate`.

    Args:
        format: a name from `FORMATS`.
        path: the artifact's file or folder (`Artifact.path`).
        threads: int, the LiteRT interpreter's `num_threads` or ONNX Runtime's
            `intra_op_num_threads`; None keeps their default (1). TensorFlow's
            threads belong to the process: set them with
            `tf.config.threading` before a SavedModel runs any op.

    Returns:
        The format's runner (`tfaccel.export.formats`): a `SavedModelRunner`,
        `LiteRTModel`, `ORTModel` or `TensorRTModel`, each a
        `tfaccel.export.runner.Runner` that decodes greedily with the
        key/value cache, with the API of the Keras model's `generate`.
    """
    _check_formats([format])
    return registry.get(format).load(path, threads)


def copy_versions(source, target):
    """Copies the numbered SavedModel versions of `source` into `target`.

    A recipe run replaces its whole folder; its earlier SavedModel versions
    are carried over, so a new export is a new version, never a rewrite.
    """
    source, target = pathlib.Path(source), pathlib.Path(target)
    roots = {
        registry.get(name).artifact.removesuffix("<version>")
        for name in registry.names()
        if registry.get(name).artifact.endswith("<version>")
    }
    for root in sorted(roots):  # "" (saved_model), "saved_model_lean/"
        if not (source / root).is_dir():
            continue
        for folder in (source / root).iterdir():
            if folder.is_dir() and folder.name.isdigit():
                shutil.copytree(folder, target / root / folder.name)
