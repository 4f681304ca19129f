"""Greedy decoding of a lean `.tflite` file with only numpy and LiteRT.

Everything the loop needs comes from the file: its `tfaccel.contract`
metadata entry (special ids, lengths, which ids are never generated) and
its signatures (`encode`, `init_cache`, `decode_step`). This script does
not import tfaccel: it is what an app developer holding only the file
writes, and the tests check it reproduces tfaccel's generation.

    python tools/drive_litert.py savedmodels/g2p/model_lean.tflite --ids 5,6,7,8

The last line printed is the greedy output ids, space-separated, EOS
included when it is reached.
"""

import json
import os
import sys

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from greedy_loop import command_line, greedy  # noqa: E402  (tools/greedy_loop.py, numpy only)

CONTRACT = "tfaccel.contract"


def read_contract(data):
    """The contract dict stored in the file's metadata."""
    try:
        model = schema.Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name().decode() == CONTRACT:
                stored = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
                return json.loads(stored)
    except Exception as error:  # a truncated or foreign file
        raise ValueError(f"not a TFLite file ({type(error).__name__})") from None
    raise ValueError(f"the file has no '{CONTRACT}' metadata: not a lean export")


def decode(interpreter, contract, ids, max_length=None):
    """Greedy ids for one source (a list of ints), EOS included."""
    encode = interpreter.get_signature_runner("encode")
    step = interpreter.get_signature_runner("decode_step")
    init = interpreter.get_signature_runner("init_cache")
    encoded = encode(encoder_token_ids=np.array([ids], np.int32))
    cache = init(batch_size=np.array(1, np.int32))
    return greedy(step, contract, cache, encoded, max_length)


def main(argv=None):
    try:
        args = command_line(__doc__, "model", "a lean .tflite file", argv)
        ids = args.ids
        with open(args.model, "rb") as file:
            data = file.read()
        contract = read_contract(data)
    except (OSError, ValueError) as error:
        print(f"drive_litert: error: {error}", file=sys.stderr)
        return 2
    if not 0 < len(ids) <= contract["max_source_length"]:
        print(
            f"drive_litert: error: give 1 to {contract['max_source_length']} "
            f"source ids. Received: {len(ids)}",
            file=sys.stderr,
        )
        return 2
    interpreter = Interpreter(model_content=data, num_threads=args.threads)
    print(" ".join(map(str, decode(interpreter, contract, ids, args.max_length))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
