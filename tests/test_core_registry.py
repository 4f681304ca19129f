"""The technique registry: techniques register once, callers iterate it."""

import keras
import pytest

import tfaccel
from tfaccel import techniques
from tfaccel.core import registry


class _Callback(keras.callbacks.Callback):
    def __init__(self, log_dir=None):
        super().__init__()
        self.log_dir = log_dir


@pytest.fixture
def toy():
    """Registers a toy technique that marks models with `_toy_state`."""
    stripped = []

    def find_states(model):
        state = getattr(model, "_toy_state", None)
        return [] if state is None else [(model, state)]

    def strip(model):
        stripped.append(model.name)
        object.__delattr__(model, "_toy_state")
        return model

    technique = registry.register(
        registry.Technique(
            name="toy",
            label="toyed",
            order=15,
            strip_order=5,
            find_states=find_states,
            strip=strip,
            callback=_Callback,
        )
    )
    yield technique, stripped
    registry._TECHNIQUES.pop("toy")


def _model():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs), name="toy_model")


def test_every_technique_registers_on_import():
    techniques.load_techniques()
    names = [t.name for t in registry.techniques()]
    assert names == ["pruning", "clustering", "quantization"]
    assert [t.name for t in registry.strip_sequence()] == [
        "clustering",
        "quantization",
        "pruning",
    ]


def test_a_registered_technique_joins_callbacks_and_strip(toy):
    technique, stripped = toy
    model = _model()
    assert tfaccel.callbacks(model) == []
    object.__setattr__(model, "_toy_state", object())
    assert registry.applied(model) == [technique]
    found = tfaccel.callbacks(model, log_dir="logs")
    assert [type(c) for c in found] == [_Callback]
    assert found[0].log_dir == "logs"
    assert tfaccel.strip(model) is model
    assert stripped == ["toy_model"]
    assert registry.applied(model) == []


def test_register_takes_only_a_technique():
    with pytest.raises(TypeError, match="Technique"):
        registry.register({"name": "toy"})
