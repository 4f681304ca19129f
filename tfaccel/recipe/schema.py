"""The recipe format, version 1, as pydantic models.

A recipe is a YAML file that `tfaccel run` turns into a whole pipeline:
baseline, compression stages, export and benchmark. Load one with
`tfaccel.recipe.loader.load_recipe`; this module only defines its shape.
The models of its sections (`task`, `model`, `stages`...) live in
`tfaccel.recipe.sections` and are importable from here too.

Every model refuses unknown keys and does not coerce types, so a typo or a
quoted number is an error, not a silent default. This module imports only
pydantic (no TensorFlow), so validation is fast.

Write the JSON Schema for editors with:

    python -m tfaccel.recipe.schema > recipes/schema.json
"""

import json
import pathlib
import re
import sys
from typing import Annotated, Literal

import pydantic
from pydantic import Field
from pydantic_core import PydanticCustomError

from tfaccel.errors import UserError
from tfaccel.export import formats as export_formats
from tfaccel.recipe.sections import (
    _TASK_LIMITS,
    AssertConfig,
    BaselineConfig,
    BenchmarkConfig,
    DistributeConfig,
    ModelConfig,
    RelativePath,
    StageConfig,
    TaskConfig,
    VerifyConfig,
    _Config,
    _list_or_empty,
    check_relative_path,
)

__all__ = [
    "EXPORT_FORMATS",
    "SUPPORTED_VERSIONS",
    "AssertConfig",
    "BaselineConfig",
    "BenchmarkConfig",
    "DistributeConfig",
    "ExportFormat",
    "ModelConfig",
    "Recipe",
    "RecipeError",
    "RelativePath",
    "StageConfig",
    "TaskConfig",
    "VerifyConfig",
    "check_relative_path",
    "recipe_json_schema",
    "write_json_schema",
]

SUPPORTED_VERSIONS = (1,)

# Every registered format: those `tfaccel.export` makes, and the Keras files
# the recipe runner writes itself (`keras`, `keras_int8`). Read once, here.
EXPORT_FORMATS = export_formats.names()

ExportFormat = Literal[EXPORT_FORMATS]

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
RESERVED_PREFIX = "baseline-"  # the baseline cache's folders


class RecipeError(UserError):
    """A recipe is unreadable or invalid; the message is one line for people.

    It reads `<file>: <key.path>: <problem>; got <value>; allowed: <values>`.
    """


