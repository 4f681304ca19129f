"""`tfaccel.distribute`: strategy names, TF_CONFIG, learning-rate rules, and
the CLI's multi-worker flags (the runs themselves: tests/recipe/)."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfaccel import distribute
from tfaccel.cli import main
from tfaccel.errors import UserError


def test_none_is_the_default_strategy():
    assert distribute.get_strategy("none") is tf.distribute.get_strategy()


def test_a_bare_import_reaches_distribute_as_readme_writes_it():
    # A fresh interpreter: in this one another test may have loaded it.
    code = (
        "import tfaccel, tensorflow as tf; "
        "assert tfaccel.distribute.get_strategy('none') "
        "is tf.distribute.get_strategy(); "
        "print(tfaccel.recipe.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tfaccel.recipe"


def test_mirrored_without_gpus_spans_the_logical_cpus(mirrored_strategy):
    # tests/conftest.py splits the CPU in two.
    strategy = distribute.get_strategy("mirrored")
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == len(tf.config.list_logical_devices("CPU"))
    assert strategy.num_replicas_in_sync == 2
    # One per process: a second over the same devices would clash.
    assert strategy is mirrored_strategy


def test_auto_without_gpus_or_cluster_is_one_device(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert not tf.config.list_logical_devices("GPU")
    assert distribute.get_strategy("auto") is tf.distribute.get_strategy()


def test_unknown_strategy_names_the_choices():
    with pytest.raises(UserError, match="none, mirrored, multi_worker, auto"):
        distribute.get_strategy("horovod")


def test_multi_worker_without_a_cluster_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="--workers host:port,host:port"):
        distribute.get_strategy("multi_worker")


def test_tf_config_names_every_worker_and_this_one():
    config = json.loads(distribute.tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1))
    assert config == {
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
        "task": {"type": "worker", "index": 1},
    }


@pytest.mark.parametrize(
    ("workers", "index", "match"),
    [
        ([], 0, "at least one host:port"),
        (["localhost"], 0, "must be host:port"),
        (["a:1", "b:x"], 0, "must be host:port"),
        (["a:1", "b:2"], 2, "between 0 and 1"),
        (["a:1", "b:2"], -1, "between 0 and 1"),
    ],
)
def test_tf_config_refuses_bad_clusters(workers, index, match):
    with pytest.raises(UserError, match=match):
        distribute.tf_config(workers, index)


def test_cluster_workers_reads_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", distribute.tf_config(["a:1", "b:2"], 0))
    assert distribute.cluster_workers() == ["a:1", "b:2"]
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UserError, match="TF_CONFIG is not valid JSON"):
        distribute.cluster_workers()
    monkeypatch.delenv("TF_CONFIG")
    assert distribute.cluster_workers() == []


def test_chief_outside_a_cluster():
    assert distribute.is_chief(tf.distribute.get_strategy())
    assert distribute.is_chief(distribute.get_strategy("mirrored"))
    assert not distribute.is_multi_worker(distribute.get_strategy("mirrored"))


@pytest.mark.parametrize(
    ("rule", "expected"), [("linear", 8e-3), ("sqrt", 4e-3), ("constant", 2e-3)]
)
def test_learning_rate_rules(rule, expected):
    assert distribute.scaled_learning_rate(2e-3, 4, rule) == pytest.approx(expected)


def test_unknown_learning_rate_rule():
    with pytest.raises(UserError, match="linear, sqrt or constant"):
        distribute.scaled_learning_rate(1e-3, 2, "cubic")


def test_models_move_into_and_out_of_a_strategy_with_their_weights(mirrored_strategy):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    inside = distribute.in_scope(model, mirrored_strategy)
    assert inside is not model
    assert inside.distribute_strategy is mirrored_strategy
    assert isinstance(inside.weights[0].value, tf.distribute.DistributedValues)
    assert distribute.in_scope(inside, mirrored_strategy) is inside
    outside = distribute.out_of_scope(inside)
    assert not isinstance(outside.weights[0].value, tf.distribute.DistributedValues)
    assert distribute.out_of_scope(outside) is outside
    x = np.arange(6, dtype="float32").reshape(2, 3)
    for copy in (inside, outside):
        np.testing.assert_array_equal(copy.predict(x, verbose=0), model(x).numpy())


def test_lost_worker_message_says_how_to_resume():
    error = tf.errors.UnavailableError(None, None, "peer down\n  at node X")
    message = distribute.lost_worker_message(error, "savedmodels/.r.resume")
    assert "UnavailableError: peer down at node X" in message
    assert "savedmodels/.r.resume" in message
    assert "restart every worker with the same command" in message


RECIPE = """\
version: 1
name: cli-workers
task: {name: g2p}
model: {preset: tiny}
distribute: {strategy: STRATEGY}
"""


@pytest.mark.parametrize(
    ("strategy", "flags", "message"),
    [
        ("none", ["--workers", "127.0.0.1:1", "--worker-index", "0"], "multi_worker"),
        ("multi_worker", ["--workers", "127.0.0.1:1"], "--worker-index I"),
        ("auto", ["--worker-index", "0"], "--workers HOST:PORT"),
        ("auto", ["--workers", "127.0.0.1:1", "--worker-index", "3"], "between 0"),
    ],
)
def test_cli_refuses_bad_worker_flags_without_a_traceback(
    strategy, flags, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.replace("STRATEGY", strategy))
    assert main(["run", str(path), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [path]
