"""Greedy decoding of a lean ONNX folder with only numpy and ONNX Runtime.

Everything the loop needs comes from the folder: the `tfaccel.contract`
entry of each file's `metadata_props` (special ids, lengths, cache layout,
which ids are never generated) and the graphs `encode.onnx`,
`decode_step.onnx` and `init_cache.onnx` (without it, the cache starts as
the zeros the contract describes). `decode_step.onnx` returns the updated
caches as `updated_<input name>`. This script does not import tfaccel.

    python tools/drive_onnx.py savedmodels/g2p/onnx_lean --ids 5,6,7,8

The last line printed is the greedy output ids, space-separated, EOS
included when it is reached.
"""

import json
import os
import sys

import numpy as np
import onnxruntime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from greedy_loop import command_line, greedy  # noqa: E402  (tools/greedy_loop.py, numpy only)

CONTRACT = "tfaccel.contract"
UPDATED = "updated_"


def _session(path, threads):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(
        path, options, providers=["CPUExecutionProvider"]
    )


def _run(session, **feed):
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, feed)
    pairs = zip(names, values, strict=True)
    return {name.removeprefix(UPDATED): value for name, value in pairs}


def _zeros(contract):
    cache, layout = {}, contract["self_cache"]
    for layer, (heads, dim) in enumerate(
        zip(layout["heads"], layout["head_dim"], strict=True)
    ):
        for kind in ("k", "v"):
            shape = (1, heads, contract["target_length"], dim)
            cache[f"self_{kind}_{layer}"] = np.zeros(shape, np.float32)
    return cache


def decode(folder, ids, max_length=None, threads=1):
    """Greedy ids for one source (a list of ints), EOS included."""
    if not os.path.isfile(os.path.join(folder, "encode.onnx")):
        raise ValueError(f"no encode.onnx in '{folder}': not a lean ONNX folder")
    encode = _session(os.path.join(folder, "encode.onnx"), threads)
    step = _session(os.path.join(folder, "decode_step.onnx"), threads)
    contract = json.loads(encode.get_modelmeta().custom_metadata_map[CONTRACT])
    if not 0 < len(ids) <= contract["max_source_length"]:
        raise ValueError(
            f"give 1 to {contract['max_source_length']} source ids. "
            f"Received: {len(ids)}"
        )
    init_path = os.path.join(folder, "init_cache.onnx")
    if os.path.isfile(init_path):
        batch = np.array(1, np.int32)
        cache = _run(_session(init_path, threads), batch_size=batch)
    else:
        cache = _zeros(contract)
    encoded = _run(encode, encoder_token_ids=np.array([ids], np.int32))

    def run_step(**feed):
        return _run(step, **feed)

    return greedy(run_step, contract, cache, encoded, max_length)


def main(argv=None):
    try:
        args = command_line(__doc__, "folder", "a lean ONNX folder", argv)
        out = decode(args.folder, args.ids, args.max_length, args.threads)
    except (OSError, ValueError, KeyError) as error:
        print(f"drive_onnx: error: {error}", file=sys.stderr)
        return 2
    print(" ".join(map(str, out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
