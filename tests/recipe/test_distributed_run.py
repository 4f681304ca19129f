"""Recipes under `distribute`: MirroredStrategy in-process, and two workers
of MultiWorkerMirroredStrategy as processes on 127.0.0.1 (free ports chosen
at run time), including a worker killed mid-run and the restart."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tfaccel.distribute import free_ports
from tfaccel.recipe import baseline as baseline_lib
from tfaccel.recipe import checkpoint
from tfaccel.recipe.loader import parse_recipe
from tfaccel.recipe.runner import run_recipe

# The cached baseline every run here reuses: 64 examples per step, which is
# 32 per replica on two replicas (learning rate kept: `constant`).
BASELINE = baseline_lib.BaselineConfig(
    preset="tiny", epochs=2, batch_size=64, max_examples=1500, eval_examples=20
)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("savedmodels")
    baseline_lib.train_baseline(BASELINE, root, verbose=0)
    return root


def _recipe(name, root, strategy, epochs=2, qat=True, export=()):
    replicas = 1 if strategy == "none" else 2
    modifiers = [
        {
            "type": "magnitude_pruning",
            "targets": ["re:.*feedforward.*kernel"],
            "schedule": {
                "type": "polynomial_decay",
                "final_sparsity": 0.5,
                "end_epoch": 2,
            },
        }
    ]
    stages = [{"name": "prune", "epochs": epochs, "modifiers": modifiers}]
    if qat:
        qat_modifier = {
            "type": "quantization_aware",
            "targets": ["re:.*kernel"],
            "preserve_sparsity": True,
        }
        stages.append({"name": "qat", "epochs": 1, "modifiers": [qat_modifier]})
    return {
        "version": 1,
        "name": name,
        "task": {"name": "g2p", "max_examples": 1500},
        "model": {"preset": "tiny"},
        "baseline": {"epochs": 2, "batch_size": 64 // replicas},
        "distribute": {
            "strategy": strategy,
            "learning_rate": "constant",
            "timeout_seconds": 60,
        },
        "stages": stages,
        "export": list(export),
        "output_dir": root.name,
    }


@pytest.fixture(scope="module")
def single(root):
    """Prune, then QAT, on one device: the run the others must match."""
    cwd = os.getcwd()
    os.chdir(root.parent)
    try:
        return run_recipe(parse_recipe(_recipe("single", root, "none")), log=print)
    finally:
        os.chdir(cwd)


@pytest.mark.large
def test_mirrored_recipe_matches_one_device(root, single, monkeypatch):
    monkeypatch.chdir(root.parent)
    lines = []
    mirrored = run_recipe(
        parse_recipe(_recipe("mirrored", root, "mirrored")), log=lines.append
    )
    # Both start from the same cached baseline: 2 x 32 is its global batch.
    assert any(line.startswith("Reusing cached baseline") for line in lines), lines
    assert any("Training on 2 replicas" in line for line in lines), lines
    assert mirrored["final_sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert mirrored["final_sparsity"] == pytest.approx(single["final_sparsity"])
    assert mirrored["stages"][0]["parameters"] == single["stages"][0]["parameters"]
    # The same global batches: the same steps, so the same schedule, and a
    # model of about the same quality (float summation order differs).
    delta = abs(mirrored["final"]["test"]["per"] - single["final"]["test"]["per"])
    assert delta < 0.03, (mirrored["final"]["test"], single["final"]["test"])
    assert (root / "mirrored" / "model.keras").is_file()
    assert not (root / ".mirrored.resume").exists()


def _start_workers(path, root, logs, extra=()):
    workers = ",".join(f"127.0.0.1:{port}" for port in free_ports(2))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    processes = []
    for index in range(2):
        log = open(logs / f"worker-{index}.log", "w")  # noqa: SIM115
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "tfaccel.cli", "run", str(path)]
                + ["--workers", workers, "--worker-index", str(index), *extra],
                cwd=root.parent,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return processes


def _wait(process, seconds):
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def _tail(path, lines=15):
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.mark.large
def test_two_workers_survive_a_lost_worker_and_resume_to_the_end(
    root, single, tmp_path, monkeypatch
):
    monkeypatch.chdir(root.parent)
    # 1. Two workers start prune + QAT; worker 1 is killed once the chief has
    # saved the first epoch. Worker 0 fails with a message within 120 s, and
    # nothing is published.
    path = tmp_path / "workers.yaml"
    path.write_text(
        yaml.safe_dump(_recipe("workers", root, "multi_worker", export=["keras"]))
    )
    saved = root / ".workers.resume" / "stage-0-prune" / "checkpoint"
    processes = _start_workers(path, root, tmp_path)
    try:
        deadline = time.monotonic() + 300
        while checkpoint.saved_epoch(saved) is None:
            assert all(p.poll() is None for p in processes), _tail(
                tmp_path / "worker-0.log"
            )
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.05)
    finally:
        os.kill(processes[1].pid, signal.SIGKILL)
        processes[1].wait()
    killed = time.monotonic()
    code = _wait(processes[0], 180)
    waited = time.monotonic() - killed
    print(f"worker 0 stopped {waited:.1f} s after worker 1 was killed")
    log = (tmp_path / "worker-0.log").read_text()
    assert code == 3, _tail(tmp_path / "worker-0.log")
    assert waited < 120, waited
    assert "A worker of this multi-worker job stopped" in log
    assert "restart every worker with the same command" in log
    assert "Traceback" not in log
    assert not (root / "workers").exists()
    killed_at = checkpoint.saved_epoch(saved)
    assert killed_at == 1  # of the prune stage's 2 epochs

    # 2. Both workers restarted: they resume after the saved epoch, finish
    # prune + QAT, and reach the sparsity of the uninterrupted one-device
    # run. Only the chief publishes.
    processes = _start_workers(path, root, tmp_path)
    codes = [_wait(p, 600) for p in processes]
    assert codes == [0, 0], [_tail(tmp_path / f"worker-{i}.log") for i in (0, 1)]
    for index in (0, 1):
        log = (tmp_path / f"worker-{index}.log").read_text()
        assert "resuming after epoch 1" in log, _tail(tmp_path / f"worker-{index}.log")
    assert "Stages done; the chief worker writes the run folder" in (
        (tmp_path / "worker-1.log").read_text()
    )
    result = json.loads((root / "workers" / "metrics.json").read_text())
    assert result["stages"][0]["resumed_after_epoch"] == 1
    assert [stage["name"] for stage in result["stages"]] == ["prune", "qat"]
    assert result["final_sparsity"] == pytest.approx(single["final_sparsity"])
    assert result["final_sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert (root / "workers" / "model.keras").is_file()
    assert not (root / ".workers.resume").exists()
