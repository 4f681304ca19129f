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

import argparse
import json
import os
import sys

import numpy as np
import onnxruntime

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
    steps = contract["target_length"] - 1
    steps = min(max_length or steps, steps)
    token, out = contract["bos_id"], []
    for index in range(steps):
        outputs = _run(
            step,
            token_ids=np.array([[token]], np.int32),
            **{contract["position_input"]: np.array(index, np.int32)},
            **cache,
            **encoded,
        )
        logits = np.array(outputs["logits"][0], np.float32)
        logits[contract["suppressed_ids"]] = -np.inf
        token = int(logits.argmax())
        out.append(token)
        if token == contract["eos_id"]:
            break
        cache = {name: outputs[name] for name in cache}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a lean ONNX folder (onnx_lean*)")
    parser.add_argument("--ids", required=True, help="source ids, e.g. 5,6,7,8")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        ids = [int(i) for i in args.ids.split(",") if i.strip()]
        out = decode(args.folder, ids, args.max_length, args.threads)
    except (OSError, ValueError, KeyError) as error:
        print(f"drive_onnx: error: {error}", file=sys.stderr)
        return 2
    print(" ".join(map(str, out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
