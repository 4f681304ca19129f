"""The `tfaccel` command line.

Exit codes: 0 success, 1 a failed check, 2 a user error (bad recipe, bad
path, unknown preset...). User errors print one line and no traceback.
"""

import argparse
import os
import signal
import sys

from tfaccel.errors import UserError

EXAMPLES = """examples:
  tfaccel baseline --task g2p --preset small
  tfaccel baseline --task translation --preset small --epochs 8
  tfaccel validate recipes/g2p-baseline.yaml
  tfaccel run recipes/g2p-baseline.yaml
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
    run = commands.add_parser("run", help="run a recipe end to end")
    run.add_argument(
        "recipe", help="path of a YAML recipe, e.g. recipes/g2p-baseline.yaml"
    )
    validate = commands.add_parser("validate", help="check a recipe without running it")
    validate.add_argument("recipe", help="path of a YAML recipe")
    return parser


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
    from tfaccel.recipe.runner import run_recipe

    run_recipe(recipe)
    return 0


COMMANDS = {"baseline": _cmd_baseline, "validate": _cmd_validate, "run": _cmd_run}


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
    except KeyboardInterrupt:
        print(
            "tfaccel: interrupted; nothing half-written was published.", file=sys.stderr
        )
        return 130


def _one_line(error):
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())
