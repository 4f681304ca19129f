"""The technique registry: what each technique tells the others and the model.

Like Keras's own registries (`keras.saving.register_keras_serializable`),
a technique adds itself once, in its package's `__init__`, and every
caller looks it up here: `tfaccel.callbacks`, `tfaccel.strip`, saving,
export, benchmarks, and the techniques that compose with it (prune-preserving
QAT, cluster-preserving QAT, factorize and shrink refusing a model that
carries state). Adding a technique is one `register` call, not an edit of
each caller. The registry holds only what has been imported: a model can
carry a technique's state only once that technique's package is imported.

Example:

```python
registry.register(registry.Technique(
    name="pruning", label="pruned", order=10,
    find_states=_state.find_states, strip=strip_pruning,
    callback=UpdatePruningStep,
))
[t.name for t in registry.applied(model)]  # ["pruning"]
```
"""

import dataclasses
import typing

_TECHNIQUES = {}  # name -> Technique


@dataclasses.dataclass(frozen=True)
class Technique:
    """One technique and the queries it answers; unset queries answer nothing."""

    name: str  # "pruning": the registry key
    label: str  # "pruned": what a model or layer is, in error messages
    order: int  # application order (prune, cluster, QAT); callbacks run in it
    # model -> [(layer, state)] for `model` and every nested layer it changed
    find_states: typing.Callable
    strip: typing.Callable | None = None  # model -> model, in place
    strip_order: int | None = None  # strip runs in this order; None: `order`
    callback: typing.Callable | None = None  # (log_dir=...) -> keras Callback
    # model -> bool: state that still trains (it needs the callback);
    # None: any state found
    training: typing.Callable | None = None
    # model -> set of ids of the variables and layers it keeps state on,
    # including state an enclosing model set
    marks: typing.Callable | None = None
    # model -> [variable]: weights it froze that other techniques still target
    frozen_variables: typing.Callable | None = None
    # layer -> tensor or None: the weight the layer computes with instead of
    # its kernel (a clustered kernel)
    layer_weight: typing.Callable | None = None
    # model -> {id(variable): tensor}: the weights the forward pass uses
    effective_weights: typing.Callable | None = None
    # model -> [variable]: variables the technique added to layers
    own_variables: typing.Callable | None = None
    # model -> {id(variable): str}: how each weight it changed is changed
    # ("2:4", "16 clusters", "int8"), for `tfaccel.summary`
    describe: typing.Callable | None = None
    # model -> [variable]: state kept beside the model, not in
    # `model.variables`; `tfaccel.core.saving` writes it into Keras's
    # weights files
    untracked_variables: typing.Callable | None = None
    # model -> JSON-able: the Python-side counters of its callback, and
    # (model, saved) -> None to set them again when weights are loaded
    counters: typing.Callable | None = None
    set_counters: typing.Callable | None = None
    # model -> JSON-able or None: how it changed `model` itself (not nested
    # models), without values; a saved model's config keeps it
    # (`tfaccel.core.saving`)
    save_spec: typing.Callable | None = None
    # (model, spec) -> model: changes a model rebuilt from its config the
    # same way, with placeholder values that loading its weights replaces
    load_spec: typing.Callable | None = None
    # model -> [(layer, class)]: layers whose class it swapped, and the class
    # each is serialized as (its own) inside a saved model's config
    swapped_classes: typing.Callable | None = None

    def is_training(self, model):
        """Returns whether `model` carries state of this technique that trains."""
        if self.training is not None:
            return bool(self.training(model))
        return bool(self.find_states(model))

    def is_applied(self, model):
        """Returns whether `model` carries any state of this technique."""
        if self.find_states(model):
            return True
        return self.marks is not None and bool(self.marks(model))


def register(technique):
    """Adds `technique`, replacing one of the same name (a reloaded module).

    Args:
        technique: a `Technique`.

    Returns:
        `technique`.
    """
    if not isinstance(technique, Technique):
        raise TypeError(
            "register() takes a tfaccel.core.registry.Technique. "
            f"Received: technique={technique!r}"
        )
    _TECHNIQUES[technique.name] = technique
    return technique


def get(name):
    """Returns the technique registered as `name`, or None if none is."""
    return _TECHNIQUES.get(name)


def techniques():
    """Returns every registered technique, in application order."""
    return sorted(_TECHNIQUES.values(), key=lambda t: (t.order, t.name))


def strip_sequence():
    """Returns the techniques that strip, in the order their strips run."""
    stripping = [t for t in _TECHNIQUES.values() if t.strip is not None]
    return sorted(stripping, key=lambda t: (_strip_order(t), t.name))


def applied(model):
    """Returns the techniques whose state `model` carries, in order."""
    return [t for t in techniques() if t.is_applied(model)]


def marks(model, after=None):
    """Returns `[(technique, ids)]`: the variables and layers each one marks.

    Args:
        model: a Keras model.
        after: None, or a technique name: only techniques applied after it.
    """
    floor = _TECHNIQUES[after].order if after in _TECHNIQUES else None
    return [
        (t, t.marks(model))
        for t in techniques()
        if t.marks is not None and (floor is None or t.order > floor)
    ]


def frozen_variables(model):
    """Returns the frozen weights that techniques still let others target."""
    return _joined("frozen_variables", model)


def layer_weight(layer):
    """Returns the weight `layer` computes with instead of its kernel, or None."""
    for t in techniques():
        if t.layer_weight is not None:
            weight = t.layer_weight(layer)
            if weight is not None:
                return weight
    return None


def effective_weights(model):
    """Returns `{id(variable): tensor}`; a later technique's value wins."""
    found = {}
    for t in techniques():
        if t.effective_weights is not None:
            found.update(t.effective_weights(model))
    return found


def own_variables(model):
    """Returns the variables that techniques added to the layers of `model`."""
    return _joined("own_variables", model)


def describe(model):
    """Returns `{id(variable): {technique name: description}}` for `model`."""
    found = {}
    for t in techniques():
        if t.describe is not None:
            for key, text in t.describe(model).items():
                found.setdefault(key, {})[t.name] = text
    return found


def untracked_variables(model):
    """Returns the state variables of `model` that Keras does not track.

    In the techniques' order, then each technique's own: a weights file
    (`tfaccel.core.saving`) matches them by position.
    """
    return _joined("untracked_variables", model)


def counters(model):
    """Returns `{name: counters}` of the techniques that keep Python counters."""
    return {t.name: t.counters(model) for t in techniques() if t.counters is not None}


def set_counters(model, saved):
    """Sets the counters `counters` returned, e.g. from a stage checkpoint.

    Args:
        model: the model, rebuilt with the same techniques.
        saved: `{name: counters}`; a technique missing from it has none.
            Counters that do not fit the model's states raise ValueError.
    """
    for t in techniques():
        if t.set_counters is not None:
            t.set_counters(model, saved.get(t.name, []))


def swapped_classes(model):
    """Returns `[(layer, plain class)]` of the layers techniques gave a subclass."""
    return _joined("swapped_classes", model)


def _joined(query, model):
    # The lists that each technique's `query` returns, in application order.
    return [
        item
        for t in techniques()
        if getattr(t, query) is not None
        for item in getattr(t, query)(model)
    ]


def _strip_order(technique):
    if technique.strip_order is None:
        return technique.order
    return technique.strip_order
