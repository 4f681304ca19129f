"""Technique state that Keras's own saving keeps: `model.save`, `load_model`,
`save_weights`, `ModelCheckpoint` and `BackupAndRestore`.

Applying a technique calls `attach(model)`, which changes two things:

- The model's class becomes a subclass of its own class with the same name
  (`isinstance` still holds), registered as `tfaccel>TechniqueModel`. Its
  config is `{"model": <the plain model's config>, "techniques": {name:
  spec}}`, where each spec is what a technique's `save_spec` returns: which
  weights it changed and how, but no values. `keras.saving.load_model`
  rebuilds the plain model, then each technique's `load_spec` puts its
  structure back, with placeholder values, in the registry's order.
- `model._tfaccel_state` is a `TechniqueState` layer. Keras's saving visits
  every attribute of a model, so it writes this layer's entry into every
  weights file: the state variables that layers do not own (pruning masks
  and step, QAT ranges) and the techniques' Python counters. Loading
  weights reads them back, so the placeholders get the saved values.

Variables that a technique adds to layers with `add_weight` (clustering)
are saved by their layers, as any Keras weight is. A model whose last
technique is stripped gets its own class back (`release`).

Example:

```python
model = tfaccel.prune(model, targets=[r".*kernel"], schedule=schedule)
model.fit(ds, callbacks=tfaccel.callbacks(model))
model.save("pruning.keras")  # masks, step and schedule included
model = keras.saving.load_model("pruning.keras")  # after `import tfaccel`
model.fit(ds, callbacks=tfaccel.callbacks(model))  # same sparsity schedule
```
"""

import weakref

import keras
import numpy as np
from keras import ops

from tfaccel.core import registry

REGISTERED_NAME = "tfaccel>TechniqueModel"
ATTRIBUTE = "_tfaccel_state"  # on the model: its TechniqueState
_COUNTERS = "counters"  # the weights-file key of the flattened counters
_CLASSES = {}  # plain model class -> its TechniqueModel subclass


class TechniqueModel:
    """The mixin of a model with technique state; see the module docstring."""

    def get_config(self):
        # Serialized as the plain model, with plain layers: a technique's
        # layer subclasses (clustering's) exist only once it is applied.
        swapped = [(self, _plain_class(type(self)))]
        swapped += registry.swapped_classes(self)
        own = [type(item) for item, _ in swapped]
        for item, plain in swapped:
            object.__setattr__(item, "__class__", plain)
        try:
            inner = keras.saving.serialize_keras_object(self)
        finally:
            for (item, _), cls in zip(swapped, own, strict=True):
                object.__setattr__(item, "__class__", cls)
        # The outer config compiles the model once its techniques are back.
        inner.pop("compile_config", None)
        return {"model": inner, "techniques": specs(self)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        unknown = set(config.get("techniques", {})) - {
            t.name for t in registry.techniques()
        }
        if unknown:
            raise ValueError(
                f"The saved model carries techniques this tfaccel does not know: "
                f"{sorted(unknown)}. Load it with the tfaccel that saved it. "
                f"Received: techniques={sorted(config.get('techniques', {}))}"
            )
        model = keras.saving.deserialize_keras_object(
            config["model"], custom_objects=custom_objects
        )
        for technique in registry.techniques():
            spec = config["techniques"].get(technique.name)
            if spec is not None:
                technique.load_spec(model, spec)
        attach(model)
        return model

    def compile_from_config(self, config):
        # As Keras's own, which skips a class with its own `compile` (each
        # keras-hub task): that model would reload with a fresh optimizer,
        # and a resumed `fit` would start every schedule over at step 0.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)


keras.saving.get_custom_objects()[REGISTERED_NAME] = TechniqueModel


class TechniqueState(keras.layers.Layer):
    """Writes the techniques' untracked state into Keras weights files.

    Not a layer of the model's graph: it holds no variables of its own and
    is stored beside the model, where Keras's saving finds it. On save it
    writes `registry.untracked_variables(model)` in order, then the
    flattened `registry.counters(model)`; on load it checks that the model
    has the same state and assigns it.
    """

    def __init__(self, model, **kwargs):
        super().__init__(name="tfaccel_state", trainable=False, **kwargs)
        object.__setattr__(self, "_model_ref", weakref.ref(model))
        self.built = True

    def save_own_variables(self, store):
        model = self._model_ref()
        for index, variable in enumerate(registry.untracked_variables(model)):
            store[str(index)] = ops.convert_to_numpy(variable)
        store[_COUNTERS] = np.asarray(
            _flatten(registry.counters(model)), dtype="float64"
        )

    def load_own_variables(self, store):
        model = self._model_ref()
        variables = registry.untracked_variables(model)
        saved = len([key for key in store.keys() if key != _COUNTERS])
        if saved != len(variables):
            raise ValueError(
                f"The saved technique state has {saved} variables, but model "
                f"'{model.name}' has {len(variables)}: it was saved with other "
                f"techniques or targets. Received: {saved} saved variables"
            )
        for index, variable in enumerate(variables):
            value = np.asarray(store[str(index)])
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"Technique state '{variable.path}' has shape "
                    f"{tuple(variable.shape)}, but the saved one has "
                    f"{tuple(value.shape)}. Received: shape={tuple(value.shape)}"
                )
            variable.assign(value)
        template = registry.counters(model)
        flat = [float(x) for x in np.asarray(store[_COUNTERS]).reshape(-1)]
        registry.set_counters(model, _unflatten(template, flat))


