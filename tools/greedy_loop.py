"""The greedy loop shared by tools/drive_litert.py and tools/drive_onnx.py.

It needs only numpy and the artifact's contract (`tfaccel.contract`), so
that the drivers stay free of tfaccel.
"""

import argparse

import numpy as np


def greedy(step, contract, cache, encoded, max_length=None):
    """Greedy ids for one source, EOS included when it is reached.

    Args:
        step: callable taking the `decode_step` inputs by name and returning
            its outputs by name (`logits`, and the updated caches under the
            names of their inputs).
        contract: the artifact's contract dict.
        cache: the starting self-attention caches, by input name.
        encoded: the outputs of `encode` for the source, by name.
        max_length: the most tokens to generate; None for all the cache
            holds.
    """
    steps = contract["target_length"] - 1
    steps = min(max_length or steps, steps)
    token, out = contract["bos_id"], []
    for index in range(steps):
        outputs = step(
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


def command_line(doc, artifact, what, argv=None):
    """The drivers' arguments: the artifact, `--ids` (a list of ints),
    `--max-length` and `--threads`.

    Raises:
        ValueError: `--ids` is not a comma-separated list of integers.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(artifact, help=what)
    parser.add_argument("--ids", required=True, help="source ids, e.g. 5,6,7,8")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        args.ids = [int(i) for i in args.ids.split(",") if i.strip()]
    except ValueError:
        raise ValueError(f"--ids takes integers. Received: {args.ids!r}") from None
    return args
