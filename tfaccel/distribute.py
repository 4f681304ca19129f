"""Where training runs: one device, every local GPU, or several machines.

```python
strategy = tfaccel.distribute.get_strategy("auto")
with strategy.scope():
    model = ...
    tfaccel.prune(model, targets, schedule)
    model.compile(...)
model.fit(dataset.batch(per_replica * strategy.num_replicas_in_sync), ...)
```

`multi_worker` reads the cluster from `TF_CONFIG` (`tf_config` writes one).
Keras 3 does not run `fit` under `MultiWorkerMirroredStrategy` as released
(keras-team/keras#20585: it all-reduces the first data batch to learn its
shapes, and reduces scalar logs along axis 0); `get_strategy` patches those
two steps, and only when it creates that strategy.

Every wait on another worker is bounded: collectives time out after
`timeout` seconds, the workers' health is checked every 10 s, and the first
contact (all workers up) must happen within `startup_timeout` seconds. A
lost worker then surfaces as `tf.errors.UnavailableError` (or
`DeadlineExceededError`) in `fit`, which `lost_worker_message` turns into a
sentence for the user.
"""

import json
import os

from tfaccel.errors import UserError

STRATEGIES = ("none", "mirrored", "multi_worker", "auto")

_multi_worker = None  # TensorFlow allows one collective setup per process.
# MirroredStrategy per device list: two strategies over the same devices in
# one process number their collective ops alike and clash ("shape mismatch
# in the collective instance"), so each is made once.
_mirrored = {}


def get_strategy(name="auto", timeout=300, startup_timeout=120):
    """Returns the `tf.distribute.Strategy` that `name` asks for.

    Args:
        name: `"none"`: the default strategy (one device); `"mirrored"`:
            `MirroredStrategy` over every local GPU, or over every logical
            CPU device when there is no GPU (useful for tests); `"multi_worker"`:
            `MultiWorkerMirroredStrategy` over the cluster in `TF_CONFIG`;
            `"auto"`: `multi_worker` when `TF_CONFIG` names more than one
            worker, else `mirrored` with two or more GPUs, else `none`.
        timeout: seconds a collective may wait for the other workers
            (multi_worker only).
        startup_timeout: seconds to wait for every worker to start.

    Returns:
        A strategy. `mirrored` and `multi_worker` return the same one on
        every call (a second one in the same process would clash).

    Raises:
        UserError: for an unknown name, or `multi_worker` without a cluster.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise UserError(
            f"Unknown distribution strategy '{name}'. Use one of: "
            f"{', '.join(STRATEGIES)}. Received: name={name!r}"
        )
    if name == "auto":
        if len(cluster_workers()) > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "none"
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices(
            "GPU"
        ) or tf.config.list_logical_devices("CPU")
        names = tuple(d.name for d in devices)
        if names not in _mirrored:
            _mirrored[names] = tf.distribute.MirroredStrategy(list(names))
        return _mirrored[names]
    return _multi_worker_strategy(timeout, startup_timeout)


def _multi_worker_strategy(timeout, startup_timeout):
    global _multi_worker
    if _multi_worker is not None:
        return _multi_worker
    import tensorflow as tf
    from tensorflow.python.distribute import collective_all_reduce_strategy

    if not cluster_workers():
        raise UserError(
            "The multi_worker strategy needs the cluster: run `tfaccel run RECIPE "
            "--workers host:port,host:port --worker-index I` on every machine, or "
            "set TF_CONFIG. Received: TF_CONFIG is not set"
        )
    # Bound the waits TensorFlow leaves unbounded by default: the first
    # contact with every worker, and the gap between health checks.
    extended = collective_all_reduce_strategy.CollectiveAllReduceExtended
    extended._check_health_initial_timeout = startup_timeout
    extended._check_health_interval = 10
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=options
        )
    except RuntimeError as error:
        if "Timeout waiting for the cluster" not in str(error):
            raise
        raise UserError(
            f"Not every worker of {', '.join(cluster_workers())} started within "
            f"{startup_timeout} s. Start `tfaccel run` on each of them with its "
            f"--worker-index. Received: {error}"
        ) from None
    _patch_keras_for_multi_worker()
    _multi_worker = strategy
    return strategy


def cluster_workers():
    """Returns the `host:port` of every worker in `TF_CONFIG` (or `[]`)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return []
    try:
        cluster = json.loads(raw).get("cluster", {})
    except (json.JSONDecodeError, AttributeError):
        raise UserError(
            f"TF_CONFIG is not valid JSON of the form {{'cluster': {{'worker': "
            f"[...]}}, 'task': {{'type': 'worker', 'index': 0}}}}. "
            f"Received: TF_CONFIG={raw!r}"
        ) from None
    return [*cluster.get("chief", []), *cluster.get("worker", [])]


