"""Training, evaluating and saving the fp32 baseline a recipe starts from."""

import dataclasses
import math
import pathlib
import time

import keras
import tensorflow as tf

from tfaccel import tasks
from tfaccel._io import atomic_dir, exclusive, read_json
from tfaccel.core.counts import parameter_count
from tfaccel.errors import UserError, error_line
from tfaccel.models import (
    Seq2SeqTransformer,
    SmoothedSparseCrossentropy,
    save_model,
)
from tfaccel.recipe.progress import RunProgress, StopOnNonFiniteLoss


@dataclasses.dataclass
class BaselineConfig:
    """How to train a baseline.

    Attributes:
        task: "g2p" or "translation".
        preset: model preset, "tiny", "small" or "base".
        epochs: passes over the training split.
        batch_size: examples per step (bucketed by length).
        learning_rate: AdamW peak rate, after linear warm-up.
        warmup_steps: steps of linear warm-up; None for 3% of training.
        weight_decay: AdamW decoupled weight decay.
        label_smoothing: label smoothing of the training loss.
        max_examples: keep about this many training examples (smoke runs).
        overrides: model constructor arguments replacing the preset's.
        seed: seeds weights, dropout and shuffling.
        eval_examples: valid-split words scored by generation each epoch.
    """

    task: str = "g2p"
    preset: str = "small"
    epochs: int = 12  # enough for WER < 40% on G2P small in ~25 min
    batch_size: int = 128
    learning_rate: float = 2e-3
    warmup_steps: int | None = None  # None: 3% of all steps
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    max_examples: int | None = None  # None: the whole corpus
    overrides: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    eval_examples: int = 500

    def __post_init__(self):
        counts = {"epochs": 1, "batch_size": 1, "seed": 0, "eval_examples": 0}
        counts |= {"warmup_steps": 0, "max_examples": 1}
        for key, low in counts.items():
            value = getattr(self, key)
            if value is None and key in ("warmup_steps", "max_examples"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(
                    f"Baseline `{key}` must be an int >= {low}. "
                    f"Received: {key}={value!r}"
                )
        rates = {"learning_rate": False, "weight_decay": True}
        rates["label_smoothing"] = True
        for key, zero in rates.items():
            value = getattr(self, key)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
                or (value == 0 and not zero)
            ):
                least = ">= 0" if zero else "> 0"
                raise UserError(
                    f"Baseline `{key}` must be a finite number {least}. "
                    f"Received: {key}={value!r}"
                )

    @property
    def name(self):
        return f"baseline-{self.task}-{self.preset}"


class GenerationMetrics(keras.callbacks.Callback):
    """Scores greedy generation on part of the valid split after each epoch.

    The scores go into the epoch logs as `val_wer`/`val_per` (or `val_bleu`/
    `val_chrf`), so the progress bar, History and TensorBoard all show them.
    """

    def __init__(self, task, max_examples):
        super().__init__()
        self.task = task
        self.max_examples = max_examples

    def on_epoch_end(self, epoch, logs=None):
        scores = self.task.evaluate(self.model, "valid", self.max_examples)
        for name in self.task.metric_names:
            logs[f"val_{name}"] = scores[name]
        print(
            f"  valid ({scores['examples']} examples): {tasks.format_metrics(scores)}"
        )


def build_model(config, task):
    """Returns an untrained model of `config.preset` sized for `task`."""
    overrides = {**task.model_overrides(), **config.overrides}
    try:
        return Seq2SeqTransformer.from_preset(config.preset, **overrides)
    except UserError:
        raise
    except (TypeError, ValueError) as error:
        # A value of the wrong type (`num_heads: two`) or a shape that does
        # not fit (`hidden_dim` not divisible by `num_heads`).
        raise UserError(
            f"The model overrides {config.overrides} do not build a "
            f"{config.preset!r} model: {error_line(error, 200)}. "
            f"Received: overrides={config.overrides!r}"
        ) from None


def for_replicas(dataset, replicas):
    """Returns `dataset` ready to be split over `replicas` replicas.

    A batch smaller than the replicas would leave one of them without
    examples, and the loss averaged over its real tokens undefined, so
    such batches (at most one per length bucket and epoch) are dropped.
    Under several workers, each takes its share of every global batch
    (auto-sharding by data: the task datasets are built in memory).
    """
    if replicas == 1:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    dataset = dataset.filter(
        lambda *batch: tf.shape(tf.nest.flatten(batch)[0])[0] >= replicas
    )
    return dataset.with_options(options)


