"""The sections of a recipe, version 1: one pydantic model per top-level key.

`tfaccel.recipe.schema.Recipe` puts these together (`task`, `model`,
`baseline`, `distribute`, `stages`, `benchmark`, `verify`, `assert`); every
name here is importable from `tfaccel.recipe.schema` too. The shared field
types (YAML floats, relative paths) and the strict base model live here as
well. Like the schema, this module imports only pydantic, no TensorFlow.
"""

import pathlib
import re
from typing import Annotated, Literal

import pydantic
from pydantic import Field
from pydantic_core import PydanticCustomError

from tfaccel.recipe.registry import ModifierField

_STAGE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_OVERRIDE_KEY = re.compile(r"[a-z_][a-z0-9_]*")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _float_from_yaml(value):
    # PyYAML reads `1e-3` (no dot) as a string; accept it as the number it is.
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return float(value)
    return value


def _list_or_empty(value):
    # `stages:` with nothing after it is None in YAML; read it as empty.
    return [] if value is None else value


def _yaml_float(**constraints):
    # Constraints sit inside the Annotated so the JSON Schema shows them.
    return Annotated[
        float, Field(**constraints), pydantic.BeforeValidator(_float_from_yaml)
    ]


def check_relative_path(value):
    """Checks that `value` is a relative path that cannot climb out of its root.

    Args:
        value: a path string from a recipe.

    Returns:
        `value`, unchanged.

    Raises:
        ValueError: the path is empty, absolute, uses backslashes or has a
            `..` component.
    """
    if not value or "\x00" in value:
        raise ValueError("must be a non-empty relative path")
    if "\\" in value:
        raise ValueError("must use '/' as the path separator, not '\\'")
    path = pathlib.PurePosixPath(value)
    if path.is_absolute() or pathlib.PureWindowsPath(value).drive:
        raise ValueError("must be a relative path, not an absolute one")
    if ".." in path.parts:
        raise ValueError("must not contain '..' components")
    return value


def _error_at(key, message, value):
    # A ValidationError raised in a validator keeps its location, here `key`.
    error = PydanticCustomError("value_error", message)
    return pydantic.ValidationError.from_exception_data(
        "Recipe", [{"type": error, "loc": (key,), "input": value}]
    )


RelativePath = Annotated[str, pydantic.AfterValidator(check_relative_path)]


