"""Dropping a model's compiled functions once its forward pass changed."""

import keras


def forget_compiled(model):
    """Drops compiled functions traced before the forward pass changed.

    `model.generate` and Keras's train/predict functions are traced once;
    after a technique changes layer calls (QAT, clustering, factorization,
    or a strip of them) they would still run the old graph.
    """
    for layer in model._flatten_layers(include_self=True, recursive=True):
        cache = getattr(layer, "_generate_functions", None)
        if cache is not None:
            cache.clear()
        if isinstance(layer, keras.Model):
            layer.train_function = None
            layer.predict_function = None
            layer.test_function = None
