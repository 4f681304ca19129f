"""The command line: exit codes and one-line errors for people."""

import os
import subprocess
import sys

import numpy as np
import pytest

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


def _assert_user_error(code, stderr, *fragments):
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("tfaccel: error:")]
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--preset", "huge"], ["Unknown model preset 'huge'", "tiny, small, base"]),
        (["--task", "ocr"], ["Unknown task 'ocr'", "g2p, translation"]),
    ],
)
def test_baseline_rejects_unknown_names(args, fragments, capsys):
    code = main(["baseline", *args])
    _assert_user_error(code, capsys.readouterr().err, *fragments)


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
    _assert_user_error(
        code, capsys.readouterr().err, "baseline.batchsize", "unknown key"
    )


def test_unreadable_model_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: r\ntask: {name: g2p, max_examples: 100}\n"
        "model: {path: models/missing.keras}\n"
    )
    code = main(["run", "r.yaml"])
    _assert_user_error(code, capsys.readouterr().err, "missing.keras", "does not exist")


def test_missing_debian_packages_for_translation(tmp_path):
    env = {"SWORD_PATH": str(tmp_path / "sword"), "TFACCEL_CACHE_DIR": str(tmp_path)}
    code, _, stderr = _run("baseline", "--task", "translation", env=env)
    _assert_user_error(code, stderr, "apt-get install sword-text-kjv sword-text-sparv")


def test_missing_recipe_file(capsys):
    code = main(["validate", "recipes/no-such-recipe.yaml"])
    _assert_user_error(code, capsys.readouterr().err, "no-such-recipe.yaml")


def test_help_lists_commands():
    code, out, _ = _run("--help")
    assert code == 0
    for command in ("baseline", "run", "validate", "export"):
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
    _assert_user_error(code, capsys.readouterr().err, *fragments)


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
    _assert_user_error(code, capsys.readouterr().err, "Cannot write exports to")
