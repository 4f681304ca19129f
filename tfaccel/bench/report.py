"""The report of a recipe run: report.json, report.md, report.png, console.

Everything is read from the run's `metrics.json` (written by
`tfaccel.recipe.runner.run_recipe`), so `tfaccel report RUN_DIR` can write
it again at any time. Keys a run did not measure (older runs, runs without
`benchmark:`) are reported as not measured.
"""

import json
import pathlib
import shutil
import subprocess

import rich.console
import rich.table

from tfaccel._io import atomic_file, read_json
from tfaccel.bench import timing
from tfaccel.bench.markdown import format_number, render_markdown
from tfaccel.errors import UserError


def gpu_name():
    """Returns the name of the first NVIDIA GPU, or None where there is none."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0] if out else None


# Scores in the units reported: (key, label, scale, higher is better). G2P
# is scored by WER and PER (lower is better), translation by BLEU and chrF.
_SCORES = {
    "wer": (("wer", "WER %", 100.0, False), ("per", "PER %", 100.0, False)),
    "bleu": (("bleu", "BLEU", 1.0, True), ("chrf", "chrF", 1.0, True)),
}


def _scores(test):
    return _SCORES["wer"] if "wer" in test else _SCORES["bleu"]


def _scaled(test, key, scale):
    return None if test.get(key) is None else test[key] * scale


def build_report(metrics):
    """Returns the report's content, normalized from a run's metrics dict.

    Args:
        metrics: the dict of a run's `metrics.json`.

    Returns:
        A dict with `name`, `metric` (the headline score: its key, label
        and whether higher is better), `scores` (every score reported, the
        headline first: WER and PER in percent for G2P, BLEU and chrF for
        translation), `accuracy` rows (baseline, stages, final model,
        exports; each with the headline `value` and its `change` against
        the baseline in points, and `values` and `changes` by score key;
        None where not measured), `size` (parameters and MACs per token
        against the baseline), `exports`, `benchmark` (rows with `ratio`:
        the baseline row's p50 over the row's, at the same batch size),
        `asserts`, `passed`, `layers`, `machine`, `recipe` and `seconds`.

    Example:

    ```python
    report = build_report(json.loads(pathlib.Path("metrics.json").read_text()))
    report["accuracy"][-1]["change"]  # WER points against the baseline
    ```
    """
    if "recipe" not in metrics or "baseline" not in metrics:
        raise UserError(
            "Not the metrics of a recipe run: no 'recipe' or 'baseline' key. "
            "Pass the folder `tfaccel run` wrote (savedmodels/<recipe name>)."
        )
    baseline = metrics["baseline"]
    scores = _scores(baseline["test"])
    key, label, scale, better = scores[0]
    reference = {k: _scaled(baseline["test"], k, f) for k, _, f, _ in scores}

    def row(name, runtime, test):
        values = {k: _scaled(test, k, f) for k, _, f, _ in scores}
        changes = {
            k: None if v is None or reference[k] is None else v - reference[k]
            for k, v in values.items()
        }
        return {
            "name": name,
            "runtime": runtime,
            "value": values[key],
            "change": changes[key],
            "values": values,
            "changes": changes,
            "test": test,
        }

    accuracy = [row("baseline", "keras", baseline["test"])]
    accuracy += [
        row(f"stage {s['name']}", "keras", s["test"]) for s in metrics.get("stages", [])
    ]
    if "final" in metrics:
        accuracy.append(row("final (stripped)", "keras", metrics["final"]["test"]))
    fp32_bytes = 4 * baseline.get("parameters", 0)
    exports = []
    for name, export in metrics.get("exports", {}).items():
        if "test" in export:
            accuracy.append(row(name, export.get("runtime", "keras"), export["test"]))
        exports.append(
            {
                "format": name,
                "file": export.get("file"),
                "bytes": export.get("bytes"),
                "gzip_bytes": export.get("gzip_bytes"),
                "fp32_over_gzip": (
                    fp32_bytes / export["gzip_bytes"]
                    if fp32_bytes and export.get("gzip_bytes")
                    else None
                ),
                "runtime": export.get("runtime"),
                "max_difference": export.get("max_difference"),
                "tokens_equal": (export.get("agreement_with_keras") or {}).get(
                    "tokens"
                ),
                "value": _scaled(export.get("test", {}), key, scale),
            }
        )
    final = metrics.get("final", baseline)
    size = {
        name: {
            "baseline": baseline.get(name),
            "final": final.get(name),
            "ratio": (
                final[name] / baseline[name]
                if baseline.get(name) and final.get(name) is not None
                else None
            ),
        }
        for name in ("parameters", "kernel_macs_per_token")
    }
    return {
        "name": metrics["recipe"].get("name"),
        "recipe": metrics["recipe"],
        "metric": {"key": key, "label": label, "higher_is_better": better},
        "scores": [
            {"key": k, "label": text, "higher_is_better": up}
            for k, text, _, up in scores
        ],
        "accuracy": accuracy,
        "size": size,
        "final_sparsity": metrics.get("final_sparsity"),
        "exports": exports,
        "benchmark": _benchmark(metrics.get("benchmark")),
        "asserts": metrics.get("asserts"),
        "passed": metrics.get("passed"),
        "layers": metrics.get("layers"),
        "machine": metrics.get("machine"),
        "seconds": metrics.get("seconds"),
    }


def _benchmark(bench):
    # Rows written without `ratio` get it as the runner computes it: the
    # "baseline" row's p50 over the row's, at the same batch size.
    if not bench or all("ratio" in row for row in bench.get("rows", [])):
        return bench
    rows = [dict(row) for row in bench.get("rows", [])]
    return {**bench, "rows": timing.speedups(rows, "baseline")}


def _plot_points(report):
    # Returns ({name: (x, y)}, x label, title, whether x is latency).
    values = {r["name"]: r["value"] for r in report["accuracy"]}
    values["keras"] = values.get("final (stripped)", values["baseline"])
    rows = (report.get("benchmark") or {}).get("rows") or []
    if rows:
        batch = min(r["batch_size"] for r in rows)
        points = {
            r["name"]: (r["ms_per_sequence"], values[r["name"]])
            for r in rows
            if r["batch_size"] == batch and values.get(r["name"]) is not None
        }
        x_label = f"ms per sequence, batch {batch} (log scale; lower is better)"
        title = f"{report['name']}: accuracy against generation latency"
        return points, x_label, title, True
    # Models without a file (the baseline; the final model when no .keras
    # was exported) are placed at 4 bytes per parameter.
    points = {}
    for name, model in (("baseline", "baseline"), ("keras", "final")):
        fp32_mb = (report["size"]["parameters"][model] or 0) * 4 / 1e6
        if fp32_mb and values[name] is not None:
            points[name] = (fp32_mb, values[name])
    for e in report["exports"]:
        # The .keras file is not scored on its own: it is the final model.
        value = values["keras"] if e["format"] == "keras" else e["value"]
        if e["gzip_bytes"] and value is not None:
            points[e["format"]] = (e["gzip_bytes"] / 1e6, value)
    x_label = "gzip MB (no file: fp32 weights, 4 bytes each; lower is better)"
    title = f"{report['name']}: accuracy against size (no benchmark run)"
    return points, x_label, title, False


def render_png(report, path):
    """Plots accuracy against batch-1 latency (or gzip size) into `path`.

    The fp32 baseline is a black star; every other runtime is a point named
    in the legend (runtimes of one family often land on top of each other,
    so names beside the points would overlap).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogFormatter

    points, x_label, title, latency = _plot_points(report)
    figure = Figure(figsize=(8.5, 4.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    markers = "osD^vP<>Xph"
    others = sorted(
        (x, y, name) for name, (x, y) in points.items() if name != "baseline"
    )
    for index, (x, y, name) in enumerate(others):
        marker = markers[index // 10 % len(markers)]
        axes.scatter([x], [y], s=45, marker=marker, zorder=2, label=name)
    if "baseline" in points:
        x, y = points["baseline"]
        axes.scatter(
            [x], [y], marker="*", s=240, color="black", zorder=3, label="fp32 baseline"
        )
    if latency and points:
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        axes.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    if not points:
        axes.text(0.5, 0.5, "nothing measured", ha="center", transform=axes.transAxes)
    metric = report["metric"]
    better = "higher" if metric["higher_is_better"] else "lower"
    axes.set_xlabel(x_label)
    axes.set_ylabel(f"{metric['label']} on the test split ({better} is better)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3, which="both")
    if points:
        axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")


def write_report(run_dir):
    """Writes report.json, report.md and report.png into `run_dir`.

    Each file is written under a temporary name and renamed into place.

    Returns:
        The report dict (`build_report`).
    """
    run_dir = pathlib.Path(run_dir)
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise UserError(
            f"No metrics.json in '{run_dir}': pass a folder written by `tfaccel "
            f"run` (e.g. savedmodels/g2p-prune50-qat-int8). Received: {run_dir}"
        )
    try:
        report = build_report(read_json(path))
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as error:
        raise UserError(
            f"'{path}' is not the metrics.json of a finished `tfaccel run`: "
            f"{type(error).__name__}: {error}. Run it again. Received: {run_dir}"
        ) from None
    with atomic_file(run_dir / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1, sort_keys=True))
    with atomic_file(run_dir / "report.md") as tmp:
        tmp.write_text(render_markdown(report))
    with atomic_file(run_dir / "report.png") as tmp:
        render_png(report, tmp)
    return report


def print_summary(report, console=None):
    """Prints the run's headline tables with rich."""
    console = console or rich.console.Console()
    label = report["metric"]["label"]
    times = {}
    bench = report.get("benchmark")
    if bench:
        for r in bench["rows"]:
            times.setdefault(r["name"], r)  # the smallest batch size comes first
    table = rich.table.Table(title=f"{report['name']}: accuracy, size and speed")
    for column in ("model", "runtime", label, "change", "gzip MB", "ms/seq", "ratio"):
        table.add_column(column, justify="left" if column == "model" else "right")
    gzip = {e["format"]: e["gzip_bytes"] for e in report["exports"]}
    for r in report["accuracy"]:
        name = r["name"]
        timed = times.get("keras" if name == "final (stripped)" else name)
        table.add_row(
            name,
            r["runtime"].split(" (")[0],
            format_number(r["value"], ".2f"),
            format_number(r["change"], "+.2f"),
            format_number(gzip.get(name) and gzip[name] / 1e6, ".2f")
            if name in gzip
            else "",
            format_number(timed and timed["ms_per_sequence"], ".2f") if timed else "",
            format_number(timed and timed.get("ratio"), ".2f") if timed else "",
        )
    console.print(table)
    for a in report.get("asserts") or []:
        mark = "[green]pass[/green]" if a["passed"] else "[red]FAIL[/red]"
        console.print(
            f"assert {a['name']}: {format_number(a['value'], '.4g')} "
            f"(limit {a['limit']:.4g}) {mark}"
        )
