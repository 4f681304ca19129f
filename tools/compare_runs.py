"""Compares recipe runs with their baseline: accuracy, sparsity and size.

For each run folder (written by `tfaccel run`), reads its test scores and
its stripped `model.keras`, measures the sparsity of the targeted kernels
from the weights, and the raw and gzip-compressed size of the weights as
float32 bytes (gzip shows what zeros buy).

    python tools/compare_runs.py savedmodels/baseline-g2p-small \\
        savedmodels/g2p-prune50 savedmodels/g2p-prune80 savedmodels/g2p-prune-2of4
"""

import argparse
import gzip
import json
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfaccel  # noqa: E402
from tfaccel.models import load_model  # noqa: E402

DEFAULT_TARGETS = [".*(attention|feedforward).*kernel"]


def _sizes(model):
    # The model's weights as raw float32 bytes: the payload a deployment
    # carries, without the optimizer state `.keras` files of compiled models
    # hold (model.save_weights writes it too).
    raw = b"".join(np.asarray(w, np.float32).tobytes() for w in model.get_weights())
    return len(raw), len(gzip.compress(raw, compresslevel=9))


def _targets(metrics):
    stages = metrics.get("recipe", {}).get("stages", [])
    return [t for s in stages for m in s["modifiers"] for t in m.get("targets", [])]


def _row(folder, baseline_test, baseline_gzip, targets):
    metrics = json.loads((folder / "metrics.json").read_text())
    test = metrics.get("final", metrics.get("baseline", metrics))["test"]
    model = load_model(folder / "model.keras")
    raw, packed = _sizes(model)
    rows = tfaccel.summary(model, targets=targets, print_fn=lambda *a: None)
    sparsity = rows[-1]["sparsity"]
    return {
        "run": folder.name,
        "wer": 100 * test["wer"],
        "per": 100 * test["per"],
        "wer_delta": 100 * (test["wer"] - baseline_test["wer"]),
        "sparsity": sparsity,
        "weights_bytes": raw,
        "gzip_bytes": packed,
        "gzip_ratio": baseline_gzip / packed,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=pathlib.Path)
    parser.add_argument("runs", type=pathlib.Path, nargs="+")
    args = parser.parse_args()

    runs = [json.loads((r / "metrics.json").read_text()) for r in args.runs]
    # Sparsity is measured over what the runs pruned (or the usual targets).
    targets = sorted({t for m in runs for t in _targets(m)}) or DEFAULT_TARGETS
    base = json.loads((args.baseline / "metrics.json").read_text())
    _, base_gzip = _sizes(load_model(args.baseline / "model.keras"))
    rows = [_row(args.baseline, base["test"], base_gzip, targets)]
    rows += [_row(r, base["test"], base_gzip, targets) for r in args.runs]
    print("| run | WER % | PER % | dWER | sparsity | weights | gzip | gzip ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['run']} | {r['wer']:.2f} | {r['per']:.2f} | {r['wer_delta']:+.2f} "
            f"| {r['sparsity']:.3f} | {r['weights_bytes'] / 1e6:.2f} MB "
            f"| {r['gzip_bytes'] / 1e6:.2f} MB | {r['gzip_ratio']:.2f}x |"
        )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
