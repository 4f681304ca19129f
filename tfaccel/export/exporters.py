"""How `tfaccel.export` builds each format and checks it against Keras.

`ReferenceRun` computes the Keras model's logits and greedy tokens on the
sample inputs once; each exporter here builds one format's artifact under a
temporary name, runs it in its runtime, compares it with the reference and
only then publishes it. `tfaccel.export.formats` names the exporter of each
format; every exporter takes `(model, path, fmt, reference, representative,
atol, agree)` and returns an `Artifact`.
"""

import dataclasses
import gzip
import pathlib

import numpy as np

from tfaccel._io import atomic_dir, atomic_file, scratch_dir
from tfaccel.errors import UserError
from tfaccel.export import formats


@dataclasses.dataclass
class Artifact:
    """One exported artifact and how it verified.

    Attributes:
        format: the format name, e.g. `"tflite_int8"`.
        path: the published file or folder.
        bytes: its size on disk.
        gzip_bytes: the size of its files gzip-compressed (what a download
            of sparse or clustered weights costs).
        runtime: the runtime it was verified in, with its version.
        max_difference: the largest absolute difference of the first two
            decode steps' logits from the Keras model's.
        agreement: the fraction of greedy tokens equal to Keras's on the
            sample inputs.
    """

    format: str
    path: str
    bytes: int
    gzip_bytes: int
    runtime: str
    max_difference: float
    agreement: float


def is_qat(model):
    """Whether `model` was trained with `tfaccel.quantize_aware`."""
    from tfaccel.core import registry

    qat = registry.get("quantization")  # None until tfaccel.quantization is imported
    return qat is not None and bool(qat.find_states(model))


def weights_per_channel(model):
    """A QAT model's weight granularity (its weights sit on that grid); True
    for any other model."""
    from tfaccel.core import registry

    qat = registry.get("quantization")
    states = qat.find_states(model) if qat is not None else []
    return all(state.config.per_channel for _, state in states)


class ReferenceRun:
    """The Keras model's outputs on the sample inputs, computed once.

    Attributes:
        samples: the padded int32 sources `(batch, source_length)`.
        logits: `(2 * batch, vocab)`, the first two decode steps' logits
            (BOS, then token 5).
        tokens: the Keras model's greedy tokens `(batch, max_length)`.
        vocabularies: `(source tokens, target tokens)` by id, or None, for
            formats that store token strings (CTranslate2).
    """

    def __init__(self, model, samples, source_length, max_length, vocabularies=None):
        from keras import ops

        self.model = model
        self.vocabularies = vocabularies
        self.samples = samples
        self.source_length = source_length
        self.max_length = max_length
        cross, mask = model.encode(samples)
        cache = model.init_cache(len(samples), max_length)
        logits = []
        for index, token in enumerate(_STEP_TOKENS):
            step, cache = model.decode_step(
                np.full((len(samples), 1), token, np.int32), index, cache, cross, mask
            )
            logits.append(ops.convert_to_numpy(step))
        self.logits = np.concatenate(logits)
        self.tokens = np.asarray(model.generate(samples, max_length))

    def compare(self, fmt, runner, atol, min_agreement):
        """Returns `(max_difference, agreement)`; raises UserError beyond them."""
        from tfaccel.export import verify

        logits = runner.first_steps(self.samples, _STEP_TOKENS)
        # NaN marks a logit the runtime does not report (CTranslate2's EOS
        # at the first step); every other logit is compared.
        difference = float(np.nanmax(np.abs(logits - self.logits)))
        tokens = runner.generate(self.samples, self.max_length)
        agreement = verify.token_agreement(list(self.tokens), list(tokens))["tokens"]
        # A QAT model's Keras forward pass is fake-quantized; the float
        # formats of it run float arithmetic, so they are checked by tokens.
        exact = formats.get(fmt).verified_by == "logits" and not is_qat(self.model)
        if exact and not difference <= atol:
            raise UserError(
                f"{fmt} verification failed: its logits differ from Keras by "
                f"{difference:.3g}, more than the tolerance {atol:g}; nothing was "
                "published. Check the model is stripped, or raise atol."
            )
        if not agreement >= min_agreement:
            raise UserError(
                f"{fmt} verification failed: {agreement:.1%} of its greedy tokens "
                f"equal Keras's, less than min_agreement={min_agreement:g} (max "
                f"logit difference {difference:.3g}); nothing was published. "
                "Lower min_agreement= (CLI: --min-agreement) to accept it."
            )
        return difference, agreement


# The decode steps compared: BOS, then an ordinary token.
_STEP_TOKENS = (1, 5)


def export_saved_model(model, path, fmt, reference, representative, atol, agree):
    from tfaccel.export import saved_model

    out = saved_model.export_saved_model(
        model,
        path,
        reference.source_length,
        reference.max_length,
        reference.samples,
        atol=atol,
        check=lambda runner: reference.compare(fmt, runner, atol, agree),
    )
    return _artifact(fmt, out["path"], out["runtime"], out["check"])


