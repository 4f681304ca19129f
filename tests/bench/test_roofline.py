"""Roofline figures: what they count and compute, not how fast anything is."""

import math

import numpy as np
import pytest

from tfaccel.bench import roofline
from tfaccel.compression.flops import kernel_macs
from tfaccel.errors import UserError
from tfaccel.models import Seq2SeqTransformer

MACHINE_KEYS = {
    "threads",
    "fp32_gflops",
    "int8_gops",
    "bandwidth_gbs",
    "copy_gbs",
    "scale_gbs",
    "add_gbs",
    "sum_gbs",
    "repeats",
    "method",
}
# A tiny config whose heads are not hidden_dim / num_heads wide (as after
# head pruning), so the counts below must use heads * head_dim.
SHRUNK = dict(
    encoder_vocabulary_size=11,
    decoder_vocabulary_size=10,
    hidden_dim=8,
    num_heads=2,
    head_dim=3,
    intermediate_dim=12,
    num_encoder_layers=1,
    num_decoder_layers=2,
    dropout=0.0,
)


@pytest.fixture(scope="module")
def tiny():
    return Seq2SeqTransformer.from_preset("tiny")


@pytest.fixture(scope="module")
def shrunk():
    return Seq2SeqTransformer(**SHRUNK)


def expected_params(h, heads, d, f, layers, vocab):
    # Per decoder layer: self-attention q, k, v, o; cross-attention q, o
    # (k, v run once per sequence); feedforward in and out.
    kernels = layers * (6 * h * heads * d + 2 * h * f) + h * vocab
    # Biases: self q, k, v (heads * d each), o (h); cross q, o; feedforward
    # (f, h); three layer norms (2h each). Then lm_head's bias and the token
    # and position embedding rows.
    others = layers * (4 * heads * d + 9 * h + f) + vocab + 2 * h
    return {"kernels": kernels, "others": others}


# === Decode-step bytes ===


def test_decode_step_params_of_tiny_preset(tiny):
    assert roofline.decode_step_params(tiny) == expected_params(16, 2, 8, 32, 2, 48)
    assert roofline.decode_step_params(tiny) == {"kernels": 5888, "others": 560}


def test_decode_step_params_with_set_head_width(shrunk):
    assert roofline.decode_step_params(shrunk) == expected_params(8, 2, 3, 12, 2, 10)


def test_decode_step_kernels_are_model_macs_less_encoder_and_cross_kv(shrunk):
    encoder = sum(kernel_macs(layer) for layer in shrunk.encoder_layers)
    cross_key_value = 2 * 8 * 2 * 3 * 2  # k and v, hidden x heads x head_dim, 2 layers
    expected = kernel_macs(shrunk) - encoder - cross_key_value
    assert roofline.decode_step_params(shrunk)["kernels"] == expected


def test_decode_step_params_leaves_model_alone(tiny):
    weights = [v.path for v in tiny.weights]
    roofline.decode_step_params(tiny)
    assert [v.path for v in tiny.weights] == weights


@pytest.mark.parametrize(
    "weight_format, kernel_bytes, other_bytes",
    [("fp32", 4, 4), ("fp16", 2, 2), ("int8", 1, 4)],
)
def test_decode_step_bytes_per_format(tiny, weight_format, kernel_bytes, other_bytes):
    expected = 5888 * kernel_bytes + 560 * other_bytes
    assert roofline.decode_step_bytes(tiny, weight_format) == expected


def test_decode_step_bytes_rejects_unknown_format(tiny):
    with pytest.raises(UserError, match="weight_format='int4'"):
        roofline.decode_step_bytes(tiny, "int4")


# === Floor ===


def test_floor_fraction_arithmetic():
    # 2 MB at 20 GB/s is 0.1 ms: a tenth of a 1 ms step.
    assert roofline.floor_fraction(1e-3, 2_000_000, 20.0) == pytest.approx(0.1)
    assert roofline.floor_fraction(5e-5, 1_000_000, 20.0) == pytest.approx(1.0)
    assert roofline.floor_fraction(2.5e-5, 1_000_000, 20.0) == pytest.approx(2.0)


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, "1"])
def test_floor_fraction_rejects_non_positive(bad):
    with pytest.raises(UserError, match="step_seconds"):
        roofline.floor_fraction(bad, 1_000_000, 20.0)


def test_floor_rows_use_batch_one_steps():
    rows = [
        {"name": "int8", "batch_size": 1, "p50_ms": 10.0, "mean_tokens": 10.0},
        {"name": "fp32", "batch_size": 1, "p50_ms": 20.0, "mean_tokens": 5.0},
        {"name": "int8", "batch_size": 16, "p50_ms": 30.0, "mean_tokens": 10.0},
        {"name": "other", "batch_size": 1, "p50_ms": 1.0, "mean_tokens": 1.0},
    ]
    step_bytes = {"int8": 2_000_000, "fp32": 8_000_000}
    out = roofline.floor_rows(rows, step_bytes, bandwidth_gbs=20.0)
    assert [row["name"] for row in out] == ["int8", "fp32"]
    assert out[0]["step_ms"] == pytest.approx(1.0)
    assert out[0]["floor_ms"] == pytest.approx(0.1)
    assert out[0]["floor_fraction"] == pytest.approx(0.1)
    assert out[1]["step_ms"] == pytest.approx(4.0)
    assert out[1]["floor_fraction"] == pytest.approx(0.1)


