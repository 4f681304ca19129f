import os
import pathlib
import subprocess
import sys

import pytest

from tfaccel._io import atomic_dir, atomic_file


def test_atomic_dir_publishes_complete_folder(tmp_path):
    target = tmp_path / "out" / "1"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "a"
    assert sorted(p.name for p in target.parent.iterdir()) == ["1"]


def test_atomic_dir_failure_leaves_nothing(tmp_path):
    target = tmp_path / "1"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_never_overwrites_unless_asked(tmp_path):
    target = tmp_path / "1"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileExistsError), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["1"]
    assert (target / "old.txt").exists()
    with atomic_dir(target, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["1"]


def test_atomic_file(tmp_path):
    target = tmp_path / "f.bin"
    with pytest.raises(ValueError), atomic_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise ValueError
    assert list(tmp_path.iterdir()) == []
    with atomic_file(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"


def test_killed_writer_leftovers_are_removed_by_next_writer(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "1"
    script = (
        "import os, signal, sys\n"
        "from tfaccel._io import atomic_dir\n"
        "with atomic_dir(sys.argv[1]) as tmp:\n"
        "    (tmp / 'half.bin').write_bytes(b'x' * 1000)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(target)], check=False)
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".1.tmp-")  # killed
    assert not target.exists()  # nothing was published
    with atomic_dir(target) as tmp:
        (tmp / "whole.bin").write_bytes(b"y")
    assert [p.name for p in tmp_path.iterdir()] == ["1"]


def test_live_writers_temporary_folder_is_kept(tmp_path):
    target = tmp_path / "1"
    with atomic_dir(target, replace=True) as outer:
        (outer / "a").write_text("a")
        with atomic_dir(target) as inner:  # a second writer of the same target
            (inner / "b").write_text("b")
        assert (outer / "a").exists()  # a live writer's folder is not stale
    assert [p.name for p in target.iterdir()] == ["a"]


def test_scratch_folders_of_dead_processes_are_removed(tmp_path, monkeypatch):
    import tempfile

    from tfaccel._io import scratch_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    stale = tmp_path / f"tfaccel-tflite-pid{dead}-abc"
    live = tmp_path / f"tfaccel-onnx-pid{os.getpid()}-def"
    other = tmp_path / "tfaccel-notes"
    for folder in (stale, live, other):
        folder.mkdir()
    with scratch_dir("tflite") as tmp:
        assert pathlib.Path(tmp).name.startswith(f"tfaccel-tflite-pid{os.getpid()}-")
        assert not stale.exists() and live.exists() and other.exists()
    assert not pathlib.Path(tmp).exists()
