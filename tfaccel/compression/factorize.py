"""`factorize`: low-rank factorization of Dense and EinsumDense kernels, in place."""

import dataclasses
import warnings

import keras
import numpy as np

from tfaccel.compression import _factors, factorized_model
from tfaccel.core import registry
from tfaccel.core.compiled import forget_compiled
from tfaccel.core.kernels import owner_layers
from tfaccel.core.strategy import model_strategy
from tfaccel.core.targets import fullmatch, match_variables
from tfaccel.errors import UserError

ATTRIBUTE = "_tfaccel_factorization"  # on the model: a list of FactorizedKernel


@dataclasses.dataclass(eq=False)
class FactorizedKernel:
    """One targeted kernel and what `factorize` did with it."""

    path: str  # the kernel's variable path, e.g. ".../feedforward_output_dense/kernel"
    shape: tuple  # the kernel's shape
    rows: int  # `in`: the contracted axes of the kernel, flattened
    cols: int  # `out`: the output axes, flattened
    rank: int  # the rank chosen (also for a skipped kernel)
    energy: float  # share of the squared singular values the rank keeps
    factorized: bool  # False: the factors would not be smaller; kernel kept


def factorize(model, targets, rank=None, energy=0.9, only_if_smaller=True):
    """Replaces the targeted kernels of `model` by two low-rank factors, in place.

    Each targeted `Dense` or `EinsumDense` kernel `W`, viewed as an
    `(in, out)` matrix (its contracted axes flattened, then its output
    axes, as `tfaccel.prune` views kernels), becomes `A @ B` from its
    truncated SVD `W ~ U_r S_r V_r^T`: `A = U_r sqrt(S_r)` `(in, r)` and
    `B = sqrt(S_r) V_r^T` `(r, out)`, the best rank-r approximation in the
    Frobenius norm (Eckart-Young; low-rank factorization of dense layers as
    in Denton et al., 2014, https://arxiv.org/abs/1404.0736). The layer
    runs two matmuls, `r * (in + out)` multiply-accumulates per token
    instead of `in * out`, and both factors are trainable, so fine-tuning
    recovers accuracy. The rank is `rank` for every kernel, or else the
    smallest that keeps `energy` of each kernel's squared singular values:
    `sum(s[:r]**2) / sum(s**2) >= energy`.

    A kernel whose factors would not be smaller (`r * (in + out) >= in * out`)
    is left as it is (`only_if_smaller`) and reported as skipped, with a
    warning. `factorization_summary(model)` lists every targeted kernel:
    rank, energy kept, parameters before and after.

    The layer's class becomes `LowRankDense` or `LowRankEinsumDense`, and the
    model's a `FactorizedModel` subclass of its own class, so the model
    still generates and exports as before, and `model.save` and
    `keras.saving.load_model` (or `tfaccel.models.save_model` and
    `load_model`) keep the factors. Compile the model after factorizing it.
    A kernel's regularizer does not carry to its factors.

    Targets are regexes over variable paths, matched with `re.fullmatch`
    as for `tfaccel.prune` (an optional `re:` prefix is dropped), and must
    name only Dense and EinsumDense kernels: keras-hub attention query, key,
    value and output projections (`"abc,cde->abde"`, `"abcd,cde->abe"`),
    feedforward layers and the `lm_head`. Layers that are pruned,
    clustered, quantization-aware, LoRA-enabled or Keras-quantized are
    refused, and so are kernels already factorized. The factors of a
    factorized layer can be pruned; clustering and QAT do not handle
    low-rank layers (QAT's default `.*kernel` targets leave them float).

    Args:
        model: a built Keras 3 model, changed in place.
        targets: list of regexes over variable paths.
        rank: int >= 1, the rank of every factorized kernel, at most
            `min(in, out)` of each. When given, `energy` is not used.
        energy: float in (0, 1]: the share of each kernel's squared
            singular values its rank keeps, when `rank` is None.
        only_if_smaller: bool. With False, every targeted kernel is
            factorized even when its factors hold more weights (full-rank
            factors reproduce the kernel, which tests use).

    Returns:
        `model`.

    Example:

    ```python
    model = tfaccel.factorize(model, [r".*feedforward.*kernel"], energy=0.9)
    factorization_summary(model)
    model.compile(optimizer="adam", loss=...)
    model.fit(ds)
    ```
    """
    _check_arguments(rank, energy, only_if_smaller)
    _check_model(model, targets)
    # Frozen (clustered) kernels are not trainable, so `match_variables`
    # would skip them; match them to refuse them by name.
    variables = match_variables(model, targets, extra=registry.frozen_variables(model))
    owners = owner_layers(model)
    marks = registry.marks(model)
    layers = [_owner(v, owners.get(id(v)), marks) for v in variables]
    plans = [
        _plan(variable, layer, rank, energy, only_if_smaller)
        for variable, layer in zip(variables, layers, strict=True)
    ]
    with model_strategy(model).scope():
        for row, layer, factors in plans:
            if row.factorized:
                _apply(layer, row.rank, factors)
    rows = [row for row, _, _ in plans]
    object.__setattr__(
        model, "__class__", factorized_model.factorized_class(type(model))
    )
    object.__setattr__(model, ATTRIBUTE, [*getattr(model, ATTRIBUTE, []), *rows])
    forget_compiled(model)
    _warn_skipped(rows)
    return model


