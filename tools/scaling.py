"""Training throughput on 1 device, 2 logical devices and 2 workers, and what
8 GPUs would give.

Each setting runs in its own process (a TensorFlow process fixes its devices
and its cluster once): pruning fine-tuning of the G2P model on real CMUdict
batches, `--batch` examples per replica, timed over `--steps` steps after
`--warmup` steps. The settings:

- `single`: one device (the default strategy);
- `mirrored`: MirroredStrategy over the CPU split into two logical devices;
- `workers`: MultiWorkerMirroredStrategy, two processes on 127.0.0.1.

On a CPU the replicas share the same cores, so no speed-up is expected;
the figures show what the synchronisation costs. The prediction for 8 GPUs
comes from the gradient bytes each step all-reduces: a ring all-reduce sends
and receives 2 (n - 1) / n times the gradient bytes per replica and step.

    python tools/scaling.py --preset small --out /tmp/scaling.json
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Interconnects for the prediction, bytes/s in one direction (nominal).
LINKS = {
    "NVLink 4 (H100)": 450e9,
    "PCIe 4.0 x16": 32e9,
    "100 GbE": 12.5e9,
    "10 GbE": 1.25e9,
}


def _child(args):
    """Runs one setting in this process; prints its JSON result."""
    import tensorflow as tf

    if args.setting == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
    import keras

    import tfaccel
    from tfaccel import distribute, tasks
    from tfaccel.core import counts
    from tfaccel.recipe import baseline as baseline_lib

    name = {"single": "none", "mirrored": "mirrored", "workers": "multi_worker"}
    strategy = distribute.get_strategy(name[args.setting], timeout=120)
    replicas = strategy.num_replicas_in_sync
    keras.utils.set_random_seed(0)
    task = tasks.get_task("g2p")
    config = baseline_lib.BaselineConfig(preset=args.preset, batch_size=args.batch)
    train = task.dataset("train", args.batch * replicas, shuffle=True, seed=0)
    train = baseline_lib.for_replicas(train, replicas)
    total = args.warmup + args.steps
    train = train.take(total).apply(tf.data.experimental.assert_cardinality(total))
    with strategy.scope():
        model = baseline_lib.build_model(config, task)
        schedule = tfaccel.ConstantSparsity(0.5, begin_step=0, frequency=10)
        tfaccel.prune(model, ["re:.*(attention|feedforward).*kernel"], schedule)
        baseline_lib.compile_model(model, config, total)
    clock = _step_clock(args.warmup, args.batch * replicas)
    model.fit(
        train,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=[*tfaccel.callbacks(model), clock],
    )
    gradient_bytes = counts.byte_count(model.trainable_variables)
    if distribute.is_chief(strategy):
        print(
            "RESULT "
            + json.dumps(
                {
                    "setting": args.setting,
                    "replicas": replicas,
                    "per_replica_batch": args.batch,
                    "steps": len(clock.seconds),
                    "examples_per_second": clock.examples / sum(clock.seconds),
                    "ms_per_step": 1e3 * sum(clock.seconds) / len(clock.seconds),
                    "gradient_bytes": gradient_bytes,
                }
            ),
            flush=True,
        )


def _step_clock(warmup, global_batch):
    """A Keras callback: wall time of each step after `warmup` steps."""
    import keras

    class StepClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self.examples, self.step = [], 0, 0

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step > warmup:
                self.seconds.append(time.perf_counter() - self.start)
                # Bucketed batches are full but for one short batch per
                # bucket and epoch: counted as full (the few steps timed
                # here rarely hit one).
                self.examples += global_batch

    return StepClock()


def _run_setting(setting, args):
    base = [sys.executable, __file__, "--child", setting]
    base += ["--preset", args.preset, "--batch", str(args.batch)]
    base += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if setting != "workers":
        return _result(subprocess.run(base, env=env, capture_output=True, text=True))
    from tfaccel.distribute import free_ports, tf_config

    ports = free_ports(2)
    workers = [f"127.0.0.1:{port}" for port in ports]
    processes = [
        subprocess.Popen(
            base,
            env={**env, "TF_CONFIG": tf_config(workers, index)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    outputs = [p.communicate(timeout=1800) for p in processes]
    done = [
        subprocess.CompletedProcess(p.args, p.returncode, out, err)
        for p, (out, err) in zip(processes, outputs, strict=True)
    ]
    return _result(done[0], done[1])


def _result(chief, other=None):
    for process in (chief, other):
        if process is not None and process.returncode != 0:
            sys.exit(f"a setting failed:\n{process.stderr[-3000:]}")
    line = next(x for x in chief.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def predict(gradient_bytes, ms_per_step, replicas=8):
    """Rows predicting `replicas`-GPU throughput from the all-reduce volume.

    Each step, every replica sends (and receives) `2 (n-1)/n` times the
    gradient bytes in a ring all-reduce; the step takes the compute time
    plus that transfer when nothing overlaps (a lower bound on efficiency).
    """
    sent = 2 * (replicas - 1) / replicas * gradient_bytes
    rows = []
    for link, bandwidth in LINKS.items():
        transfer_ms = 1e3 * sent / bandwidth
        rows.append(
            {
                "link": link,
                "bytes_per_step": sent,
                "transfer_ms": transfer_ms,
                "efficiency": ms_per_step / (ms_per_step + transfer_ms),
            }
        )
    return rows


def _table(title, columns, rows):
    import rich.table

    table = rich.table.Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=64, help="per replica")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--gpu-step-ms",
        type=float,
        default=None,
        help="compute time of one step on one GPU, for the "
        "prediction (default: the measured single-device step)",
    )
    parser.add_argument("--out", default=None, help="write the results as JSON")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.setting = args.child
        return _child(args)
    from tfaccel._tables import print_table
    from tfaccel.bench.machine import machine_info

    rows = [_run_setting(s, args) for s in ("single", "mirrored", "workers")]
    single = rows[0]["examples_per_second"]
    for row in rows:
        row["speedup"] = row["examples_per_second"] / single
    print_table(
        _table(
            f"Training throughput, G2P {args.preset}, {args.batch} examples per "
            "replica",
            ["setting", "replicas", "examples/s", "ms/step", "vs single"],
            [
                [
                    r["setting"],
                    str(r["replicas"]),
                    f"{r['examples_per_second']:.0f}",
                    f"{r['ms_per_step']:.1f}",
                    f"{r['speedup']:.2f}x",
                ]
                for r in rows
            ],
        )
    )
    step_ms = args.gpu_step_ms or rows[0]["ms_per_step"]
    prediction = predict(rows[0]["gradient_bytes"], step_ms)
    print_table(
        _table(
            f"8 replicas, predicted: {rows[0]['gradient_bytes'] / 1e6:.1f} MB of "
            f"gradients per step, {step_ms:.1f} ms of compute per step",
            ["link", "MB sent per step", "transfer ms", "efficiency", "8x speed-up"],
            [
                [
                    p["link"],
                    f"{p['bytes_per_step'] / 1e6:.1f}",
                    f"{p['transfer_ms']:.2f}",
                    f"{p['efficiency']:.0%}",
                    f"{8 * p['efficiency']:.1f}x",
                ]
                for p in prediction
            ],
        )
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {"machine": machine_info(), "rows": rows, "prediction_8": prediction},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
