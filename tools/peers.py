"""Builds and times tfaccel's peers: what a user would pick instead of tfaccel.

Every peer starts from the same trained baseline (a `.keras` file; the task
is read from the `metrics.json` beside it) and is measured the same way, in
one process, on the same batches of real test sources:

- `naive`: Keras fp32, re-running the whole model at each step, no cache;
- `keras_cached`: Keras fp32 with the key/value cache (`model.generate`),
  keras-hub style; `keras_xla`: the same loop compiled with XLA;
- `tflite_dynamic`: TFLite dynamic-range post-training quantization;
- `onnx`, `onnx_int8`: ONNX Runtime fp32, and after `quantize_dynamic`;
- `keras_int8`: Keras's own `Model.quantize("int8")`;
- `ctranslate2`, `ctranslate2_int8`: CTranslate2 (the engine of OpenNMT,
  Marian and faster-whisper models) on the same weights, written through
  its spec API (`tfaccel.export.ctranslate2`). It picks its int8 GEMM by
  CPU vendor: on AMD, time it again with `CT2_USE_MKL=1` and keep the
  faster (on an AMD CPU without VNNI its default int8 saturates: compare
  the WER too, README "int8 on CPUs without VNNI");
- `openvino_int8`: OpenVINO's CPU plugin on tfaccel's lean ONNX graphs,
  weights compressed to int8 by NNCF (`tfaccel.bench.openvino`);
- `tfmot_int8`, `tfmot_int8_calibrated`: the tf_keras twin, pruned 50% and
  trained quantization-aware with tfmot (`tfaccel.compat`), converted to
  TFLite int8 without and with representative data, decoded in LiteRT
  without a cache (the twin has no cached decoding). The twin is trained
  and converted in a child process, so that the timing process carries
  nothing of the training. What tfmot refused is recorded in `peers.json`
  under `tfmot`.

With `--tfaccel PATH...`, tfaccel's own artifacts (or `tfaccel run` folders)
join the same timing rotation and scoring, under `tfaccel` in peers.json:
their speed-ups against the peers are then measured in one process.

Timing is `tfaccel.bench.timing.benchmark` (greedy generation of whole
sequences, warm-up then repeats, runners in rotating order); accuracy is
`task.evaluate` on the test split; sizes are bytes on disk, raw and gzip.
A peer that fails to build or run is recorded with its error, not dropped
silently. Results: OUT/peers.json, OUT/peers.md, and the artifacts under
OUT/artifacts/.

    python tools/peers.py --baseline savedmodels/baseline-g2p-small/model.keras \\
        --out savedmodels/peers --threads 1
    python tools/peers.py --preset base --random-weights --task g2p \\
        --out savedmodels/peers-base --skip tfmot --repeats 10
"""

import argparse
import dataclasses
import datetime
import functools
import gzip
import json
import os
import pathlib
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tfaccel import tasks  # noqa: E402
from tfaccel._io import atomic_dir, atomic_file  # noqa: E402
from tfaccel.bench.peers_markdown import render_markdown  # noqa: E402
from tfaccel.errors import UserError, error_line  # noqa: E402
from tfaccel.export import formats as export_formats  # noqa: E402

DESCRIPTIONS = {
    "naive": "Keras fp32, whole model re-run each step (no cache)",
    "keras_cached": "Keras fp32, key/value cache (keras-hub style generate)",
    "keras_xla": "Keras fp32, key/value cache, loop compiled with XLA",
    "tflite_dynamic": "TFLite dynamic-range PTQ (int8 weights, float activations)",
    "onnx": "ONNX Runtime fp32, key/value cache",
    "onnx_int8": "ONNX Runtime quantize_dynamic int8, key/value cache",
    "keras_int8": 'Keras Model.quantize("int8")',
    "ctranslate2": "CTranslate2 float32, the same weights through its spec API",
    "ctranslate2_int8": "CTranslate2 int8, the same weights through its spec API",
    "openvino_int8": "OpenVINO, the lean ONNX graphs with int8 weights by NNCF",
    "tfmot_int8": "tfmot on the tf_keras twin: prune 50% + QAT, TFLite int8, no cache",
    "tfmot_int8_calibrated": "as tfmot_int8, converted with representative data",
}
PEERS = tuple(DESCRIPTIONS)


