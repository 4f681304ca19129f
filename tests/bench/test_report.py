"""The run report: numbers in report.md/json, the plot, the GPU name."""

import json
import subprocess

import pytest

from tfaccel.bench import report


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
    assert [s["label"] for s in built["scores"]] == ["BLEU", "chrF"]
    assert built["accuracy"][-1]["change"] == pytest.approx(-1.5)
    assert built["accuracy"][-1]["values"]["chrf"] is None  # the export has no chrF


def test_scores_a_row_lacks_are_not_measured(tmp_path):
    metrics = _metrics()
    del metrics["stages"][0]["test"]["per"]
    metrics["exports"]["tflite_int8"]["test"] = {}  # exported, never scored
    run = _run_dir(tmp_path, metrics)
    built = report.write_report(run)
    text = (run / "report.md").read_text()
    assert (
        "| stage prune | keras | 31.00 | +1.00 | not measured | not measured |" in text
    )
    assert "| tflite_int8 | LiteRT 2.3.0 | not measured | not measured |" in text
    points, *_ = report._plot_points(built)
    assert set(points) == {"baseline", "keras"}  # no point for the unscored export


def test_final_model_without_a_file_is_plotted_at_its_fp32_size():
    metrics = _metrics(benchmark=False)
    metrics["exports"] = {}
    points, *_ = report._plot_points(report.build_report(metrics))
    assert points == {
        "baseline": (pytest.approx(4.0), pytest.approx(30.0)),  # 1M parameters
        "keras": (pytest.approx(2.0), pytest.approx(31.0)),  # 500k parameters
    }


def test_write_report_files(tmp_path):
    run = _run_dir(tmp_path, _metrics())
    built = report.write_report(run)
    text = (run / "report.md").read_text()
    assert (
        "| model | runtime | WER % | change (points) | PER % | change (points) |"
        in text
    )
    assert "| tflite_int8 | LiteRT 2.3.0 | 31.25 | +1.25 | 8.00 | +1.00 |" in text
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


def _png_is_written(path):
    png = path.read_bytes()
    return png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_no_benchmark_plots_accuracy_against_gzip_size(tmp_path):
    metrics = _metrics(benchmark=False)
    points, x_label, title, latency = report._plot_points(report.build_report(metrics))
    assert not latency and "gzip MB" in x_label and "no benchmark run" in title
    assert points == {
        "baseline": (pytest.approx(4.0), pytest.approx(30.0)),  # 1M fp32 weights
        "keras": (pytest.approx(1.0), pytest.approx(31.0)),  # the final model
        "tflite_int8": (pytest.approx(0.5), pytest.approx(31.25)),
    }
    run = _run_dir(tmp_path, metrics)
    report.write_report(run)
    assert _png_is_written(run / "report.png")


def test_benchmark_plot_uses_the_smallest_batch():
    metrics = _metrics()
    rows = metrics["benchmark"]["rows"]
    rows += [{**r, "batch_size": 8, "ms_per_sequence": 1.0} for r in rows]
    points, x_label, _, latency = report._plot_points(report.build_report(metrics))
    assert latency and "batch 1" in x_label
    assert points["baseline"] == (30.0, pytest.approx(30.0))
    assert points["keras"] == (20.0, pytest.approx(31.0))
    assert points["tflite_int8"] == (12.0, pytest.approx(31.25))


def test_empty_benchmark_still_gets_a_png(tmp_path):
    metrics = _metrics()
    metrics["benchmark"]["rows"] = []
    run = _run_dir(tmp_path, metrics)
    report.write_report(run)
    assert _png_is_written(run / "report.png")


def test_metrics_that_are_not_a_run_are_a_user_error(tmp_path):
    with pytest.raises(report.UserError, match="No metrics.json"):
        report.write_report(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"task": {"task": "g2p"}}))
    with pytest.raises(report.UserError, match="Not the metrics of a recipe run"):
        report.write_report(tmp_path)
    assert list(tmp_path.iterdir()) == [tmp_path / "metrics.json"]


def test_print_summary_shows_latency_ratio_and_asserts():
    import io

    import rich.console

    buffer = io.StringIO()
    console = rich.console.Console(file=buffer, width=160)
    report.print_summary(report.build_report(_metrics()), console=console)
    text = buffer.getvalue()
    tflite = [line for line in text.splitlines() if "tflite_int8" in line][0]
    assert "31.25" in tflite and "+1.25" in tflite and "0.50" in tflite
    assert "12.00" in tflite and "2.50" in tflite  # ms/seq and 30 / 12
    assert "assert max_wer_increase: 1.25 (limit 2) pass" in text


def test_gpu_name(monkeypatch):
    monkeypatch.setattr(report.shutil, "which", lambda name: None)
    assert report.gpu_name() is None
    monkeypatch.setattr(report.shutil, "which", lambda name: "/usr/bin/" + name)

    def fake_run(args, **kwargs):
        assert kwargs["timeout"] > 0
        return subprocess.CompletedProcess(args, 0, "NVIDIA H100 80GB HBM3\nB\n")

    monkeypatch.setattr(report.subprocess, "run", fake_run)
    assert report.gpu_name() == "NVIDIA H100 80GB HBM3"

    def failing_run(args, **kwargs):
        raise subprocess.CalledProcessError(9, args)

    monkeypatch.setattr(report.subprocess, "run", failing_run)
    assert report.gpu_name() is None


def test_rows_without_ratios_get_them_from_the_baseline_row():
    metrics = _metrics()
    rows = metrics["benchmark"]["rows"]
    rows.append({**rows[2], "batch_size": 16})  # no baseline at batch 16
    for row in rows:
        del row["ratio"]
    built = report.build_report(metrics)
    ratios = [r["ratio"] for r in built["benchmark"]["rows"]]
    assert ratios == [pytest.approx(1.0), pytest.approx(1.5), pytest.approx(2.5), None]
    assert all("ratio" not in r for r in rows)  # the metrics are not changed
