"""tfaccel.summary on pruned models: measured sparsity per variable."""

import pytest
from pruning_checks import fit_mlp, small_mlp

import tfaccel
from tfaccel.errors import UserError


def _pruned_mlp(**kwargs):
    model = small_mlp()
    schedule = tfaccel.ConstantSparsity(0.25, begin_step=0, frequency=1)
    tfaccel.prune(model, [".*kernel"], schedule, **kwargs)
    fit_mlp(model, tfaccel.callbacks(model), steps=2)
    return model


def test_rows_measure_zeros_and_total_is_weighted_by_size():
    model = _pruned_mlp()
    printed = []
    rows = tfaccel.summary(model, print_fn=printed.append)
    assert [(r["path"], r["shape"], r["size"]) for r in rows] == [
        ("mlp/hidden/kernel", (16, 32), 512),
        ("mlp/out/kernel", (32, 8), 256),
        ("total", None, 768),
    ]
    assert [r["zeros"] for r in rows] == [128, 64, 192]
    assert [r["sparsity"] for r in rows] == [0.25, 0.25, 0.25]
    assert [r["structure"] for r in rows] == ["unstructured", "unstructured", ""]
    (text,) = printed
    assert "mlp/hidden/kernel" in text and "25.00%" in text and "total" in text


def test_stripped_model_is_measured_from_given_targets():
    model = tfaccel.strip(_pruned_mlp(block=(1, 4)))
    with pytest.raises(
        UserError, match="no pruning, clustering or QAT; pass the `targets`"
    ):
        tfaccel.summary(model, print_fn=lambda text: None)
    rows = tfaccel.summary(
        model, targets=["re:.*kernel", "mlp/out/bias"], block=(1, 4), print_fn=print
    )
    assert [r["path"] for r in rows] == [
        "mlp/hidden/kernel",
        "mlp/out/kernel",
        "mlp/out/bias",
    ] + ["total"]
    assert [r["structure"] for r in rows] == ["block 1x4"] * 3 + [""]
    assert rows[0]["sparsity"] == 0.25 and rows[1]["sparsity"] == 0.25
    bias_zeros = rows[2]["zeros"]
    assert rows[-1]["zeros"] == 128 + 64 + bias_zeros
    assert rows[-1]["sparsity"] == (192 + bias_zeros) / (768 + 8)