def _weight_format(peer):
    """The kernels' storage type a peer reads in a decode step (roofline).

    A peer that is an export format stores what `tfaccel.export.formats`
    says; the Keras loops are fp32, the tfmot twins int8.
    """
    if peer in export_formats.names():
        return export_formats.get(peer).weights
    return "fp32" if peer in ("naive", "keras_cached", "keras_xla") else "int8"


WEIGHT_FORMATS = {name: _weight_format(name) for name in PEERS}
# --skip tfmot skips both tfmot peers (and their training).
GROUPS = {"tfmot": ("tfmot_int8", "tfmot_int8_calibrated")}
# What peers.json keeps of each timing row (`tfaccel.bench.timing.summarize`).
LATENCY_KEYS = ("p50_ms", "p90_ms", "p99_ms", "ms_per_sequence", "ratio")
LATENCY_KEYS += ("tokens_per_second", "mean_tokens")


@dataclasses.dataclass
class Peer:
    """A built peer: something with `generate(ids, max_length)`, and its files."""

    name: str
    runner: object
    runtime: str
    files: list  # its artifact(s); the first is the one whose size is reported
    info: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Context:
    """What every peer builder needs."""

    task: object
    folder: pathlib.Path  # where artifacts are written
    keras_file: pathlib.Path  # the fp32 .keras file
    threads: int
    args: argparse.Namespace
    log: object = print
    max_examples: int = None  # the task's, as `tasks.get_task` takes it
    cache: dict = dataclasses.field(default_factory=dict)


# === Command line ===


def _parser():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n\n")[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--baseline", help="the trained baseline's .keras file")
    parser.add_argument("--task", help="g2p or translation (default: the baseline's)")
    parser.add_argument("--out", required=True, help="folder for peers.json/.md")
    parser.add_argument("--batch-sizes", default="1,16", help="e.g. 1,16")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="for every runtime")
    parser.add_argument(
        "--eval-examples", type=int, help="score the first N test examples only"
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="NAME",
        help=f"a peer not to build (repeatable): {', '.join(PEERS)}, or tfmot",
    )
    parser.add_argument(
        "--tfmot-epochs",
        type=int,
        default=2,
        help="tfmot pruning epochs; QAT takes half as many, at least 1 (4 gives "
        "the 4 + 2 of recipes/g2p-prune50-qat-int8.yaml)",
    )
    parser.add_argument(
        "--tfmot-steps", type=int, help="batches per tfmot epoch (default: all)"
    )
    parser.add_argument("--tfmot-batch-size", type=int, default=128)
    parser.add_argument(
        "--tfaccel",
        nargs="+",
        default=[],
        metavar="PATH",
        help="tfaccel artifacts (or `tfaccel run` folders) to time in the same "
        "rotation as the peers, and score the same way",
    )
    parser.add_argument(
        "--timing-only",
        action="store_true",
        help="time and size, but do not score (e.g. an untrained --baseline)",
    )
    parser.add_argument("--preset", help="with --random-weights: tiny, small, base")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="time an untrained model of --preset (accuracy not measured)",
    )
    return parser


def _check(args):
    if bool(args.baseline) == bool(args.random_weights):
        raise UserError(
            "Pass either --baseline PATH or --preset NAME --random-weights. "
            f"Received: baseline={args.baseline}, random_weights={args.random_weights}"
        )
    if args.random_weights and not args.preset:
        raise UserError("--random-weights needs --preset. Received: preset=None")
    unknown = [name for name in args.skip if name not in PEERS and name not in GROUPS]
    if unknown:
        raise UserError(
            f"Unknown peer for --skip. Use any of: {', '.join(PEERS)}, tfmot. "
            f"Received: skip={unknown}"
        )
    try:
        args.batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    except ValueError:
        raise UserError(
            f"--batch-sizes takes ints, e.g. 1,16. Received: {args.batch_sizes}"
        ) from None
    for flag in ("threads", "repeats", "tfmot_epochs", "tfmot_batch_size"):
        if getattr(args, flag) < 1:
            name = flag.replace("_", "-")
            raise UserError(f"--{name} must be >= 1. Received: {getattr(args, flag)}")
    return args