# === Kernels ===


def test_int8_matmul_is_the_exact_integer_product():
    rng = np.random.default_rng(1)
    # Ranges whose pairwise products fit int16, so any x86 kernel is exact
    # (AVX2 without VNNI saturates int16 pair sums).
    a = rng.integers(0, 128, (5, 40), dtype=np.uint8)
    b = rng.integers(-64, 64, (40, 7), dtype=np.int8)
    out = roofline.onnx_matmul(b, threads=1)(a)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, a.astype(np.int64) @ b.astype(np.int64))


def test_fp32_matmul_matches_numpy():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 16), dtype=np.float32)
    b = rng.standard_normal((16, 5), dtype=np.float32)
    out = roofline.onnx_matmul(b, threads=1)(a)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


def test_onnx_matmul_rejects_other_weights():
    with pytest.raises(UserError, match="dtype=float64"):
        roofline.onnx_matmul(np.ones((2, 2)))


# === Machine ===


def test_measure_machine_returns_positive_figures():
    machine = roofline.measure_machine(
        threads=1, seconds=0.01, matmul_size=16, array_mib=0.25
    )
    assert set(machine) == MACHINE_KEYS
    assert machine["threads"] == 1
    for key in MACHINE_KEYS - {"threads", "repeats", "method"}:
        assert math.isfinite(machine[key]) and machine[key] > 0, key
    assert machine["bandwidth_gbs"] == max(
        machine[f"{kernel}_gbs"] for kernel in roofline.KERNELS
    )
    assert all(count >= 3 for count in machine["repeats"].values())
    assert "MatMulInteger" in machine["method"]["int8"]
    assert "(16, 16)" in machine["method"]["fp32"]


def test_throughput_counts_two_ops_per_multiply_add(monkeypatch):
    monkeypatch.setattr(roofline, "_median_seconds", lambda fn, seconds: (0.5, 3))
    assert (
        roofline.measure_matmul("int8", 100, threads=1)["gops"]
        == 2 * 100**3 / 0.5 / 1e9
    )


@pytest.mark.parametrize("array_mib, passes", [(64, 1), (16, 4)])
def test_bandwidth_counts_stream_bytes(monkeypatch, array_mib, passes):
    monkeypatch.setattr(roofline, "_median_seconds", lambda fn, seconds: (1.0, 3))
    memory = roofline.measure_bandwidth(array_mib=array_mib, threads=2)
    swept = passes * array_mib * 2**20 / 1e9  # GB per array in the 1 s call
    assert memory["copy_gbs"] == pytest.approx(2 * swept)
    assert memory["scale_gbs"] == pytest.approx(2 * swept)
    assert memory["add_gbs"] == pytest.approx(3 * swept)
    assert memory["sum_gbs"] == pytest.approx(swept)
    assert f"{passes} passes" in memory["method"]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"threads": 0}, "threads=0"), ({"seconds": -1}, "seconds=-1")],
)
def test_measure_machine_rejects_bad_settings(kwargs, match):
    with pytest.raises(UserError, match=match):
        roofline.measure_machine(**kwargs)


def test_measure_matmul_rejects_unknown_kind():
    with pytest.raises(UserError, match="kind='int4'"):
        roofline.measure_matmul("int4", 8)


def test_main_prints_machine_and_floor_tables(monkeypatch, tiny):
    monkeypatch.setattr(roofline, "_g2p_model", lambda preset: tiny)
    printed = []
    argv = ["--threads", "1", "--seconds", "0.01", "--array-mib", "0.25"]
    roofline.main(argv, print_fn=printed.append)
    assert "int8 matmul" in printed[0] and "GOP/s" in printed[0]
    assert "25,792" in printed[1]  # tiny's fp32 step: (5888 + 560) * 4 bytes
    assert "8,128" in printed[1]  # int8: 5888 + 560 * 4


@pytest.mark.parametrize(
    "kernel, a", [("copy", 2.0), ("scale", 6.0), ("add", 5.0), ("sum", 1.0)]
)
def test_bandwidth_kernels_compute_what_they_count(kernel, a):
    ab = (np.ones(3, np.float32), np.full(3, 2.0, np.float32))
    out = roofline._kernel(kernel, passes=2)(ab)  # add runs twice: 1 + 2 + 2
    np.testing.assert_array_equal(ab[0], [a] * 3)
    np.testing.assert_array_equal(ab[1], [2.0] * 3)  # b is only read
    if kernel == "sum":
        assert out == [3.0, 3.0]
