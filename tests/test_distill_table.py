"""tools/distill_table.py: how each student was trained, and its scores."""

import json

import numpy as np
from tool_modules import load_tool


def _run(root, name, recipe, stages, baseline=None, exports=None):
    folder = root / name
    folder.mkdir()
    metrics = {"recipe": recipe, "stages": stages, "baseline": baseline or {}}
    if exports:
        metrics["exports"] = exports
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def _stage(wer, steps, macs):
    return {
        "test": {"wer": wer, "per": wer / 4},
        "seconds": 60.0,
        "steps_per_epoch": 952,
        "optimizer_steps": steps,
        "parameters": 356779,
        "kernel_macs_per_token": macs,
    }


def test_rows_say_how_each_student_trained(tmp_path):
    from tfaccel.compression import flops
    from tfaccel.models import Seq2SeqTransformer, save_model

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    model = Seq2SeqTransformer.from_preset("tiny")
    model({"encoder_token_ids": np.ones((1, 3)), "decoder_token_ids": np.ones((1, 3))})
    save_model(model, teacher / "model.keras")
    (teacher / "metrics.json").write_text(
        json.dumps({"test": {"wer": 0.2657, "per": 0.0633}})
    )
    macs = flops.kernel_macs(model)
    kd = {"type": "distillation", "temperature": 2.0, "alpha": 0.5, "unlabelled": True}
    runs = [
        _run(
            tmp_path,
            "scratch",
            {"model": {"preset": "small"}, "baseline": {"epochs": 6}, "stages": []},
            [_stage(0.3908, 1904, macs // 4)],
            baseline={"test": {"wer": 0.3975, "per": 0.0996}},
            exports={"tflite_int8": {"test": {"wer": 0.3911, "per": 0.0975}}},
        ),
        _run(
            tmp_path,
            "both",
            {
                "model": {"path": "t.keras"},
                "stages": [{"modifiers": [{"type": "shrink"}, kd]}],
            },
            [_stage(0.30, 5712, macs // 4)],
        ),
    ]
    tool = load_tool("distill_table")
    text = tool.render(
        tool._teacher(teacher), [tool._row(r, tool._teacher(teacher)) for r in runs]
    )
    lines = text.splitlines()
    assert lines[0] == f"Teacher: `{teacher}`, test WER 26.57%, PER 6.33%."
    scratch, both = lines[-2:]
    # From scratch: 6 epochs of 952 batches, no KD, its int8 file's WER.
    assert scratch.startswith("| scratch | random weights | labels | none | 5712 |")
    assert "| 39.75 | 9.96 | +0.00 | 39.11 |" in scratch
    assert both.startswith(
        "| both | shrunk teacher | labels + teacher on unlabelled words "
        "| token (T 2, label weight 0.5) + sequence | 5712 |"
    )
    assert "| 30.00 | 7.50 | -9.75 |  |" in both
    assert f"| {100 * (macs // 4) / macs:.1f}% |" in both
