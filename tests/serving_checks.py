"""Checks of SavedModel version folders as TF Serving would use them."""

from pathlib import Path

import numpy as np
import tensorflow as tf


def replay_warmup(folder):
    """Runs each warm-up request of a version folder through its signature;
    returns the signature names in file order."""
    from tensorflow_serving.apis import prediction_log_pb2

    loaded = tf.saved_model.load(str(folder))
    warmup = Path(folder) / "assets.extra" / "tf_serving_warmup_requests"
    names = []
    for record in tf.data.TFRecordDataset(str(warmup)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert all(np.all(np.isfinite(v.numpy())) for v in outputs.values())
        names.append(request.model_spec.signature_name)
    return names