def _skipped(args):
    names = set()
    for name in args.skip:
        names.update(GROUPS.get(name, (name,)))
    return names


# === Inputs ===


def pin_threads(threads):
    """Pins TensorFlow's threads (before it runs an op); returns what each runtime uses.

    LiteRT and ONNX Runtime take `threads` when each runner is built.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        pinned = True
    except RuntimeError:  # TensorFlow already ran in this process (tests)
        pinned = False
    return {
        "threads": threads,
        "tensorflow": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "pinned": pinned,  # False: set before this tool ran (0 = all cores)
        },
        "litert": {"num_threads": threads},
        "onnxruntime": {"intra_op": threads},
    }


def baseline_task(folder):
    """Returns `(task name, max_examples)` from a baseline or run folder, or Nones."""
    path = pathlib.Path(folder) / "metrics.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    if "recipe" in data:  # a `tfaccel run` folder
        task = data["recipe"]["task"]
        return task["name"], task.get("max_examples")
    config = data.get("config", {})
    name = config.get("task") or data.get("task", {}).get("task")
    return name, config.get("max_examples")


def load_inputs(args, log):
    """Returns `(task, model, keras_file or None, description of the model)`."""
    import keras

    from tfaccel.models import Seq2SeqTransformer, load_model

    if args.random_weights:
        task = tasks.get_task(args.task or "g2p")
        keras.utils.set_random_seed(0)
        model = Seq2SeqTransformer.from_preset(args.preset, **task.model_overrides())
        return task, model, None, {"preset": args.preset, "random_weights": True}
    path = pathlib.Path(args.baseline)
    model = load_model(path)  # first: a missing file is the clearer error
    name, max_examples = baseline_task(path.parent)
    if args.task and args.task != name:
        name, max_examples = args.task, None
    if name is None:
        raise UserError(
            f"Cannot tell the task: no metrics.json with one beside '{path}'. "
            f"Pass --task g2p or --task translation. Received: baseline={path}"
        )
    log(f"Task {name}" + (f" ({max_examples} examples)" if max_examples else ""))
    task = tasks.get_task(name, max_examples)
    info = {"path": str(path), "random_weights": False, "max_examples": max_examples}
    return task, model, path, info


# === Runners ===


class FunctionRunner:
    """Gives a plain function `f(ids, max_length)` the `generate` of a model."""

    def __init__(self, function):
        self.generate = function


class XlaRunner:
    """The model's cached greedy loop compiled with XLA (`jit_compile=True`).

    `Seq2SeqTransformer.generate` compiles with `tf.function` but offers no
    XLA switch, so its loop (`_generate`) is compiled here. Sources are
    padded to one width, so XLA compiles once per batch size.
    """

    def __init__(self, model, width):
        self.model = model
        self.width = width
        self._functions = {}

    def generate(self, ids, max_length):
        import tensorflow as tf

        ids = np.asarray(ids, np.int32)
        ids = np.pad(ids, [(0, 0), (0, self.width - ids.shape[1])])  # (batch, width)
        if max_length not in self._functions:
            self._functions[max_length] = tf.function(
                lambda x: self.model._generate(x, max_length, True, True),
                jit_compile=True,
            )
        return self._functions[max_length](tf.constant(ids)).numpy()


# === Peers ===


def _keras_runtime():
    from importlib import metadata

    return (
        f"Keras {metadata.version('keras')} "
        f"(TensorFlow {metadata.version('tensorflow')})"
    )


def build_naive(model, ctx):
    generate = functools.partial(model.generate, use_cache=False)
    return Peer("naive", FunctionRunner(generate), _keras_runtime(), [ctx.keras_file])


def build_keras_cached(model, ctx):
    return Peer("keras_cached", model, _keras_runtime(), [ctx.keras_file])


def build_keras_xla(model, ctx):
    runner = XlaRunner(model, ctx.task.max_source_length)
    note = "Seq2SeqTransformer.generate has no XLA option; its loop is compiled here"
    runtime = _keras_runtime() + ", XLA"
    return Peer("keras_xla", runner, runtime, [ctx.keras_file], {"note": note})


def build_export(model, ctx, fmt):
    """A `tfaccel.export` format of the fp32 model, loaded in its runtime."""
    from tfaccel.data import encode_sources
    from tfaccel.export import api

    task = ctx.task
    sources = task.sources("test")[:64]
    result = api.export(
        model,
        ctx.folder,
        [fmt],
        sample_inputs=encode_sources(
            sources, task.source_vocab, task.max_source_length
        ),
        source_length=task.max_source_length,
        max_length=task.max_generate_length,
        min_agreement=0.0,  # a peer that disagrees is measured, not refused
        log=ctx.log,
        vocabularies=(task.source_vocab.all_tokens, task.target_vocab.all_tokens),
    )
    artifact = result[fmt]
    info = {
        "max_difference": artifact.max_difference,
        "tokens_equal_to_keras": artifact.agreement,
    }
    runner = api.load(fmt, artifact.path, threads=ctx.threads)
    return Peer(fmt, runner, artifact.runtime, [pathlib.Path(artifact.path)], info)


def build_openvino(model, ctx):
    """OpenVINO on the verified `onnx_lean` folder, int8 weights by NNCF."""
    from tfaccel.bench import openvino

    openvino.check_available()
    lean = build_export(model, ctx, "onnx_lean")
    runner = openvino.OpenVINOLean(lean.files[0], ctx.threads, "int8")
    saved = runner.save(ctx.folder / "openvino_int8")  # its size is the IR's
    info = {"converted_from": "onnx_lean", "weights": "int8_sym per channel (NNCF)"}
    return Peer("openvino_int8", runner, runner.runtime, [saved], info)


def build_keras_int8(model, ctx):
    """Keras `Model.quantize("int8")` of a copy: int8 weights, dynamic activations."""
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # layers with no int8 form
        copy.quantize("int8")
    path = ctx.folder / "model_keras_int8.keras"
    copy.save(path)
    return Peer("keras_int8", copy, _keras_runtime(), [path])


def tfmot_result(ctx):
    """Prunes, QAT-trains and converts the tf_keras twin with tfmot, once per run.

    It runs in a child process (`tfaccel.compat.tfmot_peer.run_in_child`), so
    that the timing process carries nothing of the training.

    Returns:
        The child's dict: `record` (tfmot's `TfmotRecord` as a dict), and
        per tfmot peer either `files` ({batch size: path}) and `ops`, or
        `error`. A failure of the whole job is kept and raised for both
        peers, so that the second one does not retrain.
    """
    from tfaccel.compat import tfmot_peer

    if "tfmot" not in ctx.cache:
        args = ctx.args
        settings = {
            "prune_epochs": args.tfmot_epochs,
            "qat_epochs": max(1, args.tfmot_epochs // 2),
            "steps_per_epoch": args.tfmot_steps,  # None: whole epochs
            "batch_size": args.tfmot_batch_size,
            "final_sparsity": 0.5,
        }
        ctx.cache["tfmot_settings"] = settings
        ctx.log(f"tfmot: {settings} (in a child process)")
        spec = {
            "keras_file": str(ctx.keras_file),
            "task": ctx.task.name,
            "max_examples": ctx.max_examples,
            "folder": str(ctx.folder),
            "threads": ctx.threads,
            "settings": settings,
            "batch_sizes": sorted(set(args.batch_sizes)),
            "peers": [n for n in GROUPS["tfmot"] if n not in _skipped(args)],
        }
        try:
            ctx.cache["tfmot"] = tfmot_peer.run_in_child(spec)
        except Exception as error:  # recorded by both tfmot peers
            ctx.cache["tfmot"] = error
    if isinstance(ctx.cache["tfmot"], Exception):
        raise ctx.cache["tfmot"]
    return ctx.cache["tfmot"]


def build_tfmot(model, ctx, calibrated):
    """The tfmot QAT twin as TFLite int8 files (one per batch size) in LiteRT."""
    from tfaccel import compat
    from tfaccel.compat import tfmot_peer

    name = "tfmot_int8_calibrated" if calibrated else "tfmot_int8"
    built = tfmot_result(ctx)[name]
    if "error" in built:
        raise RuntimeError(built["error"])
    twins = {
        int(batch): compat.LiteRTTwin(path, num_threads=ctx.threads)
        for batch, path in built["files"].items()
    }
    files = [
        pathlib.Path(built["files"][key]) for key in sorted(built["files"], key=int)
    ]
    info = {
        "ops": built["ops"],
        "note": f"size of the batch-{min(twins)} file; one file per batch size",
    }
    return Peer(name, tfmot_peer.TwinFiles(twins), _litert_runtime(), files, info)


def _litert_runtime():
    from importlib import metadata

    return f"LiteRT {metadata.version('ai-edge-litert')}"


BUILDERS = {
    "naive": build_naive,
    "keras_cached": build_keras_cached,
    "keras_xla": build_keras_xla,
    "tflite_dynamic": functools.partial(build_export, fmt="tflite_dynamic"),
    "onnx": functools.partial(build_export, fmt="onnx"),
    "onnx_int8": functools.partial(build_export, fmt="onnx_int8"),
    "keras_int8": build_keras_int8,
    "ctranslate2": functools.partial(build_export, fmt="ctranslate2"),
    "ctranslate2_int8": functools.partial(build_export, fmt="ctranslate2_int8"),
    "openvino_int8": build_openvino,
    "tfmot_int8": functools.partial(build_tfmot, calibrated=False),
    "tfmot_int8_calibrated": functools.partial(build_tfmot, calibrated=True),
}


def build_peers(model, ctx, skipped):
    """Returns `(peers, errors)`: built peers by name, and why others failed."""
    peers, errors = {}, {}
    for name in PEERS:
        if name in skipped:
            continue
        ctx.log(f"Building {name}: {DESCRIPTIONS[name]}")
        try:
            peer = BUILDERS[name](model, ctx)
            _smoke(peer, ctx)
        except Exception as error:  # a peer that fails is a result too
            errors[name] = error_line(error)
            ctx.log(f"  {name} failed: {errors[name]}")
            continue
        peers[name] = peer
    return peers, errors


def build_candidates(targets, ctx):
    """Returns `(candidates, errors)`: tfaccel's artifacts, loaded as peers are.

    Each is named `<run folder>/<artifact>` and timed in the peers' rotation,
    so the speed-ups against the peers are measured in one process.
    """
    from tfaccel.bench import harness

    candidates, errors = {}, {}
    for target in targets:
        run = pathlib.Path(target.run_dir or pathlib.Path(target.path).parent).name
        name = target.name if "/" in target.name else f"{run}/{target.name}"
        ctx.log(f"Loading tfaccel's {name}")
        try:
            runner = harness.load_target(target, ctx.threads)
            runtime = harness.target_runtime(target, runner)
            info = {"description": f"tfaccel: {target.name} of {run}"}
            info["step_bytes"] = _step_bytes(target)
            peer = Peer(name, runner, runtime, [pathlib.Path(target.path)], info)
            _smoke(peer, ctx)
        except Exception as error:  # measured as the peers are: a failure is a result
            errors[name] = error_line(error)
            ctx.log(f"  {name} failed: {errors[name]}")
            continue
        candidates[name] = peer
    return candidates, errors


def _step_bytes(target):
    # Weight bytes of one batch-1 decode step of a tfaccel artifact: its run
    # folder's model.keras (the stripped, possibly shrunk, model) in the
    # artifact's weight format. None outside a run folder.
    from tfaccel.bench.roofline import decode_step_bytes
    from tfaccel.models import load_model

    if target.run_dir is None:
        return None
    model = load_model(pathlib.Path(target.run_dir) / "model.keras")
    int8 = "int8" in target.name or target.format == "tflite_dynamic"
    fp16 = "fp16" in target.name
    return decode_step_bytes(model, "int8" if int8 else "fp16" if fp16 else "fp32")


def _smoke(peer, ctx):
    # One call per batch size before timing: a runner that cannot generate
    # is reported as failed instead of stopping the benchmark.
    from tfaccel.data import encode_sources

    task = ctx.task
    for size in ctx.args.batch_sizes:
        ids = encode_sources(
            task.sources("test")[:size], task.source_vocab, task.max_source_length
        )
        ids = np.resize(ids, (size, ids.shape[1]))  # fewer sources than size
        ids = np.pad(ids, [(0, 0), (0, task.max_source_length - ids.shape[1])])
        out = np.asarray(peer.runner.generate(ids, task.max_generate_length))
        if out.shape[0] != size:
            raise RuntimeError(f"generate returned shape {out.shape} for {size} rows")


# === Measuring ===


def time_peers(peers, task, args, log):
    """Times every peer with `tfaccel.bench.timing.benchmark`; ratios against naive."""
    from tfaccel.bench import timing
    from tfaccel.data import encode_sources

    rows = timing.benchmark(
        {name: peer.runner for name, peer in peers.items()},
        task.sources("test"),
        batch_sizes=args.batch_sizes,
        warmup=args.warmup,
        repeats=args.repeats,
        encode=lambda b: encode_sources(b, task.source_vocab, task.max_source_length),
        max_length=task.max_generate_length,
        log=log,
        width=task.max_source_length,  # as `tfaccel bench`: the full width
    )
    reference = "naive" if "naive" in peers else next(iter(peers))
    return timing.speedups(rows, reference), reference


def score(peer, task, args):
    """Returns `(test scores or None, reason when None)`."""
    if args.random_weights:
        return None, "not measured: --random-weights (an untrained model)"
    if args.timing_only:
        return None, "not measured: --timing-only"
    return task.evaluate(peer.runner, "test", max_examples=args.eval_examples), None


def file_sizes(path):
    """Returns `(bytes, gzip_bytes)` of a file, or summed over a folder's files."""
    path = pathlib.Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*"))
    data = [p.read_bytes() for p in files if p.is_file()]
    return sum(map(len, data)), sum(len(gzip.compress(d)) for d in data)


