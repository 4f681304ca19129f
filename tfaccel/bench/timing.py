"""Timing of whole-sequence greedy generation, the same way in every runtime.

Every runtime tfaccel exports to has the Keras model's `generate(ids,
max_length)`: greedy decoding with the key/value cache until each sequence
has emitted EOS, padded with 0 after it. `time_generation` times one
generate function; `benchmark` times several runtimes on the same batches of
real test sources, each of them once per repeat (in a rotating order), so
that the ratios between them come from one run on one shared, noisy
machine.

```python
rows = benchmark({"baseline": model, "tflite_int8": LiteRTModel(path)}, sources,
                 batch_sizes=[1, 16], warmup=5, repeats=30, encode=encode)
speedups(rows, "baseline")
```
"""

import contextlib
import gc
import time

import numpy as np

from tfaccel.data import EOS_ID, PAD_ID
from tfaccel.errors import UserError


def generated_tokens(ids):
    """Counts generated tokens: each sequence's up to and including its EOS.

    A sequence without EOS (it hit `max_length`) counts its non-padding
    tokens. Whatever a runtime leaves after EOS (0s in tfaccel's) is not
    counted.

    Args:
        ids: int array `(batch, max_length)`, as `generate` returns (no BOS).

    Returns:
        The total, an int.

    Example:

    >>> generated_tokens([[5, 6, 2, 0], [7, 2, 9, 9], [5, 5, 5, 5]])
    9
    """
    ids = np.asarray(ids)
    is_eos = ids == EOS_ID  # (batch, max_length)
    ended = is_eos.any(axis=1)
    counts = np.where(ended, is_eos.argmax(axis=1) + 1, (ids != PAD_ID).sum(axis=1))
    return int(counts.sum())


def summarize(seconds, tokens, batch_size):
    """Returns a timing row from per-call seconds and generated-token counts.

    Args:
        seconds: wall time of each timed `generate` call.
        tokens: tokens generated in each call (`generated_tokens`).
        batch_size: sequences per call.

    Returns:
        A dict: `batch_size`, `runs`, `p50_ms`, `p90_ms` and `p99_ms`
        (milliseconds per call, i.e. per batch; linearly interpolated
        percentiles, so with fewer than 100 runs p99 lies between the two
        slowest), `ms_per_sequence` (p50 / batch size),
        `tokens_per_second` and `sequences_per_second` (over the summed
        time of all timed calls), `mean_tokens` (per sequence).
    """
    milliseconds = np.asarray(seconds, dtype=np.float64) * 1e3
    total = max(float(np.sum(seconds)), 1e-12)  # a coarse clock can read 0
    p50 = float(np.percentile(milliseconds, 50))
    sequences = batch_size * len(seconds)
    return {
        "batch_size": batch_size,
        "runs": len(seconds),
        "p50_ms": p50,
        "p90_ms": float(np.percentile(milliseconds, 90)),
        "p99_ms": float(np.percentile(milliseconds, 99)),
        "ms_per_sequence": p50 / batch_size,
        "tokens_per_second": float(np.sum(tokens)) / total,
        "sequences_per_second": sequences / total,
        "mean_tokens": float(np.sum(tokens)) / sequences,
    }


def time_generation(generate, batches, warmup=5, repeats=30):
    """Times one generate function on batches of source ids.

    Runs `warmup + repeats` calls, the i-th on `batches[i % len(batches)]`,
    and times the last `repeats` (the warm-up calls also trace and compile).
    The timer stops once the ids are a numpy array on the host.

    Args:
        generate: callable, `generate(source_ids) -> ids`: int32 sources
            `(batch, length)` in, generated ids `(batch, max_length)` out.
        batches: list of int arrays of source ids, all of one batch size.
        warmup: int >= 0, untimed calls first.
        repeats: int >= 1, timed calls.

    Returns:
        A row as `summarize` returns it.

    Example:

    >>> row = time_generation(lambda ids: model.generate(ids, 32), batches)
    >>> row["p50_ms"], row["tokens_per_second"]
    """
    _check_runs(warmup, repeats)
    batch_size = _batch_size(batches)
    seconds, tokens = [], []
    with _collector_paused():
        for i in range(warmup + repeats):
            elapsed, count = _timed_call(generate, batches[i % len(batches)])
            if i >= warmup:
                seconds.append(elapsed)
                tokens.append(count)
    return summarize(seconds, tokens, batch_size)


def make_batches(sources, batch_size, count, encode=None):
    """Returns `count` encoded batches of `batch_size` sources each.

    With enough sources, the batches take distinct sources spread evenly
    over the whole list (test splits are often sorted); with too few, the
    sources are cycled (repeated) to fill them.

    Args:
        sources: list of real source items.
        batch_size: int, sources per batch.
        count: int, number of batches.
        encode: callable turning a list of sources into an int id array
            `(batch_size, length)`; `None` takes each source as a list of
            ids and pads them with 0.

    Returns:
        A list of int32 arrays.
    """
    if len(sources) == 0:
        raise UserError("No sources to time generation on; pass at least one.")
    needed = batch_size * count
    if needed <= len(sources):
        picks = np.arange(needed) * len(sources) // needed
    else:
        picks = np.arange(needed) % len(sources)
    encode = encode or _pad_ids
    return [
        np.asarray(
            encode([sources[i] for i in picks[start : start + batch_size]])
        ).astype(np.int32)
        for start in range(0, needed, batch_size)
    ]