def attach(model):
    """Makes `model` save, load and checkpoint its technique state. Idempotent."""
    if not isinstance(model, TechniqueModel):
        object.__setattr__(model, "__class__", _technique_class(type(model)))
    if getattr(model, ATTRIBUTE, None) is None:
        object.__setattr__(model, ATTRIBUTE, TechniqueState(model))
    return model


def release(model):
    """Gives `model` its own class back once it carries no technique state."""
    if not isinstance(model, TechniqueModel) or registry.applied(model):
        return model
    object.__setattr__(model, "__class__", _plain_class(type(model)))
    if getattr(model, ATTRIBUTE, None) is not None:
        object.__delattr__(model, ATTRIBUTE)
    return model


def specs(model):
    """Returns `{technique name: spec}` of the techniques applied to `model`."""
    found = {}
    for technique in registry.techniques():
        if technique.save_spec is not None:
            spec = technique.save_spec(model)
            if spec is not None:
                found[technique.name] = spec
    return found


def copy_state(source, target):
    """Copies the untracked state and counters of `source` into `target`.

    `target` has the same techniques (built from `source`'s config).
    """
    pairs = zip(
        registry.untracked_variables(source),
        registry.untracked_variables(target),
        strict=True,
    )
    for mine, theirs in pairs:
        theirs.assign(ops.convert_to_numpy(mine))
    registry.set_counters(target, registry.counters(source))


def _technique_class(cls):
    if cls not in _CLASSES:
        subclass = type(cls)(
            cls.__name__,
            (TechniqueModel, cls),
            {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__doc__": cls.__doc__,
            },
        )
        # Every subclass serializes under one name, which loads through
        # `TechniqueModel.from_config` whatever the plain class.
        package, name = REGISTERED_NAME.split(">")
        keras.saving.register_keras_serializable(package, name)(subclass)
        _CLASSES[cls] = subclass
    return _CLASSES[cls]


def _plain_class(cls):
    for base in cls.__mro__:
        if base is not cls and not issubclass(base, TechniqueModel):
            return base
    return cls


def _flatten(value):
    if isinstance(value, dict):
        return [x for key in sorted(value) for x in _flatten(value[key])]
    if isinstance(value, list | tuple):
        return [x for item in value for x in _flatten(item)]
    return [float(value)]


def _unflatten(template, flat):
    """Returns `template`'s structure with the numbers of `flat`, in order."""
    flat = list(flat)
    needed = len(_flatten(template))
    if needed != len(flat):
        raise ValueError(
            f"The saved technique counters hold {len(flat)} numbers, but the "
            f"model's techniques need {needed}. Received: {len(flat)} numbers"
        )
    position = iter(flat)

    def rebuild(value):
        if isinstance(value, dict):
            return {key: rebuild(value[key]) for key in sorted(value)}
        if isinstance(value, list | tuple):
            return [rebuild(item) for item in value]
        number = next(position)
        return int(number) if isinstance(value, int) else number

    return rebuild(template)
