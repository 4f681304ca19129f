"""Running a lean artifact: `LeanRunner`, and `LeanLiteRT` for `.tflite` files.

The names every lean artifact shares (its signatures and the metadata
entry of its contract) live here, so that the runners of each runtime
(`tfaccel.export.lean_onnx`, `lean_saved_model`, `tfaccel.bench.openvino`)
need not import the graph builder (`tfaccel.export.lean`).
"""

import json
import pathlib

import numpy as np

from tfaccel.errors import UserError
from tfaccel.export import generation, tflite_metadata

ENCODE, DECODE_STEP, GENERATE = "encode", "decode_step", "generate"
INIT_CACHE = "init_cache"
SIGNATURES = (ENCODE, DECODE_STEP, GENERATE, INIT_CACHE)
# The metadata entry holding `LeanModule.contract()` in a `.tflite` file.
CONTRACT = "tfaccel.contract"


class LeanRunner:
    """Greedy decoding over a lean artifact's signatures.

    Subclasses load the artifact and call `__init__` with its signatures as
    callables taking inputs and returning outputs by the names the module
    doc of `tfaccel.export.lean` gives, and the artifact's contract
    (`LeanModule.contract`).

    Args:
        calls: dict from signature name to callable; `encode` and
            `decode_step` are needed, `generate` and `init_cache` used when
            present (without `init_cache` the cache starts as zeros, as the
            contract says).
        contract: the dict the artifact carries.
        loop: `"graph"` runs `generate` (one call per batch); `"python"`
            drives `encode` and `decode_step` from Python (the only loop
            when the artifact has no `generate`).
    """

    def __init__(self, calls, contract, loop="graph"):
        if loop not in ("graph", "python"):
            raise ValueError(f"loop must be 'graph' or 'python'. Received: {loop!r}")
        self._encode, self._decode = calls[ENCODE], calls[DECODE_STEP]
        self._generate, self._init = calls.get(GENERATE), calls.get(INIT_CACHE)
        self.contract = contract
        self.target_length = int(contract["target_length"])
        self.source_length = int(contract["max_source_length"])
        cache = contract["self_cache"]
        self._cache_shapes = {}
        for i, (heads, dim) in enumerate(
            zip(cache["heads"], cache["head_dim"], strict=True)
        ):
            for kind in ("k", "v"):
                self._cache_shapes[f"self_{kind}_{i}"] = (
                    heads,
                    self.target_length,
                    dim,
                )
        self.loop = loop if self._generate is not None else "python"

    def _trim(self, ids):
        ids = _trim(ids)
        if ids.shape[1] > self.source_length:
            raise UserError(
                f"Sources of {ids.shape[1]} ids do not fit this model's "
                f"{self.source_length} positions. Received: width={ids.shape[1]}"
            )
        return ids

    def _start(self, ids):
        encoded = self._encode(encoder_token_ids=np.asarray(ids, np.int32))
        batch = len(ids)
        if self._init is not None:
            out = self._init(batch_size=np.array(batch, np.int32))
            return encoded, {name: np.asarray(out[name]) for name in self._cache_shapes}
        cache = {
            name: np.zeros((batch, *shape), np.float32)
            for name, shape in self._cache_shapes.items()
        }
        return encoded, cache

    def _step(self, token, index, encoded, cache):
        out = self._decode(
            token_ids=np.asarray(token, np.int32).reshape(-1, 1),
            index=np.array(index, np.int32),
            **cache,
            **encoded,
        )
        return np.asarray(out["logits"]), {name: out[name] for name in cache}

    def first_steps(self, padded_ids, tokens=(1, 5)):
        """Logits of the first decode steps (`generation.first_steps`)."""
        ids = self._trim(padded_ids)
        encoded, cache = self._start(ids)
        logits = []
        for index, token in enumerate(tokens):
            step, cache = self._step(np.full(len(ids), token), index, encoded, cache)
            logits.append(step.astype(np.float32))
        return np.concatenate(logits)

    def generate(self, encoder_token_ids, max_length=None, stop_at_eos=True):
        """Greedy decoding with the API of `Seq2SeqTransformer.generate`."""
        ids = self._trim(encoder_token_ids)
        steps = self.target_length - 1
        max_length = min(max_length or steps, steps)
        if self.loop == "graph":
            out = self._generate(
                encoder_token_ids=ids,
                max_length=np.array(max_length, np.int32),
                stop_at_eos=np.array(stop_at_eos),
            )
            return np.asarray(out["tokens"])[:, :max_length]
        encoded, cache = self._start(ids)
        tokens = np.zeros((len(ids), max_length), np.int32)
        token = np.full(len(ids), self.contract["bos_id"], np.int32)
        done = np.zeros(len(ids), bool)
        for index in range(max_length):
            logits, cache = self._step(token, index, encoded, cache)
            token = generation.greedy(logits)
            if stop_at_eos:
                token = np.where(done, self.contract["pad_id"], token)
                done |= token == self.contract["eos_id"]
            tokens[:, index] = token
            if stop_at_eos and done.all():
                break
        return tokens


class LeanLiteRT(LeanRunner):
    """A lean `.tflite` file run in LiteRT.

    Args:
        model: path of the file, or its bytes.
        num_threads: interpreter threads.
        loop: as `LeanRunner`.
    """

    def __init__(self, model, num_threads=1, loop="graph"):
        from ai_edge_litert.interpreter import Interpreter

        data = model if isinstance(model, bytes) else pathlib.Path(model).read_bytes()
        contract = json.loads(tflite_metadata.read(data)[CONTRACT])
        self.interpreter = Interpreter(model_content=data, num_threads=num_threads)
        listed = self.interpreter.get_signature_list()
        calls = {n: self.interpreter.get_signature_runner(n) for n in listed}
        super().__init__(calls, contract, loop)


def _trim(ids):
    """Drops the padding columns every row has: the encoder's work is the
    longest real source, not the exported width."""
    ids = np.asarray(ids, np.int32)
    real = np.flatnonzero((ids != 0).any(axis=0))
    width = int(real[-1]) + 1 if real.size else 1
    return ids[:, :width]
