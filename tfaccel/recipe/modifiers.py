"""Recipe modifiers of the techniques tfaccel ships, registered by type name.

Only pydantic is imported here, so a recipe validates without TensorFlow.
Each modifier is applied by its technique (`tfaccel.pruning.apply_modifier`).
"""

import re
from typing import Annotated, ClassVar, Literal

import pydantic
from pydantic import Field

from tfaccel.core import patterns
from tfaccel.recipe.registry import Modifier, register_modifier
from tfaccel.recipe.sections import check_relative_path

_N_M = re.compile(r"(\d+):(\d+)")


class _Config(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class PolynomialDecaySchedule(_Config):
    """Sparsity rises from initial to final between two epochs (Zhu & Gupta)."""

    type: Literal["polynomial_decay"] = Field(description="Schedule kind.")
    initial_sparsity: float = Field(
        default=0.0, ge=0, lt=1, description="Sparsity at begin_epoch."
    )
    final_sparsity: float = Field(ge=0, lt=1, description="Sparsity from end_epoch on.")
    begin_epoch: int = Field(default=0, ge=0, description="First pruning epoch.")
    end_epoch: int = Field(ge=1, description="Epoch at which sparsity is final.")
    power: float = Field(default=3, gt=0, description="Exponent of the decay.")
    frequency: int = Field(
        default=100, ge=1, description="Update masks every this many steps."
    )

    @pydantic.model_validator(mode="after")
    def _ordered(self):
        if self.end_epoch <= self.begin_epoch:
            raise ValueError("end_epoch must be greater than begin_epoch")
        return self


class ConstantSchedule(_Config):
    """One sparsity, re-applied every `frequency` steps between two epochs."""

    type: Literal["constant"] = Field(description="Schedule kind.")
    sparsity: float = Field(ge=0, lt=1, description="Fraction of weights zeroed.")
    begin_epoch: int = Field(default=0, ge=0, description="First pruning epoch.")
    end_epoch: int = Field(
        default=-1, ge=-1, description="Last pruning epoch; -1: until the end."
    )
    frequency: int = Field(
        default=100, ge=1, description="Update masks every this many steps."
    )

    @pydantic.model_validator(mode="after")
    def _ordered(self):
        if self.end_epoch != -1 and self.end_epoch < self.begin_epoch:
            raise ValueError("end_epoch must be -1 or at least begin_epoch")
        return self


PruningScheduleConfig = Annotated[
    PolynomialDecaySchedule | ConstantSchedule, Field(discriminator="type")
]


@register_modifier("magnitude_pruning")
class MagnitudePruning(Modifier):
    """Magnitude pruning: unstructured, N:M (`structure`) or block (`block`).

    Example:

    ```yaml
    - type: magnitude_pruning
      targets: ["re:.*(attention|feedforward).*kernel"]
      schedule: {type: polynomial_decay, final_sparsity: 0.5, end_epoch: 3}
    ```
    """

    applier: ClassVar[str] = "tfaccel.pruning.recipe:apply_modifier"

    type: Literal["magnitude_pruning"] = "magnitude_pruning"
    targets: list[str] = Field(
        min_length=1,
        description="Regexes over variable paths (re.fullmatch); 're:' optional.",
    )
    schedule: PruningScheduleConfig = Field(description="When and how much to prune.")
    structure: str | None = Field(
        default=None,
        pattern=f"^{_N_M.pattern}$",
        description="'N:M' sparsity along the input axis, e.g. '2:4'.",
    )
    block: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="Block [rows, cols] over each kernel's (in, out) view.",
    )

    @pydantic.field_validator("targets")
    @classmethod
    def _regexes(cls, targets):
        return _check_regexes(targets)

    @pydantic.field_validator("structure")
    @classmethod
    def _n_below_m(cls, structure):
        match = _N_M.fullmatch(structure) if structure is not None else None
        if match and not 0 < int(match[1]) < int(match[2]):
            raise ValueError("needs 0 < N < M in N:M, e.g. '2:4'")
        return structure

    @pydantic.model_validator(mode="after")
    def _one_structure(self):
        if self.structure is not None and self.block is not None:
            raise ValueError("give 'structure' or 'block', not both")
        return self


@register_modifier("weight_clustering")
class WeightClustering(Modifier):
    """Weight clustering: k shared, trainable values per kernel (or channel).

    Example:

    ```yaml
    - type: weight_clustering
      targets: ["re:.*(attention|feedforward).*kernel"]
      num_clusters: 16
    ```
    """

    applier: ClassVar[str] = "tfaccel.clustering.recipe:apply_modifier"

    type: Literal["weight_clustering"] = "weight_clustering"
    targets: list[str] = Field(
        min_length=1,
        description="Regexes over variable paths (re.fullmatch); 're:' optional.",
    )
    num_clusters: int = Field(
        ge=2, description="Shared values per kernel (per output unit if per_channel)."
    )
    init: Literal["kmeans++", "linear", "density"] = Field(
        default="kmeans++", description="Centroid initialisation."
    )
    per_channel: bool = Field(
        default=False, description="One set of centroids per output unit."
    )
    preserve_sparsity: bool = Field(
        default=True, description="Keep zero weights (from pruning) at zero."
    )
    update_freq: Annotated[int, Field(ge=1)] | Literal["epoch"] = Field(
        default=100, description="Refresh assignments every N steps, or 'epoch'."
    )
    seed: int = Field(default=0, description="Seed of the k-means++ draws.")

    @pydantic.field_validator("targets")
    @classmethod
    def _regexes(cls, targets):
        return _check_regexes(targets)


