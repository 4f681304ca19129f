"""Exit codes: 0 done, 1 a missed assert or diverged training, 2 a user error
or a bad file or machine, 3 a lost worker, 70 a bug (with its traceback),
130 interrupted. Each non-zero code comes with one `tfaccel: error:` line.
"""

import errno

import keras
import numpy as np
import pytest
from cli_checks import assert_user_error

from tfaccel import cli
from tfaccel.errors import DivergedError
from tfaccel.recipe.progress import StopOnNonFiniteLoss

RECIPE = """\
version: 1
name: hostile
task: {{name: g2p}}
model: {{preset: tiny}}
stages:
  - name: prune
    epochs: 1
    learning_rate: {rate}
    modifiers:
      - type: magnitude_pruning
        targets: ["re:.*kernel"]
        schedule: {{type: polynomial_decay, final_sparsity: {sparsity}, end_epoch: 1}}
"""


@pytest.mark.parametrize(
    ("rate", "sparsity", "fragment"),
    [
        (".inf", "0.5", "learning_rate"),
        ("-.inf", "0.5", "learning_rate"),
        (".nan", "0.5", "learning_rate"),
        ("1.0e-3", ".nan", "final_sparsity"),
    ],
)
def test_a_recipe_number_that_is_not_finite_is_refused(
    rate, sparsity, fragment, tmp_path, capsys
):
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.format(rate=rate, sparsity=sparsity))
    code = cli.main(["validate", str(path)])
    assert_user_error(code, capsys.readouterr().err, fragment)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--epochs", "-1"], "`epochs` must be an int >= 1"),
        (["--epochs", "0"], "`epochs` must be an int >= 1"),
        (["--batch-size", "0"], "`batch_size` must be an int >= 1"),
        (["--learning-rate", "inf"], "`learning_rate` must be a finite number"),
        (["--learning-rate", "0"], "`learning_rate` must be a finite number > 0"),
        (["--max-examples", "0"], "`max_examples` must be an int >= 1"),
    ],
)
def test_baseline_settings_out_of_range_are_refused(args, fragment, tmp_path, capsys):
    code = cli.main(["baseline", "--output-root", str(tmp_path), *args])
    assert_user_error(code, capsys.readouterr().err, fragment)
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing saved


def test_training_that_diverges_stops_with_one_line():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1e30), "mse")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32") * 1e3
    with pytest.raises(DivergedError, match="diverged: the loss is (nan|inf)"):
        model.fit(
            x,
            x[:, :1],
            batch_size=4,
            epochs=3,
            verbose=0,
            callbacks=[StopOnNonFiniteLoss("the test model")],
        )
    assert int(model.optimizer.iterations.numpy()) < 48  # stopped early


def _failing(error):
    def command(args):
        raise error

    return command


def _main_with(monkeypatch, error):
    monkeypatch.setitem(cli.COMMANDS, "validate", _failing(error))
    return cli.main(["validate", "any.yaml"])


def test_diverged_training_exits_1(monkeypatch, capsys):
    code = _main_with(monkeypatch, DivergedError("Training of stage 'x' diverged"))
    stderr = capsys.readouterr().err
    assert code == 1 and "Traceback" not in stderr
    assert stderr.strip() == "tfaccel: error: Training of stage 'x' diverged"


@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_full_disk_or_read_only_folder_exits_2(number, monkeypatch, capsys):
    error = OSError(number, "No space left", "savedmodels/run/model.keras")
    code = _main_with(monkeypatch, error)
    assert_user_error(
        code, capsys.readouterr().err, "cannot write 'savedmodels/run/model.keras'"
    )


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), KeyError("k"), OSError(errno.EBADF, "bad fd")]
)
def test_a_bug_exits_70_with_its_traceback_and_asks_for_a_report(
    error, monkeypatch, capsys
):
    code = _main_with(monkeypatch, error)
    stderr = capsys.readouterr().err
    assert code == 70
    assert "Traceback" in stderr
    assert stderr.strip().splitlines()[-1].startswith("tfaccel: internal error:")


def test_interrupted_exits_130(monkeypatch, capsys):
    code = _main_with(monkeypatch, KeyboardInterrupt())
    assert code == 130
    assert "interrupted" in capsys.readouterr().err


def test_a_catastrophic_target_regex_matches_in_linear_time():
    import time

    from technique_checks import functional_mlp

    import tfaccel

    model = functional_mlp()
    # `(.*a)*x` backtracks exponentially in Python's `re` on a path of a's;
    # RE2 answers at once (here: it matches nothing, an error).
    target = "(.*a)*x"
    start = time.perf_counter()
    with pytest.raises(ValueError, match="matches no trainable variable"):
        tfaccel.prune(model, [target], tfaccel.ConstantSparsity(0.5, 0))
    assert time.perf_counter() - start < 5
    from tfaccel.core import patterns

    start = time.perf_counter()
    assert not patterns.fullmatch(target, "a" * 5000)
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize(
    ("target", "fragment"),
    [("(?!x).*kernel", "no backreferences or lookarounds"), ("(a", "missing )")],
)
def test_a_target_re2_cannot_compile_is_refused_in_one_line(
    target, fragment, tmp_path, capsys
):
    path = tmp_path / "r.yaml"
    text = RECIPE.format(rate="1.0e-3", sparsity="0.5").replace("re:.*kernel", target)
    path.write_text(text)
    code = cli.main(["validate", str(path)])
    assert_user_error(code, capsys.readouterr().err, fragment)


