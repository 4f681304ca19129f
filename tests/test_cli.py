"""The command line: exit codes and one-line errors for people."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from cli_checks import assert_user_error

from tfaccel.cli import main


def _run(*args, env=None, cwd=None):
    result = subprocess.run(
        [sys.executable, "-m", "tfaccel.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=600,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--preset", "huge"], ["Unknown model preset 'huge'", "tiny, small, base"]),
        (["--task", "ocr"], ["Unknown task 'ocr'", "g2p, translation"]),
    ],
)
def test_baseline_rejects_unknown_names(args, fragments, capsys):
    code = main(["baseline", *args])
    assert_user_error(code, capsys.readouterr().err, *fragments)


def test_validate_good_recipe(capsys):
    assert main(["validate", "recipes/g2p-baseline.yaml"]) == 0
    assert "valid recipe 'g2p-baseline'" in capsys.readouterr().out


def test_malformed_recipe_names_key_path(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(
        "version: 1\nname: bad\ntask: {name: g2p}\nmodel: {preset: small}\n"
        "baseline: {epochs: 2, batchsize: 8}\n"
    )
    code = main(["run", str(recipe)])
    assert_user_error(
        code, capsys.readouterr().err, "baseline.batchsize", "unknown key"
    )


def test_unreadable_model_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: r\ntask: {name: g2p, max_examples: 100}\n"
        "model: {path: models/missing.keras}\n"
    )
    code = main(["run", "r.yaml"])
    assert_user_error(code, capsys.readouterr().err, "missing.keras", "does not exist")


def test_missing_debian_packages_for_translation(tmp_path):
    env = {"SWORD_PATH": str(tmp_path / "sword"), "TFACCEL_CACHE_DIR": str(tmp_path)}
    code, _, stderr = _run("baseline", "--task", "translation", env=env)
    assert_user_error(code, stderr, "apt-get install sword-text-kjv sword-text-sparv")


def test_missing_recipe_file(capsys):
    code = main(["validate", "recipes/no-such-recipe.yaml"])
    assert_user_error(code, capsys.readouterr().err, "no-such-recipe.yaml")


def test_help_lists_commands():
    code, out, _ = _run("--help")
    assert code == 0
    for command in ("baseline", "run", "validate", "export", "report", "summary"):
        assert command in out


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["savedmodels/none", "--formats", "onnx,tflite_int4"],
            ["Unknown export format 'tflite_int4'", "saved_model, tflite_fp32"],
        ),
        (["no/such/model.keras"], ["No model at 'no/such/model.keras'"]),
    ],
)
def test_export_rejects_bad_input(args, fragments, capsys):
    code = main(["export", *args, "--out", "unused"])
    assert_user_error(code, capsys.readouterr().err, *fragments)


def test_export_writes_verified_artifacts(tmp_path, capsys):
    from tfaccel.models import Seq2SeqTransformer, save_model

    model = Seq2SeqTransformer.from_preset("tiny", max_encoder_length=10)
    model.generate(np.ones((1, 4), "int32"), 4)  # builds the model
    save_model(model, tmp_path / "model.keras")
    out = tmp_path / "exports"
    code = main(
        ["export", str(tmp_path), "--formats", "tflite_fp32", "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "verifying on random sources" in printed
    assert "Exporting tflite_fp32" in printed and "verified in LiteRT" in printed
    assert sorted(p.name for p in out.iterdir()) == ["model_fp32.tflite"]
    code = main(["export", str(tmp_path), "--formats", "onnx", "--out", "/dev/null/x"])
    assert_user_error(code, capsys.readouterr().err, "Cannot write exports to")


def test_export_tries_every_format_and_exits_1_for_a_failure(
    tmp_path, capsys, monkeypatch
):
    from tfaccel.export import exporters
    from tfaccel.models import Seq2SeqTransformer, save_model

    def broken(*args):
        # What a converter raises for an op it cannot lower: a long dump.
        lines = [f"  note: see current operation {i}" for i in range(600)]
        raise RuntimeError(
            "error: 'tf.StridedSlice' op is neither a custom op nor a flex op\n"
            + "\n".join(lines)
        )

    monkeypatch.setattr(exporters, "export_onnx", broken)
    model = Seq2SeqTransformer.from_preset("tiny", max_encoder_length=10)
    model.generate(np.ones((1, 4), "int32"), 4)  # builds the model
    save_model(model, tmp_path / "model.keras")
    out = tmp_path / "exports"
    formats = "onnx,tflite_fp32"
    code = main(["export", str(tmp_path), "--formats", formats, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["model_fp32.tflite"]
    assert "verified in LiteRT" in captured.out
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("tfaccel: error: onnx was not exported: onnx could not")
    assert "'tf.StridedSlice' op is neither" in line and "Traceback" not in line
    code = main(["export", str(tmp_path), "--out", str(out), "--min-agreement", "2"])
    assert_user_error(code, capsys.readouterr().err, "Received: --min-agreement 2.0")


def _run_dir(tmp_path):
    # An old-style run: no benchmark, machine, layers or asserts.
    metrics = {
        "recipe": {"version": 1, "name": "demo", "task": {"name": "g2p"}},
        "baseline": {"test": {"wer": 0.30, "per": 0.07}, "parameters": 1000},
        "stages": [{"name": "prune", "test": {"wer": 0.32, "per": 0.08}}],
        "final": {"test": {"wer": 0.32, "per": 0.08}, "parameters": 500},
        "exports": {
            "tflite_int8": {
                "file": "model_int8.tflite",
                "bytes": 2000,
                "gzip_bytes": 1000,
                "runtime": "LiteRT",
                "test": {"wer": 0.33, "per": 0.09},
            }
        },
        "seconds": 60.0,
    }
    run = tmp_path / "demo"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_report_writes_three_files_and_prints_summary(tmp_path, capsys):
    run = _run_dir(tmp_path)
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "tflite_int8" in out and "+3.00" in out  # 33% - 30% WER
    assert sorted(p.name for p in run.iterdir()) == [
        "metrics.json",
        "report.json",
        "report.md",
        "report.png",
    ]
    text = (run / "report.md").read_text()
    assert "| parameters | 1,000 | 500 | 0.500 |" in text
    assert "| tflite_int8 | model_int8.tflite | 0.00 | 0.00 | 4.00 |" in text
    assert (run / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["report", "missing"], ["No run folder at 'missing'"]),
        (["report", "."], ["No metrics.json in '.'"]),
        (["summary", "missing.keras"], ["No model at 'missing.keras'"]),
        (["summary", "."], ["No model at 'model.keras'"]),
    ],
)
def test_report_and_summary_reject_missing_paths(
    args, fragments, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    code = main(args)
    assert_user_error(code, capsys.readouterr().err, *fragments)


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text(json.dumps({"task": {"task": "g2p"}}))
    code = main(["report", str(tmp_path)])
    assert_user_error(code, capsys.readouterr().err, "Not the metrics of a recipe run")
    assert not (tmp_path / "report.md").exists()


def test_summary_of_a_saved_model(tmp_path, capsys):
    from tfaccel.compression import flops
    from tfaccel.models import Seq2SeqTransformer, save_model

    model = Seq2SeqTransformer.from_preset("tiny", max_encoder_length=10)
    model.generate(np.ones((1, 4), "int32"), 2)  # builds the model
    save_model(model, tmp_path / "model.keras")
    assert main(["summary", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "lm_head/kernel" in out and "total" in out
    assert f"{flops.parameter_count(model):,} parameters" in out
    assert f"{flops.kernel_macs(model):,} matmul MACs per token" in out


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["stages"][0].pop("test"),
        lambda m: m.update(stages=5),
        lambda m: m["baseline"].update(test=[]),
        lambda m: m.pop("recipe"),
    ],
)
def test_report_of_a_malformed_run_exits_2(change, tmp_path, capsys):
    run = _run_dir(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    change(metrics)
    (run / "metrics.json").write_text(json.dumps(metrics))
    code = main(["report", str(run)])
    stderr = capsys.readouterr().err
    # A report may leave out what it lacks; it never crashes.
    assert code in (0, 2) and "Traceback" not in stderr, stderr
    if code == 2:
        assert_user_error(code, stderr, "metrics.json")


def test_bench_reads_only_the_run_folders_own_files(tmp_path, capsys):
    run = _run_dir(tmp_path)
    (run / "model.keras").write_bytes(b"")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["exports"]["tflite_int8"]["file"] = "../../../../etc/passwd"
    (run / "metrics.json").write_text(json.dumps(metrics))
    code = main(["bench", str(run)])
    assert_user_error(code, capsys.readouterr().err, "outside the run folder")


def test_tfaccel_baseline_never_replaces_a_cached_baseline_of_other_settings(
    tmp_path, capsys, monkeypatch
):
    from tfaccel.recipe import baseline

    cached = tmp_path / "baseline-g2p-tiny"
    cached.mkdir()
    (cached / "model.keras").write_bytes(b"the shipped reference")
    other = {"config": {"task": "g2p", "preset": "tiny", "epochs": 30}}
    (cached / "metrics.json").write_text(json.dumps(other))
    before = {p.name: p.read_bytes() for p in cached.iterdir()}
    written = []

    def train(config, output_root, name=None, **kwargs):
        # Training itself is tested in tests/recipe; this is where it goes.
        written.append(name)
        metrics = {"test": {"examples": 1, "wer": 0.5}, "train_seconds": 1.0}
        return None, metrics

    monkeypatch.setattr(baseline, "train_baseline", train)
    args = ["baseline", "--preset", "tiny", "--epochs", "1", "--max-examples", "200"]
    code = main([*args, "--output-root", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in cached.iterdir()} == before
    (name,) = written
    assert name.startswith("baseline-g2p-tiny-") and len(name) == len(cached.name) + 11
    assert f"Saved {tmp_path / name}/" in capsys.readouterr().out
