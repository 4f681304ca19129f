"""Merges the peers and the tfaccel pipelines into one results table and plot.

Reads `peers.json` (written by tools/peers.py) and the run folders of
`tfaccel run`: their `metrics.json` (accuracy, export sizes, the recipe's
benchmark rows) and, where `tfaccel bench` wrote one, their `bench.json`
(accuracy, sizes and timings with pinned threads, which take precedence).
Writes a Markdown table: every peer and every pipeline artifact, with the
headline score (WER, or BLEU for translation), size, p50 batch-1 latency,
and the speed-up against the naive peer and against the best peer; then a
PNG of the score against latency.

The best peer is the fastest peer at batch 1 whose score is within
`--max-loss` points of fp32 Keras (`keras_cached`): a peer that is fast
because it is wrong is not the bar. Without scores (random weights), the
fastest peer.

    python tools/results_table.py --peers savedmodels/peers/peers.json \\
        --runs savedmodels/g2p-prune50-qat-int8 savedmodels/g2p-shrink-distill \\
        --out results/RESULTS.md --plot results/wer_latency.png
"""

import argparse
import datetime
import json
import pathlib
import sys

# Headline score key -> (label, scale to the reported unit, higher is better).
SCORES = {"wer": ("WER %", 100.0, False), "bleu": ("BLEU", 1.0, True)}
REFERENCE = "keras_cached"  # fp32 Keras: the accuracy every peer is held to
NAIVE = "naive"


def _read(path):
    path = pathlib.Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        sys.exit(f"results_table.py: error: cannot read '{path}': {error}")


def _p50(rows, name, batch=1):
    # p50 ms per call of `name` at `batch` (at batch 1: per sequence).
    for row in rows:
        if row["name"] == name and row["batch_size"] == batch:
            return row["p50_ms"]
    return None


def _entry(name, kind, runtime, test, size, p50, tokens=None):
    return {
        "name": name,
        "kind": kind,
        "runtime": runtime,
        "test": test or {},
        "bytes": (size or {}).get("bytes"),
        "gzip_bytes": (size or {}).get("gzip_bytes"),
        "p50_ms": p50,
        "mean_tokens": tokens,  # generated per sequence at batch 1
        "floor_fraction": None,  # batch-1 step: memory floor / measured
    }


# === Reading ===


def peer_entries(peers):
    """Returns one entry per record of a peers.json dict, in the order timed.

    Its peers, then the tfaccel artifacts timed in the same rotation
    (`peers.py --tfaccel`).
    """
    records = {name: ("peer", r) for name, r in peers["peers"].items()}
    records |= {name: ("tfaccel", r) for name, r in peers.get("tfaccel", {}).items()}
    floors = peers.get("roofline", {}).get("rows", {})
    timed = [row["name"] for row in peers.get("rows", [])]
    order = dict.fromkeys(timed + list(records))  # peers first, then tfaccel's
    order = sorted(order, key=lambda n: records.get(n, ("",))[0] == "tfaccel")
    entries = [
        _entry(
            name,
            kind,
            record["runtime"],
            record.get("test"),
            record,
            record.get("latency", {}).get("1", {}).get("p50_ms"),
            record.get("latency", {}).get("1", {}).get("mean_tokens"),
        )
        for name in order
        if name in records
        for kind, record in [records[name]]
    ]
    for e in entries:
        e["floor_fraction"] = floors.get(e["name"], {}).get("floor_fraction")
    return entries


