"""Checks that cached and uncached greedy generation give identical tokens.

Runs a trained baseline on the first N test sources of its task, once with
the key/value cache and once re-running the whole decoder every step, and
counts the sequences whose tokens differ.

    python tools/check_cached_generation.py savedmodels/baseline-g2p-small --count 200
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tfaccel import data, tasks  # noqa: E402
from tfaccel.recipe.baseline import load_baseline  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "baseline", help="a baseline folder (model.keras, metrics.json)"
    )
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()

    model, metrics = load_baseline(args.baseline)
    config = metrics["config"]
    task = tasks.get_task(config["task"], config["max_examples"])
    sources = task.sources("test")[: args.count]
    ids = data.encode_sources(sources, task.source_vocab, task.max_source_length)
    length = task.max_generate_length
    cached = model.generate(ids, length, use_cache=True)
    uncached = model.generate(ids, length, use_cache=False)
    differing = int((cached != uncached).any(axis=1).sum())
    print(
        json.dumps(
            {
                "baseline": args.baseline,
                "sequences": len(sources),
                "identical": len(sources) - differing,
                "differing": differing,
                "tokens_compared": int(np.prod(cached.shape)),
            },
            indent=2,
        )
    )
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
