"""Tests for the files in recipes/: each validates, and schema.json is current."""

import json
import pathlib
import subprocess
import sys

import pytest

from tfaccel.recipe.loader import validate_recipe_file
from tfaccel.recipe.schema import recipe_json_schema

REPO = pathlib.Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


def test_recipes_exist():
    assert "g2p-baseline.yaml" in [path.name for path in RECIPES]


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.name)
def test_recipe_validates(path, monkeypatch):
    monkeypatch.chdir(REPO)
    recipe = validate_recipe_file(path.relative_to(REPO))
    assert recipe.name == path.stem


def test_baseline_recipe_values(monkeypatch):
    monkeypatch.chdir(REPO)
    recipe = validate_recipe_file("recipes/g2p-baseline.yaml")
    assert (recipe.task.name, recipe.model.preset) == ("g2p", "small")
    assert recipe.baseline.epochs == 12
    assert recipe.stages == [] and recipe.export == [] and recipe.benchmark is None


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.name)
def test_readme_lists_recipe(path):
    readme = (REPO / "recipes" / "README.md").read_text(encoding="utf-8")
    assert f"`{path.name}`" in readme


def test_schema_json_is_up_to_date():
    saved = json.loads((REPO / "recipes" / "schema.json").read_text(encoding="utf-8"))
    assert saved == recipe_json_schema(), (
        "recipes/schema.json is stale; run: "
        "python -m tfaccel.recipe.schema > recipes/schema.json"
    )


def test_loader_imports_no_tensorflow():
    code = (
        "import sys, tfaccel.recipe.loader; "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"