class Recipe(_Config):
    """A tfaccel recipe, version 1: the whole compression pipeline in one file.

    Example:

    ```python
    recipe = load_recipe("recipes/g2p-baseline.yaml")
    recipe.run_dir()  # PosixPath('/.../savedmodels/g2p-baseline')
    ```
    """

    model_config = pydantic.ConfigDict(serialize_by_alias=True)

    version: Literal[SUPPORTED_VERSIONS] = Field(
        description="Recipe format version; this tfaccel reads version 1."
    )
    name: str = Field(
        max_length=100,
        pattern=f"^{_NAME.pattern}$",
        description="Run name, also the output folder name under output_dir.",
    )
    task: TaskConfig = Field(description="Dataset and metrics.")
    model: ModelConfig = Field(description="Model to compress.")
    baseline: BaselineConfig = Field(
        default_factory=BaselineConfig, description="Baseline training."
    )
    distribute: DistributeConfig = Field(
        default_factory=DistributeConfig, description="Distribution strategy."
    )
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = Field(
        default="float32",
        description="Keras dtype policy of the stages' training (baseline: float32).",
    )
    stages: Annotated[list[StageConfig], pydantic.BeforeValidator(_list_or_empty)] = (
        Field(default_factory=list, description="Compression stages, run in order.")
    )
    export: Annotated[list[ExportFormat], pydantic.BeforeValidator(_list_or_empty)] = (
        Field(default_factory=list, description="Formats to export and verify.")
    )
    verify: VerifyConfig = Field(
        default_factory=VerifyConfig, description="Checks on every export."
    )
    benchmark: BenchmarkConfig | None = Field(
        default=None, description="Generation benchmark; omit to skip it."
    )
    assert_: AssertConfig | None = Field(
        default=None, alias="assert", description="Limits the run must meet."
    )
    output_dir: RelativePath = Field(
        default="savedmodels", description="Relative folder that holds run folders."
    )

    _source: str = pydantic.PrivateAttr(default="<string>")

    @pydantic.field_validator("version", mode="before")
    @classmethod
    def _supported_version(cls, value):
        if value not in SUPPORTED_VERSIONS or isinstance(value, bool):
            raise PydanticCustomError(
                "unsupported_version",
                "unsupported recipe version",
                {"allowed": ", ".join(map(str, SUPPORTED_VERSIONS))},
            )
        return value

    @pydantic.field_validator("name", mode="before")
    @classmethod
    def _safe_name(cls, value):
        if isinstance(value, str) and (
            not _NAME.fullmatch(value) or ".." in value or len(value) > 100
        ):
            raise PydanticCustomError(
                "run_name",
                "not a valid run name (it names the output folder)",
                {"allowed": f"{_NAME.pattern} without '..', at most 100 characters"},
            )
        if isinstance(value, str) and value.startswith(RESERVED_PREFIX):
            # `baseline-<task>-<preset>` folders are the baseline cache: a
            # run of that name would publish over a cached baseline.
            raise PydanticCustomError(
                "run_name",
                "a run name may not start with 'baseline-': that names the "
                "baseline cache",
                {"allowed": "any other name, e.g. g2p-baseline"},
            )
        return value

    @pydantic.field_validator("stages")
    @classmethod
    def _unique_stages(cls, stages):
        names = [stage.name for stage in stages]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"stage names must be unique; '{name}' repeats")
        return stages

    @pydantic.field_validator("export")
    @classmethod
    def _unique_formats(cls, formats):
        for index, name in enumerate(formats):
            if name in formats[:index]:
                raise ValueError(f"export formats must be unique; '{name}' repeats")
        return formats

    @pydantic.field_validator("export")
    @classmethod
    def _formats_fit_qat(cls, formats, info):
        # The formats a QAT model refuses, and why (`tfaccel.export.formats`).
        stages = info.data.get("stages") or []
        qat = any(m.type == "quantization_aware" for s in stages for m in s.modifiers)
        refused = export_formats.qat_refused(formats)
        if qat and refused:
            reason = export_formats.get(refused[0]).qat_reason
            raise ValueError(f"{', '.join(refused)} of a QAT model {reason}")
        return formats

    @pydantic.field_validator("assert_")
    @classmethod
    def _limits_fit_task(cls, limits, info):
        task = info.data.get("task")
        if limits is None or task is None:
            return limits
        metrics = _TASK_LIMITS[task.name]
        for key in limits.model_fields_set:
            if getattr(limits, key) is not None and key not in metrics:
                raise ValueError(
                    f"{key} does not apply to the {task.name} task; use "
                    f"{', '.join(metrics)}"
                )
        return limits

    def run_dir(self, root="."):
        """Returns the output folder `root/output_dir/name`, made absolute.

        Args:
            root: the folder that `output_dir` is relative to.

        Returns:
            A `pathlib.Path` inside `root`. It may not exist yet.

        Raises:
            RecipeError: a component below `root` is a symlink, or the folder
                resolves outside `root`.
        """
        root = pathlib.Path(root).resolve()
        path = root
        for part in (*pathlib.PurePosixPath(self.output_dir).parts, self.name):
            path = path / part
            if path.is_symlink():
                self._path_error(f"output folder {path} passes through a symlink")
        if not path.resolve().is_relative_to(root):
            self._path_error(f"output folder {path} is outside {root}")
        return path

    def _path_error(self, problem):
        raise RecipeError(
            f"{self._source}: output_dir: {problem}; got {self.output_dir!r}"
        )


def recipe_json_schema():
    """Returns the JSON Schema of a recipe, with the modifiers registered now.

    Returns:
        A JSON-serializable dict (JSON Schema draft 2020-12).
    """
    schema = Recipe.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def write_json_schema(path):
    """Writes `recipe_json_schema()` to `path` as indented JSON.

    Args:
        path: the file to write, e.g. `recipes/schema.json`.
    """
    pathlib.Path(path).write_text(_schema_text(), encoding="utf-8")


def _schema_text():
    return json.dumps(recipe_json_schema(), indent=2) + "\n"


if __name__ == "__main__":
    import tfaccel.recipe.modifiers  # noqa: F401  (registers the built-in modifiers)

    sys.stdout.write(_schema_text())
