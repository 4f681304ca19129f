"""tools/peers.py on a tiny baseline, and tools/results_table.py's speed-ups."""

import importlib.util
import json
import pathlib
import shutil

import numpy as np
import pytest
from tool_modules import load_tool

from tfaccel import tasks
from tfaccel.errors import UserError

HAS_TFMOT = all(
    importlib.util.find_spec(name) is not None
    for name in ("tf_keras", "tensorflow_model_optimization")
)


peers = load_tool("peers")
results_table = load_tool("results_table")


# === tools/peers.py ===


@pytest.fixture(scope="module")
def tiny_baseline(tmp_path_factory):
    """An untrained tiny G2P model, laid out as `tfaccel baseline` writes it."""
    import keras

    from tfaccel.models import Seq2SeqTransformer, save_model

    folder = tmp_path_factory.mktemp("savedmodels") / "baseline-g2p-tiny"
    folder.mkdir()
    task = tasks.get_task("g2p", 300)
    keras.utils.set_random_seed(0)
    # One encoder and one decoder layer keep tfmot's many model clones quick.
    model = Seq2SeqTransformer.from_preset(
        "tiny", **task.model_overrides(), num_encoder_layers=1, num_decoder_layers=1
    )
    save_model(model, folder / "model.keras")
    metrics = {
        "config": {"task": "g2p", "preset": "tiny", "max_examples": 300},
        "task": {"task": "g2p"},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder / "model.keras"


@pytest.fixture(scope="module")
def tfaccel_artifact(tiny_baseline, tmp_path_factory):
    """A tfaccel export of the tiny baseline: its dynamic-range TFLite file."""
    from tfaccel.export import api
    from tfaccel.models import load_model

    task = tasks.get_task("g2p", 300)
    folder = tmp_path_factory.mktemp("savedmodels") / "tiny-run"
    folder.mkdir()
    # Laid out as a `tfaccel run` folder: its model and metrics.json beside it.
    shutil.copy(tiny_baseline, folder / "model.keras")
    (folder / "metrics.json").write_text(json.dumps({"recipe": {"name": "tiny"}}))
    result = api.export(
        load_model(tiny_baseline),
        folder,
        ["tflite_dynamic"],
        source_length=task.max_source_length,
        max_length=task.max_generate_length,
        min_agreement=0.0,  # untrained: its argmax ties are arbitrary
    )
    return pathlib.Path(result["tflite_dynamic"].path)


@pytest.fixture(scope="module")
def peers_run(tiny_baseline, tfaccel_artifact, tmp_path_factory):
    out = tmp_path_factory.mktemp("peers")
    argv = ["--baseline", str(tiny_baseline), "--out", str(out), "--batch-sizes", "1"]
    argv += ["--tfaccel", str(tfaccel_artifact)]
    argv += ["--warmup", "1", "--repeats", "2", "--eval-examples", "20"]
    argv += ["--tfmot-epochs", "1", "--tfmot-steps", "2"]
    argv += [] if HAS_TFMOT else ["--skip", "tfmot"]
    report = peers.main(argv, log=lambda line: None)
    return out, report


@pytest.mark.large
def test_every_peer_is_timed_sized_and_scored(peers_run):
    out, report = peers_run
    assert json.loads((out / "peers.json").read_text()) == report
    assert report["errors"] == {}
    expected = set(peers.PEERS) - (set() if HAS_TFMOT else set(peers.GROUPS["tfmot"]))
    assert set(report["peers"]) == expected
    words = sorted(tasks.get_task("g2p", 300).corpus.references("test"))[:20]
    markdown = (out / "peers.md").read_text()
    for name, peer in report["peers"].items():
        assert peer["latency"]["1"]["p50_ms"] > 0, name
        assert 0 < peer["gzip_bytes"] < peer["bytes"], name
        assert all(
            (out / f).exists() or pathlib.Path(f).exists() for f in peer["files"]
        )
        assert peer["test"]["examples"] == len(words), name
        assert 0.0 <= peer["test"]["wer"] <= 1.0 and peer["test_not_measured"] is None
        assert f"| {name} |" in markdown
    assert report["peers"]["naive"]["latency"]["1"]["ratio"] == 1.0
    assert report["reference"] == "naive"


@pytest.mark.large
def test_peers_share_the_baseline_and_its_threads(peers_run, tiny_baseline):
    _, report = peers_run
    records = report["peers"]
    # The fp32 Keras peers are the baseline file itself.
    for name in ("naive", "keras_cached", "keras_xla"):
        assert records[name]["files"] == [str(tiny_baseline)]
    # Same model, three decoders: the greedy tokens, so the scores, agree.
    assert records["naive"]["test"]["per"] == records["keras_cached"]["test"]["per"]
    assert records["keras_xla"]["test"]["per"] == records["keras_cached"]["test"]["per"]
    assert records["onnx"]["max_difference"] < 1e-3
    assert report["threads"]["threads"] == 1
    assert report["threads"]["litert"] == {"num_threads": 1}
    model = {"path": str(tiny_baseline), "random_weights": False, "max_examples": 300}
    assert report["model"] == model
    assert report["task"] == "g2p"


@pytest.mark.large
def test_tfaccel_artifacts_join_the_peers_rotation(peers_run, tfaccel_artifact):
    out, report = peers_run
    (name,) = report["tfaccel"]
    assert name == "tiny-run/tflite_dynamic"
    record = report["tfaccel"][name]
    assert record["files"] == [str(tfaccel_artifact)]
    assert record["runtime"].startswith("LiteRT")
    assert record["bytes"] == tfaccel_artifact.stat().st_size
    # Timed in the same rotation as the peers: one row per batch size, with
    # its ratio against the naive peer of this same process.
    rows = [row for row in report["rows"] if row["name"] == name]
    assert [row["batch_size"] for row in rows] == [1]
    naive = report["peers"]["naive"]["latency"]["1"]["p50_ms"]
    latency = record["latency"]["1"]
    assert latency["ratio"] == pytest.approx(naive / latency["p50_ms"])
    # Scored as the peers are, on the same examples; it is the same conversion
    # as the tflite_dynamic peer, so it makes the same predictions.
    assert record["test"]["examples"] == report["peers"]["naive"]["test"]["examples"]
    assert record["test"]["per"] == report["peers"]["tflite_dynamic"]["test"]["per"]
    assert f"| {name} |" in (out / "peers.md").read_text()
    assert name not in report["peers"]


@pytest.mark.large
def test_roofline_puts_each_decode_step_against_the_memory_floor(
    peers_run, tiny_baseline
):
    from tfaccel.bench.roofline import decode_step_bytes
    from tfaccel.models import load_model

    out, report = peers_run
    roofline = report["roofline"]
    assert roofline["bandwidth_gbs"] > 0
    model = load_model(tiny_baseline)
    fp32, int8 = decode_step_bytes(model, "fp32"), decode_step_bytes(model, "int8")
    rows = roofline["rows"]
    assert rows["keras_cached"]["step_bytes"] == fp32
    assert rows["onnx_int8"]["step_bytes"] == int8
    # The tfaccel file's step bytes come from its run folder's model.keras.
    assert rows["tiny-run/tflite_dynamic"]["step_bytes"] == int8
    timed = {**report["peers"], **report["tfaccel"]}
    assert set(rows) == set(timed)
    for name, row in rows.items():
        latency = timed[name]["latency"]["1"]
        step_ms = latency["p50_ms"] / latency["mean_tokens"]
        assert row["step_ms"] == pytest.approx(step_ms)
        floor_ms = row["step_bytes"] / (roofline["bandwidth_gbs"] * 1e9) * 1e3
        assert row["floor_fraction"] == pytest.approx(floor_ms / step_ms)
        assert 0 < row["floor_fraction"] < 1, name  # no runtime beats the floor
    markdown = (out / "peers.md").read_text()
    assert "## Batch-1 decode step against the memory floor" in markdown


def test_a_missing_tfaccel_artifact_fails_before_any_peer_is_built(tmp_path):
    argv = ["--preset", "tiny", "--random-weights", "--out", str(tmp_path)]
    with pytest.raises(UserError, match="No run folder or artifact at"):
        peers.main([*argv, "--tfaccel", str(tmp_path / "missing.tflite")])
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.large
@pytest.mark.skipif(not HAS_TFMOT, reason="needs pip install 'tfaccel[tfmot]'")
def test_tfmot_record_lists_what_tfmot_refused(peers_run):
    # No importorskip: importing tfmot here would set TF_USE_LEGACY_KERAS in
    # this process; peers.py imports it only in its child process.
    out, report = peers_run
    tfmot = report["tfmot"]
    assert {"MultiHeadAttention", "LayerNormalization"} <= set(tfmot["refused_classes"])
    assert tfmot["record"]["quantize_model_error"]
    sparsity = list(tfmot["record"]["final_sparsity"].values())
    np.testing.assert_allclose(sparsity, 0.5, atol=0.02)
    assert tfmot["settings"]["prune_epochs"] == 1
    for name in ("tfmot_int8", "tfmot_int8_calibrated"):
        assert report["peers"][name]["ops"]["ops"]["FULLY_CONNECTED"] > 0
    # The calibrated file quantizes more than the QAT ranges alone do.
    plain = report["peers"]["tfmot_int8"]["ops"]["float_ops"]
    calibrated = report["peers"]["tfmot_int8_calibrated"]["ops"]["float_ops"]
    assert sum(calibrated.values()) < sum(plain.values())
    assert "refused MultiHeadAttention" in (out / "peers.md").read_text()


@pytest.mark.large
def test_random_weights_are_timed_but_not_scored(tmp_path):
    skip = [name for name in peers.PEERS if name not in ("naive", "keras_cached")]
    argv = ["--preset", "tiny", "--random-weights", "--out", str(tmp_path)]
    argv += ["--batch-sizes", "1,2", "--warmup", "0", "--repeats", "1"]
    argv += [arg for name in skip for arg in ("--skip", name)]
    report = peers.main(argv, log=lambda line: None)
    assert set(report["peers"]) == {"naive", "keras_cached"}
    assert set(report["skipped"]) == set(skip)
    for peer in report["peers"].values():
        assert peer["test"] is None
        assert "random-weights" in peer["test_not_measured"]
        assert set(peer["latency"]) == {"1", "2"}
        assert peer["files"] == ["artifacts/model.keras"]
    assert (tmp_path / "artifacts" / "model.keras").is_file()
    assert "not measured" in (tmp_path / "peers.md").read_text()


@pytest.mark.large
def test_timing_only_times_a_baseline_without_scoring_it(tiny_baseline, tmp_path):
    argv = ["--baseline", str(tiny_baseline), "--timing-only", "--out", str(tmp_path)]
    argv += ["--batch-sizes", "1", "--warmup", "0", "--repeats", "1"]
    argv += [arg for name in peers.PEERS if name != "naive" for arg in ("--skip", name)]
    report = peers.main(argv, log=lambda line: None)
    naive = report["peers"]["naive"]
    assert naive["test"] is None and naive["test_not_measured"].endswith("timing-only")
    assert naive["latency"]["1"]["p50_ms"] > 0
    assert "Accuracy: not measured (timing only)" in (tmp_path / "peers.md").read_text()


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="Received: skip=\\['bogus'\\]"):
        peers.main(["--baseline", "x.keras", "--out", str(tmp_path), "--skip", "bogus"])
    with pytest.raises(UserError, match="--baseline PATH or --preset"):
        peers.main(["--out", str(tmp_path)])