def peer_record(peer, rows, test, reason, folder):
    size, gzipped = file_sizes(peer.files[0])
    latency = {
        str(row["batch_size"]): {key: row[key] for key in LATENCY_KEYS}
        for row in rows
        if row["name"] == peer.name
    }
    return {
        "description": DESCRIPTIONS.get(peer.name),  # tfaccel's: in peer.info
        "runtime": peer.runtime,
        "files": [_label(path, folder) for path in peer.files],
        "bytes": size,
        "gzip_bytes": gzipped,
        "latency": latency,
        "test": test,
        "test_not_measured": reason,
        **peer.info,
    }


def _label(path, folder):
    # Artifacts by their path once `folder` is published as OUT/artifacts.
    path = pathlib.Path(path)
    if path.is_relative_to(folder):
        return str(pathlib.Path("artifacts") / path.relative_to(folder))
    return str(path)


def tfmot_section(ctx):
    """peers.json's `tfmot`: the settings and tfmot's own record of what it did."""
    if "tfmot" not in ctx.cache:
        return None
    if isinstance(ctx.cache["tfmot"], Exception):
        error = error_line(ctx.cache["tfmot"])
        return {"settings": ctx.cache["tfmot_settings"], "error": error}
    record = ctx.cache["tfmot"]["record"]
    return {
        "settings": ctx.cache["tfmot_settings"],
        "refused_classes": [r["layer_class"] for r in record["unsupported"]],
        "record": record,
    }