def free_ports(count, host="127.0.0.1"):
    """Returns `count` TCP ports free on `host` now, for workers on one machine.

    The ports are released before returning, so another program could take
    one in between; fine for tests and local runs.
    """
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(workers, index):
    """Returns the `TF_CONFIG` JSON of worker `index` among `workers`.

    Args:
        workers: list of `host:port`, the same list on every worker; worker
            0 is the chief, which writes checkpoints, exports and reports.
        index: this process's position in `workers`.

    Raises:
        UserError: for an empty list, a malformed address or a bad index.
    """
    if not workers:
        raise UserError("--workers needs at least one host:port. Received: ''")
    for worker in workers:
        host, _, port = worker.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(
                f"A worker address must be host:port, for example "
                f"127.0.0.1:12345. Received: {worker!r}"
            )
    if not 0 <= index < len(workers):
        raise UserError(
            f"--worker-index must be between 0 and {len(workers) - 1} for "
            f"{len(workers)} workers. Received: --worker-index {index}"
        )
    return json.dumps(
        {
            "cluster": {"worker": list(workers)},
            "task": {"type": "worker", "index": index},
        }
    )


def is_chief(strategy=None):
    """True unless this process is a non-chief worker of a multi-worker job.

    The chief is `TF_CONFIG`'s `chief` task or, without one, worker 0.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0


def is_multi_worker(strategy):
    """True for a strategy whose replicas span more than one process."""
    return bool(getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)())


def scaled_learning_rate(learning_rate, replicas, rule):
    """Returns the learning rate for `replicas` times the single-device batch.

    Args:
        learning_rate: the rate tuned for one replica.
        replicas: `strategy.num_replicas_in_sync`.
        rule: `"linear"` (times replicas), `"sqrt"` (times its square root)
            or `"constant"`.
    """
    if rule == "linear":
        return learning_rate * replicas
    if rule == "sqrt":
        return learning_rate * replicas**0.5
    if rule == "constant":
        return learning_rate
    raise UserError(
        f"Unknown learning-rate rule '{rule}'. Use linear, sqrt or constant. "
        f"Received: rule={rule!r}"
    )


def lost_worker_message(error, resume_folder=None):
    """Returns the sentence a user sees when a worker was lost mid-run."""
    cause = " ".join(str(error).split())[:300]
    where = f" The checkpoints are in {resume_folder};" if resume_folder else ""
    return (
        f"A worker of this multi-worker job stopped or became unreachable "
        f"({type(error).__name__}: {cause}).{where} restart every worker with the "
        f"same command to resume from the last finished epoch."
    )


def in_scope(model, strategy):
    """Returns `model`, rebuilt with its weights under `strategy` if needed.

    A model loaded outside `strategy.scope()` (the cached baseline) has
    plain variables; training under a strategy needs distributed ones.
    """
    import tensorflow as tf

    if (
        strategy is tf.distribute.get_strategy()
        or model.distribute_strategy is strategy
    ):
        return model
    with strategy.scope():
        copy = type(model).from_config(model.get_config())
        copy.set_weights(model.get_weights())
    return copy


def out_of_scope(model):
    """Returns `model` with plain (not distributed) variables, for export."""
    import tensorflow as tf

    if not isinstance(model.weights[0].value, tf.distribute.DistributedValues):
        return model
    with tf.distribute.get_strategy().scope():
        copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def _patch_keras_for_multi_worker():
    """Lets Keras 3's TensorFlow trainer `fit` under MultiWorkerMirroredStrategy.

    keras-team/keras#20585. Two steps of `fit` fail for this strategy:
    the first batch is all-reduced (as a nest, which collective reduce
    refuses) only to learn input shapes, and every scalar log is reduced
    with `axis=0`. Shapes come from the local replica's batch, and scalars
    are averaged over replicas. Applied once; a no-op for other strategies.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_tfaccel_patched", False):
        return
    reduce_per_replica = trainer.reduce_per_replica
    multi_worker = trainer._collective_all_reduce_multi_worker

    def reduce(values, strategy, reduction):
        if not (multi_worker(strategy) and reduction in ("auto", "mean")):
            return reduce_per_replica(values, strategy, reduction)
        return tree.map_structure(
            lambda v: strategy.reduce("MEAN", v, axis=0 if v.shape.rank else None),
            values,
        )

    symbolic_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or not multi_worker(strategy) or iterator is None:
            return symbolic_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            batch = next(it)
            data_batch = tree.map_structure(
                lambda v: strategy.experimental_local_results(v)[0], batch
            )
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer._tfaccel_patched = True
