"""Tests for tfaccel.recipe.schema: path safety and the output folder."""

import pytest

from tfaccel.recipe.loader import RecipeError, load_recipe, parse_recipe
from tfaccel.recipe.schema import check_relative_path

MINIMAL = "version: 1\nname: demo\ntask: {name: g2p}\nmodel: {preset: tiny}\n"


def test_run_dir_is_output_dir_and_name_under_root(tmp_path):
    recipe = parse_recipe(MINIMAL + "output_dir: out/runs\n")
    assert recipe.run_dir(tmp_path) == tmp_path.resolve() / "out" / "runs" / "demo"


def test_run_dir_defaults_to_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = tmp_path.resolve() / "savedmodels" / "demo"
    assert parse_recipe(MINIMAL).run_dir() == expected


@pytest.mark.parametrize("link", ["savedmodels", "savedmodels/demo"])
def test_run_dir_refuses_symlinks(tmp_path, link):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / link).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / link).symlink_to(tmp_path / "elsewhere")
    recipe = parse_recipe(MINIMAL, source="r.yaml")
    with pytest.raises(RecipeError, match=r"^r\.yaml: output_dir: .*symlink"):
        recipe.run_dir(tmp_path)


def test_load_recipe_refuses_symlinked_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text(MINIMAL, encoding="utf-8")
    (tmp_path / "savedmodels").symlink_to("/tmp")
    with pytest.raises(
        RecipeError, match="passes through a symlink; got 'savedmodels'"
    ):
        load_recipe("r.yaml")


def test_root_itself_may_be_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    recipe = parse_recipe(MINIMAL)
    run_dir = recipe.run_dir(tmp_path / "link")
    assert run_dir == (tmp_path / "real").resolve() / "savedmodels" / "demo"


@pytest.mark.parametrize("path", ["a", "a/b.keras", "./a", "a..b/c", ".hidden/x"])
def test_relative_paths_pass(path):
    assert check_relative_path(path) == path


@pytest.mark.parametrize(
    "path, words",
    [
        ("", "non-empty"),
        ("/abs", "absolute"),
        ("C:/x", "absolute"),
        ("a/../b", "'..'"),
        ("..", "'..'"),
        ("a\\b", "separator"),
    ],
)
def test_unsafe_paths_fail(path, words):
    with pytest.raises(ValueError, match=words):
        check_relative_path(path)
