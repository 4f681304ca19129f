"""Tabulates the student runs: how each was trained, and its test scores.

Reads the `metrics.json` of a teacher folder (written by `tfaccel baseline`)
and of `tfaccel run` folders, and prints one Markdown row per run: where the
student started (random weights or the shrunk teacher), its training data
and KD terms, the optimizer steps of its training, its size against the
teacher, and its test WER/PER after that training (fp32) and, where the run
went on to QAT and a LiteRT int8 export, the int8 file's.

    python tools/distill_table.py savedmodels/teacher24/baseline-g2p-small \\
        savedmodels/g2p-student-scratch savedmodels/g2p-student-finetune \\
        savedmodels/g2p-student-kd-token savedmodels/g2p-student-kd-seq \\
        savedmodels/g2p-student-kd-both
"""

import argparse
import json
import pathlib
import sys


def _read(folder):
    path = pathlib.Path(folder) / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        sys.exit(f"distill_table.py: error: cannot read '{path}': {error}")


def _how(metrics):
    """Returns (start, data, kd) of a run's first training: stage or baseline."""
    recipe = metrics["recipe"]
    if recipe["model"].get("preset"):
        return "random weights", "labels", "none"
    modifiers = {m["type"]: m for m in recipe["stages"][0]["modifiers"]}
    kd = modifiers.get("distillation")
    data = "labels"
    terms = []
    if kd:
        if kd.get("unlabelled"):
            data = "labels + teacher on unlabelled words"
        if kd.get("sequence_level"):
            data = "teacher outputs" + data.removeprefix("labels")
        if kd["alpha"] < 1:
            terms.append(
                f"token (T {kd['temperature']:g}, label weight {kd['alpha']:g})"
            )
        if kd.get("unlabelled") or kd.get("sequence_level"):
            terms.append("sequence")
    start = "shrunk teacher" if "shrink" in modifiers else "teacher"
    return start, data, " + ".join(terms) or "none"


def _trained(metrics):
    """Returns (test scores, optimizer steps) after the first training."""
    if metrics["recipe"]["model"].get("preset"):
        baseline = metrics["baseline"]
        epochs = metrics["recipe"]["baseline"]["epochs"]
        # The baseline made one pass over the labels per epoch, as many
        # batches as the next stage's epoch on the same data.
        steps = metrics["stages"][0]["steps_per_epoch"] * epochs
        return baseline["test"], steps
    stage = metrics["stages"][0]
    return stage["test"], stage.get("optimizer_steps")


def _row(folder, teacher):
    metrics = _read(folder)
    start, data, kd = _how(metrics)
    test, steps = _trained(metrics)
    int8 = metrics.get("exports", {}).get("tflite_int8", {}).get("test")
    macs = metrics["stages"][-1]["kernel_macs_per_token"]
    return {
        "run": pathlib.Path(folder).name,
        "start": start,
        "data": data,
        "kd": kd,
        "steps": steps,
        "parameters": metrics["stages"][-1]["parameters"],
        "macs": macs / teacher["macs"],
        "wer": 100 * test["wer"],
        "per": 100 * test["per"],
        "int8_wer": None if int8 is None else 100 * int8["wer"],
    }


def _teacher(folder):
    from tfaccel.compression import flops
    from tfaccel.models import load_model

    metrics = _read(folder)
    model = load_model(pathlib.Path(folder) / "model.keras")
    return {"macs": flops.kernel_macs(model), "test": metrics["test"], "folder": folder}


def render(teacher, rows):
    """Returns the Markdown table of `rows` under a line about `teacher`."""
    scratch = next((r for r in rows if r["start"] == "random weights"), None)
    lines = [
        f"Teacher: `{teacher['folder']}`, test WER {100 * teacher['test']['wer']:.2f}%"
        f", PER {100 * teacher['test']['per']:.2f}%.",
        "",
        "| run | starts from | trains on | KD | steps | parameters | MACs/token "
        "| test WER % | PER % | vs from scratch | LiteRT int8 WER % |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        delta = "" if scratch is None else f"{r['wer'] - scratch['wer']:+.2f}"
        int8 = "" if r["int8_wer"] is None else f"{r['int8_wer']:.2f}"
        lines.append(
            f"| {r['run']} | {r['start']} | {r['data']} | {r['kd']} | {r['steps']} "
            f"| {r['parameters'] / 1e6:.2f}M | {100 * r['macs']:.1f}% "
            f"| {r['wer']:.2f} | {r['per']:.2f} | {delta} | {int8} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", help="the teacher's folder (tfaccel baseline)")
    parser.add_argument("runs", nargs="+", help="tfaccel run folders")
    args = parser.parse_args(argv)
    teacher = _teacher(args.teacher)
    print(render(teacher, [_row(folder, teacher) for folder in args.runs]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
