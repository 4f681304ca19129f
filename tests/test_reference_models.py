"""The reference models shipped in savedmodels/: intact, scoring as listed, found."""

import json
import pathlib
import shutil

import pytest

from tfaccel import reference, tasks
from tfaccel.models import load_model
from tfaccel.recipe.baseline_cache import baseline_config, ensure_baseline
from tfaccel.recipe.loader import load_recipe

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAVED = ROOT / "savedmodels"
ENTRIES = reference.load_manifest(SAVED)["models"]
# What the recipes and README rely on being shipped.
SHIPPED = {"baseline-g2p-small", "teacher24/baseline-g2p-small"}


def test_manifest_lists_the_reference_models_with_their_commands():
    assert {entry["folder"] for entry in ENTRIES} == SHIPPED
    for entry in ENTRIES:
        assert entry["command"].startswith("tfaccel baseline --task g2p")
        assert set(entry["versions"]) == {"python", "tensorflow", "keras", "keras_hub"}
        assert {"model.keras", "metrics.json", "source_vocab.json"} <= set(
            entry["files"]
        )
        # Each model file stays small enough to live in git.
        assert (SAVED / entry["folder"] / "model.keras").stat().st_size < 10e6


def test_shipped_files_match_their_sha256():
    assert reference.check(SAVED) == []


def test_check_names_a_changed_or_missing_file(tmp_path):
    shutil.copytree(SAVED / "baseline-g2p-small", tmp_path / "baseline-g2p-small")
    manifest = {"models": [e for e in ENTRIES if e["folder"] == "baseline-g2p-small"]}
    (tmp_path / reference.MANIFEST).write_text(json.dumps(manifest))
    assert reference.check(tmp_path) == []
    vocab = tmp_path / "baseline-g2p-small" / "source_vocab.json"
    vocab.write_text(vocab.read_text() + " ")
    (tmp_path / "baseline-g2p-small" / "metrics.json").unlink()
    assert sorted(reference.check(tmp_path)) == [
        f"{tmp_path / 'baseline-g2p-small' / 'metrics.json'}: missing",
        f"{vocab}: sha256 differs from manifest.json",
    ]


@pytest.mark.large
@pytest.mark.parametrize("folder", sorted(SHIPPED))
def test_shipped_model_scores_its_manifest_wer(folder):
    (entry,) = [e for e in ENTRIES if e["folder"] == folder]
    task = tasks.get_task("g2p")
    test = task.evaluate(load_model(SAVED / folder / "model.keras"), "test")
    assert test["examples"] == entry["test"]["examples"] == 6252
    # Greedy decoding is deterministic; a float rounding difference on another
    # CPU may flip a word or two (1 word = 0.016 points), no more.
    assert abs(test["wer"] - entry["test"]["wer"]) <= 3 / 6252
    assert abs(test["per"] - entry["test"]["per"]) <= 0.001


@pytest.mark.large
def test_default_recipe_reuses_the_shipped_baseline(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "g2p-prune50-qat-int8.yaml")
    lines = []
    # A copy, so that nothing this test does can touch the shipped folder.
    shutil.copytree(SAVED / "baseline-g2p-small", tmp_path / "baseline-g2p-small")
    model, metrics = ensure_baseline(
        baseline_config(recipe), tmp_path, log=lines.append
    )
    assert lines == [f"Reusing cached baseline {tmp_path / 'baseline-g2p-small'}"]
    assert metrics["test"]["wer"] == pytest.approx(0.2975, abs=5e-5)
    assert model.count_params() == metrics["parameters"]
