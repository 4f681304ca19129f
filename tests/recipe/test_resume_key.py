"""A killed run resumes only with the same recipe and the same input files."""

from tfaccel.recipe.loader import parse_recipe
from tfaccel.recipe.resume import resume_folder

RECIPE = {
    "version": 1,
    "name": "keyed",
    "task": {"name": "g2p"},
    "model": {"path": "start.keras"},
    "stages": [
        {
            "name": "prune",
            "epochs": 1,
            "modifiers": [
                {
                    "type": "magnitude_pruning",
                    "targets": ["re:.*kernel"],
                    "schedule": {"type": "constant", "sparsity": 0.5},
                }
            ],
        }
    ],
}


def _folder(tmp_path, lines):
    recipe = parse_recipe(RECIPE)
    return resume_folder(
        recipe, tmp_path, False, lines.append, inputs=[tmp_path / "start.keras"]
    )


def test_a_changed_input_file_starts_the_run_afresh(tmp_path):
    (tmp_path / "start.keras").write_bytes(b"first model")
    lines = []
    folder = _folder(tmp_path, lines)
    (folder / "stage-0-prune").mkdir()  # a killed run's checkpoints
    assert _folder(tmp_path, lines) == folder
    assert (folder / "stage-0-prune").is_dir()
    assert "Resuming from the checkpoints" in lines[-1]
    # Same name, same size, other bytes: the checkpoints are not the new
    # model's, so they go.
    (tmp_path / "start.keras").write_bytes(b"other model")
    _folder(tmp_path, lines)
    assert "changed since" in lines[-1]
    assert not (folder / "stage-0-prune").exists()


def test_a_teacher_outside_the_recipe_folder_is_refused():
    import pytest

    from tfaccel.recipe.schema import RecipeError

    for teacher in ("/etc/model.keras", "../teacher.keras"):
        spec = {**RECIPE, "stages": [dict(RECIPE["stages"][0])]}
        spec["stages"][0]["modifiers"] = [
            *RECIPE["stages"][0]["modifiers"],
            {"type": "distillation", "teacher": teacher},
        ]
        with pytest.raises(RecipeError, match="teacher"):
            parse_recipe(spec)
