"""Per-layer weights table: parameters, exact zeros and distinct values."""

import keras
import numpy as np

import tfaccel
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


def _clustered_model():
    # `net/a/kernel` half zeros; both kernels clustered to 4 shared values.
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, name="a"),
            keras.layers.Dense(4, name="b"),
        ],
        name="net",
    )
    kernel = model.layers[0].kernel.numpy()
    kernel[:4] = 0
    model.layers[0].kernel.assign(kernel)
    return tfaccel.cluster(model, targets=[r".*kernel"], num_clusters=4)


def _measured(rows):
    return [(r["path"], r["parameters"], r["sparsity"], r["distinct"]) for r in rows]


def test_clustered_model_rows_measure_the_shared_values():
    rows = layers.layer_rows(_clustered_model())
    # The clustering's indices and mask (kernel-shaped) are not weights.
    assert [r["path"] for r in rows] == ["net/a/kernel", "net/b/kernel", "total"]
    a, b, total = rows
    assert a["distinct"] == 4 + 1 and a["sparsity"] == 0.5  # 4 centroids and 0
    assert b["distinct"] == 4 and b["sparsity"] == 0.0
    assert total["parameters"] == 8 * 16 + 16 * 4


def test_wrapped_model_rows_equal_the_stripped_model_rows():
    model = tfaccel.quantize_aware(_clustered_model())
    before = layers.layer_rows(model)
    assert before[0]["distinct"] > 4 + 1  # per-channel int8 scales of 4 values
    assert _measured(before) == _measured(layers.layer_rows(tfaccel.strip(model)))
