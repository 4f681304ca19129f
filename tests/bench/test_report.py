"""The run report: numbers in report.md/json, the plot, the CLI."""

import json

import keras
import numpy as np
import pytest

from tfaccel import cli
from tfaccel.bench import layers, report


def _metrics(benchmark=True):
    metrics = {
        "recipe": {"version": 1, "name": "demo", "task": {"name": "g2p"}},
        "baseline": {
            "test": {"wer": 0.30, "per": 0.07},
            "parameters": 1_000_000,
            "kernel_macs_per_token": 900_000,
        },
        "stages": [
            {
                "name": "prune",
                "test": {"wer": 0.31, "per": 0.075},
                "parameters": 1_000_000,
                "kernel_macs_per_token": 900_000,
            }
        ],
        "final": {
            "test": {"wer": 0.31, "per": 0.075},
            "parameters": 500_000,
            "kernel_macs_per_token": 450_000,
        },
        "final_sparsity": 0.5,
        "exports": {
            "keras": {
                "file": "model.keras",
                "bytes": 2_000_000,
                "gzip_bytes": 1_000_000,
            },
            "tflite_int8": {
                "file": "model_int8.tflite",
                "bytes": 1_000_000,
                "gzip_bytes": 500_000,
                "runtime": "LiteRT 2.3.0",
                "max_difference": 0.25,
                "test": {"wer": 0.3125, "per": 0.08},
                "agreement_with_keras": {"tokens": 0.99},
            },
        },
        "asserts": [
            {
                "name": "max_wer_increase",
                "limit": 2.0,
                "value": 1.25,
                "worst": "tflite_int8",
                "passed": True,
            }
        ],
        "passed": True,
        "layers": [
            {
                "path": "dense/kernel",
                "shape": [4, 2],
                "parameters": 8,
                "sparsity": 0.5,
                "distinct": 5,
                "dtype": "float32",
            },
            {
                "path": "total",
                "shape": None,
                "parameters": 8,
                "sparsity": 0.5,
                "distinct": None,
                "dtype": None,
            },
        ],
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "python": "3.11",
            "libraries": {"keras": "3.0"},
            "gpu": None,
        },
        "seconds": 600.0,
    }
    if benchmark:
        metrics["benchmark"] = {
            "config": {"batch_sizes": [1], "warmup": 1, "repeats": 3},
            "rows": [
                {
                    "name": name,
                    "batch_size": 1,
                    "runs": 3,
                    "p50_ms": p50,
                    "p90_ms": p50 * 1.1,
                    "ms_per_sequence": p50,
                    "tokens_per_second": 100.0,
                    "sequences_per_second": 10.0,
                    "mean_tokens": 7.0,
                    "ratio": 30.0 / p50,
                }
                for name, p50 in (
                    ("baseline", 30.0),
                    ("keras", 20.0),
                    ("tflite_int8", 12.0),
                )
            ],
        }
    return metrics


def _run_dir(tmp_path, metrics):
    run = tmp_path / "demo"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_build_report_changes_and_ratios():
    built = report.build_report(_metrics())
    rows = {r["name"]: r for r in built["accuracy"]}
    assert rows["baseline"]["value"] == pytest.approx(30.0)
    assert rows["tflite_int8"]["change"] == pytest.approx(1.25)
    assert rows["tflite_int8"]["runtime"] == "LiteRT 2.3.0"
    assert built["size"]["parameters"]["ratio"] == pytest.approx(0.5)
    (lite,) = [e for e in built["exports"] if e["format"] == "tflite_int8"]
    assert lite["fp32_over_gzip"] == pytest.approx(4_000_000 / 500_000)
    assert built["metric"] == {
        "key": "wer",
        "label": "WER %",
        "higher_is_better": False,
    }


def test_translation_reports_bleu():
    metrics = _metrics(benchmark=False)
    metrics["baseline"]["test"] = {"bleu": 20.0, "chrf": 40.0}
    metrics["stages"][0]["test"] = metrics["final"]["test"] = {"bleu": 19.0}
    metrics["exports"]["tflite_int8"]["test"] = {"bleu": 18.5}
    built = report.build_report(metrics)
    assert built["metric"]["label"] == "BLEU" and built["metric"]["higher_is_better"]
    assert built["accuracy"][-1]["change"] == pytest.approx(-1.5)


def test_write_report_files(tmp_path):
    run = _run_dir(tmp_path, _metrics())
    built = report.write_report(run)
    text = (run / "report.md").read_text()
    assert "| tflite_int8 | LiteRT 2.3.0 | 31.25 | +1.25 |" in text
    assert "| tflite_int8 | 1 | 12.00 | 13.20 | 12.00 | 100 | 2.50 |" in text
    assert "| max_wer_increase | 2 | 1.25 | tflite_int8 | pass |" in text
    assert "| dense/kernel | 4x2 | 8 | 50.0% | 5 |" in text
    assert "Test CPU, 2 cores, GPU: none" in text and "name: demo" in text
    assert json.loads((run / "report.json").read_text()) == json.loads(
        json.dumps(built)
    )
    png = (run / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert sorted(p.name for p in run.iterdir()) == [
        "metrics.json",
        "report.json",
        "report.md",
        "report.png",
    ]


def test_old_runs_without_new_keys_still_get_a_report(tmp_path):
    metrics = _metrics(benchmark=False)
    for key in ("asserts", "passed", "layers", "machine", "final_sparsity"):
        del metrics[key]
    del metrics["baseline"]["parameters"]
    run = _run_dir(tmp_path, metrics)
    report.write_report(run)
    text = (run / "report.md").read_text()
    assert "Machine: not measured." in text
    assert "Not measured (the recipe has no `benchmark:` block)." in text
    assert (run / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_layer_rows_count_zeros_and_values():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6)])
    kernel = np.arange(24, dtype="float32").reshape(4, 6) + 1
    kernel[:2] = 0
    model.layers[0].kernel.assign(kernel)
    rows = layers.layer_rows(model)
    assert [r["path"] for r in rows] == ["sequential/dense/kernel", "total"]  # no bias
    assert rows[0]["parameters"] == 24 and rows[0]["sparsity"] == 0.5
    assert rows[0]["distinct"] == 12 + 1
    assert rows[-1]["parameters"] == 24 and rows[-1]["sparsity"] == 0.5
    printed = []
    layers.print_layers(rows, print_fn=printed.append)
    assert "sequential/dense/kernel" in printed[0] and "50.0%" in printed[0]


def test_cli_report(tmp_path, capsys):
    run = _run_dir(tmp_path, _metrics())
    assert cli.main(["report", str(run)]) == 0
    assert (run / "report.md").is_file() and (run / "report.png").is_file()
    assert "tflite_int8" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["report", "missing"], ["summary", "missing.keras"]])
def test_cli_missing_paths_exit_2_in_one_line(args, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("tfaccel: error: No ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_cli_report_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text(json.dumps({"config": {}}))
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "Not the metrics of a recipe run" in capsys.readouterr().err


def test_cli_summary_of_a_saved_model(tmp_path, capsys):
    from tfaccel.models import Seq2SeqTransformer

    model = Seq2SeqTransformer.from_preset("tiny")
    model.generate(np.full((1, 4), 5, np.int32), 2)
    model.save(tmp_path / "model.keras")
    assert cli.main(["summary", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "lm_head/kernel" in out
    assert f"{model.count_params():,} parameters" in out
