"""The generation timing harness: what it counts, not how fast anything is."""

import numpy as np
import pytest

from tfaccel.bench import timing
from tfaccel.errors import UserError


class FakeRunner:
    """Generates a known number of tokens per source, recording its inputs."""

    def __init__(self, lengths):
        self.lengths = lengths  # source id -> tokens generated, EOS included
        self.calls = []

    def generate(self, ids, max_length=None):
        self.calls.append(ids.copy())
        out = np.zeros((len(ids), max_length or 8), np.int32)
        for row, source in enumerate(ids[:, 0]):
            n = self.lengths[int(source)]
            out[row, : n - 1] = 7
            out[row, n - 1] = 2  # EOS, then padding
        return out


def encode(sources):
    return np.array([[s, 1, 0] for s in sources], np.int32)


def test_generated_tokens_stop_at_padding():
    ids = np.array([[5, 6, 2, 0, 0], [2, 0, 0, 0, 0]])
    assert timing.generated_tokens(ids) == 4


def test_summarize_rows():
    row = timing.summarize([0.010, 0.020, 0.030, 0.040], [8, 8, 8, 8], batch_size=2)
    assert row["runs"] == 4 and row["batch_size"] == 2
    assert row["p50_ms"] == pytest.approx(25.0)
    assert row["p50_ms"] <= row["p90_ms"] == pytest.approx(37.0)
    assert row["ms_per_sequence"] == pytest.approx(12.5)
    assert row["tokens_per_second"] == pytest.approx(32 / 0.1)
    assert row["sequences_per_second"] == pytest.approx(8 / 0.1)
    assert row["mean_tokens"] == pytest.approx(4.0)


def test_batches_cycle_through_the_sources():
    batches = timing.make_batches([10, 11, 12], batch_size=2, count=3, encode=encode)
    assert [b[:, 0].tolist() for b in batches] == [[10, 11], [12, 10], [11, 12]]


def test_benchmark_times_every_runner_on_the_same_batches():
    lengths = {10: 3, 11: 5, 12: 4}
    a, b = FakeRunner(lengths), FakeRunner(lengths)
    rows = timing.benchmark(
        {"a": a, "b": b},
        [10, 11, 12],
        batch_sizes=[1, 2],
        warmup=2,
        repeats=3,
        encode=encode,
        max_length=8,
        log=lambda line: None,
    )
    assert [(r["name"], r["batch_size"]) for r in rows] == [
        ("a", 1),
        ("b", 1),
        ("a", 2),
        ("b", 2),
    ]
    assert len(a.calls) == len(b.calls) == 2 * (2 + 3)  # warm-up calls included
    for x, y in zip(a.calls, b.calls, strict=True):
        np.testing.assert_array_equal(x, y)
    # Timed runs only (the last 3 of 5): batch 1 sees sources 12, 10, 11.
    assert rows[0]["runs"] == 3
    assert rows[0]["mean_tokens"] == pytest.approx((4 + 3 + 5) / 3)
    assert all(r["p50_ms"] <= r["p90_ms"] for r in rows)


def test_speedups_against_a_reference():
    rows = [
        {"name": "base", "batch_size": 1, "p50_ms": 30.0},
        {"name": "fast", "batch_size": 1, "p50_ms": 10.0},
        {"name": "fast", "batch_size": 16, "p50_ms": 50.0},
    ]
    timing.speedups(rows, "base")
    assert [r["ratio"] for r in rows] == [1.0, 3.0, None]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"repeats": 0}, "repeats"),
        ({"warmup": -1}, "warmup"),
        ({"batch_sizes": [0]}, "Batch sizes"),
    ],
)
def test_bad_settings_are_user_errors(kwargs, match):
    with pytest.raises(UserError, match=match):
        timing.benchmark(
            {"a": FakeRunner({1: 2})}, [1], encode=encode, log=print, **kwargs
        )


def test_no_sources_is_a_user_error():
    with pytest.raises(UserError, match="No sources"):
        timing.make_batches([], 1, 1, encode)


def test_keras_model_and_litert_export_time_the_same_words(tmp_path):
    import keras

    import tfaccel
    from tfaccel.export.api import load
    from tfaccel.models import Seq2SeqTransformer

    keras.utils.set_random_seed(0)
    model = Seq2SeqTransformer.from_preset("tiny")
    ids = np.full((1, 6), 5, np.int32)
    model.generate(ids, 4)
    result = tfaccel.export(model, tmp_path, ["tflite_fp32"], log=lambda line: None)
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
        encode=lambda batch: np.array(
            [row + [0] * (6 - len(row)) for row in batch], np.int32
        ),
        max_length=6,
        log=lambda line: None,
    )
    timing.speedups(rows, "keras")
    by_name = {(r["name"], r["batch_size"]): r for r in rows}
    for size in (1, 2):
        keras_row, lite_row = by_name["keras", size], by_name["tflite_fp32", size]
        assert keras_row["ratio"] == 1.0 and lite_row["ratio"] > 0
        # The same greedy tokens, so the same token counts.
        assert keras_row["mean_tokens"] == lite_row["mean_tokens"]
        assert 1 <= keras_row["mean_tokens"] <= 6
