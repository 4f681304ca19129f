"""Mixed-precision training policies: `mixed_float16` and `mixed_bfloat16`.

A recipe's `precision:` trains its stages under a Keras dtype policy: math
in float16 or bfloat16, variables in float32. Under `mixed_float16`,
`model.compile` wraps the optimizer in a `LossScaleOptimizer` (dynamic loss
scaling), so small gradients do not underflow; bfloat16 has float32's
exponent range and needs no scaling. Evaluation, strip and export run on a
float32 copy with the same weights.
"""

import contextlib

import keras

from tfaccel.core import saving
from tfaccel.errors import UserError

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


@contextlib.contextmanager
def global_policy(policy):
    """Sets Keras's global dtype policy inside a `with` block."""
    if policy not in POLICIES:
        raise UserError(
            f"Unknown precision {policy!r}. Use one of: {', '.join(POLICIES)}."
        )
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def with_policy(model, policy):
    """Returns a copy of `model` built under `policy`, with the same weights.

    The model's class must rebuild from `get_config()` without fixing each
    layer's dtype (as `Seq2SeqTransformer` does). A stripped QAT model keeps
    its int8 ranges.

    Args:
        model: a Keras model, float32 or mixed.
        policy: one of `POLICIES`.

    Returns:
        A new model whose `dtype_policy.name` is `policy`.
    """
    from tfaccel.quantization import _state

    if _state.find_states(model) and not all(
        s.stripped for _, s in _state.find_states(model)
    ):
        raise UserError(
            "Strip QAT (tfaccel.strip) before changing the model's precision."
        )
    with global_policy(policy):
        copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    if copy.dtype_policy.name != policy:
        raise UserError(
            f"Model class {type(model).__name__} fixes its dtype in its config, so "
            f"it cannot be rebuilt under {policy!r}; build it under the policy "
            "yourself."
        )
    # A stripped QAT model's frozen ranges came back with its config; any
    # other technique state is copied as it is.
    saving.copy_state(model, copy)
    return copy
