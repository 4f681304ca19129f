"""Times cached against uncached greedy generation, in one run.

Both paths are compiled TensorFlow graphs of the same model; the uncached one
re-runs the whole decoder over the prefix at every step, the cached one
decodes one position with a fixed-size key/value cache. Every sequence runs
the full length (no early stop at EOS), so random weights are fine.

    python tools/generation_speed.py --preset base --batch 1 --tokens 32
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfaccel.bench.machine import machine_info  # noqa: E402
from tfaccel.models import Seq2SeqTransformer  # noqa: E402


def _time(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # returns numpy: the device work is finished
        times.append(time.perf_counter() - start)
    return np.array(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--source-length", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    model = Seq2SeqTransformer.from_preset(args.preset)
    rng = np.random.default_rng(0)
    ids = rng.integers(
        4, model.encoder_vocabulary_size, (args.batch, args.source_length)
    )
    ids = ids.astype("int32")
    results = {}
    for use_cache in (True, False):

        def fn(use_cache=use_cache):
            return model.generate(ids, args.tokens, use_cache, stop_at_eos=False)

        times = _time(fn, args.warmup, args.repeats)
        results["cached" if use_cache else "uncached"] = {
            "p50_ms": float(np.percentile(times, 50) * 1e3),
            "p90_ms": float(np.percentile(times, 90) * 1e3),
            "tokens_per_s": args.batch * args.tokens / float(np.median(times)),
        }
    speedup = results["uncached"]["p50_ms"] / results["cached"]["p50_ms"]
    summary = {
        "preset": args.preset,
        "batch": args.batch,
        "tokens": args.tokens,
        "machine": machine_info(),
        **results,
        "speedup_p50": speedup,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
