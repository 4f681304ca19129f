"""report.md: a run's report (`tfaccel.bench.report.build_report`) as Markdown."""

import yaml


def format_number(value, fmt):
    """Formats `value` with `fmt`, or says it was not measured (None)."""
    return "not measured" if value is None else format(value, fmt)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _accuracy_table(report):
    # One value and change column per score (WER % and PER %, or BLEU and
    # chrF); older reports name only their headline `metric`.
    scores = report.get("scores") or [report["metric"]]
    header = ["model", "runtime"]
    for score in scores:
        header += [score["label"], "change (points)"]
    rows = []
    for r in report["accuracy"]:
        values = r.get("values") or {scores[0]["key"]: r["value"]}
        changes = r.get("changes") or {scores[0]["key"]: r["change"]}
        cells = [r["name"], r["runtime"]]
        for score in scores:
            cells.append(format_number(values.get(score["key"]), ".2f"))
            cells.append(format_number(changes.get(score["key"]), "+.2f"))
        rows.append(cells)
    return _table(header, rows)


def render_markdown(report):
    """Returns report.md's text for a `build_report` dict."""
    label = report["metric"]["label"]
    out = [f"# tfaccel run: {report['name']}", ""]
    machine = report.get("machine")
    if machine:
        out.append(
            f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, GPU: "
            f"{machine.get('gpu') or 'none'}; Python {machine.get('python')}."
        )
        versions = ", ".join(
            f"{name} {version}"
            for name, version in machine.get("libraries", {}).items()
            if version
        )
        out += ["", f"Libraries: {versions}."]
    else:
        out.append("Machine: not measured.")
    if report.get("seconds") is not None:
        out += ["", f"Run time: {report['seconds'] / 60:.1f} min."]
    if report.get("passed") is not None:
        out += ["", f"Asserts: **{'passed' if report['passed'] else 'FAILED'}**."]
    out += ["", "## Accuracy (test split)", ""]
    out.append(_accuracy_table(report))
    out += ["", "## Size", ""]
    size = report["size"]
    out.append(
        _table(
            ["", "baseline", "final", "final / baseline"],
            [
                [
                    name.replace("_", " "),
                    format_number(values["baseline"], ","),
                    format_number(values["final"], ","),
                    format_number(values["ratio"], ".3f"),
                ]
                for name, values in size.items()
            ],
        )
    )
    if report.get("final_sparsity") is not None:
        out += ["", f"Sparsity of the pruned kernels: {report['final_sparsity']:.2%}."]
    if report["exports"]:
        out += ["", "## Exports", ""]
        out.append(
            "Size ratio: the baseline's fp32 weights (4 bytes per parameter) "
            "over the gzip-compressed file. Verification: token agreement "
            "with the Keras model and the largest logit difference."
        )
        out += [""]
        out.append(
            _table(
                [
                    "format",
                    "file",
                    "MB",
                    "gzip MB",
                    "fp32 / gzip",
                    label,
                    "tokens equal",
                    "max difference",
                ],
                [
                    [
                        e["format"],
                        e["file"],
                        format_number(e["bytes"] and e["bytes"] / 1e6, ".2f"),
                        format_number(e["gzip_bytes"] and e["gzip_bytes"] / 1e6, ".2f"),
                        format_number(e["fp32_over_gzip"], ".2f"),
                        format_number(e["value"], ".2f"),
                        format_number(e["tokens_equal"], ".2%"),
                        format_number(e["max_difference"], ".2g"),
                    ]
                    for e in report["exports"]
                ],
            )
        )
    out += ["", "## Generation speed", ""]
    bench = report.get("benchmark")
    if bench:
        config = bench["config"]
        out.append(
            f"Greedy generation of whole test sequences with the key/value "
            f"cache, {config['warmup']} warm-up and {config['repeats']} timed "
            "calls per runtime and batch size, every runtime on the same "
            "batches in one run. Ratio: the fp32 baseline's (Keras) median "
            "time over the row's."
        )
        out += [""]
        out.append(
            _table(
                [
                    "runtime",
                    "batch",
                    "p50 ms",
                    "p90 ms",
                    "ms / sequence",
                    "tokens / s",
                    "ratio",
                ],
                [
                    [
                        r["name"],
                        r["batch_size"],
                        f"{r['p50_ms']:.2f}",
                        f"{r['p90_ms']:.2f}",
                        f"{r['ms_per_sequence']:.2f}",
                        f"{r['tokens_per_second']:.0f}",
                        format_number(r.get("ratio"), ".2f"),
                    ]
                    for r in bench["rows"]
                ],
            )
        )
        out += ["", "![accuracy against latency](report.png)"]
    else:
        out.append("Not measured (the recipe has no `benchmark:` block).")
        out += ["", "![accuracy against size](report.png)"]
    if report.get("asserts"):
        out += ["", "## Asserts", ""]
        out.append(
            _table(
                ["limit", "allowed", "measured", "worst", "result"],
                [
                    [
                        a["name"],
                        f"{a['limit']:.4g}",
                        format_number(a["value"], ".4g"),
                        a.get("worst", ""),
                        "pass" if a["passed"] else "**FAIL**",
                    ]
                    for a in report["asserts"]
                ],
            )
        )
    if report.get("layers"):
        out += ["", "## Weights of the final model (2+ axes)", ""]
        out.append(
            _table(
                ["path", "shape", "parameters", "sparsity", "distinct values"],
                [
                    [
                        r["path"],
                        "" if r["shape"] is None else "x".join(map(str, r["shape"])),
                        f"{r['parameters']:,}",
                        f"{r['sparsity']:.1%}",
                        "" if r["distinct"] is None else r["distinct"],
                    ]
                    for r in report["layers"]
                ],
            )
        )
    out += ["", "## Recipe", "", "```yaml"]
    out.append(yaml.safe_dump(report["recipe"], sort_keys=False).rstrip())
    out += ["```", ""]
    return "\n".join(out)