def run_entries(folder):
    """Returns one entry per artifact of a `tfaccel run` folder.

    The Keras model (`keras`, scored as the run's final model) and each
    export; timings from bench.json where present, else from metrics.json's
    benchmark rows. The `baseline` row of a run is fp32 Keras, which the
    peers already hold (`keras_cached`).
    """
    folder = pathlib.Path(folder)
    metrics = _read(folder / "metrics.json")
    run = metrics.get("recipe", {}).get("name", folder.name)
    final = metrics.get("final", metrics.get("baseline", {})).get("test")
    exports = metrics.get("exports", {})
    rows = (metrics.get("benchmark") or {}).get("rows", [])
    tests = {"keras": final, **{n: e.get("test") for n, e in exports.items()}}
    runtimes = {name: e.get("runtime", "Keras") for name, e in exports.items()}
    sizes = dict(exports)
    if (folder / "bench.json").is_file():
        bench = _read(folder / "bench.json")
        rows = bench["rows"]
        for runtime in bench["runtimes"]:
            tests[runtime["name"]] = runtime["test"]
            sizes[runtime["name"]] = runtime
            runtimes[runtime["name"]] = runtime["runtime"]
    names = ["keras", *(n for n in exports if n != "keras")]
    return [
        _entry(
            f"{run} / {name}",
            "tfaccel",
            runtimes.get(name, "Keras"),
            tests.get(name) or (final if name == "keras" else None),
            sizes.get(name),
            _p50(rows, name),
        )
        for name in names
    ]


# === Speed-ups ===


def score_key(entries):
    """The headline score of these entries: "wer", else "bleu"."""
    for key in SCORES:
        if any(key in e["test"] for e in entries):
            return key
    return "wer"


def best_peer(entries, key, max_loss):
    """Returns the fastest peer at batch 1 within `max_loss` points of fp32 Keras.

    Peers with no score are eligible only when no peer has one; a peer with
    no timing never is. Returns None when no peer is eligible.
    """
    _, scale, higher = SCORES[key]
    peers = [e for e in entries if e["kind"] == "peer" and e["p50_ms"]]
    reference = {e["name"]: e for e in peers}.get(REFERENCE, {}).get("test", {})
    scored = [e for e in peers if key in e["test"]]
    if scored and key in reference:
        sign = -1 if higher else 1

        def loss(e):
            return sign * (e["test"][key] - reference[key]) * scale

        peers = [e for e in scored if loss(e) <= max_loss + 1e-9]
    elif scored:
        peers = scored
    return min(peers, key=lambda e: e["p50_ms"], default=None)


def _named(entries, name):
    # The entry called `name`, or {} when there is none.
    return next((e for e in entries if e["name"] == name), {})


def add_speedups(entries, best):
    """Adds `vs_naive` and `vs_best_peer`, their p50 over each entry's (batch 1),
    and `smaller`: the fp32 baseline file's bytes over the entry's."""
    naive = _named(entries, NAIVE)
    fp32 = _named(entries, REFERENCE).get("bytes")
    for e in entries:
        for field, other in (("vs_naive", naive), ("vs_best_peer", best)):
            ok = e["p50_ms"] and other and other["p50_ms"]
            e[field] = other["p50_ms"] / e["p50_ms"] if ok else None
        e["smaller"] = fp32 / e["bytes"] if fp32 and e["bytes"] else None
    return entries


def best_tfaccel(entries, key, max_loss):
    """The fastest tfaccel entry at batch 1 within `max_loss` points of fp32
    Keras (any timed one when nothing is scored); None if there is none."""
    _, scale, higher = SCORES[key]
    timed = [e for e in entries if e["kind"] == "tfaccel" and e["p50_ms"]]
    fp32 = _named(entries, REFERENCE).get("test", {}).get(key)
    if fp32 is not None and any(key in e["test"] for e in timed):
        sign = -1 if higher else 1
        timed = [
            e
            for e in timed
            if key in e["test"] and sign * (e["test"][key] - fp32) * scale <= max_loss
        ]
    return min(timed, key=lambda e: e["p50_ms"], default=None)


