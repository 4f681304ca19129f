"""The generation timing harness: what it counts, not how fast anything is."""

import numpy as np
import pytest

from tfaccel.bench import timing
from tfaccel.errors import UserError

ROW_KEYS = {
    "batch_size",
    "runs",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "ms_per_sequence",
    "tokens_per_second",
    "sequences_per_second",
    "mean_tokens",
}


class FakeRunner:
    """Generates a known number of tokens per source, recording its inputs."""

    def __init__(self, lengths, calls=None, name=None):
        self.lengths = lengths  # source id -> tokens generated, EOS included
        self.inputs = []
        self.calls = calls  # a log shared by several runners, or None
        self.name = name

    def generate(self, ids, max_length=None):
        self.inputs.append(ids.copy())
        if self.calls is not None:
            self.calls.append(self.name)
        out = np.zeros((len(ids), max_length or 8), np.int32)
        for row, source in enumerate(ids[:, 0]):
            n = self.lengths[int(source)]
            out[row, : n - 1] = 7
            out[row, n - 1] = 2  # EOS, then padding
        return out


class FakeClock:
    """A `time` stand-in whose clock only moves when told to."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def encode(sources):
    return np.array([[s, 1, 0] for s in sources], np.int32)


def quiet(line):
    pass


# === Token counting ===


def test_generated_tokens_count_up_to_and_including_eos():
    ids = np.array([[5, 6, 2, 0, 0], [2, 0, 0, 0, 0]])
    assert timing.generated_tokens(ids) == 3 + 1


def test_generated_tokens_ignore_whatever_follows_eos():
    # A runtime that keeps decoding after EOS: its tail is not generation.
    ids = np.array([[5, 2, 9, 9, 2], [7, 7, 7, 2, 5]])
    assert timing.generated_tokens(ids) == 2 + 4


def test_sequences_without_eos_count_every_token():
    ids = np.array([[5, 6, 7, 8], [9, 2, 0, 0]])
    assert timing.generated_tokens(ids) == 4 + 2


# === Rows ===


def test_summarize_rows():
    row = timing.summarize([0.010, 0.020, 0.030, 0.040], [8, 8, 8, 8], batch_size=2)
    assert set(row) == ROW_KEYS
    assert row["runs"] == 4 and row["batch_size"] == 2
    assert row["p50_ms"] == pytest.approx(25.0)
    assert row["p50_ms"] <= row["p90_ms"] == pytest.approx(37.0)
    assert row["ms_per_sequence"] == pytest.approx(12.5)
    assert row["tokens_per_second"] == pytest.approx(32 / 0.1)
    assert row["sequences_per_second"] == pytest.approx(8 / 0.1)
    assert row["mean_tokens"] == pytest.approx(4.0)


def test_summarize_reports_p99_between_p90_and_the_slowest_call():
    # 100 calls of 1..100 ms: numpy's linear percentiles are 50.5, 90.1, 99.01.
    seconds = np.arange(1, 101) / 1e3
    row = timing.summarize(seconds, [1] * 100, batch_size=1)
    assert row["p50_ms"] == pytest.approx(50.5)
    assert row["p90_ms"] == pytest.approx(90.1)
    assert row["p99_ms"] == pytest.approx(99.01)
    # One slow outlier moves p99, not p50 or p90.
    row = timing.summarize([0.010] * 99 + [1.0], [1] * 100, batch_size=4)
    assert row["p50_ms"] == row["p90_ms"] == pytest.approx(10.0)
    assert row["p99_ms"] == pytest.approx(10.0 + 0.01 * 990.0)


# === time_generation ===


def test_time_generation_cycles_batches_and_times_only_the_repeats(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing, "time", clock)
    seen = []

    def generate(ids):
        seen.append(int(ids[0, 0]))
        clock.now += 5.0 if len(seen) <= 2 else 0.010 * (len(seen) - 2)
        return FakeRunner({10: 3, 11: 5}).generate(ids, 6)

    batches = [encode([10, 10]), encode([11, 11])]
    row = timing.time_generation(generate, batches, warmup=2, repeats=3)
    assert seen == [10, 11, 10, 11, 10]  # 2 warm-up calls, then 3 timed
    assert set(row) == ROW_KEYS
    assert row["runs"] == 3 and row["batch_size"] == 2
    # The 5 s warm-up calls are not in the timings: 10, 20 and 30 ms.
    assert row["p50_ms"] == pytest.approx(20.0)
    assert row["p90_ms"] == pytest.approx(28.0)
    assert row["ms_per_sequence"] == pytest.approx(10.0)
    # Timed calls generate 3 + 3, 5 + 5 and 3 + 3 tokens in 0.06 s.
    assert row["tokens_per_second"] == pytest.approx(22 / 0.06)
    assert row["sequences_per_second"] == pytest.approx(6 / 0.06)
    assert row["mean_tokens"] == pytest.approx(22 / 6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"repeats": 0}, "repeats"),
        ({"repeats": True}, "repeats"),
        ({"warmup": -1}, "warmup"),
        ({"warmup": 1.5}, "warmup"),
        ({"batches": []}, "non-empty"),
        ({"batches": [encode([10]), encode([10, 10])]}, "one batch size"),
    ],
)
def test_time_generation_bad_settings_are_user_errors(kwargs, match):
    kwargs = {"batches": [encode([10])], **kwargs}
    with pytest.raises(UserError, match=match):
        timing.time_generation(lambda ids: ids, **kwargs)


def test_generate_returning_the_wrong_rows_is_a_user_error():
    with pytest.raises(UserError, match="one row per source"):
        timing.time_generation(lambda ids: ids[:1], [encode([10, 11])], 0, 1)


# === Batches ===


def test_batches_cycle_through_too_few_sources():
    batches = timing.make_batches([10, 11, 12], batch_size=2, count=3, encode=encode)
    assert [b[:, 0].tolist() for b in batches] == [[10, 11], [12, 10], [11, 12]]


def test_batches_spread_over_enough_sources():
    batches = timing.make_batches(list(range(12)), 2, count=3, encode=encode)
    assert [b[:, 0].tolist() for b in batches] == [[0, 2], [4, 6], [8, 10]]


def test_batch_larger_than_the_sources_repeats_them():
    (batch,) = timing.make_batches([10, 11], batch_size=5, count=1, encode=encode)
    assert batch[:, 0].tolist() == [10, 11, 10, 11, 10]


def test_sources_given_as_ids_are_padded_with_zeros():
    batches = timing.make_batches([[5, 6, 7], [8]], batch_size=2, count=1)
    np.testing.assert_array_equal(batches[0], [[5, 6, 7], [8, 0, 0]])
    assert batches[0].dtype == np.int32


def test_no_sources_is_a_user_error():
    with pytest.raises(UserError, match="No sources"):
        timing.make_batches([], 1, 1, encode)


# === benchmark ===


def test_benchmark_times_every_runner_on_the_same_batches():
    lengths = {10: 3, 11: 5, 12: 4}
    calls = []
    a, b = FakeRunner(lengths, calls, "a"), FakeRunner(lengths, calls, "b")
    rows = timing.benchmark(
        {"a": a, "b": b},
        [10, 11, 12],
        batch_sizes=[1, 2],
        warmup=2,
        repeats=3,
        encode=encode,
        max_length=8,
        log=quiet,
    )
    assert [(r["name"], r["batch_size"]) for r in rows] == [
        ("a", 1),
        ("b", 1),
        ("a", 2),
        ("b", 2),
    ]
    assert all(set(r) == ROW_KEYS | {"name"} for r in rows)
    assert len(a.inputs) == len(b.inputs) == 2 * (2 + 3)  # warm-up calls included
    for x, y in zip(a.inputs, b.inputs, strict=True):
        np.testing.assert_array_equal(x, y)
    # Interleaved, in an order that rotates from one repeat to the next.
    assert calls[:4] == ["a", "b", "b", "a"]
    # Timed runs only (the last 3 of 5): batch 1 sees sources 12, 10, 11.
    assert rows[0]["runs"] == 3
    assert rows[0]["mean_tokens"] == pytest.approx((4 + 3 + 5) / 3)
    assert all(r["p50_ms"] <= r["p90_ms"] for r in rows)


def test_benchmark_pads_every_batch_to_one_width():
    runner = FakeRunner({5: 2, 8: 3})
    timing.benchmark(
        {"a": runner},
        [[5, 6, 7, 4], [8], [5, 6]],
        batch_sizes=[1, 2],
        warmup=1,
        repeats=2,
        max_length=4,
        log=quiet,
    )
    assert {ids.shape[1] for ids in runner.inputs} == {4}
    with pytest.raises(UserError, match="width=3"):
        timing.benchmark({"a": runner}, [[5, 6, 7, 4]], [1], 0, 1, width=3)


def test_benchmark_takes_plain_callables_with_max_length():
    seen = []

    def generate(ids, max_length):
        seen.append(max_length)
        return np.array([[7, 2, 0]] * len(ids), np.int32)

    (row,) = timing.benchmark(
        {"f": generate}, [10], [1], 0, 2, encode=encode, max_length=3, log=quiet
    )
    assert seen == [3, 3] and row["mean_tokens"] == 2.0


def test_garbage_collector_is_off_while_timing_and_restored_after():
    import gc

    states = []

    def generate(ids, max_length):
        states.append(gc.isenabled())
        return np.array([[7, 2, 0]] * len(ids), np.int32)

    assert gc.isenabled()
    timing.benchmark({"f": generate}, [10], [1], 1, 2, encode=encode, log=quiet)
    timing.time_generation(lambda ids: generate(ids, 3), [encode([10])], 1, 2)
    assert states == [False] * 6
    assert gc.isenabled()
    # A collector the caller had turned off stays off, even after an error.
    gc.disable()
    try:
        with pytest.raises(UserError, match="one row per source"):
            timing.time_generation(lambda ids: ids[:0], [encode([10])], 0, 1)
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(UserError, match="one row per source"):
        timing.time_generation(lambda ids: ids[:0], [encode([10])], 0, 1)
    assert gc.isenabled()


def test_benchmark_logs_one_line_per_batch_size():
    lines = []
    timing.benchmark(
        {"a": FakeRunner({10: 2})}, [10], [1, 4], 0, 1, encode=encode, log=lines.append
    )
    assert [line.split(":")[0] for line in lines] == [
        "Benchmark batch 1",
        "Benchmark batch 4",
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"repeats": 0}, "repeats"),
        ({"warmup": -1}, "warmup"),
        ({"batch_sizes": [0]}, "Batch sizes"),
        ({"runners": {}}, "No runtimes"),
        ({"runners": {"x": 3}}, "Received: x=3"),
    ],
)
def test_bad_settings_are_user_errors(kwargs, match):
    kwargs = {"runners": {"a": FakeRunner({1: 2})}, **kwargs}
    with pytest.raises(UserError, match=match):
        timing.benchmark(sources=[1], encode=encode, log=quiet, **kwargs)


# === Ratios ===


def test_speedups_against_a_reference():
    rows = [
        {"name": "base", "batch_size": 1, "p50_ms": 30.0},
        {"name": "fast", "batch_size": 1, "p50_ms": 10.0},
        {"name": "fast", "batch_size": 16, "p50_ms": 50.0},
    ]
    assert timing.speedups(rows, "base") is rows
    assert [r["ratio"] for r in rows] == [1.0, 3.0, None]


# === Real runtimes ===


def test_keras_model_and_litert_export_time_the_same_words(tmp_path):
    import keras

    import tfaccel
    from tfaccel.export.api import load
    from tfaccel.models import Seq2SeqTransformer

    keras.utils.set_random_seed(0)
    model = Seq2SeqTransformer.from_preset("tiny")
    model.generate(np.full((1, 6), 5, np.int32), 4)
    result = tfaccel.export(model, tmp_path, ["tflite_fp32"], log=quiet)
    runners = {
        "keras": model,
        "tflite_fp32": load("tflite_fp32", result["tflite_fp32"].path),
    }
    rows = timing.benchmark(
        runners,
        [[5, 6, 7], [8, 9], [10, 11, 12, 13]],
        batch_sizes=[1, 2],
        warmup=1,
        repeats=2,
        max_length=6,
        log=quiet,
    )
    timing.speedups(rows, "keras")
    by_name = {(r["name"], r["batch_size"]): r for r in rows}
    for size in (1, 2):
        keras_row, lite_row = by_name["keras", size], by_name["tflite_fp32", size]
        assert keras_row["runs"] == lite_row["runs"] == 2
        assert keras_row["ratio"] == 1.0 and lite_row["ratio"] > 0
        # The same greedy tokens, so the same token counts.
        assert keras_row["mean_tokens"] == lite_row["mean_tokens"]
        assert 1 <= keras_row["mean_tokens"] <= 6
