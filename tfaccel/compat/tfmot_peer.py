"""The tfmot peer of `tools/peers.py`, trained and converted in its own process.

The tf_keras twin of a baseline is pruned 50% and trained quantization-aware
with tfmot (`tfaccel.compat.tfmot_prune_qat`), then converted to TFLite int8
files, one per batch size (the twin's shapes are fixed), with and without
representative data.

`run_in_child(spec)` does this in a fresh interpreter
(`python -m tfaccel.compat.tfmot_peer SPEC RESULT`). Trained in the process
that times the peers, tfmot left that process slower for the shortest calls:
the shrunk int8 LiteRT file measured 1.28x TFLite dynamic-range PTQ in a
rotation after the training, and 1.64x in the same rotation without it.
"""

import dataclasses
import pathlib
import sys

import numpy as np

from tfaccel._child import run_module, serve
from tfaccel.errors import error_line

CALIBRATED = "tfmot_int8_calibrated"


def run_in_child(spec):
    """Runs `train_and_convert(spec)` in a fresh interpreter; returns its dict.

    Raises:
        RuntimeError: the training failed, or the child died without a result.
    """
    done, result = run_module(__spec__.name, spec)
    if result is None:
        raise RuntimeError(f"the tfmot child process exited {done.returncode}")
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


def train_and_convert(spec):
    """Trains the twin with tfmot and writes each peer's TFLite files.

    Args:
        spec: a dict with `keras_file` (the fp32 baseline), `task`,
            `max_examples`, `folder` (where files go), `settings` (epochs,
            steps, batch size, sparsity), `batch_sizes` and `peers` (the
            names of the tfmot peers to convert).

    Returns:
        A dict: `record` (tfmot's `TfmotRecord` as a dict), and per peer
        either `files` ({batch size: path}) and `ops`, or `error` (a
        failed conversion is recorded for that peer only).
    """
    from tfaccel import compat, tasks
    from tfaccel.models import load_model

    task = tasks.get_task(spec["task"], spec["max_examples"])
    settings = spec["settings"]
    trained = compat.tfmot_prune_qat(
        compat.twin_from_model(load_model(spec["keras_file"])),
        task.dataset("train", settings["batch_size"], shuffle=True),
        prune_epochs=settings["prune_epochs"],
        qat_epochs=settings["qat_epochs"],
        final_sparsity=settings["final_sparsity"],
        steps_per_epoch=settings["steps_per_epoch"],
    )
    result = {"record": dataclasses.asdict(trained.record)}
    for name in spec["peers"]:
        try:
            files = {}
            for batch in spec["batch_sizes"]:
                samples = representative(task, batch) if name == CALIBRATED else None
                data = compat.to_tflite_int8(
                    trained.model,
                    representative=samples,
                    source_length=task.max_source_length,
                    target_length=task.max_generate_length,
                    batch_size=batch,
                )
                path = pathlib.Path(spec["folder"], f"{name}_batch{batch}.tflite")
                path.write_bytes(data)
                files[batch] = str(path)
            first = files[min(files)]
            result[name] = {"files": files, "ops": compat.op_summary(first)}
        except Exception as error:  # this variant only
            result[name] = {"error": error_line(error)}
    return result


def representative(task, batch, rows=64):
    """Whole teacher-forced training batches of `batch` rows, as numpy dicts."""
    samples = []
    for inputs, _, _ in task.dataset("train", batch):
        if len(inputs["encoder_token_ids"]) == batch:
            samples.append({key: value.numpy() for key, value in inputs.items()})
        if len(samples) * batch >= rows:
            break
    return samples


class TwinFiles:
    """The twin's LiteRT files, one per batch size (their shapes are fixed).

    A call uses the file of its batch size, else the largest (which decodes
    the rows in groups of its batch).
    """

    def __init__(self, twins):
        self.twins = twins  # {batch size: compat.LiteRTTwin}

    def generate(self, ids, max_length=None):
        ids = np.asarray(ids, np.int32)
        twin = self.twins.get(len(ids)) or self.twins[max(self.twins)]
        # Whole groups of the file's batch: empty rows fill the last one.
        rows = -len(ids) % twin.batch_size
        padded = np.pad(ids, [(0, rows), (0, 0)])  # (groups * batch, src)
        return twin.generate(padded, max_length)[: len(ids)]


def _pinned(spec):
    # The child's entry: pins TensorFlow's threads before it runs any op.
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return train_and_convert(spec)


if __name__ == "__main__":
    serve(_pinned, sys.argv[1:3], Exception, error_line)
