"""bench.json and bench.md of `tfaccel bench`, and comparing bench.json files.

Two runs are compared only when they were measured on the same CPU model,
with the same core count and the same threads (`COMPARED`): ratios between
machines or thread settings say nothing about the models.
"""

import json
import pathlib

from tfaccel._io import atomic_file
from tfaccel.errors import UserError

# The fields that must match for two bench.json files to be compared.
COMPARED = (("machine", "cpu"), ("machine", "cores"), ("threads", "threads"))
# Score key -> (column label, scale): WER and PER are stored as fractions.
SCORES = {
    "wer": ("WER %", 100),
    "per": ("PER %", 100),
    "bleu": ("BLEU", 1),
    "chrf": ("chrF", 1),
}

# === Output ===


def write_bench(report, out):
    """Writes `report` as bench.json and bench.md into `out`, each atomically."""
    out = pathlib.Path(out)
    with atomic_file(out / "bench.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    with atomic_file(out / "bench.md") as tmp:
        tmp.write_text(render_markdown(report))


def render_markdown(report):
    """Returns bench.md's text: the conditions, then the table."""
    s, machine = report["settings"], report["machine"]
    libraries = [f"{k} {v}" for k, v in machine["libraries"].items() if v]
    return "\n".join(
        [
            f"# tfaccel bench: {report['task']}",
            "",
            f"- Machine: {machine['cpu']}, {machine['cores']} cores; "
            f"{', '.join(libraries)}.",
            f"- Threads: {s['threads']} in every runtime (TensorFlow intra-op, "
            "LiteRT num_threads, ONNX Runtime intra-op; inter-op 1).",
            f"- Greedy generation of whole sequences: {s['warmup']} warm-up, then "
            f"{s['repeats']} timed calls per runtime and batch size.",
            f"- Peak RSS: {report['peak_rss_method']}.",
            "",
            table(*bench_rows(report)),
            "",
        ]
    )


def bench_rows(report):
    """Returns `(header, rows)` of the bench table, as strings."""
    runtimes = {r["name"]: r for r in report["runtimes"]}
    scores = [k for k in SCORES if any(k in r["test"] for r in runtimes.values())]
    header = ["runtime", "batch", "p50 ms/seq", "p90 ms/seq", "p99 ms/seq"]
    header += ["tokens/s", "peak RSS MB", "over imports MB", "MB", "gzip MB"]
    rows = []
    for row in report["rows"]:
        runtime = runtimes[row["name"]]
        cells = [f"{row['name']} ({runtime['runtime']})", str(row["batch_size"])]
        cells += [f"{row[f'{p}_ms_per_sequence']:.2f}" for p in ("p50", "p90", "p99")]
        cells.append(f"{row['tokens_per_second']:.0f}")
        for key in ("peak_rss_bytes", "rss_over_imports_bytes"):
            cells.append(f"{row[key] / 1e6:.0f}")
        cells += [f"{runtime[k] / 1e6:.3f}" for k in ("bytes", "gzip_bytes")]
        cells += [f"{runtime['test'][k] * SCORES[k][1]:.2f}" for k in scores]
        rows.append(cells)
    return header + [SCORES[k][0] for k in scores], rows


def table(header, rows):
    """Returns a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


# === Comparing runs ===


def compare(paths):
    """Returns a Markdown table of the p50s of several bench.json, side by side.

    Ratios are the first file's p50 over each other's (above 1: the other
    is faster).

    Raises:
        UserError: a file is missing or not a bench.json, or the runs differ
            in CPU model, core count or threads (naming the field and both
            values).
    """
    if len(paths) < 2:
        raise UserError(f"--compare needs two bench.json or more. Received: {paths}")
    reports = [_read_bench(path) for path in paths]
    for path, report in zip(paths[1:], reports[1:], strict=True):
        for section, key in COMPARED:
            first, other = reports[0][section][key], report[section][key]
            if first != other:
                raise UserError(
                    f"Cannot compare {paths[0]} with {path}: they were measured with "
                    f"different {section}.{key}: {first!r} vs {other!r}. Benchmark "
                    "both on one machine with the same --threads."
                )
    return table(*_compare_rows(paths, reports))


def _read_bench(path):
    try:
        report = json.loads(pathlib.Path(path).read_text())
        [report[section][key] for section, key in COMPARED]  # noqa: B018
        return report
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"'{path}' is not a bench.json written by `tfaccel bench` "
            f"({type(error).__name__}: {error}). Received: {path}"
        ) from error


def _compare_rows(paths, reports):
    labels = [pathlib.Path(p).parent.name or str(p) for p in paths]
    labels = labels if len(set(labels)) == len(labels) else [str(p) for p in paths]
    p50s = [
        {(r["name"], r["batch_size"]): r["p50_ms_per_sequence"] for r in rep["rows"]}
        for rep in reports
    ]
    header = ["runtime", "batch", *(f"{label} p50 ms/seq" for label in labels)]
    header += [f"p50 {labels[0]} / {label}" for label in labels[1:]]
    rows = []
    for key in dict.fromkeys(key for p50 in p50s for key in p50):
        values = [p50.get(key) for p50 in p50s]
        cells = [key[0], str(key[1])] + [_ms(v) for v in values]
        first = values[0]
        ratios = [first / v if first and v else None for v in values[1:]]
        rows.append(cells + ["—" if r is None else f"{r:.2f}×" for r in ratios])
    return header, rows


def _ms(value):
    return "—" if value is None else f"{value:.2f}"