@register_modifier("quantization_aware")
class QuantizationAware(Modifier):
    """Int8 quantization-aware training (fake-quantized weights and activations).

    Example:

    ```yaml
    - type: quantization_aware
      targets: ["re:.*kernel", "re:.*token_embedding/embeddings"]
    ```
    """

    applier: ClassVar[str] = "tfaccel.quantization.recipe:apply_modifier"

    type: Literal["quantization_aware"] = "quantization_aware"
    targets: list[str] = Field(
        default=[".*kernel"],
        min_length=1,
        description="Regexes over variable paths; their layers are quantized.",
    )
    weight_bits: int = Field(
        default=8, ge=2, le=8, description="Weight bits (int8 kernels)."
    )
    activation_bits: Literal[8] = Field(default=8, description="Activation bits: 8.")
    per_channel: bool = Field(
        default=True, description="One weight scale per output unit."
    )
    range_decay: float = Field(
        default=0.99,
        ge=0,
        lt=1,
        description="Moving-average decay of activation ranges.",
    )
    quantize_attention: bool = Field(
        default=True, description="Also quantize the attention score and value matmuls."
    )
    preserve_sparsity: bool = Field(
        default=True, description="Keep zero weights (from pruning) at zero."
    )

    @pydantic.field_validator("targets")
    @classmethod
    def _regexes(cls, targets):
        return _check_regexes(targets)


_Share = Annotated[float, Field(gt=0, le=1)] | Annotated[int, Field(ge=1)]


class LayerCounts(_Config):
    """Layers to keep in each stack: a count, or a share of the stack."""

    encoder: _Share | None = Field(default=None, description="Encoder layers kept.")
    decoder: _Share | None = Field(default=None, description="Decoder layers kept.")


@register_modifier("shrink")
class Shrink(Modifier):
    """Structured shrinking: fewer heads, FFN neurons or layers, dense and smaller.

    Each value is what is kept: a count (`heads: 6`) or a share (`ffn: 0.5`).

    Example:

    ```yaml
    - type: shrink
      heads: 6
      ffn: 0.5
    ```
    """

    applier: ClassVar[str] = "tfaccel.compression.recipe:apply_shrink"
    order: ClassVar[int] = 0

    type: Literal["shrink"] = "shrink"
    heads: _Share | None = Field(default=None, description="Heads kept per layer.")
    ffn: _Share | None = Field(default=None, description="FFN neurons kept per layer.")
    layers: _Share | LayerCounts | None = Field(
        default=None, description="Layers kept, per stack or for both."
    )
    importance: Literal["magnitude", "activation"] = Field(
        default="activation",
        description="Score by weight norms, or by activations on training data.",
    )
    calibration_examples: int = Field(
        default=512, ge=1, description="Training examples scored for 'activation'."
    )

    @pydantic.model_validator(mode="after")
    def _something(self):
        if self.heads is None and self.ffn is None and self.layers is None:
            raise ValueError("give at least one of 'heads', 'ffn' or 'layers'")
        return self


@register_modifier("low_rank")
class LowRank(Modifier):
    """Low-rank factorization of kernels by truncated SVD (two smaller matmuls).

    Example:

    ```yaml
    - type: low_rank
      targets: ["re:.*feedforward.*kernel"]
      energy: 0.9
    ```
    """

    applier: ClassVar[str] = "tfaccel.compression.recipe:apply_low_rank"
    order: ClassVar[int] = 1

    type: Literal["low_rank"] = "low_rank"
    targets: list[str] = Field(
        min_length=1,
        description="Regexes over variable paths (re.fullmatch); 're:' optional.",
    )
    rank: int | None = Field(
        default=None, ge=1, description="Fixed rank; overrides 'energy'."
    )
    energy: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Share of squared singular values each kernel keeps.",
    )

    @pydantic.field_validator("targets")
    @classmethod
    def _regexes(cls, targets):
        return _check_regexes(targets)


@register_modifier("distillation")
class Distillation(Modifier):
    """Knowledge distillation from a teacher, alongside the stage's other modifiers.

    Example:

    ```yaml
    - type: distillation
      teacher: baseline
      temperature: 2.0
      alpha: 0.5
    ```
    """

    applier: ClassVar[str] = "tfaccel.distillation.recipe:apply_modifier"
    order: ClassVar[int] = 3

    type: Literal["distillation"] = "distillation"
    teacher: str = Field(
        default="baseline",
        description="'baseline' (the recipe's starting model) or a .keras path.",
    )

    @pydantic.field_validator("teacher")
    @classmethod
    def _relative_teacher(cls, value):
        # The same rule as `model.path`: no absolute path, no `..`.
        return value if value == "baseline" else check_relative_path(value)

    temperature: float = Field(default=2.0, gt=0, description="Softmax temperature.")
    alpha: float = Field(
        default=0.5, ge=0, le=1, description="Weight of the hard-label loss."
    )
    features: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(
        default_factory=list,
        description="[teacher_layer, student_layer] pairs for hidden-state KD.",
    )
    feature_weight: float = Field(
        default=1.0, ge=0, description="Weight of each hidden-state term."
    )
    sequence_level: bool = Field(
        default=False,
        description="Train on the teacher's greedy outputs for the training "
        "sources, instead of their references.",
    )
    unlabelled: bool = Field(
        default=False,
        description="Also train on the teacher's greedy outputs for inputs of "
        "no split (G2P: Debian's word lists minus CMUdict).",
    )
    max_unlabelled: int | None = Field(
        default=None, gt=0, description="Use about this many unlabelled inputs."
    )


def _check_regexes(targets):
    for target in targets:
        patterns.compile_target(target)  # ValueError: pydantic reports it
    return targets
