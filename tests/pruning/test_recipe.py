"""Tests for the magnitude_pruning recipe modifier and apply_modifier."""

import pathlib

import pytest
from pruning_checks import tiny_model

from tfaccel.errors import UserError
from tfaccel.pruning import ConstantSparsity, PolynomialDecay, _state, apply_modifier
from tfaccel.recipe.context import StageContext
from tfaccel.recipe.loader import RecipeError, load_recipe, parse_recipe
from tfaccel.recipe.modifiers import MagnitudePruning

REPO = pathlib.Path(__file__).resolve().parents[2]
RECIPE = """\
version: 1
name: demo
task: {name: g2p}
model: {preset: tiny}
stages:
  - name: prune
    epochs: 4
    modifiers:
      - type: magnitude_pruning
        targets: ["re:.*(attention|feedforward).*kernel"]
        schedule: {type: polynomial_decay, final_sparsity: 0.5, end_epoch: 3}
"""


def _modifier(text=RECIPE):
    (modifier,) = parse_recipe(text, source="r.yaml").stages[0].modifiers
    return modifier


def _error(old, new):
    with pytest.raises(RecipeError) as info:
        parse_recipe(RECIPE.replace(old, new), source="r.yaml")
    return str(info.value)


def test_modifier_validates_with_defaults():
    modifier = _modifier()
    assert isinstance(modifier, MagnitudePruning)
    schedule = modifier.schedule
    assert (schedule.type, schedule.initial_sparsity, schedule.begin_epoch) == (
        "polynomial_decay",
        0.0,
        0,
    )
    assert (schedule.power, schedule.frequency) == (3, 100)
    assert modifier.structure is None and modifier.block is None


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (
            "final_sparsity: 0.5",
            "final_sparsity: 1.0",
            "schedule.polynomial_decay.final_sparsity: should be less than 1",
        ),
        ("end_epoch: 3", "end_epoch: 3, begin_epoch: 3", "end_epoch must be greater"),
        (
            "end_epoch: 3}",
            "end_epoch: 3}\n        structure: '3:2'",
            "structure: needs 0 < N < M",
        ),
        ("end_epoch: 3}", "end_epoch: 3}\n        structure: 2-4", "structure: "),
        ("end_epoch: 3}", "end_epoch: 3}\n        block: [1, 2, 3]", "block: "),
        ("end_epoch: 3}", "end_epoch: 3}\n        block: [0, 4]", "block[0]: "),
        (
            "end_epoch: 3}",
            "end_epoch: 3}\n        structure: '2:4'\n        block: [1, 4]",
            "give 'structure' or 'block', not both",
        ),
        (
            'targets: ["re:.*(attention|feedforward).*kernel"]',
            "targets: []",
            "targets: ",
        ),
        (
            'targets: ["re:.*(attention|feedforward).*kernel"]',
            'targets: ["re:(x"]',
            "invalid target regex",
        ),
        ("type: polynomial_decay, ", "", "schedule"),
        ("type: polynomial_decay", "type: cosine", "schedule"),
    ],
)
def test_bad_modifiers_name_the_key(old, new, expected):
    message = _error(old, new)
    assert message.startswith("r.yaml: stages[0].modifiers[0]"), message
    assert expected in message, message


def test_apply_modifier_converts_epochs_to_steps():
    model = apply_modifier(tiny_model(), _modifier(), StageContext(100))
    ((_, state),) = _state.find_states(model)
    assert isinstance(state.schedule, PolynomialDecay)
    assert state.schedule.get_config() == {
        "initial_sparsity": 0.0,
        "final_sparsity": 0.5,
        "power": 3,
        "begin_step": 0,
        "end_step": 300,
        "frequency": 100,
    }
    assert len(state.targets) == 32 and state.n_m is None


@pytest.mark.parametrize(
    "steps_per_epoch, initial_step, begin, end",
    [(10, 0, 0, 30), (250, 0, 0, 700), (250, 1000, 1000, 1700), (7, 5, 5, 26)],
)
def test_polynomial_end_moves_down_to_an_update_step(
    steps_per_epoch, initial_step, begin, end
):
    text = RECIPE.replace("end_epoch: 3}", "end_epoch: 3, frequency: 100}")
    modifier = _modifier(text)
    model = apply_modifier(
        tiny_model(), modifier, StageContext(steps_per_epoch, initial_step)
    )
    ((_, state),) = _state.find_states(model)
    assert (state.schedule.begin_step, state.schedule.end_step) == (begin, end)
    assert state.schedule.sparsity(end) == 0.5


@pytest.mark.parametrize("kwargs", [{"steps_per_epoch": 0}, {"initial_step": -1}])
def test_apply_modifier_checks_step_counts(kwargs):
    with pytest.raises(ValueError, match="Received: "):
        apply_modifier(
            tiny_model(),
            _modifier(),
            StageContext(**{"steps_per_epoch": 5, **kwargs}),
        )


def test_apply_constant_schedule_with_structure():
    text = RECIPE.replace(
        "{type: polynomial_decay, final_sparsity: 0.5, end_epoch: 3}",
        "{type: constant, sparsity: 0.5, begin_epoch: 1, frequency: 5}\n"
        "        structure: '2:4'",
    )
    model = apply_modifier(tiny_model(), _modifier(text), StageContext(7))
    ((_, state),) = _state.find_states(model)
    assert isinstance(state.schedule, ConstantSparsity)
    assert (state.schedule.begin_step, state.schedule.end_step) == (7, -1)
    assert state.n_m == (2, 4)


def test_structure_that_does_not_divide_fails_at_apply_time():
    text = RECIPE.replace("end_epoch: 3}", "end_epoch: 3}\n        structure: '2:3'")
    with pytest.raises(UserError, match="multiple of 3.*shape=\\(16, 2, 8\\)"):
        apply_modifier(tiny_model(), _modifier(text), StageContext(10))


def test_g2p_prune50_recipe(monkeypatch):
    monkeypatch.chdir(REPO)
    recipe = load_recipe("recipes/g2p-prune50.yaml")
    baseline = load_recipe("recipes/g2p-baseline.yaml")
    assert recipe.baseline == baseline.baseline and recipe.model == baseline.model
    (stage,) = recipe.stages
    assert (stage.name, stage.epochs) == ("prune", 4)
    (modifier,) = stage.modifiers
    assert modifier.targets == ["re:.*(attention|feedforward).*kernel"]
    assert (modifier.schedule.final_sparsity, modifier.schedule.end_epoch) == (0.5, 3)


def test_short_polynomial_schedule_still_reaches_final_sparsity():
    from tfaccel.pruning.recipe import schedule_from_config
    from tfaccel.recipe.modifiers import PolynomialDecaySchedule

    config = PolynomialDecaySchedule(
        type="polynomial_decay", final_sparsity=0.5, end_epoch=1
    )
    schedule = schedule_from_config(config, steps_per_epoch=24)  # < frequency 100
    should_update, sparsity = schedule(24)
    assert bool(should_update) and abs(float(sparsity) - 0.5) < 1e-6
