"""Per-layer weights table: parameters, exact zeros and distinct values."""

import keras
import numpy as np

from tfaccel.bench import layers


def _dense_model():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(6, name="dense")], name="net"
    )
    kernel = np.arange(24, dtype="float32").reshape(4, 6) + 1
    kernel[:2] = 0  # half the kernel: 12 zeros, 12 distinct non-zero values
    model.layers[0].kernel.assign(kernel)
    return model


def test_layer_rows_count_zeros_and_values():
    rows = layers.layer_rows(_dense_model())
    assert [r["path"] for r in rows] == ["net/dense/kernel", "total"]
    kernel, total = rows
    assert kernel["shape"] == [4, 6] and kernel["dtype"] == "float32"
    assert kernel["parameters"] == 24 and kernel["sparsity"] == 0.5
    assert kernel["distinct"] == 12 + 1
    assert total["parameters"] == 24 and total["sparsity"] == 0.5
    assert total["shape"] is None and total["distinct"] is None


def test_total_sparsity_is_weighted_by_size():
    inputs = keras.Input((3,), dtype="int32")
    hidden = keras.layers.Embedding(10, 4, name="embed")(inputs)  # 40 parameters
    outputs = keras.layers.Dense(2, name="head")(hidden)  # 8-parameter kernel
    model = keras.Model(inputs, outputs)
    model.get_layer("head").kernel.assign(np.zeros((4, 2), "float32"))
    embed, head, total = layers.layer_rows(model)
    assert embed["path"].endswith("embed/embeddings") and embed["sparsity"] == 0.0
    assert head["sparsity"] == 1.0 and head["distinct"] == 1
    assert total["parameters"] == 48
    assert total["sparsity"] == 8 / 48


def test_print_layers_to_a_function():
    rows = layers.layer_rows(_dense_model())
    printed = []
    layers.print_layers(rows, print_fn=printed.append)
    (text,) = printed
    assert rows[0]["path"] in text and "4x6" in text and "50.0%" in text
    assert "total" in text
