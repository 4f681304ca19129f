"""Repository rules that are cheap to check and easy to break."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.index("```sh")
    assert text[:first_block].strip() == "# tfaccel"
    commands = _readme_commands()
    assert len(commands) == 2
    assert "tfaccel run recipes/" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_default_recipe_exists():
    recipe = _readme_commands()[0].split("tfaccel run ")[1].strip()
    assert (ROOT / recipe).is_file()


def test_no_tf_keras_outside_compat():
    pattern = re.compile(r"\btf\.keras\b|\btf_keras\b")
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tfaccel").rglob("*.py")
        if "compat" not in path.parts and pattern.search(path.read_text())
    ]
    assert offenders == []


def test_savedmodels_tracks_only_the_manifest_and_its_files():
    import subprocess

    from tfaccel import reference

    ignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "/savedmodels/*" in ignore and "!/savedmodels/README.md" in ignore
    tracked = subprocess.run(
        ["git", "ls-files", "savedmodels"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    listed = {
        f"savedmodels/{entry['folder']}/{name}"
        for entry in reference.load_manifest(ROOT / "savedmodels")["models"]
        for name in entry["files"]
    }
    # What tfaccel writes stays untracked; only the reference set is shipped.
    assert (
        set(tracked) == {"savedmodels/README.md", "savedmodels/manifest.json"} | listed
    )
