"""`tfaccel bench`: what it records and what it refuses, not how fast anything is."""

import copy
import gzip
import json
import os

import numpy as np
import pytest
from cli_checks import assert_user_error

from tfaccel.bench import harness, machine
from tfaccel.cli import main
from tfaccel.errors import UserError

RUNTIMES = ["keras", "tflite_fp32", "onnx"]
ROW_KEYS = {
    "name",
    "batch_size",
    "runs",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p50_ms_per_sequence",
    "p90_ms_per_sequence",
    "p99_ms_per_sequence",
    "ms_per_sequence",
    "tokens_per_second",
    "sequences_per_second",
    "mean_tokens",
    "peak_rss_bytes",
    "rss_over_imports_bytes",
}


def _report(cpu="AMD EPYC", cores=2, threads=1, p50s=(2.0, 1.0)):
    # A minimal bench.json: one runtime at batch 1 and 16.
    rows = [
        {"name": "tflite_fp32", "batch_size": size, "p50_ms_per_sequence": p50}
        for size, p50 in zip((1, 16), p50s, strict=True)
    ]
    return {
        "machine": {"cpu": cpu, "cores": cores},
        "threads": {"threads": threads},
        "rows": rows,
    }


def _write(folder, report):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.json").write_text(json.dumps(report))
    return str(folder / "bench.json")


