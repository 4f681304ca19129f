"""peers.md: a `tools/peers.py` report (its peers.json) as Markdown.

The table of every peer and tfaccel file (scores, sizes, p50 and speed-up
per batch size), then what was not measured and why, whether XLA helped,
each runner's batch-1 decode step against the memory floor, and what tfmot
did and refused.
"""

from tfaccel.bench.markdown import format_number

# Score key: (column label, scale from the stored fraction).
SCORES = {
    "wer": ("WER %", 100),
    "per": ("PER %", 100),
    "bleu": ("BLEU", 1),
    "chrf": ("chrF", 1),
}


def render_markdown(report):
    """Returns peers.md's text."""
    machine, threads = report["machine"], report["threads"]
    model = report["model"]
    what = (
        f"untrained `{model['preset']}` preset (random weights: timing only)"
        if model["random_weights"]
        else f"`{model['path']}`"
    )
    settings = report["settings"]
    lines = [
        f"# Peers: {report['task']}",
        "",
        f"- Model: {what}; date {report['date']}.",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores.",
        f"- Threads: {threads['threads']} (TensorFlow intra-op "
        f"{threads['tensorflow']['intra_op']}, inter-op "
        f"{threads['tensorflow']['inter_op']}; LiteRT and ONNX Runtime "
        f"{threads['threads']}).",
        f"- Timing: greedy generation of whole test sequences, {settings['warmup']} "
        f"warm-up and {settings['repeats']} timed calls per peer and batch size; "
        f"speed-up is {report['reference']}'s p50 over the peer's.",
        f"- Accuracy: {_scored(report)}.",
        "",
        _table(report),
    ]
    lines += _failures(report) + _xla_lines(report.get("xla"))
    lines += _roofline_lines(report.get("roofline"))
    lines += _tfmot_lines(report.get("tfmot"))
    return "\n".join(lines) + "\n"


def _scored(report):
    if report["model"]["random_weights"] or report["settings"].get("timing_only"):
        return "not measured (timing only)"
    return f"{report['settings']['eval_examples'] or 'all'} test examples"


def _table(report):
    peers, sizes = report["peers"], report["settings"]["batch_sizes"]
    scores = report["metric_names"]
    header = ["peer", "runtime", *(SCORES[k][0] for k in scores), "MB", "gzip MB"]
    for size in sizes:
        header += [f"b{size} p50 ms/seq", f"b{size} speed-up"]
    rows = []
    for name, peer in {**peers, **report.get("tfaccel", {})}.items():
        test = peer["test"] or {}
        cells = [name, peer["runtime"]]
        cells += [_score(test.get(k), k) for k in scores]
        cells += [f"{peer['bytes'] / 1e6:.3f}", f"{peer['gzip_bytes'] / 1e6:.3f}"]
        for size in sizes:
            row = peer["latency"].get(str(size), {})
            cells += [format_number(row.get("ms_per_sequence"), ".2f")]
            cells += [format_number(row.get("ratio"), ".2f") + "×" * bool(row)]
        rows.append(cells)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _score(value, key):
    return format_number(None if value is None else value * SCORES[key][1], ".2f")


def _failures(report):
    lines = []
    for name, error in report["errors"].items():
        lines.append(f"- {name}: {error}")
    for name, reason in report["skipped"].items():
        lines.append(f"- {name}: {reason}")
    return ["", "## Not measured", "", *lines] if lines else []


def _xla_lines(xla):
    if not xla or not xla["compiled"]:
        return []  # not built, or listed under "Not measured"
    ratios = ", ".join(
        f"batch {size} {ratio:.2f}×"
        for size, ratio in xla["speedup_over_keras_cached"].items()
    )
    verdict = "helps" if xla["helps"] else "does not help at every batch size"
    return [
        "",
        f"XLA compiled the cached loop; against keras_cached: {ratios} ({verdict}).",
    ]


def _roofline_lines(roofline):
    if not roofline or not roofline["rows"]:
        return []
    lines = ["", "## Batch-1 decode step against the memory floor", ""]
    lines.append(
        f"Bandwidth {roofline['bandwidth_gbs']:.1f} GB/s ({roofline['method']}). "
        "Floor: the weight bytes of one step over that bandwidth; step: the "
        "batch-1 p50 over the mean tokens generated."
    )
    lines += ["", "| runner | bytes per step | floor us | step us | of floor |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for name, row in roofline["rows"].items():
        lines.append(
            f"| {name} | {row['step_bytes']:,} | {row['floor_ms'] * 1e3:.1f} | "
            f"{row['step_ms'] * 1e3:.1f} | {row['floor_fraction']:.1%} |"
        )
    return lines


def _tfmot_lines(tfmot):
    if not tfmot or "error" in tfmot:
        return []  # a failed tfmot run is listed under "Not measured"
    record = tfmot["record"]
    lines = ["", "## What tfmot did", "", f"Settings: {tfmot['settings']}.", ""]
    lines.append(
        f"- `quantize_model` on the whole twin: "
        f"{record['quantize_model_error'] or 'worked'}"
    )
    for refusal in record["unsupported"]:
        lines.append(
            f"- refused {refusal['layer_class']} ({len(refusal['layers'])} layers): "
            f"{refusal['error']}"
        )
    lines.append(f"- left float by QAT: {', '.join(record['float_layers']) or '-'}")
    lines.append(f"- frozen during QAT: {', '.join(record['frozen']) or '-'}")
    sparsity = record["final_sparsity"].values()
    if sparsity:
        mean = sum(sparsity) / len(sparsity)
        lines.append(f"- mean sparsity of the pruned kernels after QAT: {mean:.1%}")
    return lines
