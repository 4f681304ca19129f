"""The argument parser of the `tfaccel` command line: its subcommands and flags.

`tfaccel.cli.main` parses with `build_parser()` and runs the handler of the
chosen subcommand. Only argparse is imported at the top, so `--help` and a
usage error stay fast.
"""

import argparse

EXAMPLES = """examples:
  tfaccel baseline --task g2p --preset small
  tfaccel baseline --task translation --preset small --epochs 8
  tfaccel validate recipes/g2p-baseline.yaml
  tfaccel run recipes/g2p-prune50-qat-int8.yaml
  tfaccel report savedmodels/g2p-prune50-qat-int8
  tfaccel summary savedmodels/g2p-prune50-qat-int8
  tfaccel bench savedmodels/g2p-prune50-qat-int8 --threads 1
  tfaccel export savedmodels/g2p-baseline --formats saved_model,tflite_int8,onnx \
      --out savedmodels/g2p
"""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tfaccel",
        description="Compress, export and benchmark Keras 3 encoder-decoders.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_baseline(commands)
    run = commands.add_parser(
        "run",
        help="run a recipe end to end",
        description="Trains or reuses the baseline, runs the recipe's stages, "
        "strips, exports, verifies and benchmarks, and publishes "
        "savedmodels/NAME/. Every stage saves a checkpoint at each epoch end: "
        "after a crash, the same command continues from the last epoch. "
        "Exit codes: 0 done, 1 an `assert` limit was missed (the run folder "
        "is still written), 2 a user error, 3 a worker of a multi-worker job "
        "was lost (rerun every worker to resume).",
        epilog="examples:\n  tfaccel run recipes/g2p-prune50-qat-int8.yaml\n"
        "  tfaccel run recipes/g2p-prune50-qat-int8.yaml --restart\n"
        "  # two machines; the same list on both, each with its own index:\n"
        "  tfaccel run RECIPE --workers 10.0.0.1:2222,10.0.0.2:2222 "
        "--worker-index 0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "recipe", help="path of a YAML recipe, e.g. recipes/g2p-baseline.yaml"
    )
    run.add_argument(
        "--restart",
        action="store_true",
        help="discard the checkpoints of an interrupted run and start afresh",
    )
    run.add_argument(
        "--workers",
        metavar="HOST:PORT,...",
        help="every worker of a multi-worker job, chief first (sets TF_CONFIG); "
        "the recipe's distribute.strategy must be multi_worker or auto",
    )
    run.add_argument(
        "--worker-index",
        type=int,
        metavar="I",
        help="this worker's position in --workers (0 is the chief)",
    )
    validate = commands.add_parser("validate", help="check a recipe without running it")
    validate.add_argument("recipe", help="path of a YAML recipe")
    _add_export(commands)
    report = commands.add_parser(
        "report",
        help="write a run's report again and print its summary",
        description="Writes report.md, report.json and report.png of a run folder "
        "from its metrics.json, and prints the summary tables.",
        epilog="example:\n  tfaccel report savedmodels/g2p-prune50-qat-int8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("run_dir", help="a folder written by `tfaccel run`")
    summary = commands.add_parser(
        "summary",
        help="print a saved model's weights table, parameters and MACs",
        description="Prints every weight of 2+ axes of a .keras model (shape, "
        "parameters, fraction of zeros, distinct values), its parameter count "
        "and its matmul MACs per token.",
        epilog="examples:\n  tfaccel summary savedmodels/g2p-prune50-qat-int8\n"
        "  tfaccel summary savedmodels/baseline-g2p-small/model.keras",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    summary.add_argument("model", help="a .keras file, or a folder with model.keras")
    _add_bench(commands)
    return parser


def _add_export(commands):
    from tfaccel.export import formats

    allowed = formats.names(made_by="export")
    export = commands.add_parser(
        "export",
        help="export a model to serving formats, each verified in its runtime",
        description="Exports a .keras encoder-decoder to each format, runs it in "
        "its runtime against Keras, and publishes it under --out: SavedModel "
        f"versions as OUT/N/, the others beside them. Formats: {', '.join(allowed)}.",
    )
    export.add_argument("model", help="a .keras file, or a folder with model.keras")
    export.add_argument(
        "--formats",
        default="saved_model,tflite_fp32",
        help="comma-separated formats (default: saved_model,tflite_fp32)",
    )
    export.add_argument("--out", required=True, help="output folder: savedmodels/NAME")
    export.add_argument(
        "--task",
        default=None,
        help="g2p or translation: real sources to verify and calibrate on "
        "(default: read from the model folder's metrics.json)",
    )
    export.add_argument(
        "--samples", type=int, default=64, help="test sources to verify on"
    )
    export.add_argument(
        "--min-agreement",
        type=float,
        default=0.9,
        help="least share of greedy tokens equal to Keras's that an int8 "
        "format must reach to be published (default 0.9)",
    )


def _add_bench(commands):
    bench = commands.add_parser(
        "bench",
        help="time, measure and score every runtime of a run",
        description="Times greedy generation of whole sequences in every runtime "
        "(each in a fresh process, with the same pinned threads), and reports "
        "p50/p90/p99 ms per sequence, tokens per second, peak RSS, size (raw and "
        "gzip) and test accuracy, in OUT/bench.json and OUT/bench.md. --compare "
        "prints the p50s of several bench.json side by side, only when they were "
        "measured on the same CPU model, core count and threads.",
        epilog="examples:\n  tfaccel bench savedmodels/g2p-prune50-qat-int8\n"
        "  tfaccel bench savedmodels/g2p/model_int8.tflite savedmodels/g2p/onnx "
        "--task g2p --out bench/g2p\n"
        "  tfaccel bench --compare savedmodels/a/bench.json savedmodels/b/bench.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "paths",
        nargs="*",
        metavar="RUN_DIR_OR_ARTIFACT",
        help="a folder written by `tfaccel run`, or artifacts: a .keras or .tflite "
        "file, a SavedModel folder, an ONNX folder",
    )
    bench.add_argument(
        "--compare", nargs="+", metavar="BENCH_JSON", help="bench.json files to compare"
    )
    bench.add_argument(
        "--task", default=None, help="g2p or translation (default: the run's)"
    )
    bench.add_argument(
        "--threads", type=int, default=1, help="threads of every runtime (default 1)"
    )
    bench.add_argument(
        "--batch-sizes", default="1,16", help="comma-separated (default: 1,16)"
    )
    bench.add_argument("--warmup", type=int, default=5, help="untimed calls (5)")
    bench.add_argument("--repeats", type=int, default=30, help="timed calls (30)")
    bench.add_argument(
        "--test-examples",
        type=int,
        default=None,
        help="score on the first N test examples (default: the whole split)",
    )
    bench.add_argument(
        "--out", default=None, help="folder for bench.json (default: the run folder)"
    )


def _add_baseline(commands):
    baseline = commands.add_parser(
        "baseline",
        help="train, evaluate and save an fp32 baseline",
        description="Trains a baseline and writes savedmodels/baseline-TASK-PRESET/ "
        "(model.keras, metrics.json, vocabularies, TensorBoard logs).",
    )
    baseline.add_argument("--task", default="g2p", help="g2p or translation")
    baseline.add_argument("--preset", default="small", help="tiny, small or base")
    baseline.add_argument("--epochs", type=int, default=None)
    baseline.add_argument("--batch-size", type=int, default=None)
    baseline.add_argument("--learning-rate", type=float, default=None)
    baseline.add_argument(
        "--max-examples", type=int, default=None, help="train on a subset (smoke runs)"
    )
    baseline.add_argument("--seed", type=int, default=0)
    baseline.add_argument("--output-root", default="savedmodels")