def _laughs(levels, width=9):
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_yaml_aliases_that_expand_past_the_budget_are_refused_at_once(tmp_path, capsys):
    import time

    path = tmp_path / "r.yaml"
    # 9**12 values once expanded, in under 1 KB: refused before validation.
    path.write_text(RECIPE.format(rate="1.0e-3", sparsity="0.5") + _laughs(12))
    start = time.perf_counter()
    code = cli.main(["validate", str(path)])
    assert time.perf_counter() - start < 5
    assert_user_error(code, capsys.readouterr().err, "aliases expand to more than")


def test_a_few_aliases_stay_allowed(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    text = RECIPE.format(rate="1.0e-3", sparsity="0.5")
    text = text.replace('targets: ["re:.*kernel"]', 'targets: &t ["re:.*kernel"]')
    path.write_text(text)
    assert cli.main(["validate", str(path)]) == 0


@pytest.mark.parametrize(
    "overrides", ["{num_heads: two}", "{hidden_dim: 30, num_heads: 4}"]
)
def test_model_overrides_that_do_not_build_exit_2(overrides, tmp_path, capsys):
    import yaml

    from tfaccel.recipe.baseline import BaselineConfig, build_model
    from tfaccel.tasks import get_task

    config = BaselineConfig(preset="tiny", overrides=yaml.safe_load(overrides))
    with pytest.raises(cli.UserError, match="do not build a 'tiny' model"):
        build_model(config, get_task("g2p", 300))


def test_a_recipe_may_not_take_the_baseline_cache_name(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    text = RECIPE.format(rate="1.0e-3", sparsity="0.5")
    path.write_text(text.replace("name: hostile", "name: baseline-g2p-tiny"))
    code = cli.main(["validate", str(path)])
    assert_user_error(code, capsys.readouterr().err, "may not start with 'baseline-'")


def test_a_corrupt_keras_file_is_a_one_line_error(tmp_path, capsys):
    import zipfile

    from tfaccel.models import Seq2SeqTransformer, save_model

    model = Seq2SeqTransformer.from_preset("tiny", max_encoder_length=10)
    model.generate(np.ones((1, 4), "int32"), 4)
    good = tmp_path / "good.keras"
    save_model(model, good)
    # Flip one byte inside the stored weights: the zip's CRC no longer holds.
    with zipfile.ZipFile(good) as archive:
        info = archive.getinfo("model.weights.h5")
    data = bytearray(good.read_bytes())
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[middle] ^= 0xFF
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.keras").write_bytes(bytes(data))
    code = cli.main(["summary", str(bad / "model.keras")])
    assert_user_error(code, capsys.readouterr().err, "Cannot load model")


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    from tfaccel.models import Seq2SeqTransformer, save_model

    folder = tmp_path_factory.mktemp("model")
    model = Seq2SeqTransformer.from_preset("tiny", max_encoder_length=10)
    model.generate(np.ones((1, 4), "int32"), 4)
    save_model(model, folder / "model.keras")
    return folder


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[]", "holds a JSON list"),
        ("[1, 2]", "holds a JSON list"),
        ("7", "holds a JSON int"),
        ("{corrupt", "Cannot read"),
        ('{"recipe": 5}', "names no task"),
        ('{"recipe": {"task": []}}', "names no task"),
        ('{"config": {"task": 5}}', "names no task"),
        ("\xff\xfe", "Cannot read"),
    ],
)
@pytest.mark.parametrize("command", ["export", "bench"])
def test_a_bad_metrics_json_beside_a_model_exits_2(
    command, text, fragment, model_folder, tmp_path, capsys
):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.keras").symlink_to(model_folder / "model.keras")
    (folder / "metrics.json").write_bytes(text.encode("latin-1"))
    args = [command, str(folder)]
    if command == "export":
        args += ["--formats", "onnx", "--out", str(tmp_path / "out")]
    code = cli.main(args)
    assert_user_error(code, capsys.readouterr().err, fragment)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_export_out_must_name_a_folder(model_folder, capsys):
    code = cli.main(["export", str(model_folder), "--formats", "onnx", "--out", ""])
    assert_user_error(code, capsys.readouterr().err, "--out must name a folder")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("model_fp32.tflite", b"TFL3" + bytes(range(256)) * 4),
        ("model_fp32.tflite", b""),
    ],
)
def test_bench_of_a_corrupt_tflite_exits_2(name, data, tmp_path, capsys):
    (tmp_path / name).write_bytes(data)
    code = cli.main(
        ["bench", str(tmp_path / name), "--task", "g2p", "--out", str(tmp_path / "b")]
    )
    assert_user_error(code, capsys.readouterr().err, "Cannot load the tflite_fp32")


def test_a_saved_model_base_with_a_backup_folder_is_read(tmp_path):
    from tfaccel.bench.targets import find_targets

    for name in ("1.bak", "2", "10x"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "saved_model.pb").write_bytes(b"")
    (target,) = find_targets([str(tmp_path)])
    assert target.path == str(tmp_path / "2")


def test_a_schedule_that_ends_after_its_stage_is_refused(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    text = RECIPE.format(rate="1.0e-3", sparsity="0.5")
    path.write_text(text.replace("end_epoch: 1}", "end_epoch: 3}"))
    code = cli.main(["validate", str(path)])
    assert_user_error(code, capsys.readouterr().err, "past the stage's 1 epoch(s)")