def benchmark(
    runners,
    sources,
    batch_sizes=(1, 16),
    warmup=5,
    repeats=30,
    encode=None,
    max_length=None,
    log=print,
    width=None,
):
    """Times greedy generation of every runner on the same real batches.

    For each batch size, every repeat runs every runner once on the same
    batch, in an order that rotates from one repeat to the next; repeats
    use different batches of `sources`. All batches are padded with 0 to
    one width, so a compiled Keras `generate` is not retraced while timed.

    Args:
        runners: dict of name -> a Keras model or a runner from
            `tfaccel.export.api.load` (anything with `generate(ids,
            max_length)`), or a callable `f(ids, max_length)`, such as
            `functools.partial(model.generate, use_cache=False)`.
        sources: list of real source items (e.g. `task.sources("test")`).
        batch_sizes: sequences per call, one row per runner and size.
        warmup: int >= 0, untimed calls per runner and size.
        repeats: int >= 1, timed calls per runner and size.
        encode: as `make_batches`.
        max_length: most tokens to generate per sequence, EOS included.
        log: callable for one progress line per batch size.
        width: source width to pad every batch to; defaults to the widest.

    Returns:
        A list of rows, `{"name": name, **summarize(...)}`, in the order of
        `batch_sizes`, then of `runners`.
    """
    _check_runs(warmup, repeats)
    generate = _generate_functions(runners, max_length)
    for batch_size in batch_sizes:
        _check_batch_size(batch_size)
    batches = {
        size: make_batches(sources, size, warmup + repeats, encode)
        for size in batch_sizes
    }
    batches = _pad_to_one_width(batches, width)
    rows = []
    for size in batch_sizes:
        rows += _time_interleaved(generate, batches[size], warmup)
        log(
            f"Benchmark batch {size}: "
            + ", ".join(
                f"{row['name']} {row['ms_per_sequence']:.2f} ms/seq"
                for row in rows
                if row["batch_size"] == size
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

    Example:

    >>> speedups(rows, "baseline")  # ratio 2.0: twice as fast as the baseline
    """
    p50 = {row["batch_size"]: row["p50_ms"] for row in rows if row["name"] == reference}
    for row in rows:
        base = p50.get(row["batch_size"])
        row["ratio"] = None if base is None else base / row["p50_ms"]
    return rows


def _time_interleaved(generate, batches, warmup):
    # One row per runner, each timed on every batch; runner order rotates.
    names = list(generate)
    seconds = {name: [] for name in names}
    tokens = {name: [] for name in names}
    with _collector_paused():
        for i, batch in enumerate(batches):
            turn = i % len(names)
            for name in names[turn:] + names[:turn]:
                elapsed, count = _timed_call(generate[name], batch)
                if i >= warmup:
                    seconds[name].append(elapsed)
                    tokens[name].append(count)
    size = len(batches[0])
    return [
        {"name": name, **summarize(seconds[name], tokens[name], size)} for name in names
    ]


@contextlib.contextmanager
def _collector_paused():
    # Python's cyclic garbage collector runs when allocations pass a
    # threshold, and a full pass walks every object in the process: after a
    # training run (tools/peers.py trains tfmot's twin in-process) that
    # pause landed inside timed calls and slowed the short ones most (a
    # 2.2 ms LiteRT call by ~30%). As `timeit` does, collect once, then
    # keep the collector off while timing.
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _timed_call(generate, batch):
    # Returns (seconds, generated tokens) of one call.
    start = time.perf_counter()
    ids = np.asarray(generate(batch))
    elapsed = time.perf_counter() - start
    if ids.ndim != 2 or len(ids) != len(batch):
        raise UserError(
            "`generate` must return ids of shape (batch, max_length), one row "
            f"per source. Received: shape={ids.shape}, batch={len(batch)}"
        )
    return elapsed, generated_tokens(ids)


def _generate_functions(runners, max_length):
    # name -> f(ids), for runners with `generate` and for plain callables.
    if not runners:
        raise UserError("No runtimes to time; pass at least one runner.")
    functions = {}
    for name, runner in runners.items():
        function = getattr(runner, "generate", runner)
        if not callable(function):
            raise UserError(
                "A runner must have `generate(ids, max_length)` or be callable. "
                f"Received: {name}={runner!r}"
            )
        functions[name] = lambda ids, f=function: f(ids, max_length)
    return functions


def _pad_to_one_width(batches, width):
    # {size: [array]} with every array padded with PAD_ID to one width.
    widest = max(b.shape[1] for group in batches.values() for b in group)
    width = widest if width is None else width
    if widest > width:
        raise UserError(
            f"Sources of {widest} ids do not fit the requested width. "
            f"Received: width={width}"
        )
    return {
        size: [np.pad(b, [(0, 0), (0, width - b.shape[1])]) for b in group]
        for size, group in batches.items()
    }


def _pad_ids(sequences):
    # Sources given as id lists -> one zero-padded int32 array.
    width = max(len(seq) for seq in sequences)
    out = np.full((len(sequences), width), PAD_ID, np.int32)
    for row, seq in zip(out, sequences, strict=True):
        row[: len(seq)] = seq
    return out


def _batch_size(batches):
    sizes = {len(b) for b in batches}
    if len(sizes) != 1:
        raise UserError(
            "`batches` must be a non-empty list of arrays of one batch size. "
            f"Received: batch sizes {sorted(sizes)}"
        )
    return sizes.pop()


def _check_runs(warmup, repeats):
    if not _is_int(repeats) or repeats < 1:
        raise UserError(f"`repeats` must be an int >= 1. Received: repeats={repeats!r}")
    if not _is_int(warmup) or warmup < 0:
        raise UserError(f"`warmup` must be an int >= 0. Received: warmup={warmup!r}")


def _check_batch_size(batch_size):
    if not _is_int(batch_size) or batch_size < 1:
        raise UserError(
            f"Batch sizes must be ints >= 1. Received: batch_size={batch_size!r}"
        )


def _is_int(value):
    return isinstance(value, int | np.integer) and not isinstance(value, bool)
