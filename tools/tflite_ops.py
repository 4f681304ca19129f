"""Lists the operators of a .tflite file by signature, with their tensor types.

Shows which layers run as int8 kernels (inputs, weights and outputs INT8),
how many weight scales they have (per-channel when > 1), the fraction of
zeros in their int8 weights and how many different values those hold.

    python tools/tflite_ops.py savedmodels/g2p-qat-int8/model_int8.tflite
"""

import argparse
import collections

from tfaccel.export import tflite


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a .tflite file")
    args = parser.parse_args()
    rows = tflite.op_report(args.path)
    counts = collections.Counter(
        (
            r["subgraph"],
            r["op"],
            "/".join(t or "-" for t in r["inputs"][:2]),
            "/".join(r["outputs"]),
            "per-channel" if r["weight_scales"] > 1 else "",
            "" if r["weight_zeros"] is None else f"{r['weight_zeros']:.0%} zeros",
            "" if r["weight_distinct"] is None else f"{r['weight_distinct']} values",
        )
        for r in rows
    )
    line = "{:>5}  {:<12} {:<22} {:<16} {:<9} {}"
    print(line.format("count", "signature", "op", "inputs", "outputs", "weights"))
    for key, count in sorted(counts.items()):
        signature, op, inputs, outputs, scales, zeros, distinct = key
        weights = " ".join(x for x in (scales, zeros, distinct) if x)
        print(line.format(count, signature, op, inputs, outputs, weights))
    print("stored bytes:", tflite.stored_bytes(args.path))


if __name__ == "__main__":
    main()
