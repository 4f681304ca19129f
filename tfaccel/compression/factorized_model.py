"""`FactorizedModel`: how a model with factorized kernels saves and loads.

`factorize` swaps a layer's class for `LowRankDense` or `LowRankEinsumDense`
in place. A functional model's config would record those classes, but most
models rebuild their sublayers themselves: `Seq2SeqTransformer`,
keras-hub's `TransformerEncoder` and `BartBackbone` store only their own
arguments and create plain `Dense` and `EinsumDense` layers again on load,
whose variables would not match the saved factors. So `factorize` also
swaps the model's class, for a subclass of both `FactorizedModel` and the
original class (`FactorizedSeq2SeqTransformer`, ...). Its config wraps the
original one:

```python
{
    "model_class": "tfaccel>Seq2SeqTransformer",  # Keras's registered name
    "model": {...},  # the original class's own config
    "factorized": {"encoder_layer_0/.../kernel": 6, ...},  # kernel path: rank
}
```

and `from_config` builds the original model from it, then factorizes each
listed kernel again, at its rank, with placeholder factors that Keras then
overwrites with the saved ones. Every such class is saved under the one
registered name `tfaccel>FactorizedModel`, so loading needs nothing but
`import tfaccel.compression`; the model keeps working as its original
class (`isinstance(model, Seq2SeqTransformer)`, `model.generate`).
"""

import keras

from tfaccel.compression import _factors
from tfaccel.compression.low_rank_dense import LowRankDense
from tfaccel.compression.low_rank_einsum_dense import LowRankEinsumDense
from tfaccel.core.kernels import owner_layers
from tfaccel.errors import UserError

LOW_RANK_CLASSES = {
    keras.layers.Dense: LowRankDense,
    keras.layers.EinsumDense: LowRankEinsumDense,
}
# Classes Keras does not register by name, from `get_registered_name`.
_KERAS_MODELS = {"Functional": keras.Model, "Sequential": keras.Sequential}
_CLASSES = {}  # original model class -> its factorized subclass


@keras.saving.register_keras_serializable(package="tfaccel")
class FactorizedModel:
    """Mixin of every model that `factorize` changed: saves the factorization.

    Not built directly: `factorize` swaps a model's class for
    `factorized_class(type(model))`. See the module docstring for the config.

    Example:

    ```python
    model = factorize(model, [r".*feedforward.*kernel"], rank=32)
    isinstance(model, FactorizedModel)  # True
    model.save("factorized.keras")
    model = keras.saving.load_model("factorized.keras")  # same factors
    ```
    """

    def get_config(self):
        base = self._factorized_base
        return {
            "model_class": keras.saving.get_registered_name(base),
            "model": base.get_config(self),
            "factorized": factorized_ranks(self),
        }

    @classmethod
    def from_config(cls, config):
        model = _model_class(config["model_class"]).from_config(config["model"])
        restore(model, config["factorized"])
        return model


def factorized_class(base):
    """Returns the subclass of model class `base` that saves its factorization."""
    if issubclass(base, FactorizedModel):
        return base
    if base not in _CLASSES:
        cls = type(base)(
            f"Factorized{base.__name__}",
            (FactorizedModel, base),
            {
                "_factorized_base": base,
                "__module__": __name__,
                "__doc__": f"{base.__name__} with factorized kernels.",
            },
        )
        # Saved under FactorizedModel's name; the name then points back to
        # FactorizedModel, whose `from_config` rebuilds any base class.
        keras.saving.register_keras_serializable("tfaccel", "FactorizedModel")(cls)
        keras.saving.register_keras_serializable("tfaccel")(FactorizedModel)
        _CLASSES[base] = cls
    return _CLASSES[base]


def low_rank_layers(model):
    """Returns every `LowRankDense` and `LowRankEinsumDense` layer of `model`."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, LowRankDense | LowRankEinsumDense)
    ]


def kernel_path(layer):
    """Returns the path the kernel of a low-rank layer had: `.../kernel`."""
    return layer.kernel_a.path.removesuffix("_a")


def factorized_ranks(model):
    """Returns `{kernel path: rank}` of every factorized kernel of `model`."""
    return {kernel_path(layer): layer.rank for layer in low_rank_layers(model)}


def to_low_rank(layer, rank):
    """Replaces a built Dense or EinsumDense kernel by factors and swaps its class.

    Returns:
        `(kernel_a, kernel_b)`, randomly initialized.
    """
    factors = _factors.add_factors(layer, rank)
    object.__setattr__(layer, "__class__", LOW_RANK_CLASSES[type(layer)])
    return factors


def restore(model, ranks):
    """Factorizes the kernels `ranks` names (`{path: rank}`) of a rebuilt model.

    Layers that a functional config already built as low-rank layers are
    left as they are. Placeholder factors are random: load weights next.
    """
    variables = {variable.path: variable for variable in model.weights}
    owners = owner_layers(model)
    done = {kernel_path(layer): layer.rank for layer in low_rank_layers(model)}
    for path, rank in ranks.items():
        if done.get(path) == rank:
            continue
        layer = owners.get(id(variables.get(path)))
        if type(layer) not in LOW_RANK_CLASSES or layer._kernel is not variables[path]:
            raise UserError(
                f"The saved model factorizes the kernel '{path}', but the rebuilt "
                "model has no Dense or EinsumDense kernel at that path. Load it "
                f"with the tfaccel version that saved it. Received: path={path!r}"
            )
        to_low_rank(layer, rank)
    object.__setattr__(model, "__class__", factorized_class(type(model)))


def _model_class(name):
    cls = keras.saving.get_registered_object(name) or _KERAS_MODELS.get(name)
    if cls is None:
        raise UserError(
            f"Cannot rebuild the factorized model: its class '{name}' is not "
            "registered. Import the module that defines it, and decorate the "
            "class with @keras.saving.register_keras_serializable(). "
            f"Received: model_class={name!r}"
        )
    return cls