# === A real run folder, benchmarked once ===


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny untrained G2P model, saved, exported to LiteRT and ONNX."""
    import keras

    from tfaccel import tasks
    from tfaccel.export import api
    from tfaccel.models import Seq2SeqTransformer, save_model

    folder = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(0)
    task = tasks.get_task("g2p", 300)
    model = Seq2SeqTransformer.from_preset("tiny", **task.model_overrides())
    ids = np.full((2, 6), 5, np.int32)
    model.generate(ids, 4)
    save_model(model, folder / "model.keras")
    result = api.export(model, folder, ["tflite_fp32", "onnx"], sample_inputs=ids)
    exports = {
        a.format: {"file": os.path.relpath(a.path, folder), "runtime": a.runtime}
        for a in result.artifacts
    }
    recipe = {"name": "tiny", "task": {"name": "g2p", "max_examples": 300}}
    metrics = {"recipe": recipe, "exports": exports}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture(scope="module")
def bench(run_dir):
    assert main(["bench", str(run_dir), "--repeats", "2", "--warmup", "1"]) == 0
    return json.loads((run_dir / "bench.json").read_text())


@pytest.mark.large
def test_every_runtime_is_timed_at_every_batch_size(bench):
    assert [r["name"] for r in bench["runtimes"]] == RUNTIMES
    assert [(r["name"], r["batch_size"]) for r in bench["rows"]] == [
        (name, size) for name in RUNTIMES for size in (1, 16)
    ]
    for row in bench["rows"]:
        assert set(row) == ROW_KEYS
        assert row["runs"] == 2
        # The untrained model generates 1 to 32 tokens per sequence.
        assert 1 <= row["mean_tokens"] <= 32 and row["tokens_per_second"] > 0
    assert bench["settings"]["batch_sizes"] == [1, 16]
    assert (bench["settings"]["warmup"], bench["settings"]["repeats"]) == (1, 2)


@pytest.mark.large
def test_latency_percentiles_are_ordered_and_per_sequence(bench):
    for row in bench["rows"]:
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        for p in ("p50", "p90", "p99"):
            per_sequence = row[f"{p}_ms"] / row["batch_size"]
            assert row[f"{p}_ms_per_sequence"] == pytest.approx(per_sequence)


@pytest.mark.large
def test_sizes_are_the_files_sizes(bench, run_dir):
    files = {
        "keras": [run_dir / "model.keras"],
        "tflite_fp32": [run_dir / "model_fp32.tflite"],
        "onnx": sorted((run_dir / "onnx").iterdir()),
    }
    for runtime in bench["runtimes"]:
        data = [path.read_bytes() for path in files[runtime["name"]]]
        assert runtime["bytes"] == sum(len(d) for d in data) > 0
        assert runtime["gzip_bytes"] == sum(len(gzip.compress(d)) for d in data)


@pytest.mark.large
def test_accuracy_on_the_test_split_agrees_between_float_runtimes(bench):
    from tfaccel import tasks

    examples = len(tasks.get_task("g2p", 300).corpus.references("test"))
    scores = [runtime["test"] for runtime in bench["runtimes"]]
    for test in scores:
        assert test["examples"] == examples > 0
        assert 0 <= test["wer"] <= 1 and test["per"] >= 0
    # fp32 exports decode the same greedy tokens as Keras.
    assert {(t["wer"], t["per"]) for t in scores} == {
        (scores[0]["wer"], scores[0]["per"])
    }


@pytest.mark.large
def test_peak_rss_is_measured_per_runtime_process(bench):
    assert "fresh process per runtime" in bench["peak_rss_method"]
    for runtime in bench["runtimes"]:
        rows = [r for r in bench["rows"] if r["name"] == runtime["name"]]
        baseline = runtime["imports_rss_bytes"]
        assert baseline > 0
        for row in rows:
            assert row["peak_rss_bytes"] >= baseline
            assert row["rss_over_imports_bytes"] == row["peak_rss_bytes"] - baseline
        # A high-water mark of one process: batch 16 ran after batch 1.
        assert rows[0]["peak_rss_bytes"] <= rows[1]["peak_rss_bytes"]


@pytest.mark.large
def test_machine_and_threads_are_recorded(bench):
    assert bench["machine"]["cpu"] == machine.cpu_name()
    assert bench["machine"]["cores"] == os.cpu_count()
    assert bench["machine"]["libraries"]["onnxruntime"] is not None
    assert bench["threads"]["threads"] == 1
    assert bench["threads"]["litert"] == {"num_threads": 1}
    assert bench["threads"]["onnxruntime"] == {"intra_op": 1, "inter_op": 1}
    runtimes = {r["name"]: r["runtime"] for r in bench["runtimes"]}
    assert runtimes["tflite_fp32"].startswith("LiteRT")
    assert runtimes["onnx"].startswith("ONNX Runtime")


@pytest.mark.large
def test_bench_md_holds_the_table(bench, run_dir):
    text = (run_dir / "bench.md").read_text()
    assert "p99 ms/seq" in text and "WER %" in text and "Peak RSS:" in text
    rows = [line for line in text.splitlines() if line.startswith("| onnx")]
    assert len(rows) == 2
    assert not list(run_dir.glob(".bench*"))  # no temporary files left


@pytest.mark.large
def test_compare_refuses_other_threads_and_cpus(bench, run_dir, tmp_path, capsys):
    same = _write(tmp_path / "same", bench)
    assert main(["bench", "--compare", str(run_dir / "bench.json"), same]) == 0
    assert "| onnx | 16 |" in capsys.readouterr().out
    for section, key, value in [("threads", "threads", 4), ("machine", "cpu", "Xeon")]:
        edited = copy.deepcopy(bench)
        edited[section][key] = value
        other = _write(tmp_path / key, edited)
        code = main(["bench", "--compare", str(run_dir / "bench.json"), other])
        expected = f"{section}.{key}: {bench[section][key]!r} vs {value!r}"
        assert_user_error(code, capsys.readouterr().err, expected)


# === Without timing anything ===


def test_compare_puts_p50s_side_by_side_with_ratios(tmp_path):
    a = _write(tmp_path / "a", _report(p50s=(2.0, 1.0)))
    b = _write(tmp_path / "b", _report(p50s=(1.0, 4.0)))
    lines = harness.compare([a, b]).splitlines()
    assert lines[0] == ("| runtime | batch | a p50 ms/seq | b p50 ms/seq | p50 a / b |")
    assert lines[2:] == [
        "| tflite_fp32 | 1 | 2.00 | 1.00 | 2.00× |",
        "| tflite_fp32 | 16 | 1.00 | 4.00 | 0.25× |",
    ]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("threads", 2, "threads.threads: 1 vs 2"),
        ("cpu", "Intel Xeon", "machine.cpu: 'AMD EPYC' vs 'Intel Xeon'"),
        ("cores", 16, "machine.cores: 2 vs 16"),
    ],
)
def test_compare_refuses_other_machines_and_threads(tmp_path, field, value, expected):
    a = _write(tmp_path / "a", _report())
    b = _write(tmp_path / "b", _report(**{field: value}))
    with pytest.raises(UserError, match=expected):
        harness.compare([a, b])


def test_compare_errors_are_one_line(tmp_path, capsys):
    a = _write(tmp_path / "a", _report())
    code = main(["bench", "--compare", a, str(tmp_path / "missing" / "bench.json")])
    assert_user_error(code, capsys.readouterr().err, "not a bench.json", "missing")
    (tmp_path / "c.json").write_text(json.dumps({"rows": []}))
    code = main(["bench", "--compare", a, str(tmp_path / "c.json")])
    assert_user_error(code, capsys.readouterr().err, "not a bench.json")
    code = main(["bench", "--compare", a])
    assert_user_error(code, capsys.readouterr().err, "two bench.json or more")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["no/such/run"], ["No run folder or artifact at 'no/such/run'"]),
        ([], ["Pass a run folder or artifacts"]),
        (["x", "--threads", "0"], ["--threads must be an int >= 1"]),
        (["x", "--batch-sizes", "1,a"], ["--batch-sizes takes ints"]),
        (["x", "--compare", "a", "b"], ["not both"]),
    ],
)
def test_cli_errors_are_one_line(args, fragments, capsys):
    code = main(["bench", *args])
    assert_user_error(code, capsys.readouterr().err, *fragments)


def test_artifacts_are_named_by_their_format(tmp_path):
    for name in ("model_int8.tflite", "model_keras_int8.keras", "other.tflite"):
        (tmp_path / name).write_bytes(b"x")
    folders = ["onnx_int8/encode.onnx", "sm/1/saved_model.pb"]
    folders += ["onnx_lean/encode.onnx", "ctranslate2_int8/model.bin", "x/encode.onnx"]
    for folder in folders:
        (tmp_path / folder).parent.mkdir(parents=True)
        (tmp_path / folder).write_bytes(b"x")
    (tmp_path / "sm" / "2").mkdir()
    (tmp_path / "sm" / "2" / "saved_model.pb").write_bytes(b"x")
    given = ["model_int8.tflite", "model_keras_int8.keras", "other.tflite"]
    given += ["onnx_int8", "sm", "onnx_lean", "ctranslate2_int8", "x"]
    targets = harness.find_targets([str(tmp_path / name) for name in given])
    # A folder named as tfaccel.export names it is that format; another
    # folder of ONNX files is the traced onnx format.
    assert [(t.name, t.format) for t in targets] == [
        ("tflite_int8", "tflite_int8"),
        ("keras_int8", "keras"),
        ("tflite_other", "tflite_fp32"),
        ("onnx_int8", "onnx_int8"),
        ("saved_model", "saved_model"),
        ("onnx_lean", "onnx_lean"),
        ("ctranslate2_int8", "ctranslate2_int8"),
        ("onnx", "onnx"),
    ]
    assert targets[4].path == str(tmp_path / "sm" / "2")  # the newest version
    assert harness.artifact_bytes(tmp_path / "sm") == (2, 2 * len(gzip.compress(b"x")))


def test_every_format_has_its_runtime_modules():
    from tfaccel.export import FORMATS

    for fmt in ("keras", *FORMATS):
        modules = harness.runtime_modules(fmt)
        assert modules[0] == "tfaccel.models"
        if fmt != "keras":
            assert any(fmt.split("_")[0] in module for module in modules)


def test_task_comes_from_the_run_folder_or_the_flag(tmp_path):
    (tmp_path / "model.tflite").write_bytes(b"x")
    targets = harness.find_targets([str(tmp_path / "model.tflite")])
    with pytest.raises(UserError, match="--task g2p or --task translation"):
        harness.resolve_task(targets)
    assert harness.resolve_task(targets, "translation") == ("translation", None)
    recipe = {"recipe": {"task": {"name": "g2p", "max_examples": 300}}}
    (tmp_path / "metrics.json").write_text(json.dumps(recipe))
    targets = harness.find_targets([str(tmp_path / "model.tflite")])
    assert harness.resolve_task(targets) == ("g2p", 300)
    # A lone artifact is not its folder's run: bench.json needs --out.
    with pytest.raises(UserError, match="Pass --out"):
        harness.run_bench([str(tmp_path / "model.tflite")])


def test_a_run_listing_a_missing_export_is_a_user_error(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"x")
    exports = {"onnx": {"file": "onnx", "runtime": "ONNX Runtime"}}
    (tmp_path / "metrics.json").write_text(json.dumps({"exports": exports}))
    with pytest.raises(UserError, match="lists the export onnx"):
        harness.find_targets([str(tmp_path)])


def test_two_runs_get_their_folder_names(tmp_path):
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "model.keras").write_bytes(b"x")
    targets = harness.find_targets([str(tmp_path / "a"), str(tmp_path / "b")])
    assert [t.name for t in targets] == ["a/keras", "b/keras"]
    with pytest.raises(UserError, match="given twice"):
        harness.find_targets([str(tmp_path / "a"), str(tmp_path / "a")])
