"""The `tfaccel` command line.

Exit codes: 0 success, 1 a failed check, 2 a user error (bad recipe, bad
path, unknown preset...). User errors print one line and no traceback.
"""

import argparse
import os
import signal
import sys

from tfaccel.errors import UserError, WorkerLostError

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


def _parser():
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


def _cmd_bench(args):
    from tfaccel.bench import harness

    if args.compare:
        if args.paths:
            raise UserError(
                "Pass either runs to time or --compare with bench.json files, not "
                f"both. Received: {' '.join(args.paths)} --compare ..."
            )
        print(harness.compare(args.compare))
        return 0
    if not args.paths:
        raise UserError(
            "Pass a run folder or artifacts to time, or --compare A/bench.json "
            "B/bench.json. Received: no paths"
        )
    try:
        sizes = [int(size) for size in args.batch_sizes.split(",")]
    except ValueError:
        raise UserError(
            f"--batch-sizes takes ints, e.g. 1,16. Received: {args.batch_sizes}"
        ) from None
    report = harness.run_bench(
        args.paths,
        out=args.out,
        task=args.task,
        threads=args.threads,
        batch_sizes=sizes,
        warmup=args.warmup,
        repeats=args.repeats,
        test_examples=args.test_examples,
    )
    print(harness.table(*harness.bench_rows(report)))
    return 0


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


def _cmd_baseline(args):
    from tfaccel.models import PRESETS
    from tfaccel.tasks import TASKS

    # Check cheap things before importing TensorFlow and loading data.
    if args.task not in TASKS:
        raise UserError(
            f"Unknown task '{args.task}'. Use one of: {', '.join(TASKS)}. "
            f"Received: task={args.task!r}"
        )
    if args.preset not in PRESETS:
        raise UserError(
            f"Unknown model preset '{args.preset}'. Use one of: "
            f"{', '.join(PRESETS)}. Received: preset={args.preset!r}"
        )
    from tfaccel.recipe.baseline import BaselineConfig, train_baseline
    from tfaccel.tasks import format_metrics

    given = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
    }
    config = BaselineConfig(
        task=args.task,
        preset=args.preset,
        max_examples=args.max_examples,
        seed=args.seed,
        **{k: v for k, v in given.items() if v is not None},
    )
    _, metrics = train_baseline(config, args.output_root)
    print(
        f"Test ({metrics['test']['examples']} examples): "
        f"{format_metrics(metrics['test'])}"
    )
    print(
        f"Saved {args.output_root}/{config.name}/ "
        f"(trained in {metrics['train_seconds'] / 60:.1f} min)"
    )
    return 0


def _cmd_validate(args):
    from tfaccel.recipe.loader import validate_recipe_file

    recipe = validate_recipe_file(args.recipe)
    print(
        f"{args.recipe}: valid recipe '{recipe.name}' "
        f"({len(recipe.stages)} stage(s), export: {list(recipe.export) or 'none'})"
    )
    return 0


def _cmd_run(args):
    from tfaccel.recipe.loader import load_recipe

    recipe = load_recipe(args.recipe)
    if args.workers is not None or args.worker_index is not None:
        _set_cluster(args, recipe)
    from tfaccel.recipe.runner import run_recipe

    result = run_recipe(recipe, restart=args.restart)
    if not result.get("passed", True):
        failed = [row for row in result["asserts"] if not row["passed"]]
        for row in failed:
            print(
                f"tfaccel: assert failed: {row['name']}: {row['value']:.4g} "
                f"({row['worst']}) against the limit {row['limit']:.4g}",
                file=sys.stderr,
            )
        return 1
    return 0


def _set_cluster(args, recipe):
    from tfaccel.distribute import tf_config

    if args.workers is None or args.worker_index is None:
        raise UserError(
            "A multi-worker run needs both --workers HOST:PORT,... and "
            "--worker-index I. Received: "
            f"--workers {args.workers} --worker-index {args.worker_index}"
        )
    if recipe.distribute.strategy not in ("multi_worker", "auto"):
        raise UserError(
            f"--workers needs `distribute: {{strategy: multi_worker}}` (or auto) in "
            f"the recipe. Received: strategy={recipe.distribute.strategy!r}"
        )
    workers = [w.strip() for w in args.workers.split(",") if w.strip()]
    os.environ["TF_CONFIG"] = tf_config(workers, args.worker_index)