class _Config(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class TaskConfig(_Config):
    """The dataset and metrics to train and score on."""

    name: Literal["g2p", "translation"] = Field(
        description="g2p: CMUdict word to phonemes (WER, PER); "
        "translation: KJV English to RV1909 Spanish (BLEU, chrF)."
    )
    max_examples: int | None = Field(
        default=None, gt=0, description="Use at most this many examples per split."
    )


class ModelConfig(_Config):
    """The model to compress: a preset to build and train, or a saved model."""

    preset: Literal["tiny", "small", "base"] | None = Field(
        default=None, description="Reference encoder-decoder size to build."
    )
    path: RelativePath | None = Field(
        default=None, description="Relative path of a .keras file to load."
    )
    overrides: dict[str, int | float | bool | str] = Field(
        default_factory=dict,
        description="Preset arguments to change, e.g. {num_layers: 2}.",
        json_schema_extra={"propertyNames": {"pattern": f"^{_OVERRIDE_KEY.pattern}$"}},
    )

    @pydantic.field_validator("path")
    @classmethod
    def _keras_file(cls, value):
        if value is not None and not value.endswith(".keras"):
            raise ValueError("must name a .keras file")
        return value

    @pydantic.field_validator("overrides", mode="before")
    @classmethod
    def _scalar_overrides(cls, value):
        for key, item in value.items() if isinstance(value, dict) else ():
            if not isinstance(key, str) or not _OVERRIDE_KEY.fullmatch(key):
                raise _error_at(key, "override key should match [a-z_][a-z0-9_]*", key)
            if not isinstance(item, int | float | bool | str):
                raise _error_at(key, "should be a number, bool or string", item)
        return {} if value is None else value

    @pydantic.model_validator(mode="after")
    def _one_source(self):
        if (self.preset is None) == (self.path is None):
            raise ValueError("give exactly one of 'preset' or 'path'")
        if self.path is not None and self.overrides:
            raise ValueError("'overrides' only applies to a 'preset'")
        return self


class BaselineConfig(_Config):
    """How to train the fp32 baseline when it is not cached."""

    epochs: int = Field(default=12, ge=0, description="Training epochs.")
    cache: bool = Field(
        default=True, description="Reuse a baseline trained with the same settings."
    )
    batch_size: int = Field(
        default=128,
        gt=0,
        description="Examples per step and replica (the global batch is this "
        "times the replicas; see distribute).",
    )
    learning_rate: _yaml_float(gt=0) = Field(
        default=0.002, description="Peak learning rate."
    )
    warmup_steps: int | None = Field(
        default=None, ge=0, description="Linear warmup steps; default: the trainer's."
    )


class DistributeConfig(_Config):
    """Where training runs."""

    strategy: Literal["none", "mirrored", "multi_worker", "auto"] = Field(
        default="none",
        description="none: one device; mirrored: all local GPUs (or logical "
        "CPUs); multi_worker: the machines of --workers or TF_CONFIG; auto: "
        "multi_worker with a cluster, else mirrored with 2+ GPUs, else none.",
    )
    learning_rate: Literal["linear", "sqrt", "constant"] = Field(
        default="linear",
        description="How learning rates follow the global batch, which is "
        "batch_size per replica times the replicas: linear (times the "
        "replicas), sqrt, or constant.",
    )
    timeout_seconds: int = Field(
        default=300,
        ge=10,
        le=86400,
        description="multi_worker: seconds any wait on another worker may take "
        "before the job fails with a message (collectives, start-up).",
    )


class StageConfig(_Config):
    """One compression stage: fine-tune with its modifiers applied."""

    name: str = Field(
        description="Stage name, unique in the recipe.",
        pattern=f"^{_STAGE_NAME.pattern}$",
    )
    epochs: int = Field(ge=1, description="Fine-tuning epochs for this stage.")
    learning_rate: _yaml_float(gt=0) = Field(
        default=5e-4,
        description="Peak fine-tuning learning rate (warm-up, then cosine decay).",
    )
    steps_per_epoch: int | None = Field(
        default=None,
        gt=0,
        description="Batches per epoch, repeating the data; default one pass. "
        "Gives runs on data of different sizes the same number of steps.",
    )
    modifiers: Annotated[
        list[ModifierField], pydantic.BeforeValidator(_list_or_empty)
    ] = Field(
        default_factory=list,
        description="Techniques to apply, each picked by its 'type'.",
    )

    @pydantic.field_validator("modifiers")
    @classmethod
    def _one_teacher(cls, modifiers):
        if sum(m.type == "distillation" for m in modifiers) > 1:
            raise ValueError("a stage distills from one teacher: one 'distillation'")
        return modifiers

    @pydantic.model_validator(mode="after")
    def _schedules_within_the_stage(self):
        # A schedule that ends after the stage's last epoch never reaches its
        # final sparsity: the run would publish a model pruned less than asked.
        for index, modifier in enumerate(self.modifiers):
            schedule = getattr(modifier, "schedule", None)
            end = getattr(schedule, "end_epoch", -1)
            begin = getattr(schedule, "begin_epoch", 0)
            if end > self.epochs or begin >= self.epochs:
                raise ValueError(
                    f"modifiers[{index}].schedule runs from epoch {begin} to "
                    f"{end}, past the stage's {self.epochs} epoch(s); end it by "
                    f"epoch {self.epochs}"
                )
        return self


class BenchmarkConfig(_Config):
    """How to time whole-sequence generation on each exported runtime."""

    batch_sizes: list[Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: [1, 16], min_length=1, description="Batch sizes."
    )
    warmup: int = Field(default=5, ge=0, description="Untimed runs first.")
    repeats: int = Field(default=30, ge=1, description="Timed runs per batch size.")


class VerifyConfig(_Config):
    """How strictly each export must match the Keras model before it is kept."""

    min_agreement: _yaml_float(ge=0, le=1) = Field(
        default=0.9,
        description="Least fraction of greedy tokens each export shares with "
        "the Keras model on 64 test sources. Lower it only to time an untrained "
        "model, whose near-flat logits make argmax ties arbitrary.",
    )


class AssertConfig(_Config):
    """Limits the run must meet; a miss fails the run after the report."""

    max_wer_increase: _yaml_float(ge=0) | None = Field(
        default=None, description="Most WER may rise, in percentage points."
    )
    max_per_increase: _yaml_float(ge=0) | None = Field(
        default=None, description="Most PER may rise, in percentage points."
    )
    max_bleu_decrease: _yaml_float(ge=0) | None = Field(
        default=None, description="Most BLEU may fall, in BLEU points."
    )
    min_sparsity: _yaml_float(ge=0, le=1) | None = Field(
        default=None, description="Least fraction of zero weights."
    )


# The `assert` limits each task can be held to.
_TASK_LIMITS = {
    "g2p": ("max_wer_increase", "max_per_increase", "min_sparsity"),
    "translation": ("max_bleu_decrease", "min_sparsity"),
}