def export_tflite(model, path, fmt, reference, representative, atol, agree):
    from tfaccel.export import tflite

    mode = fmt.removeprefix("tflite_")
    if formats.get(fmt).qat == "int8" and is_qat(model):
        mode = "qat"  # the full-int8 graph of its trained ranges
    data = tflite.convert(
        model,
        mode,
        reference.source_length,
        reference.max_length,
        representative=representative if mode == "int8" else None,
    )
    target = path / formats.get(fmt).artifact
    with atomic_file(target) as tmp:
        tmp.write_bytes(data)
        check = reference.compare(fmt, tflite.LiteRTModel(tmp), atol, agree)
    return _artifact(fmt, target, _litert_version(), check)


def export_onnx(model, path, fmt, reference, representative, atol, agree):
    from tfaccel.export import onnx

    def write(tmp):
        if fmt == "onnx":
            onnx.convert(model, tmp, reference.source_length, reference.max_length)
            return
        with scratch_dir("onnx") as plain:
            onnx.convert(model, plain, reference.source_length, reference.max_length)
            onnx.quantize_dynamic(plain, tmp)

    return _verified_dir(fmt, path, reference, atol, agree, write, onnx.ORTModel)


def export_tensorrt(model, path, fmt, reference, representative, atol, agree):
    from tfaccel.export import onnx, tensorrt

    def write(tmp):
        with scratch_dir("onnx") as plain:
            onnx.convert(model, plain, reference.source_length, reference.max_length)
            tensorrt.build(plain, tmp, max_batch=len(reference.samples))

    return _verified_dir(
        fmt, path, reference, atol, agree, write, tensorrt.TensorRTModel
    )


def export_lean_tflite(model, path, fmt, reference, representative, atol, agree):
    from tfaccel.export import lean

    weights = formats.get(fmt).weights
    module = lean.build(model, reference.max_length + 1)
    data = lean.convert_tflite(module, weights, per_channel=weights_per_channel(model))
    target = path / formats.get(fmt).artifact
    with atomic_file(target) as tmp:
        tmp.write_bytes(data)
        check = reference.compare(fmt, lean.LeanLiteRT(tmp), atol, agree)
    return _artifact(fmt, target, _litert_version(), check)


def export_lean_onnx(model, path, fmt, reference, representative, atol, agree):
    from tfaccel.export import lean, lean_onnx

    module = lean.build(model, reference.max_length + 1)

    def write(tmp):
        lean_onnx.convert(module, tmp, formats.get(fmt).weights)

    return _verified_dir(fmt, path, reference, atol, agree, write, lean_onnx.LeanORT)


def export_lean_saved_model(model, path, fmt, reference, representative, atol, agree):
    """The next version folder under `<path>/saved_model_lean/`; earlier
    versions are never touched."""
    from tfaccel.export import lean, lean_saved_model, saved_model

    module = lean.build(model, reference.max_length + 1)
    root = path / formats.get(fmt).artifact.removesuffix("/<version>")
    target = root / str(saved_model.next_version(root))
    with atomic_dir(target) as tmp:
        lean_saved_model.save(module, tmp)
        found = lean_saved_model.xla_ops(tmp)
        if found:
            raise UserError(
                f"{fmt}: the graph holds XLA-only ops ({', '.join(found)}) that "
                "TF Serving's standard build cannot run; nothing was published. "
                f"Received: ops={found}"
            )
        runner = lean_saved_model.LeanSavedModel(tmp)
        check = reference.compare(fmt, runner, atol, agree)
        served = runner.serve(reference.samples)
        expected = runner.generate(reference.samples)
        if not np.array_equal(served, expected):
            raise UserError(
                f"{fmt} verification failed: serving_default generates other "
                "tokens than the generate signature; nothing was published."
            )
        saved_model.write_warmup(
            tmp, lean_saved_model.warmup_requests(runner, reference.samples)
        )
    return _artifact(fmt, target, runner.runtime, check)


def export_ctranslate2(model, path, fmt, reference, representative, atol, agree):
    from tfaccel.export import ctranslate2
    from tfaccel.export.architecture import describe

    arch = describe(model)
    compute_type = ctranslate2.COMPUTE_TYPE_OF[fmt]
    source, target_tokens = reference.vocabularies or (None, None)

    def write(tmp):
        ctranslate2.convert(arch, tmp, source, target_tokens, compute_type)

    return _verified_dir(fmt, path, reference, atol, agree, write, ctranslate2.CT2Model)


def _verified_dir(fmt, path, reference, atol, agree, write, runner_class):
    """Publishes a folder artifact: `write(tmp)` builds it under a temporary
    name, `runner_class(tmp)` runs it, and only a verified folder is renamed
    into place."""
    target = path / formats.get(fmt).artifact
    with atomic_dir(target, replace=True) as tmp:
        write(tmp)
        runner = runner_class(tmp)
        check = reference.compare(fmt, runner, atol, agree)
        runtime = runner.runtime
    return _artifact(fmt, target, runtime, check)


def _artifact(fmt, path, runtime, check):
    path = pathlib.Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*"))
    files = [p for p in files if p.is_file()]
    data = [p.read_bytes() for p in files]
    return Artifact(
        format=fmt,
        path=str(path),
        bytes=sum(len(d) for d in data),
        gzip_bytes=sum(len(gzip.compress(d)) for d in data),
        runtime=runtime,
        max_difference=check[0],
        agreement=check[1],
    )


def _litert_version():
    from importlib import metadata

    return f"LiteRT {metadata.version('ai-edge-litert')}"