def _cmd_export(args):
    from tfaccel.export import formats as registry
    from tfaccel.tasks import TASKS

    allowed = registry.names(made_by="export")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in allowed]
    if unknown or not formats:
        raise UserError(
            f"Unknown export format {', '.join(map(repr, unknown)) or '(none)'}. "
            f"Use any of: {', '.join(allowed)}. Received: --formats {args.formats}"
        )
    path = _model_file(args.model)
    task_name = args.task or _task_of(path.parent)
    if task_name is not None and task_name not in TASKS:
        raise UserError(f"Unknown task '{task_name}'. Use one of: {', '.join(TASKS)}.")
    if args.samples < 1:
        raise UserError(f"--samples must be at least 1. Received: {args.samples}")

    import tfaccel.export
    from tfaccel import tasks
    from tfaccel.data import encode_sources
    from tfaccel.models import load_model

    model = load_model(path)
    options = {}
    if task_name is not None:
        task = tasks.get_task(task_name)
        sources = task.sources("test")[: args.samples]
        options = {
            "sample_inputs": encode_sources(
                sources, task.source_vocab, task.max_source_length
            ),
            "representative": [task.representative_sources()],
            "source_length": task.max_source_length,
            "max_length": task.max_generate_length,
        }
        print(f"Verifying on {len(sources)} {task_name} test sources")
    else:
        print("No task given: verifying on random sources (pass --task)")
    result = tfaccel.export(model, args.out, formats, log=print, **options)
    print(result)
    return 0


def _cmd_report(args):
    import pathlib

    from tfaccel.bench.report import print_summary, write_report

    run_dir = pathlib.Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(
            f"No run folder at '{run_dir}'. Pass a folder written by `tfaccel run` "
            f"(e.g. savedmodels/g2p-prune50-qat-int8). Received: {args.run_dir}"
        )
    print_summary(write_report(run_dir))
    print(f"Wrote {run_dir / 'report.md'}, report.json and report.png")
    return 0


def _cmd_summary(args):
    path = _model_file(args.model)
    from tfaccel.bench.layers import layer_rows, print_layers
    from tfaccel.compression import flops
    from tfaccel.models import load_model

    model = load_model(path)
    print_layers(layer_rows(model))
    print(
        f"{path}: {flops.parameter_count(model):,} parameters, "
        f"{flops.kernel_macs(model):,} matmul MACs per token"
    )
    return 0


def _model_file(given):
    import pathlib

    path = pathlib.Path(given)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise UserError(
            f"No model at '{path}'. Pass a .keras file or a folder with model.keras "
            f"(e.g. savedmodels/g2p-baseline). Received: {given}"
        )
    return path


def _task_of(folder):
    import json

    metrics = folder / "metrics.json"
    if not metrics.is_file():
        return None
    data = json.loads(metrics.read_text())
    if "recipe" in data:
        return data["recipe"]["task"]["name"]
    return data.get("task", {}).get("task")


COMMANDS = {
    "baseline": _cmd_baseline,
    "validate": _cmd_validate,
    "run": _cmd_run,
    "export": _cmd_export,
    "report": _cmd_report,
    "summary": _cmd_summary,
    "bench": _cmd_bench,
}


def main(argv=None):
    """Entry point of the `tfaccel` console script; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    # `kill` (SIGTERM) unwinds like Ctrl-C, so temporary folders are removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return COMMANDS[args.command](args)
    except UserError as error:
        print(f"tfaccel: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except WorkerLostError as error:
        print(f"tfaccel: error: {_one_line(error)}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(
            "tfaccel: interrupted; nothing half-written was published.", file=sys.stderr
        )
        return 130


def _one_line(error):
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())