def test_recorded_errors_are_one_line_with_their_type():
    from tfaccel.errors import error_line

    line = error_line(RuntimeError("the child\n   exited 1" + " x" * 400))
    assert line.startswith("RuntimeError: the child exited 1 x x")
    assert "\n" not in line and len(line) == len("RuntimeError: ") + 500


def test_task_is_read_from_baseline_and_run_folders(tmp_path):
    (tmp_path / "metrics.json").write_text(
        json.dumps({"config": {"task": "translation", "max_examples": 50}})
    )
    assert peers.baseline_task(tmp_path) == ("translation", 50)
    recipe = {"recipe": {"task": {"name": "g2p", "max_examples": None}}}
    (tmp_path / "metrics.json").write_text(json.dumps(recipe))
    assert peers.baseline_task(tmp_path) == ("g2p", None)
    assert peers.baseline_task(tmp_path / "missing") == (None, None)


# === tools/results_table.py ===


def _peer(p50, wer, size=1_000_000):
    return {
        "runtime": "rt",
        "bytes": size,
        "gzip_bytes": size // 2,
        "latency": {"1": {"p50_ms": p50}, "16": {"p50_ms": 10 * p50}},
        "test": {"wer": wer, "per": wer / 4},
    }


def _synthetic(tmp_path):
    report = {
        "date": "2026-01-02T03:04:05+00:00",
        "machine": {"cpu": "Test CPU", "cores": 2},
        "threads": {"threads": 1},
        "peers": {
            "naive": _peer(40.0, 0.30),
            "keras_cached": _peer(10.0, 0.30),
            "onnx_int8": _peer(5.0, 0.31),
            # Fastest, but 10 WER points worse: not the bar.
            "tfmot_int8_calibrated": _peer(1.0, 0.40),
        },
    }
    (tmp_path / "peers.json").write_text(json.dumps(report))
    run = tmp_path / "g2p-prune50-qat-int8"
    run.mkdir()
    metrics = {
        "recipe": {"name": "g2p-prune50-qat-int8"},
        "baseline": {"test": {"wer": 0.30}},
        "final": {"test": {"wer": 0.305}},
        "exports": {
            "tflite_int8": {
                "bytes": 400_000,
                "gzip_bytes": 200_000,
                "runtime": "LiteRT",
                "test": {"wer": 0.31},
            }
        },
        "benchmark": {
            "rows": [
                {"name": "baseline", "batch_size": 1, "p50_ms": 12.0},
                {"name": "keras", "batch_size": 1, "p50_ms": 8.0},
                {"name": "tflite_int8", "batch_size": 1, "p50_ms": 2.0},
                {"name": "tflite_int8", "batch_size": 16, "p50_ms": 9.0},
            ]
        },
        "machine": {"cpu": "Test CPU"},
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    return tmp_path / "peers.json", run


def test_results_table_speedups(tmp_path):
    peers_json, run = _synthetic(tmp_path)
    entries, key, best, _, notes = results_table.build(peers_json, [run])
    assert key == "wer"
    assert best["name"] == "onnx_int8"  # within 2 points of keras_cached's WER
    by_name = {e["name"]: e for e in entries}
    int8 = by_name["g2p-prune50-qat-int8 / tflite_int8"]
    assert int8["p50_ms"] == 2.0
    assert int8["vs_naive"] == pytest.approx(40.0 / 2.0)
    assert int8["vs_best_peer"] == pytest.approx(5.0 / 2.0)
    keras = by_name["g2p-prune50-qat-int8 / keras"]
    assert keras["test"]["wer"] == 0.305 and keras["bytes"] is None
    assert keras["vs_naive"] == pytest.approx(5.0)
    assert by_name["naive"]["vs_naive"] == 1.0
    assert by_name["keras_cached"]["vs_best_peer"] == pytest.approx(0.5)
    assert any("12.00 ms in its own run" in note for note in notes)
    assert not any("starts from" in note for note in notes)


def test_results_table_bench_json_takes_precedence(tmp_path):
    peers_json, run = _synthetic(tmp_path)
    bench = {
        "runtimes": [
            {
                "name": "tflite_int8",
                "runtime": "LiteRT 2",
                "bytes": 1,
                "gzip_bytes": 1,
                "test": {"wer": 0.32},
            }
        ],
        "rows": [{"name": "tflite_int8", "batch_size": 1, "p50_ms": 4.0}],
    }
    (run / "bench.json").write_text(json.dumps(bench))
    entries, *_ = results_table.build(peers_json, [run])
    int8 = {e["name"]: e for e in entries}["g2p-prune50-qat-int8 / tflite_int8"]
    assert (int8["p50_ms"], int8["vs_naive"], int8["test"]["wer"]) == (4.0, 10.0, 0.32)


def test_results_table_reads_tfaccel_records_and_checks_the_bars(tmp_path):
    peers_json, _ = _synthetic(tmp_path)
    report = json.loads(peers_json.read_text())
    report["tfaccel"] = {
        # 4x faster than onnx_int8 and 5x smaller, 0.5 points of WER lost.
        "run/tflite_int8": _peer(1.25, 0.305, size=200_000),
        # Faster still, but 3 points worse: not tfaccel's best.
        "run/tflite_worse": _peer(0.5, 0.33, size=100_000),
    }
    peers_json.write_text(json.dumps(report))
    entries, key, best, _, notes = results_table.build(peers_json, [], max_loss=1.5)
    by_name = {e["name"]: e for e in entries}
    assert [e["kind"] for e in entries] == ["peer"] * 4 + ["tfaccel"] * 2
    assert best["name"] == "onnx_int8"
    int8 = by_name["run/tflite_int8"]
    assert int8["vs_naive"] == pytest.approx(32.0)
    assert int8["vs_best_peer"] == pytest.approx(4.0)
    assert int8["smaller"] == pytest.approx(5.0)  # against keras_cached's file
    assert results_table.best_tfaccel(entries, key, 1.5) is int8
    assert notes[0] == (
        "tfaccel's fastest within 1.5 points: `run/tflite_int8`, WER +0.50 points "
        "against fp32: 32.00× naive (meets 3), 4.00× best peer (meets 1.3), "
        "5.00× smaller than the fp32 file (meets 4)."
    )
    # A bar missed is said so.
    report["tfaccel"]["run/tflite_int8"]["bytes"] = 500_000
    peers_json.write_text(json.dumps(report))
    _, _, _, _, notes = results_table.build(peers_json, [], max_loss=1.5)
    assert "2.00× smaller than the fp32 file (misses 4)" in notes[0]


def test_results_table_writes_markdown_and_png(tmp_path):
    peers_json, run = _synthetic(tmp_path)
    out, plot = tmp_path / "out" / "results.md", tmp_path / "out" / "plot.png"
    argv = ["--peers", str(peers_json), "--runs", str(run), "--out", str(out)]
    results_table.main([*argv, "--plot", str(plot)])
    text = out.read_text()
    assert "Test CPU (2 cores), 1 thread(s) per runtime, on 2026-01-02" in text
    assert "Best peer: `onnx_int8`" in text
    assert "| **g2p-prune50-qat-int8 / tflite_int8** | LiteRT | 31.00 |" in text
    assert (
        "| 0.400 | 0.200 | 2.50× | not measured | 2.00 | 20.00× | 2.50× "
        "| not measured |" in text
    )
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