def verdict(entries, key, max_loss, bars=(3.0, 1.3, 4.0)):
    """One line: tfaccel's best against the bars (× naive, × best peer, × smaller)."""
    label, scale, _ = SCORES[key]
    label = label.split()[0]  # "WER", not "WER %"
    best = best_tfaccel(entries, key, max_loss)
    if best is None:
        return f"No tfaccel artifact is within {max_loss:g} {label} points of fp32."
    checks = [
        ("× naive", best["vs_naive"], bars[0]),
        ("× best peer", best["vs_best_peer"], bars[1]),
        ("× smaller than the fp32 file", best["smaller"], bars[2]),
    ]
    parts = [
        "not measured"
        if value is None
        else f"{value:.2f}{what} ({'meets' if value >= bar else 'misses'} {bar:g})"
        for what, value, bar in checks
    ]
    fp32 = _named(entries, REFERENCE).get("test", {}).get(key)
    within = f" within {max_loss:g} points" if key in best["test"] else " (not scored)"
    change = (
        f", {label} {(best['test'][key] - fp32) * scale:+.2f} points against fp32"
        if fp32 is not None and key in best["test"]
        else ""
    )
    return (
        f"tfaccel's fastest{within}: `{best['name']}`{change}: "
        + ", ".join(parts)
        + "."
    )


# === Output ===


def _cell(value, fmt, scale=1.0):
    return "not measured" if value is None else format(value * scale, fmt)


def _bandwidth(peers):
    gbs = peers.get("roofline", {}).get("bandwidth_gbs")
    return (
        "the bandwidth measured in the same run" if gbs is None else f"{gbs:.1f} GB/s"
    )


def render_markdown(entries, key, best, peers, max_loss, notes=()):
    """Returns the results table, with the machine, threads and date above it."""
    label, scale, _ = SCORES[key]
    machine = peers.get("machine", {})
    date = peers.get("date", "unknown date")[:10]
    threads = peers.get("threads", {}).get("threads")
    scored = any(key in e["test"] for e in entries)
    best_text = (
        f"`{best['name']}` (the fastest peer at batch 1"
        + (
            f" within {max_loss:g} {label.split()[0]} points of fp32 Keras)"
            if scored
            else "; nothing was scored)"
        )
        if best
        else "none timed"
    )
    lines = [
        f"Measured on {machine.get('cpu', 'unknown CPU')} ({machine.get('cores')} "
        f"cores), {threads} thread(s) per runtime, on {date}. Latency: p50 of "
        "greedy generation of a whole test sequence at batch 1 (tokens: the "
        "mean generated per sequence). Speed-ups: the "
        f"naive peer's p50 (or the best peer's) over the row's. × smaller: the "
        f"fp32 baseline file ({REFERENCE}'s) over the row's file. Of floor: the "
        "memory-bound floor of a batch-1 decode step (its weight bytes over "
        f"{_bandwidth(peers)}) over the measured step (p50 / tokens). Best peer: "
        f"{best_text}.",
        "",
    ]
    header = ["model", "runtime", label, "MB", "gzip MB", "× smaller"]
    header += ["tokens", "p50 ms (batch 1)", "× naive", "× best peer", "of floor"]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for e in entries:
        name = f"**{e['name']}**" if e["kind"] == "tfaccel" else e["name"]
        cells = [name, e["runtime"], _cell(e["test"].get(key), ".2f", scale)]
        cells += [_cell(e["bytes"], ".3f", 1e-6), _cell(e["gzip_bytes"], ".3f", 1e-6)]
        cells += [_cell(e["smaller"], ".2f") + "×" * (e["smaller"] is not None)]
        cells += [_cell(e["mean_tokens"], ".1f"), _cell(e["p50_ms"], ".2f")]
        cells += [_cell(e["vs_naive"], ".2f") + "×" * (e["vs_naive"] is not None)]
        best_ratio = e["vs_best_peer"]
        cells += [_cell(best_ratio, ".2f") + "×" * (best_ratio is not None)]
        cells += [_cell(e["floor_fraction"], ".1%")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *(f"- {note}" for note in notes)] if notes else []
    return "\n".join(lines) + "\n"