def count_batches(dataset):
    """Returns the number of batches in one pass over `dataset`."""
    return int(dataset.reduce(0, lambda count, _: count + 1))


def compile_model(model, config, steps):
    """Compiles `model` with AdamW, warm-up + cosine decay and masked loss."""
    warmup = config.warmup_steps or max(1, int(0.03 * steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, steps - warmup),
        alpha=0.02,
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(
            schedule, weight_decay=config.weight_decay, clipnorm=1.0
        ),
        loss=_masked_loss(config.label_smoothing),
        weighted_metrics=["accuracy"],
        # Measured on 2 CPU cores: XLA gives no faster steps for this model
        # and costs a compile per bucket shape, so graph mode without it.
        jit_compile=False,
    )


def _masked_loss(label_smoothing):
    # Averaged over real (non-padding) target tokens only.
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        )
    return SmoothedSparseCrossentropy(label_smoothing)


def train_baseline(
    config, output_root="savedmodels", verbose="auto", strategy=None, name=None
):
    """Trains, evaluates and saves a baseline.

    Writes `<output_root>/<name>/` (default `baseline-<task>-<preset>`)
    atomically, holding `model.keras`, the vocabularies, `metrics.json`
    (test-split scores, the learning curve, the config and timings) and
    TensorBoard `logs/`.

    Args:
        config: a `BaselineConfig`.
        output_root: folder that receives the baseline folder.
        verbose: Keras `fit` verbosity (progress bars by default).
        strategy: a `tf.distribute.Strategy` to train under; `config`'s
            batch size is then the global batch.
        name: the folder's name under `output_root`; default `config.name`.

    Returns:
        A tuple `(model, metrics)`.
    """
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(config.seed)
    task = tasks.get_task(config.task, config.max_examples)
    replicas = strategy.num_replicas_in_sync
    train = task.dataset("train", config.batch_size, shuffle=True, seed=config.seed)
    train = for_replicas(train, replicas)
    steps_per_epoch = count_batches(train)
    train = train.apply(tf.data.experimental.assert_cardinality(steps_per_epoch))
    valid = for_replicas(task.dataset("valid", config.batch_size), replicas)
    valid = valid.apply(tf.data.experimental.assert_cardinality(count_batches(valid)))
    with strategy.scope():
        model = build_model(config, task)
        compile_model(model, config, steps_per_epoch * config.epochs)
    out = pathlib.Path(output_root) / (name or config.name)
    with exclusive(out, "Baseline folder"), atomic_dir(out, replace=True) as tmp:
        start = time.perf_counter()
        history = model.fit(
            train,
            epochs=config.epochs,
            validation_data=valid,
            callbacks=[
                *_callbacks(task, config, tmp),
                StopOnNonFiniteLoss("the baseline"),
            ],
            shuffle=False,  # the dataset reshuffles itself each epoch
            verbose=verbose,
        )
        train_seconds = time.perf_counter() - start
        test = task.evaluate(model, "test")
        metrics = _metrics(config, task, model, history, test, train_seconds)
        save_model(model, tmp / "model.keras")
        task.save_vocabularies(tmp)
        tasks.dump_json(metrics, tmp / "metrics.json")
    return model, metrics


def _callbacks(task, config, folder):
    return [
        GenerationMetrics(task, config.eval_examples),
        keras.callbacks.TensorBoard(log_dir=str(folder / "logs")),
        RunProgress(config.epochs).callback("baseline"),
    ]


def _metrics(config, task, model, history, test, train_seconds):
    curve = [
        {"epoch": epoch + 1, **{k: float(v[epoch]) for k, v in history.history.items()}}
        for epoch in range(len(history.epoch))
    ]
    return {
        "config": dataclasses.asdict(config),
        "task": task.describe(),
        "model": model.get_config(),
        "parameters": parameter_count(model),
        "test": test,
        "learning_curve": curve,
        "train_seconds": train_seconds,
    }


def load_baseline(folder):
    """Loads a saved baseline: returns `(model, metrics)`.

    Raises:
        UserError: if the folder or its `model.keras` cannot be read.
    """
    from tfaccel.models import load_model

    folder = pathlib.Path(folder)
    model = load_model(folder / "model.keras")
    metrics_path = folder / "metrics.json"
    if not metrics_path.is_file():
        raise UserError(
            f"No metrics.json beside the model in '{folder}'; retrain it with "
            f"`tfaccel baseline`. Received: folder={str(folder)!r}"
        )
    return model, read_json(metrics_path)