def _check_arguments(rank, energy, only_if_smaller):
    if rank is not None:
        try:
            _factors.check_rank(rank)
        except ValueError as error:
            raise UserError(str(error)) from None
    if isinstance(energy, bool) or not isinstance(energy, int | float | np.floating):
        raise UserError(
            "`energy` must be a number in (0, 1], the share of squared singular "
            f"values each kernel keeps. Received: energy={energy!r}"
        )
    if not 0 < energy <= 1:
        raise UserError(
            "`energy` must be in (0, 1]: the share of squared singular values "
            f"each kernel keeps, such as 0.9. Received: energy={energy!r}"
        )
    if not isinstance(only_if_smaller, bool):
        raise UserError(
            "`only_if_smaller` must be True or False. "
            f"Received: only_if_smaller={only_if_smaller!r}"
        )


def _check_model(model, targets):
    if not isinstance(model, keras.Model) or not model.built:
        raise UserError(
            "`factorize` needs a built Keras 3 model; call it on a batch or "
            f"`build()` it first. Received: model={model!r}"
        )
    # A factorized kernel's variable is gone; name it instead of reporting
    # that the regex matches nothing.
    for layer in factorized_model.low_rank_layers(model):
        path = factorized_model.kernel_path(layer)
        for target in targets if isinstance(targets, list | tuple) else ():
            if isinstance(target, str) and fullmatch(target, path):
                raise UserError(_factorized_message(path, layer, target))


def _factorized_message(path, layer, target):
    return (
        f"'{path}' is already factorized (rank {layer.rank}); a kernel is "
        "factorized once. Narrow `targets` to kernels not yet factorized, or "
        f"start from the original model. Received: target={target!r}"
    )


def _owner(variable, layer, marks):
    """Returns the layer whose kernel `variable` is, checking it can be factorized."""
    path = variable.path
    if isinstance(layer, tuple(factorized_model.LOW_RANK_CLASSES.values())):
        raise UserError(_factorized_message(path, layer, path))
    dense = keras.layers.Dense | keras.layers.EinsumDense
    if not isinstance(layer, dense) or getattr(layer, "_kernel", None) is not variable:
        kind = type(layer).__name__ if layer is not None else "unknown"
        raise UserError(
            f"Cannot factorize '{path}' ({kind}): only the kernels of Dense and "
            "EinsumDense layers can be factorized, not embeddings, biases or "
            "layer norms. Narrow `targets` so they do not match it, e.g. "
            f"[r'.*feedforward.*kernel']. Received: path={path!r}"
        )
    _check_layer_state(variable, layer, marks)
    if type(layer) not in factorized_model.LOW_RANK_CLASSES:
        raise UserError(
            f"Cannot factorize '{path}': its layer is a {type(layer).__name__}, "
            "and only plain Dense and EinsumDense layers can be factorized (a "
            "subclass's own behaviour would be lost). "
            f"Received: path={path!r}"
        )
    return layer


def _check_layer_state(variable, layer, marks):
    path = variable.path
    # Each technique's label ("pruned", "clustered", "quantization-aware"),
    # in the order they are applied.
    found = [
        technique.label
        for technique, keys in marks
        if id(variable) in keys or id(layer) in keys
    ]
    if getattr(layer, "lora_enabled", False):
        found.append("LoRA-enabled")
    if layer.dtype_policy.quantization_mode:
        found.append(f"quantized ({layer.dtype_policy.name})")
    if found:
        raise UserError(
            f"Cannot factorize '{path}': its layer is {' and '.join(found)}. "
            "Factorize the float model first, then prune, cluster or quantize "
            f"(or strip those first). Received: path={path!r}"
        )
    if variable.constraint is not None:
        raise UserError(
            f"Cannot factorize '{path}': its kernel has a constraint "
            f"({variable.constraint!r}), which its factors could not keep. "
            f"Received: path={path!r}"
        )
    if not np.issubdtype(np.dtype(variable.dtype), np.floating):
        raise UserError(
            f"Only float kernels can be factorized; '{path}' is {variable.dtype}. "
            f"Received: dtype={variable.dtype!r}"
        )


def _plan(variable, layer, rank, energy, only_if_smaller):
    """Returns `(row, layer, (A, B))`: the rank and factors of one kernel (NumPy)."""
    path, shape = variable.path, tuple(variable.shape)
    in_axes, out_axes = _factors.kernel_axes(layer)
    rows, cols = _factors.matrix_shape(shape, in_axes)
    if rank is not None and rank > min(rows, cols):
        raise UserError(
            f"`rank`={rank} is larger than min(in, out) = {min(rows, cols)} of "
            f"'{path}' (shape {shape}, (in, out) = ({rows}, {cols})). Use a "
            "smaller rank, or leave it out of `targets`. "
            f"Received: rank={rank}, path={path!r}"
        )
    u, s, vt = _factors.singular_values(keras.ops.convert_to_numpy(variable), in_axes)
    chosen = rank if rank is not None else _factors.energy_rank(s, energy)
    smaller = chosen * (rows + cols) < rows * cols
    row = FactorizedKernel(
        path=path,
        shape=shape,
        rows=rows,
        cols=cols,
        rank=chosen,
        energy=_factors.kept_energy(s, chosen),
        factorized=smaller or not only_if_smaller,
    )
    factors = _factors.split(u, s, vt, chosen, shape, in_axes, out_axes)
    return row, layer, factors


def _apply(layer, rank, factors):
    """Swaps `layer` to its low-rank class and assigns the SVD factors."""
    variables = factorized_model.to_low_rank(layer, rank)
    for variable, value in zip(variables, factors, strict=True):
        variable.assign(value.astype(variable.dtype))


def _warn_skipped(rows):
    skipped = [row.path for row in rows if not row.factorized]
    if skipped:
        warnings.warn(
            f"{len(skipped)} of {len(rows)} targeted kernels are kept as they "
            "are: their factors would hold as many weights or more "
            f"(r * (in + out) >= in * out), e.g. '{skipped[0]}'. See "
            "tfaccel.compression.factorization_summary(model).",
            stacklevel=3,
        )
