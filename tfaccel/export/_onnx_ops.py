"""tf2onnx handlers for the TensorFlow ops this model needs and tf2onnx lacks.

- `Erfc`: exact GELU (`keras.activations.gelu(approximate=False)`) lowers to
  it, and ONNX has only `Erf`: rewritten as `1 - Erf(x)`.
- `XlaDynamicUpdateSlice`: keras-hub writes the key/value cache with
  `keras.ops.slice_update`, which lowers to it: rewritten as `ScatterND`.
"""

import numpy as np


def handlers():
    """Returns the handlers as tf2onnx's `custom_op_handlers` argument."""
    # Passed per call as `{tf_op: (handler, args)}`, the handlers apply to
    # tfaccel's conversions only; tf2onnx's `@tf_op` decorator would change
    # every conversion in the process.
    return {
        "Erfc": (_erfc_handler, []),
        "XlaDynamicUpdateSlice": (_dynamic_update_slice_handler, []),
    }


def _erfc_handler(ctx, node, name, args):
    """Rewrites `Erfc(x)` as `1 - Erf(x)`, in place."""
    from tf2onnx import utils

    x = node.input[0]
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(x))
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype))
    erf = ctx.make_node("Erf", [x], name=utils.make_name(f"{name}_erf"))
    node.type = "Sub"
    node.domain = ""
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


def _dynamic_update_slice_handler(ctx, node, name, args):
    """Rewrites `XlaDynamicUpdateSlice(x, update, start)` as `ScatterND`.

    Each element of `update` is scattered to its index in `x`: the start,
    clamped to `[0, shape(x) - shape(update)]` as XLA clamps it, plus the
    element's own index.
    """
    from onnx import TensorProto

    x, update, start = node.input
    rank = ctx.get_rank(update)
    x_shape = ctx.make_node("Shape", [x]).output[0]
    update_shape = ctx.make_node("Shape", [update]).output[0]
    start = ctx.make_node("Cast", [start], attr={"to": TensorProto.INT64}).output[0]
    room = ctx.make_node("Sub", [x_shape, update_shape]).output[0]
    start = ctx.make_node("Min", [start, room]).output[0]
    start = ctx.make_node("Max", [start, _const(ctx, 0)]).output[0]
    axes = [_axis_indices(ctx, start, update_shape, axis, rank) for axis in range(rank)]
    indices = ctx.make_node("Concat", axes, attr={"axis": -1}).output[0]
    node.type = "ScatterND"
    node.domain = ""
    ctx.replace_inputs(node, [x, indices, update])


def _axis_indices(ctx, start, update_shape, axis, rank):
    """Indices along `axis` of every element of the update, `(*update, 1)`."""
    size = ctx.make_node("Gather", [update_shape, _const(ctx, axis)]).output[0]
    offset = ctx.make_node("Gather", [start, _const(ctx, axis)]).output[0]
    steps = ctx.make_node("Range", [_const(ctx, 0), size, _const(ctx, 1)]).output[0]
    steps = ctx.make_node("Add", [steps, offset]).output[0]
    shape = [1] * rank
    shape[axis] = -1
    steps = ctx.make_node("Reshape", [steps, _const(ctx, shape)]).output[0]
    steps = ctx.make_node("Expand", [steps, update_shape]).output[0]
    return ctx.make_node("Unsqueeze", [steps, _const(ctx, [-1])]).output[0]


def _const(ctx, value):
    from tf2onnx import utils

    return ctx.make_const(utils.make_name("const"), np.array(value, np.int64)).output[0]
