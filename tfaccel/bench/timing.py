"""Timing of whole-sequence greedy generation, the same way in every runtime.

Every runtime tfaccel exports to has the Keras model's `generate(ids,
max_length)`: greedy decoding with the key/value cache until each sequence
has emitted EOS, padded with 0 after it. `benchmark` times each of them on
the same batches of real test sources, runtime after runtime within one
repeat, so that the ratios between them come from one run on one (shared,
noisy) machine.

```python
rows = benchmark({"keras": model, "tflite_int8": LiteRTModel(path)}, sources,
                 batch_sizes=[1, 16], warmup=5, repeats=30, encode=encode)
speedups(rows, "keras")
```
"""

import time

import numpy as np

from tfaccel.data import PAD_ID
from tfaccel.errors import UserError


def _percentile(seconds, q):
    return float(np.percentile(np.asarray(seconds) * 1e3, q))


def summarize(seconds, tokens, batch_size):
    """Returns a timing row from per-run seconds and generated-token counts.

    Args:
        seconds: wall time of each timed `generate` call.
        tokens: tokens generated in each call (EOS included, padding not).
        batch_size: sequences per call.

    Returns:
        A dict: `batch_size`, `runs`, `p50_ms` and `p90_ms` (milliseconds
        per call), `ms_per_sequence` (p50 / batch size),
        `tokens_per_second` and `sequences_per_second` (over all timed
        calls), `mean_tokens` (per sequence).
    """
    total = float(np.sum(seconds))
    p50 = _percentile(seconds, 50)
    return {
        "batch_size": batch_size,
        "runs": len(seconds),
        "p50_ms": p50,
        "p90_ms": _percentile(seconds, 90),
        "ms_per_sequence": p50 / batch_size,
        "tokens_per_second": float(np.sum(tokens)) / total,
        "sequences_per_second": batch_size * len(seconds) / total,
        "mean_tokens": float(np.sum(tokens)) / (batch_size * len(seconds)),
    }


def generated_tokens(ids):
    """Counts generated tokens up to and including EOS (padding is 0)."""
    return int(np.sum(np.asarray(ids) != PAD_ID))


def make_batches(sources, batch_size, count, encode):
    """Returns `count` encoded batches of `batch_size` consecutive sources.

    The sources are cycled (repeated) when there are fewer than needed.
    """
    if not sources:
        raise UserError("No sources to time generation on; pass at least one.")
    batches = []
    for i in range(count):
        start = i * batch_size
        picked = [sources[(start + j) % len(sources)] for j in range(batch_size)]
        batches.append(np.asarray(encode(picked), dtype=np.int32))
    return batches


def benchmark(
    runners,
    sources,
    batch_sizes=(1, 16),
    warmup=5,
    repeats=30,
    encode=None,
    max_length=None,
    log=print,
):
    """Times greedy generation of every runner on the same real batches.

    Each repeat runs every runner once, one after the other, on the same
    batch; repeats use different batches of `sources`. Warm-up calls (which
    also trace and compile) are not timed.

    Args:
        runners: dict of name -> object with `generate(ids, max_length)`
            (a Keras model, or a runner from `tfaccel.export.api.load`).
        sources: list of real source strings (or anything `encode` takes).
        batch_sizes: sequences per call, one row per runner and size.
        warmup: untimed calls per runner and size.
        repeats: timed calls per runner and size.
        encode: callable turning a list of sources into an int id array of
            a fixed width (so every call has the same shape).
        max_length: most tokens to generate per sequence.
        log: callable for one progress line per batch size.

    Returns:
        A list of rows: `{"name", **summarize(...)}`, in the order of
        `batch_sizes`, then `runners`.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise UserError(f"`repeats` must be an int >= 1. Received: repeats={repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise UserError(f"`warmup` must be an int >= 0. Received: warmup={warmup!r}")
    if not runners:
        raise UserError("No runtimes to time; pass at least one runner.")
    rows = []
    for batch_size in batch_sizes:
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or (batch_size < 1)
        ):
            raise UserError(
                f"Batch sizes must be ints >= 1. Received: batch_size={batch_size!r}"
            )
        batches = make_batches(sources, batch_size, warmup + repeats, encode)
        seconds = {name: [] for name in runners}
        tokens = {name: [] for name in runners}
        for i, batch in enumerate(batches):
            for name, runner in runners.items():
                start = time.perf_counter()
                ids = runner.generate(batch, max_length)
                elapsed = time.perf_counter() - start
                if i >= warmup:
                    seconds[name].append(elapsed)
                    tokens[name].append(generated_tokens(ids))
        for name in runners:
            rows.append(
                {"name": name, **summarize(seconds[name], tokens[name], batch_size)}
            )
        log(
            f"Benchmark batch {batch_size}: "
            + ", ".join(
                f"{row['name']} {row['ms_per_sequence']:.2f} ms/seq"
                for row in rows
                if row["batch_size"] == batch_size
            )
        )
    return rows


def speedups(rows, reference):
    """Adds `ratio`: the reference's p50 over each row's, at the same batch size.

    Args:
        rows: rows from `benchmark`; changed in place and returned.
        reference: the name of the row to compare against.

    Returns:
        `rows`; `ratio` is None where the reference was not timed.
    """
    p50 = {row["batch_size"]: row["p50_ms"] for row in rows if row["name"] == reference}
    for row in rows:
        base = p50.get(row["batch_size"])
        row["ratio"] = None if base is None else base / row["p50_ms"]
    return rows
