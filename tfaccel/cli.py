"""The `tfaccel` command line.

Exit codes: 0 success, 1 a failed check, 2 a user error (bad recipe, bad
path, unknown preset...). User errors print one line and no traceback.
The subcommands and their flags are declared in `tfaccel.cli_parser`; this
module holds the handler of each subcommand and `main`.
"""

import errno
import os
import signal
import sys
import traceback

from tfaccel.cli_parser import build_parser
from tfaccel.errors import (
    DivergedError,
    ExportFailedError,
    UserError,
    WorkerLostError,
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
    from tfaccel.recipe.baseline_cache import baseline_folder

    # A baseline of other settings goes beside the cached one, never over it
    # (the shipped reference included).
    folder = baseline_folder(config, args.output_root)
    _, metrics = train_baseline(config, args.output_root, name=folder.name)
    print(
        f"Test ({metrics['test']['examples']} examples): "
        f"{format_metrics(metrics['test'])}"
    )
    print(f"Saved {folder}/ (trained in {metrics['train_seconds'] / 60:.1f} min)")
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
    from tfaccel.bench.targets import run_task

    if not args.out.strip():
        raise UserError(
            "--out must name a folder (it would write into the current one). "
            f"Received: --out {args.out!r}"
        )
    path = _model_file(args.model)
    # A run trained on a subset has that subset's vocabularies.
    task_name, max_examples = run_task(path.parent) or (None, None)
    if args.task is not None and args.task != task_name:
        task_name, max_examples = args.task, None
    if task_name is not None and task_name not in TASKS:
        raise UserError(f"Unknown task '{task_name}'. Use one of: {', '.join(TASKS)}.")
    if args.samples < 1:
        raise UserError(f"--samples must be at least 1. Received: {args.samples}")
    if not 0.0 <= args.min_agreement <= 1.0:
        raise UserError(
            "--min-agreement is a share of tokens, from 0 to 1. "
            f"Received: --min-agreement {args.min_agreement}"
        )

    import tfaccel.export
    from tfaccel import tasks
    from tfaccel.data import encode_sources
    from tfaccel.models import load_model

    model = load_model(path)
    options = {}
    if task_name is not None:
        task = tasks.get_task(task_name, max_examples)
        sources = task.sources("test")[: args.samples]
        options = {
            "sample_inputs": encode_sources(
                sources, task.source_vocab, task.max_source_length
            ),
            "representative": [task.representative_sources()],
            "source_length": task.max_source_length,
            "max_length": task.max_generate_length,
            "vocabularies": (
                task.source_vocab.all_tokens,
                task.target_vocab.all_tokens,
            ),
        }
        print(f"Verifying on {len(sources)} {task_name} test sources")
    else:
        print("No task given: verifying on random sources (pass --task)")
    options["min_agreement"] = args.min_agreement
    try:
        result = tfaccel.export(model, args.out, formats, log=print, **options)
    except ExportFailedError as error:
        # Every format was tried: the published ones, then one line each
        # for those that failed.
        if error.result.artifacts:
            print(error.result)
        for name, line in error.failures.items():
            print(f"tfaccel: error: {name} was not exported: {line}", file=sys.stderr)
        return 1
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
    args = build_parser().parse_args(argv)
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
    except (DivergedError, ExportFailedError) as error:
        print(f"tfaccel: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except OSError as error:
        if error.errno not in _ENVIRONMENT_ERRNOS:
            return _internal_error()
        # The machine's, not tfaccel's: a read-only folder, a full disk.
        where = f" '{error.filename}'" if error.filename else ""
        print(
            f"tfaccel: error: cannot write{where}: {error.strerror}; nothing "
            "half-written was published. Free space or pick a writable folder.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(
            "tfaccel: interrupted; nothing half-written was published.", file=sys.stderr
        )
        return 130
    except Exception:
        return _internal_error()


_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC}
_ENVIRONMENT_ERRNOS.add(errno.EDQUOT)
INTERNAL_ERROR = 70  # EX_SOFTWARE of sysexits.h


def _internal_error():
    traceback.print_exc()
    print(
        "tfaccel: internal error: this is a bug in tfaccel, not in your input. "
        "Please report it with the traceback above.",
        file=sys.stderr,
    )
    return INTERNAL_ERROR


def _one_line(error):
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())
