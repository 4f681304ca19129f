"""One writer per run folder and per export folder, across real processes.

A second `tfaccel export --out` into a folder another process is exporting
to, or a second `tfaccel run` of a recipe that is running, stops at once
with exit 2 and one line that names the holder's pid; the holder's files are
untouched. The kernel drops the lock of a process that dies, even by
SIGKILL, so the next writer goes on.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from cli_checks import assert_user_error

from tfaccel._io import exclusive
from tfaccel.cli import main
from tfaccel.errors import UserError

HOLD = """
import sys, time
from tfaccel._io import exclusive
with exclusive(sys.argv[1], "Export folder"):
    print("held", flush=True)
    time.sleep(300)
"""


def _holder(path):
    """Starts a process that holds the lock on `path`; returns it once it does."""
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD), str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "held"
    return process


def _stop(process):
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture
def saved_model_dir(tmp_path):
    from tfaccel.models import Seq2SeqTransformer, save_model

    model = Seq2SeqTransformer.from_preset("tiny", max_encoder_length=10)
    model.generate(np.ones((1, 4), "int32"), 4)  # builds the model
    save_model(model, tmp_path / "model.keras")
    return tmp_path


def test_a_second_export_into_a_busy_folder_exits_2_naming_the_holder(
    saved_model_dir, tmp_path, capsys
):
    out = tmp_path / "exports"
    out.mkdir()
    (out / "mine.txt").write_text("kept")
    holder = _holder(out)
    try:
        code = main(
            ["export", str(saved_model_dir), "--formats", "onnx", "--out", str(out)]
        )
        assert_user_error(
            code,
            capsys.readouterr().err,
            f"is being written by process {holder.pid}",
        )
        assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    finally:
        _stop(holder)
    # SIGKILL released it: the next export goes on.
    code = main(
        ["export", str(saved_model_dir), "--formats", "tflite_fp32", "--out", str(out)]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt", "model_fp32.tflite"]


def test_the_lock_is_per_target_and_not_reentrant_across_processes(tmp_path):
    holder = _holder(tmp_path / "a")
    try:
        with pytest.raises(UserError, match=str(holder.pid)):
            with exclusive(tmp_path / "a", "Export folder"):
                pass
        with exclusive(tmp_path / "b", "Export folder"):  # another target
            assert (tmp_path / ".b.lock").read_text() == str(os.getpid())
        assert not (tmp_path / ".b.lock").exists()  # removed on release
    finally:
        _stop(holder)
    # The killed holder's file is left; the next holder takes it over.
    assert (tmp_path / ".a.lock").read_text() == str(holder.pid)
    with exclusive(tmp_path / "a", "Export folder"):
        pass
    assert not (tmp_path / ".a.lock").exists()


RECIPE = """\
version: 1
name: locked
task: {{name: g2p, max_examples: 200}}
model: {{preset: tiny}}
baseline: {{epochs: 1, batch_size: 64}}
stages:
  - name: prune
    epochs: 1
    modifiers:
      - type: magnitude_pruning
        targets: ["re:.*feedforward.*kernel"]
        schedule: {{type: constant, sparsity: 0.5, frequency: 1}}
output_dir: {out}
"""


@pytest.mark.large
def test_a_second_run_of_a_running_recipe_exits_2_and_the_first_publishes(tmp_path):
    recipe = tmp_path / "locked.yaml"
    out = tmp_path / "runs"
    recipe.write_text(RECIPE.format(out=out.name))
    command = [sys.executable, "-m", "tfaccel.cli", "run", recipe.name]
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=log)
    try:
        lock = out / ".locked.lock"
        deadline = time.monotonic() + 120
        while not (lock.is_file() and lock.read_text().strip()):
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the first run never took its lock"
            time.sleep(0.1)
        second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
        assert_user_error(
            second.returncode,
            second.stderr,
            f"is being written by process {first.pid}",
        )
        assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()
    finally:
        if first.poll() is None:
            first.kill()
        log.close()
    assert (out / "locked" / "metrics.json").is_file()
    # Trained on 200 words, its vocabularies are smaller than the corpus's
    # (31 graphemes, not 33): `tfaccel export` encodes with the run's own.
    code = main(
        [
            "export",
            str(out / "locked"),
            "--formats",
            "onnx",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 0
