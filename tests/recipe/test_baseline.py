"""Training, saving, caching and reloading a (tiny) baseline."""

import json

import h5py
import numpy as np
import pytest

from tfaccel.recipe import baseline as baseline_lib
from tfaccel.recipe.baseline_cache import ensure_baseline
from tfaccel.recipe.loader import parse_recipe
from tfaccel.recipe.runner import run_recipe

CONFIG = baseline_lib.BaselineConfig(
    preset="tiny", epochs=3, batch_size=64, max_examples=1500, eval_examples=50
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("savedmodels")
    model, metrics = baseline_lib.train_baseline(CONFIG, root, verbose=0)
    return root, model, metrics


def _tiny_recipe(name, root, **keys):
    """A recipe dict on the module's cached tiny baseline, writing into `root`."""
    return {
        "version": 1,
        "name": name,
        "task": {"name": "g2p", "max_examples": 1500},
        "model": {"preset": "tiny"},
        "baseline": {"epochs": 3, "batch_size": 64},
        "output_dir": root.name,
        **keys,
    }


def _prune_recipe(name, root, epochs=4, extra=None, end_epoch=None):
    end_epoch = min(epochs, 2) if end_epoch is None else end_epoch
    stage = {
        "name": "prune",
        "epochs": epochs,
        "modifiers": [
            {
                "type": "magnitude_pruning",
                "targets": ["re:.*feedforward.*kernel"],
                "schedule": {
                    "type": "polynomial_decay",
                    "final_sparsity": 0.5,
                    "end_epoch": end_epoch,
                },
            }
        ],
    }
    return _tiny_recipe(name, root, stages=[stage], **(extra or {}))


@pytest.mark.large
def test_baseline_folder_and_metrics(trained):
    root, _, metrics = trained
    folder = root / "baseline-g2p-tiny"
    names = {p.name for p in folder.iterdir()}
    assert {
        "model.keras",
        "metrics.json",
        "source_vocab.json",
        "target_vocab.json",
    } <= names
    assert any((folder / "logs").rglob("events.out.tfevents*"))
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["config"]["preset"] == "tiny"
    curve = saved["learning_curve"]
    assert [row["epoch"] for row in curve] == [1, 2, 3]
    assert curve[-1]["loss"] < curve[0]["loss"]  # it learns
    assert {"val_wer", "val_per"} <= set(curve[0])
    test = saved["test"]
    assert 0.0 <= test["per"] <= 1.0 and 0.0 <= test["wer"] <= 1.0
    from tfaccel import tasks

    task = tasks.get_task("g2p", CONFIG.max_examples)
    assert test["examples"] == len(task.corpus.words("test")) > 0
    # Nothing half-written is left beside the published folder.
    assert [p.name for p in root.iterdir()] == ["baseline-g2p-tiny"]


@pytest.mark.large
def test_cached_baseline_is_reused_and_identical(trained):
    root, model, _ = trained
    lines = []
    loaded, metrics = ensure_baseline(CONFIG, root, cache=True, log=lines.append)
    assert lines == [f"Reusing cached baseline {root / 'baseline-g2p-tiny'}"]
    ids = np.array([[5, 6, 7, 8, 0]], "int32")
    np.testing.assert_array_equal(loaded.generate(ids, 10), model.generate(ids, 10))


@pytest.mark.large
def test_run_recipe_reuses_baseline_and_publishes_run(trained, monkeypatch):
    root, _, _ = trained
    monkeypatch.chdir(root.parent)
    recipe = parse_recipe(
        _tiny_recipe(
            "tiny-run",
            root,
            baseline={"epochs": 3, "batch_size": 64, "learning_rate": 0.002},
        )
    )
    lines = []
    result = run_recipe(recipe, log=lines.append)
    assert lines[0] == f"Reusing cached baseline {root / 'baseline-g2p-tiny'}"
    run_dir = root / "tiny-run"
    assert (run_dir / "model.keras").is_file()
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["baseline"]["test"]["wer"] == result["baseline"]["test"]["wer"]


def test_failed_training_publishes_nothing(tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("killed mid-training")

    monkeypatch.setattr("keras.Model.fit", explode)
    config = baseline_lib.BaselineConfig(preset="tiny", epochs=1, max_examples=200)
    with pytest.raises(RuntimeError, match="killed"):
        baseline_lib.train_baseline(config, tmp_path, verbose=0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.large
def test_cached_and_uncached_generation_agree_on_200_words(trained):
    from tfaccel import data, tasks

    _, model, _ = trained
    task = tasks.get_task("g2p", CONFIG.max_examples)
    words = task.sources("train")[:200]
    ids = data.encode_sources(words, task.source_vocab, task.max_source_length)
    cached = model.generate(ids, task.max_generate_length, use_cache=True)
    uncached = model.generate(ids, task.max_generate_length, use_cache=False)
    assert len(words) == 200
    assert (cached[:, 0] >= 2).all()  # real tokens, not padding
    np.testing.assert_array_equal(cached, uncached)


@pytest.mark.large
def test_run_recipe_with_a_pruning_stage(trained, monkeypatch):
    import tfaccel
    from tfaccel.models import load_model

    root, _, _ = trained
    monkeypatch.chdir(root.parent)
    recipe = parse_recipe(_prune_recipe("tiny-prune", root, epochs=2, end_epoch=1))
    result = run_recipe(recipe, log=lambda line: None)
    assert [stage["name"] for stage in result["stages"]] == ["prune"]
    assert 0.0 <= result["final"]["test"]["wer"] <= 1.0
    model = load_model(root / "tiny-prune" / "model.keras")
    rows = tfaccel.summary(
        model, targets=[".*feedforward.*kernel"], print_fn=lambda *a: None
    )
    assert len(rows) == 1 + 2 * 4  # 2+2 layers, 2 feedforward kernels each
    for row in rows[:-1]:
        assert row["zeros"] == round(0.5 * row["size"]), row
    assert (root / "tiny-prune" / "logs" / "prune").is_dir()


@pytest.mark.large
def test_run_recipe_distills_while_pruning_on_the_teachers_outputs(
    trained, monkeypatch
):
    import tfaccel
    from tfaccel.models import load_model

    root, baseline, _ = trained
    monkeypatch.chdir(root.parent)
    teacher_weights = [w.copy() for w in baseline.get_weights()]
    lines = []
    recipe = parse_recipe(
        _tiny_recipe(
            "tiny-prune-distill",
            root,
            stages=[
                {
                    "name": "prune-distill",
                    "epochs": 1,
                    "modifiers": [
                        # Listed first, applied last: it wraps the student.
                        {"type": "distillation", "sequence_level": True},
                        {
                            "type": "magnitude_pruning",
                            "targets": ["re:.*feedforward.*kernel"],
                            "schedule": {"type": "constant", "sparsity": 0.5},
                        },
                    ],
                }
            ],
        )
    )
    result = run_recipe(recipe, log=lines.append)
    assert any(line.startswith("Sequence-level KD: decoding") for line in lines)
    assert any(line.startswith("Distilling from ") for line in lines)
    model = load_model(root / "tiny-prune-distill" / "model.keras")
    rows = tfaccel.summary(
        model, targets=[".*feedforward.*kernel"], print_fn=lambda *a: None
    )
    for row in rows[:-1]:
        assert row["zeros"] == round(0.5 * row["size"]), row
    assert result["final"]["parameters"] == result["baseline"]["parameters"]
    # The teacher was read from the baseline folder; the cached baseline
    # model itself is untouched.
    cached = load_model(root / "baseline-g2p-tiny" / "model.keras")
    for old, new in zip(teacher_weights, cached.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


@pytest.mark.large
def test_run_recipe_distills_on_unlabelled_words_for_fixed_steps(trained, monkeypatch):
    root, _, _ = trained
    monkeypatch.chdir(root.parent)
    lines = []
    stage = {
        "name": "kd-unlabelled",
        "epochs": 2,
        "steps_per_epoch": 7,
        "modifiers": [
            {"type": "distillation", "unlabelled": True, "max_unlabelled": 300},
        ],
    }
    recipe = parse_recipe(_tiny_recipe("tiny-kd-unlabelled", root, stages=[stage]))
    result = run_recipe(recipe, log=lines.append)
    assert "Sequence-level KD: the teacher labels 300 unlabelled sources" in lines
    assert not any(line.startswith("Sequence-level KD: decoding") for line in lines)
    (stage_result,) = result["stages"]
    # 2 epochs of 7 batches, whatever the size of labels + teacher outputs.
    assert stage_result["steps_per_epoch"] == 7
    assert stage_result["optimizer_steps"] == 14


@pytest.mark.large
def test_run_recipe_shrinks_factorizes_and_distills_then_exports(trained, monkeypatch):
    from tfaccel.models import load_model

    root, _, _ = trained
    monkeypatch.chdir(root.parent)
    lines = []
    recipe = parse_recipe(
        _tiny_recipe(
            "tiny-shrink-distill",
            root,
            stages=[
                {
                    "name": "shrink",
                    "epochs": 1,
                    "modifiers": [
                        {"type": "distillation", "alpha": 0.2},
                        {"type": "shrink", "heads": 1, "ffn": 0.5, "layers": 0.5},
                    ],
                },
                {
                    "name": "low-rank",
                    "epochs": 1,
                    "modifiers": [
                        {
                            "type": "low_rank",
                            "targets": ["re:.*feedforward_intermediate_dense/kernel"],
                            "rank": 2,
                        },
                        {"type": "distillation"},
                    ],
                },
            ],
            export=["tflite_fp32"],
        )
    )
    result = run_recipe(recipe, log=lines.append)
    assert any(line.startswith("Shrunk: ") for line in lines), lines
    shrink, low_rank = result["stages"]
    baseline = result["baseline"]
    # tiny: 2 heads -> 1 (head width kept), FFN 32 -> 16, 2 + 2 layers -> 1 + 1.
    assert shrink["kernel_macs_per_token"] < 0.5 * baseline["kernel_macs_per_token"]
    assert low_rank["kernel_macs_per_token"] < shrink["kernel_macs_per_token"]
    assert low_rank["parameters"] == result["final"]["parameters"]
    model = load_model(root / "tiny-shrink-distill" / "model.keras")
    assert (model.num_heads, model.head_dim, model.intermediate_dim) == (1, 8, 16)
    assert (model.num_encoder_layers, model.num_decoder_layers) == (1, 1)
    assert model.count_params() == result["final"]["parameters"]
    exported = result["exports"]["tflite_fp32"]
    assert exported["max_difference"] <= 1e-3
    assert exported["agreement_with_keras"]["tokens"] == 1.0


@pytest.mark.large
def test_run_recipe_with_qat_in_mixed_precision_and_tflite_exports(
    trained, monkeypatch
):
    from tfaccel.export import tflite
    from tfaccel.models import load_model
    from tfaccel.quantization import _state

    root, _, _ = trained
    monkeypatch.chdir(root.parent)
    recipe = parse_recipe(
        _tiny_recipe(
            "tiny-qat",
            root,
            precision="mixed_bfloat16",
            stages=[
                {
                    "name": "qat",
                    "epochs": 1,
                    "modifiers": [{"type": "quantization_aware", "per_channel": False}],
                }
            ],
            export=["tflite_int8", "keras_int8"],
        )
    )
    lines = []
    result = run_recipe(recipe, log=lines.append)
    assert "Training stages in mixed_bfloat16" in lines
    run = root / "tiny-qat"
    exported = result["exports"]["tflite_int8"]
    assert exported["mode"] == "qat"  # trained ranges, no calibration
    assert exported["bytes"] == (run / "model_int8.tflite").stat().st_size
    assert exported["agreement_with_keras"]["count"] > 0
    assert 0.0 <= exported["test"]["wer"] <= 1.0
    rows = tflite.op_report(run / "model_int8.tflite")
    assert all(
        r["inputs"][:2] == ["INT8", "INT8"]
        for r in rows
        if r["op"] == "FULLY_CONNECTED"
    )
    assert result["exports"]["keras_int8"]["bytes"] > 0
    model = load_model(run / "model.keras")
    assert model.dtype_policy.name == "float32"
    assert _state.find_states(model)[0][1].stripped


@pytest.mark.large
def test_run_recipe_exports_keep_saved_model_versions(trained, monkeypatch):
    root, _, _ = trained
    monkeypatch.chdir(root.parent)
    recipe = parse_recipe(
        _tiny_recipe(
            "tiny-export",
            root,
            export=["saved_model", "onnx", "keras"],
        )
    )
    run = root / "tiny-export"
    first = run_recipe(recipe, log=lambda line: None)
    assert first["exports"]["saved_model"]["file"] == "1"
    stamp = (run / "1" / "saved_model.pb").stat().st_mtime_ns
    result = run_recipe(recipe, log=lambda line: None)
    exports = result["exports"]
    # A rerun adds version 2 and carries version 1 over untouched.
    assert exports["saved_model"]["file"] == "2"
    assert (run / "1" / "saved_model.pb").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (run / "onnx").iterdir()) == [
        "decode_step.onnx",
        "encode.onnx",
    ]
    assert exports["keras"]["bytes"] == (run / "model.keras").stat().st_size
    baseline_wer = result["baseline"]["test"]["wer"]
    for fmt in ("saved_model", "onnx"):
        assert exports[fmt]["agreement_with_keras"]["tokens"] >= 0.99, fmt
        assert abs(exports[fmt]["test"]["wer"] - baseline_wer) <= 0.01, fmt
        assert exports[fmt]["max_difference"] <= 1e-3, fmt

    # A rerun that exports no SavedModel merges too: published versions and
    # files it did not make (a user's, a `tfaccel bench` result) stay, byte
    # for byte.
    (run / "notes.txt").write_text("mine")
    versions = {
        path.relative_to(run): path.read_bytes()
        for path in sorted(run.glob("[12]/**/*"))
        if path.is_file()
    }
    lean = parse_recipe(_tiny_recipe("tiny-export", root, export=["onnx"]))
    run_recipe(lean, log=lambda line: None)
    assert (run / "notes.txt").read_text() == "mine"
    assert versions == {
        path.relative_to(run): path.read_bytes()
        for path in sorted(run.glob("[12]/**/*"))
        if path.is_file()
    }
    assert not list(run.glob("3"))


def test_run_recipe_passes_verify_min_agreement_to_export(trained, monkeypatch):
    from tfaccel.export import api

    root, _, _ = trained
    monkeypatch.chdir(root.parent)
    seen = {}

    def export(*args, **kwargs):  # records the call, then fails as a miss would
        seen.update(kwargs)
        raise RuntimeError("export stopped by the test")

    monkeypatch.setattr(api, "export", export)
    recipe = parse_recipe(
        _tiny_recipe(
            "tiny-verify",
            root,
            export=["tflite_fp32"],
            verify={"min_agreement": 0.25},
        )
    )
    with pytest.raises(RuntimeError, match="stopped by the test"):
        run_recipe(recipe, log=lambda line: None)
    assert seen["min_agreement"] == 0.25
    assert not (root / "tiny-verify").exists()


@pytest.mark.large
def test_run_killed_mid_stage_resumes_to_the_same_result(trained, monkeypatch):
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from tfaccel.recipe import checkpoint

    root, _, _ = trained
    monkeypatch.chdir(root.parent)
    whole = run_recipe(
        parse_recipe(_prune_recipe("whole", root, epochs=3)), log=lambda _: None
    )

    path = root.parent / "killed.yaml"
    path.write_text(yaml.safe_dump(_prune_recipe("killed", root, epochs=3)))
    saved = root / ".killed.resume" / "stage-0-prune" / "checkpoint"
    process = subprocess.Popen(
        [sys.executable, "-m", "tfaccel.cli", "run", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while checkpoint.saved_epoch(saved) is None:
            assert process.poll() is None, "the run ended before its first epoch"
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    killed_at = checkpoint.saved_epoch(saved)
    assert 1 <= killed_at < 3
    # Nothing was published, and the checkpoint reads back whole.
    assert not (root / "killed").exists()
    with h5py.File(saved / checkpoint.MODEL) as weights:
        assert "_tfaccel_state" in weights  # the masks and step, with the weights

    lines = []
    resumed = run_recipe(
        parse_recipe(_prune_recipe("killed", root, epochs=3)), log=lines.append
    )
    resumed_at = [line for line in lines if "resuming after epoch" in line]
    assert resumed_at, lines
    assert int(resumed_at[0].split("after epoch ")[1].split()[0]) >= killed_at
    assert resumed["final_sparsity"] == pytest.approx(whole["final_sparsity"])
    assert resumed["final_sparsity"] == pytest.approx(0.5, abs=1e-3)
    # Data order after a resume differs (a new iterator), so WER matches
    # within the noise of a tiny model on 150 test words.
    assert abs(resumed["final"]["test"]["wer"] - whole["final"]["test"]["wer"]) < 0.1
    assert (root / "killed" / "metrics.json").is_file()
    assert (root / "killed" / "logs" / "prune").is_dir()
    # The resume folder goes once the run is published; a rerun starts over.
    assert not (root / ".killed.resume").exists()


@pytest.mark.large
def test_finished_stages_are_restored_not_retrained(trained, monkeypatch):
    root, _, _ = trained
    monkeypatch.chdir(root.parent)
    recipe = _prune_recipe("crash-at-save", root, epochs=1)
    lines = []

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("tfaccel.recipe.publish.save_model", crash)
        with pytest.raises(KeyboardInterrupt):
            run_recipe(parse_recipe(recipe), log=lines.append)
    assert not (root / "crash-at-save").exists()
    first = json.loads(
        (root / ".crash-at-save.resume/stage-0-prune/result.json").read_text()
    )
    lines = []
    result = run_recipe(parse_recipe(recipe), log=lines.append)
    assert "Stage 'prune' finished in an earlier run; restored its weights" in lines
    assert not any("epoch(s)" in line for line in lines)  # no training
    assert result["stages"][0] == first["result"]
    assert result["final_sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert not (root / ".crash-at-save.resume").exists()


def test_resume_folder_is_kept_dropped_on_restart_or_on_a_changed_recipe(tmp_path):
    from tfaccel.recipe.resume import resume_folder

    recipe = parse_recipe(_prune_recipe("r", tmp_path))
    lines = []
    folder = resume_folder(recipe, tmp_path, restart=False, log=lines.append)
    assert folder == tmp_path / ".r.resume" and (folder / "recipe.json").is_file()
    (folder / "stage-0-prune").mkdir()
    resume_folder(recipe, tmp_path, restart=False, log=lines.append)
    assert (folder / "stage-0-prune").is_dir()
    assert lines[-1].startswith("Resuming from the checkpoints in")
    # Export and assert settings may change; what shapes the weights may not.
    changed = _prune_recipe("r", tmp_path, extra={"export": ["onnx"]})
    resume_folder(parse_recipe(changed), tmp_path, restart=False, log=lines.append)
    assert (folder / "stage-0-prune").is_dir()
    changed = _prune_recipe("r", tmp_path, epochs=3)
    resume_folder(parse_recipe(changed), tmp_path, restart=False, log=lines.append)
    assert not (folder / "stage-0-prune").exists()
    assert "changed" in lines[-1]
    (folder / "stage-0-prune").mkdir()
    resume_folder(parse_recipe(changed), tmp_path, restart=True, log=lines.append)
    assert not (folder / "stage-0-prune").exists()
    assert lines[-1].startswith("--restart: removing the checkpoints")


@pytest.mark.large
def test_missed_assert_publishes_the_run_and_exits_1(trained, monkeypatch, capsys):
    import yaml

    from tfaccel import cli

    root, _, _ = trained
    monkeypatch.chdir(root.parent)
    recipe = _prune_recipe(
        "asserted",
        root,
        epochs=1,
        extra={
            "assert": {"min_sparsity": 0.9, "max_wer_increase": 100.0},
            "export": ["tflite_fp32"],
            "benchmark": {"batch_sizes": [1, 4], "warmup": 1, "repeats": 2},
        },
    )
    path = root.parent / "asserted.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert cli.main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    assert "assert failed: min_sparsity: 0.5" in err
    assert "max_wer_increase" not in err  # that one passed
    saved = json.loads((root / "asserted" / "metrics.json").read_text())
    rows = {row["name"]: row for row in saved["asserts"]}
    assert rows["min_sparsity"]["passed"] is False
    assert rows["max_wer_increase"]["passed"] is True
    assert saved["passed"] is False
    # The report is written for a failed run too, with every runtime timed.
    run = root / "asserted"
    assert {"report.md", "report.json", "report.png"} <= {p.name for p in run.iterdir()}
    rows = saved["benchmark"]["rows"]
    assert [(r["name"], r["batch_size"]) for r in rows] == [
        (name, size) for size in (1, 4) for name in ("baseline", "keras", "tflite_fp32")
    ]
    assert all(r["runs"] == 2 and r["ratio"] > 0 for r in rows)
    assert [r["ratio"] for r in rows if r["name"] == "baseline"] == [1.0, 1.0]
    assert (
        "| min_sparsity | 0.9 | 0.5 | keras | **FAIL** |"
        in (run / "report.md").read_text()
    )
    assert saved["layers"][-1]["path"] == "total"
    assert saved["machine"]["cores"] >= 1

    recipe["assert"] = {"min_sparsity": 0.45}
    path.write_text(yaml.safe_dump(recipe))
    assert cli.main(["run", str(path)]) == 0


def _record_training(monkeypatch):
    """Replaces baseline training by a list of the folder names it would write."""
    trained_into = []
    monkeypatch.setattr(
        baseline_lib,
        "train_baseline",
        lambda config, root, strategy=None, name=None: trained_into.append(name),
    )
    return trained_into


def _files(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.large
def test_cached_baseline_of_other_data_is_retrained(trained, tmp_path, monkeypatch):
    import shutil

    root, _, _ = trained
    copy = tmp_path / "baseline-g2p-tiny"
    shutil.copytree(root / "baseline-g2p-tiny", copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    assert len(metrics["task"]["data_sha256"]) == 64
    lines = []
    ensure_baseline(CONFIG, tmp_path, cache=True, log=lines.append)
    assert lines == [f"Reusing cached baseline {copy}"]

    metrics["task"]["data_sha256"] = "0" * 64  # as if CMUdict had changed
    (copy / "metrics.json").write_text(json.dumps(metrics))
    before = _files(copy)
    trained_into = _record_training(monkeypatch)
    lines = []
    ensure_baseline(CONFIG, tmp_path, cache=True, log=lines.append)
    # The old entry stays, byte for byte; the new one goes beside it.
    (name,) = trained_into
    assert name.startswith("baseline-g2p-tiny-") and len(name) == 28
    assert lines[0] == (
        f"Cached baseline {copy} has other data; it stays, and this one goes to {name}."
    )
    assert _files(copy) == before


@pytest.mark.large
def test_baseline_of_other_settings_never_replaces_the_cache(
    trained, tmp_path, monkeypatch
):
    import dataclasses
    import shutil

    root, _, _ = trained
    copy = tmp_path / "baseline-g2p-tiny"
    shutil.copytree(root / "baseline-g2p-tiny", copy)
    before = _files(copy)
    trained_into = _record_training(monkeypatch)
    other = dataclasses.replace(CONFIG, overrides={"num_decoder_layers": 1})
    for cache in (True, False):
        ensure_baseline(other, tmp_path, cache=cache, log=lambda line: None)
    assert trained_into[0] == trained_into[1] != "baseline-g2p-tiny"
    assert _files(copy) == before
    # Once trained, the other settings find their own folder again.
    shutil.copytree(copy, tmp_path / trained_into[0])
    metrics = json.loads((tmp_path / trained_into[0] / "metrics.json").read_text())
    metrics["config"]["overrides"] = {"num_decoder_layers": 1}
    (tmp_path / trained_into[0] / "metrics.json").write_text(json.dumps(metrics))
    lines = []
    ensure_baseline(other, tmp_path, cache=True, log=lines.append)
    assert lines == [f"Reusing cached baseline {tmp_path / trained_into[0]}"]


@pytest.mark.large
def test_a_diverging_stage_publishes_nothing_and_keeps_the_baseline(
    trained, monkeypatch
):
    from tfaccel.errors import DivergedError

    root, _, _ = trained
    monkeypatch.chdir(root.parent)
    cache = root / "baseline-g2p-tiny"
    before = {
        p.relative_to(cache): p.read_bytes() for p in cache.rglob("*") if p.is_file()
    }
    spec = _prune_recipe("diverged", root, epochs=1)
    spec["stages"][0]["learning_rate"] = 1e30
    with pytest.raises(DivergedError, match="stage 'prune' diverged"):
        run_recipe(parse_recipe(spec), log=lambda _: None)
    assert not (root / "diverged").exists()
    # It failed in its first epoch: no checkpoint, so no resume folder either.
    assert not (root / ".diverged.resume").exists()
    after = {
        p.relative_to(cache): p.read_bytes() for p in cache.rglob("*") if p.is_file()
    }
    assert after == before