def xla_section(records, errors):
    """peers.json's `xla`: whether XLA compiled the loop, and what it bought."""
    if "keras_xla" in errors:
        return {"compiled": False, "error": errors["keras_xla"]}
    if "keras_xla" not in records or "keras_cached" not in records:
        return None
    xla, cached = records["keras_xla"]["latency"], records["keras_cached"]["latency"]
    speedups = {
        size: cached[size]["p50_ms"] / xla[size]["p50_ms"]
        for size in xla
        if size in cached
    }
    helps = all(ratio > 1.0 for ratio in speedups.values())
    return {"compiled": True, "speedup_over_keras_cached": speedups, "helps": helps}


# === Output ===


def write_outputs(report, out):
    """Writes peers.json and peers.md into `out`, each atomically."""
    with atomic_file(out / "peers.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    with atomic_file(out / "peers.md") as tmp:
        tmp.write_text(render_markdown(report))


# === Main ===


def main(argv=None, log=print):
    """Builds, times and scores the peers; writes peers.json and peers.md.

    Returns:
        The peers.json dict.
    """
    args = _check(_parser().parse_args(argv))
    threads = pin_threads(args.threads)  # before TensorFlow runs any op
    targets = _tfaccel_targets(args.tfaccel)  # a wrong path fails before training
    task, model, keras_file, model_info = load_inputs(args, log)
    out = pathlib.Path(args.out)
    with atomic_dir(out / "artifacts", replace=True) as folder:
        if keras_file is None:  # an untrained model: saved for its size
            keras_file = _save(model, folder / "model.keras")
        ctx = Context(task, folder, keras_file, args.threads, args, log)
        ctx.max_examples = model_info.get("max_examples")  # for tfmot's child
        peers, errors = build_peers(model, ctx, _skipped(args))
        if not peers:
            raise UserError(f"No peer could be built. Received: errors={errors}")
        candidates, failed = build_candidates(targets, ctx)
        records, rows, reference = measure({**peers, **candidates}, ctx)
    report = _report(ctx, model_info, threads, records, errors, rows, reference)
    report["roofline"] = roofline_section(model, candidates, rows, args.threads, log)
    report["tfaccel"] = {name: report["peers"].pop(name) for name in candidates}
    report["errors"].update(failed)
    write_outputs(report, out)
    log(f"Wrote {out / 'peers.json'} and peers.md")
    return report


def roofline_section(model, candidates, rows, threads, log):
    """peers.json's `roofline`: each batch-1 decode step against the memory floor.

    The floor is the weights a step reads (`decode_step_bytes` in each
    runner's weight format) over the memory bandwidth measured now, with
    the same threads; a step is the batch-1 p50 over the mean tokens
    generated (`roofline.floor_rows`), so 1.0 would be at the floor.
    """
    from tfaccel.bench import roofline

    step_bytes = {
        name: roofline.decode_step_bytes(model, fmt)
        for name, fmt in WEIGHT_FORMATS.items()
    }
    step_bytes |= {n: c.info["step_bytes"] for n, c in candidates.items()}
    step_bytes = {name: nbytes for name, nbytes in step_bytes.items() if nbytes}
    machine = roofline.measure_bandwidth(threads=threads, seconds=2.0)
    log(f"Memory bandwidth, {threads} thread(s): {machine['bandwidth_gbs']:.1f} GB/s")
    floors = roofline.floor_rows(rows, step_bytes, machine["bandwidth_gbs"])
    return {
        "bandwidth_gbs": machine["bandwidth_gbs"],
        "method": machine["method"],
        "rows": {row.pop("name"): row for row in floors},
    }


def _tfaccel_targets(paths):
    from tfaccel.bench import harness

    return harness.find_targets(paths) if paths else []


def measure(peers, ctx):
    """Times all peers together, then scores and sizes each; returns records."""
    rows, reference = time_peers(peers, ctx.task, ctx.args, ctx.log)
    records = {}
    for name, peer in peers.items():
        test, reason = score(peer, ctx.task, ctx.args)
        ctx.log(f"{name} test: {tasks.format_metrics(test) if test else reason}")
        records[name] = peer_record(peer, rows, test, reason, ctx.folder)
    return records, rows, reference


def _save(model, path):
    from tfaccel.models import save_model

    save_model(model, path)
    return path


def _report(ctx, model_info, threads, records, errors, rows, reference):
    from tfaccel.bench.machine import machine_info

    args = ctx.args
    return {
        "task": ctx.task.name,
        "model": model_info,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "threads": threads,
        "settings": {
            "batch_sizes": args.batch_sizes,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "eval_examples": args.eval_examples,
            "timing_only": args.timing_only,
        },
        "metric_names": list(ctx.task.metric_names),
        "reference": reference,
        "peers": records,
        "errors": errors,
        "skipped": {n: "skipped with --skip" for n in PEERS if n in _skipped(args)},
        "rows": rows,
        "tfmot": tfmot_section(ctx),
        "xla": xla_section(records, errors),
    }


if __name__ == "__main__":
    try:
        main()
    except UserError as error:
        print(f"peers.py: error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(2)