def drift_notes(peers, folders):
    """Notes on runs measured apart from the peers: another CPU, another fp32 time."""
    notes = []
    cpu = peers.get("machine", {}).get("cpu")
    reference = peers["peers"].get(REFERENCE, {}).get("latency", {}).get("1", {})
    for folder in folders:
        metrics = _read(pathlib.Path(folder) / "metrics.json")
        run = metrics.get("recipe", {}).get("name", pathlib.Path(folder).name)
        other = metrics.get("machine", {}).get("cpu")
        if other and cpu and other != cpu:
            notes.append(f"{run} ran on {other}, the peers on {cpu}.")
        start = metrics.get("recipe", {}).get("model", {}).get("path")
        if start and start != peers.get("model", {}).get("path"):
            notes.append(f"{run} starts from {start}, not from the peers' baseline.")
        rows = (metrics.get("benchmark") or {}).get("rows", [])
        fp32 = _p50(rows, "baseline")
        if fp32 and reference.get("p50_ms"):
            notes.append(
                f"{run}: fp32 Keras took {fp32:.2f} ms in its own run, "
                f"{reference['p50_ms']:.2f} ms in the peers' run (run-to-run drift)."
            )
    return notes


def render_png(entries, key, path):
    """Plots the headline score against p50 batch-1 latency (log scale)."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    label, scale, higher = SCORES[key]
    figure = Figure(figsize=(8.5, 4.8), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    points = [e for e in entries if e["p50_ms"] and key in e["test"]]
    colors = colormaps["tab20"]
    for index, e in enumerate(points):
        peer = e["kind"] == "peer"
        axes.scatter(
            [e["p50_ms"]],
            [e["test"][key] * scale],
            marker="o" if peer else "*",
            s=45 if peer else 160,
            color=colors(index % 20),
            edgecolors="black" if not peer else "none",
            label=e["name"],
            zorder=3 if not peer else 2,
        )
    if points:
        axes.set_xscale("log")
        axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
    else:
        axes.text(0.5, 0.5, "nothing measured", ha="center", transform=axes.transAxes)
    better = "higher" if higher else "lower"
    axes.set_xlabel("p50 ms per sequence, batch 1 (log scale; lower is better)")
    axes.set_ylabel(f"{label} on the test split ({better} is better)")
    axes.set_title("Peers (circles) and tfaccel pipelines (stars)", fontsize=10)
    axes.grid(alpha=0.3, which="both")
    figure.tight_layout()
    figure.savefig(path, format="png")


def build(peers_path, run_folders, max_loss=1.5):
    """Returns `(entries, score key, best peer, peers dict, notes)`."""
    peers = _read(peers_path)
    entries = peer_entries(peers)
    for folder in run_folders:
        entries += run_entries(folder)
    key = score_key(entries)
    best = best_peer(entries, key, max_loss)
    notes = drift_notes(peers, run_folders)
    entries = add_speedups(entries, best)
    return entries, key, best, peers, [verdict(entries, key, max_loss), *notes]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n\n")[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--peers", required=True, help="peers.json of tools/peers.py")
    parser.add_argument("--runs", nargs="*", default=[], help="tfaccel run folders")
    parser.add_argument("--out", required=True, help="the Markdown file to write")
    parser.add_argument("--plot", help="the PNG to write (score against latency)")
    parser.add_argument(
        "--max-loss", type=float, default=1.5,
        help="points of score a peer may lose and still be the best peer (1.5)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    entries, key, best, peers, notes = build(args.peers, args.runs, args.max_loss)
    notes.append(f"Table written {datetime.date.today().isoformat()}.")
    text = render_markdown(entries, key, best, peers, args.max_loss, notes)
    _write(pathlib.Path(args.out), text.encode())
    if args.plot:
        _write_png(entries, key, pathlib.Path(args.plot))
    print(text)
    return entries


def _write(path, data):
    from tfaccel._io import atomic_file

    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def _write_png(entries, key, path):
    from tfaccel._io import atomic_file

    with atomic_file(path) as tmp:
        render_png(entries, key, tmp)


if __name__ == "__main__":
    main()
