"""The lean graphs (`tfaccel.export.lean`) as a TF Serving SavedModel.

`save` writes the `LeanModule` (float32 weights, as TF Serving runs them)
with its signatures:

- `serving_default`: `encoder_token_ids` in, `tokens` out: the whole greedy
  loop in one request, stopping at EOS;
- `generate`, `encode`, `decode_step` and `init_cache`, as the module doc
  of `tfaccel.export.lean` gives them, for clients that set `max_length`
  and `stop_at_eos` or decode themselves.

The decoding contract is a SavedModel asset, `assets/tfaccel.contract.json`
(`CONTRACT_FILE`), so the version folder alone says how to drive it. The
graph is written with `autograph=False` from plain TF ops: it holds no
XLA-only op (`xla_ops` lists any, and the exporter refuses a graph that has
one), so the stock TF Serving binary runs it with XLA off.

`assets.extra/tf_serving_warmup_requests` holds one request per signature
(`tfaccel.export.saved_model.write_warmup`), each with real inputs: TF
Serving loads every signature's graph before its first real request.
"""

import json
import pathlib

import numpy as np

from tfaccel.errors import UserError
from tfaccel.export.lean_runner import (
    DECODE_STEP,
    ENCODE,
    GENERATE,
    INIT_CACHE,
    SIGNATURES,
    LeanRunner,
)

SERVING_DEFAULT = "serving_default"
CONTRACT_FILE = "tfaccel.contract.json"


def save(lean, folder):
    """Writes a `LeanModule` as a SavedModel into `folder` (which must not
    hold one yet) with the signatures of the module doc and the contract
    asset."""
    import tensorflow as tf

    from tfaccel._io import scratch_dir

    # A new root that holds the lean module, so that `lean.module` itself
    # stays as it was (it may still be converted to TFLite or ONNX).
    root = tf.Module()
    root.lean = lean.module
    generate = lean.module.generate
    steps = lean.target_length - 1

    def serving(encoder_token_ids):
        return generate(encoder_token_ids, tf.constant(steps), tf.constant(True))

    ids_spec = generate.input_signature[0]
    root.serving = tf.function(serving, input_signature=[ids_spec], autograph=False)
    signatures = {SERVING_DEFAULT: root.serving.get_concrete_function()}
    for name in SIGNATURES:
        signatures[name] = getattr(lean.module, name).get_concrete_function()
    with scratch_dir("lean-contract") as scratch:
        contract = pathlib.Path(scratch) / CONTRACT_FILE
        contract.write_text(json.dumps(lean.contract(), sort_keys=True, indent=1))
        root.contract = tf.saved_model.Asset(str(contract))
        tf.saved_model.save(root, str(folder), signatures=signatures)


def xla_ops(folder):
    """The XLA-only op types in a SavedModel's graph (functions included),
    sorted; TF Serving's standard build runs a graph only without them."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((pathlib.Path(folder) / "saved_model.pb").read_bytes())
    found = set()
    for meta in proto.meta_graphs:
        graph = meta.graph_def
        nodes = list(graph.node)
        for function in graph.library.function:
            nodes += list(function.node_def)
        found |= {node.op for node in nodes if node.op.startswith("Xla")}
    return sorted(found)


def warmup_requests(runner, sample_ids):
    """One `(signature, inputs)` per signature, for the warm-up file: each
    signature's inputs come from running the loaded model on one sample."""
    ids = runner._trim(sample_ids[:1])
    steps = np.array(runner.target_length - 1, np.int32)
    encoded, cache = runner._start(ids)
    step = {"token_ids": np.array([[runner.contract["bos_id"]]], np.int32)}
    step.update(index=np.array(0, np.int32), **cache, **encoded)
    return [
        (SERVING_DEFAULT, {"encoder_token_ids": ids}),
        (GENERATE, {"encoder_token_ids": ids, "max_length": steps,
                    "stop_at_eos": np.array(True)}),
        (ENCODE, {"encoder_token_ids": ids}),
        (INIT_CACHE, {"batch_size": np.array(1, np.int32)}),
        (DECODE_STEP, step),
    ]  # fmt: skip


class LeanSavedModel(LeanRunner):
    """A lean SavedModel version folder run through `tf.saved_model.load`.

    Args:
        path: the version folder `save` wrote.
        loop: as `tfaccel.export.lean.LeanRunner`.
    """

    def __init__(self, path, loop="graph"):
        import tensorflow as tf

        path = pathlib.Path(path)
        contract = path / "assets" / CONTRACT_FILE
        if not (path / "saved_model.pb").is_file() or not contract.is_file():
            raise UserError(
                f"No lean SavedModel at '{path}' (it needs saved_model.pb and "
                f"assets/{CONTRACT_FILE}). Export saved_model_lean first. "
                f"Received: path={str(path)!r}"
            )
        self.loaded = tf.saved_model.load(str(path))
        self.runtime = f"tensorflow {tf.__version__} (tf.saved_model.load)"
        calls = {name: _call(self.loaded.signatures[name]) for name in SIGNATURES}
        self._serving = _call(self.loaded.signatures[SERVING_DEFAULT])
        super().__init__(calls, json.loads(contract.read_text()), loop)

    def serve(self, encoder_token_ids):
        """Runs `serving_default`, as a TF Serving request would."""
        ids = self._trim(encoder_token_ids)
        return np.asarray(self._serving(encoder_token_ids=ids)["tokens"])


def _call(function):
    import tensorflow as tf

    specs = function.structured_input_signature[1]

    def call(**inputs):
        feed = {k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()}
        return {k: v.numpy() for k, v in function(**feed).items()}

    return call
