"""Roofline context: how close a batch-1 decode step comes to the memory floor.

At batch 1 a decoder step multiplies one token by every weight it uses, so
it does about one multiply-accumulate per weight byte (int8) and cannot run
faster than the time it takes to read those weights: step bytes / memory
bandwidth. `measure_machine` measures what this machine achieves:

- fp32 matmul GFLOP/s: ONNX Runtime `MatMul` (MLAS SGEMM) of two square
  matrices, the right one a constant as weights are.
- int8 matmul GOP/s: ONNX Runtime `MatMulInteger`, uint8 activations times
  int8 weights into int32: MLAS's integer GEMM, the kernel that
  `quantize_dynamic` models run on (AVX512-VNNI or AVX2 on x86, not a
  dequantize-then-float fallback). A multiply-accumulate counts 2 ops.
- memory bandwidth GB/s: STREAM-style copy, scale, add and sum over
  arrays far larger than the last-level cache, split across threads.
  Bytes are counted as STREAM does: each array read once plus each array
  written once (copy and scale 2, add 3, sum 1 array size); the extra read
  a write-allocate cache does is not counted. The headline `bandwidth_gbs`
  is the best of the four, so the floor is a lower bound on step time.

Both matmuls run in one runtime whose intra-op thread count is set per
session, and the bandwidth kernels run in a pool of that many Python
threads (numpy releases the GIL in them), so `threads` pins every figure
to the same cores. numpy's own BLAS is not used: without threadpoolctl its
thread count cannot be set once numpy is loaded.

`decode_step_bytes` counts the weights one step reads and `floor_fraction`
turns a measured step time into floor / measured (1.0 = at the floor);
both live in `tfaccel.bench.decode_step` and are importable from here.

```
python -m tfaccel.bench.roofline --threads 1 --seconds 3
```
"""

import argparse
import concurrent.futures
import os
import time

import numpy as np
import rich.table

from tfaccel._tables import print_table
from tfaccel.bench.decode_step import (
    FORMAT_BYTES,
    check_positive,
    decode_step_bytes,
    decode_step_params,
    floor_fraction,
    floor_rows,
)
from tfaccel.errors import UserError

__all__ = [
    "FORMAT_BYTES",
    "KERNELS",
    "decode_step_bytes",
    "decode_step_params",
    "floor_fraction",
    "floor_rows",
    "main",
    "measure_bandwidth",
    "measure_machine",
    "measure_matmul",
    "onnx_matmul",
]

KERNELS = ("copy", "scale", "add", "sum")
# Arrays read or written by each bandwidth kernel, STREAM's byte counting.
_ARRAYS_MOVED = {"copy": 2, "scale": 2, "add": 3, "sum": 1}
_BYTES_PER_CALL = 64 * 2**20  # least bytes per array one timed call sweeps


# === Machine ===


def measure_machine(threads=None, seconds=3.0, matmul_size=1024, array_mib=128):
    """Measures matmul throughput and memory bandwidth, medians of repeats.

    Args:
        threads: int or None. Threads for every measurement; None means
            `os.cpu_count()`.
        seconds: float > 0. Rough total time: a quarter per matmul, half
            for the bandwidth kernels; each measurement runs at least 3
            timed repeats after one warm-up.
        matmul_size: int. Side of the square matmuls (1024: compute bound).
        array_mib: float. Size of each of the two bandwidth arrays in MiB;
            keep it several times the last-level cache.

    Returns:
        A dict: `threads`, `fp32_gflops`, `int8_gops`, `bandwidth_gbs` (the
        best kernel), `copy_gbs`, `scale_gbs`, `add_gbs`, `sum_gbs`,
        `repeats` (per measurement) and `method` (how each was measured,
        with sizes).

    Example:

    ```python
    machine = measure_machine(threads=1, seconds=3)
    machine["fp32_gflops"], machine["int8_gops"], machine["bandwidth_gbs"]
    ```
    """
    threads = _check_threads(threads)
    check_positive(seconds=seconds, matmul_size=matmul_size, array_mib=array_mib)
    fp32 = measure_matmul("fp32", matmul_size, threads, seconds / 4)
    int8 = measure_matmul("int8", matmul_size, threads, seconds / 4)
    memory = measure_bandwidth(array_mib, threads, seconds / 2)
    gbs = {key: value for key, value in memory.items() if key.endswith("_gbs")}
    return {
        "threads": threads,
        "fp32_gflops": fp32["gops"],
        "int8_gops": int8["gops"],
        **gbs,
        "repeats": {
            "fp32": fp32["repeats"],
            "int8": int8["repeats"],
            **memory["repeats"],
        },
        "method": {
            "fp32": fp32["method"],
            "int8": int8["method"],
            "bandwidth": memory["method"],
        },
    }


def measure_matmul(kind, size, threads=None, seconds=1.0):
    """Times a `size`-square matmul in ONNX Runtime; 2 ops per multiply-add.

    Args:
        kind: `"fp32"` (`MatMul`) or `"int8"` (`MatMulInteger`, uint8 x
            int8 -> int32).
        size: int, the side of both matrices.
        threads: int or None, ONNX Runtime intra-op threads.
        seconds: float, time to spend repeating after one warm-up call.

    Returns:
        A dict: `gops` (GFLOP/s or GOP/s, median call), `repeats`, `method`.
    """
    rng = np.random.default_rng(0)
    if kind == "fp32":
        a = rng.standard_normal((size, size), dtype=np.float32)
        b = rng.standard_normal((size, size), dtype=np.float32)
        method = "onnxruntime MatMul float32 (MLAS SGEMM)"
    elif kind == "int8":
        a = rng.integers(0, 256, (size, size), dtype=np.uint8)
        b = rng.integers(-128, 128, (size, size), dtype=np.int8)
        method = "onnxruntime MatMulInteger uint8 x int8 -> int32 (MLAS QGEMM)"
    else:
        raise UserError(f"`kind` must be 'fp32' or 'int8'. Received: kind={kind!r}")
    matmul = onnx_matmul(b, threads)
    median, repeats = _median_seconds(lambda: matmul(a), seconds)
    return {
        "gops": 2 * size**3 / median / 1e9,
        "repeats": repeats,
        "method": f"{method}, ({size}, {size}) @ constant ({size}, {size}), "
        f"{_threads(threads)} threads, median of {repeats}",
    }


def onnx_matmul(b, threads=None):
    """Returns `f(a) = a @ b` run by ONNX Runtime on the CPU, `b` a constant.

    A float32 `b` gives a float32 `MatMul`; an int8 `b` a `MatMulInteger`
    that takes a uint8 `a` and returns the exact int32 product.

    Args:
        b: 2-D float32 or int8 array, the weights.
        threads: int or None, ONNX Runtime intra-op threads.

    Returns:
        A function of a 2-D array `a` (float32, or uint8 for int8 `b`).

    Example:

    ```python
    f = onnx_matmul(np.ones((4, 3), np.int8))
    f(np.full((2, 4), 200, np.uint8))  # int32 [[800, 800, 800], ...]
    ```
    """
    import onnx
    import onnxruntime

    b = np.asarray(b)
    if b.ndim != 2 or b.dtype not in (np.float32, np.int8):
        raise UserError(
            "`b` must be a 2-D float32 or int8 array. "
            f"Received: shape={b.shape}, dtype={b.dtype}"
        )
    kinds = onnx.TensorProto
    op, a_type, y_type = (
        ("MatMul", kinds.FLOAT, kinds.FLOAT)
        if b.dtype == np.float32
        else ("MatMulInteger", kinds.UINT8, kinds.INT32)
    )
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("a", a_type, [None, b.shape[0]])],
        [helper.make_tensor_value_info("y", y_type, [None, b.shape[1]])],
        initializer=[onnx.numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _threads(threads)
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return lambda a: session.run(None, {"a": a})[0]


def measure_bandwidth(array_mib=128, threads=None, seconds=1.0):
    """Measures STREAM-style memory bandwidth with numpy, in GB/s (1e9 B/s).

    Two float32 arrays `a` and `b` of `array_mib` MiB are split into
    `threads` slices, one per thread. copy: `a = b`; scale: `a = 3 * b`;
    add: `a = a + b`; sum: `sum(a)`.

    Args:
        array_mib: float, size of each array in MiB.
        threads: int or None, threads sharing the arrays.
        seconds: float, time for all four kernels together.

    Returns:
        A dict: `bandwidth_gbs` (the best kernel), `<kernel>_gbs` for each
        of `KERNELS`, `repeats` (per kernel) and `method`.
    """
    threads = _threads(threads)
    size = max(int(array_mib * 2**20) // 4, threads)
    a = np.full(size, 1.0, np.float32)  # written now, so its pages exist
    b = np.full(size, 2.0, np.float32)
    slices = list(
        zip(np.array_split(a, threads), np.array_split(b, threads), strict=True)
    )
    # Small (in-cache) arrays are swept several times per timed call, so
    # that the thread pool's dispatch does not dominate.
    passes = max(1, _BYTES_PER_CALL // a.nbytes)
    result, repeats = {}, {}
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for kernel in KERNELS:
            run = _kernel(kernel, passes)
            median, repeats[kernel] = _median_seconds(
                lambda run=run: list(pool.map(run, slices)), seconds / len(KERNELS)
            )
            moved = passes * _ARRAYS_MOVED[kernel] * a.nbytes
            result[f"{kernel}_gbs"] = moved / median / 1e9
    return {
        "bandwidth_gbs": max(result.values()),
        **result,
        "repeats": repeats,
        "method": f"numpy copy/scale/add/sum, 2 float32 arrays of {a.nbytes} "
        f"bytes, {passes} passes per call, {threads} threads, STREAM byte "
        "counting, median call",
    }


def _kernel(name, passes):
    # A function running one bandwidth kernel `passes` times on one thread's
    # slices (a, b).
    kernel = {
        "copy": lambda ab: np.copyto(ab[0], ab[1]),
        "scale": lambda ab: np.multiply(ab[1], 3.0, out=ab[0]),
        "add": lambda ab: np.add(ab[0], ab[1], out=ab[0]),
        "sum": lambda ab: ab[0].sum(),
    }[name]
    return lambda ab: [kernel(ab) for _ in range(passes)]


def _median_seconds(fn, seconds, min_repeats=3):
    # (median seconds of a call, number of timed calls), after one warm-up.
    fn()
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_repeats or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return max(float(np.median(times)), 1e-9), len(times)  # a coarse clock reads 0


# === Command line ===


def main(argv=None, print_fn=None):
    """Prints the machine's roofline figures and a preset's decode-step floor.

    Args:
        argv: command-line arguments (`--threads`, `--seconds`, `--preset`,
            `--array-mib`); None reads `sys.argv`.
        print_fn: as `tfaccel._tables.print_table`.
    """
    parser = argparse.ArgumentParser(prog="python -m tfaccel.bench.roofline")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--preset", default="small", help="G2P model preset")
    parser.add_argument("--array-mib", type=float, default=128)
    args = parser.parse_args(argv)
    machine = measure_machine(args.threads, args.seconds, array_mib=args.array_mib)
    print_table(_machine_table(machine), print_fn)
    model = _g2p_model(args.preset)
    print_table(_floor_table(model, machine, args.seconds / 6), print_fn)


def _machine_table(machine):
    method = machine["method"]
    rows = [
        ("fp32 matmul", f"{machine['fp32_gflops']:.1f} GFLOP/s", method["fp32"]),
        ("int8 matmul", f"{machine['int8_gops']:.1f} GOP/s", method["int8"]),
        *((f"{k} bandwidth", f"{machine[f'{k}_gbs']:.1f} GB/s", "") for k in KERNELS),
        ("bandwidth", f"{machine['bandwidth_gbs']:.1f} GB/s", method["bandwidth"]),
    ]
    table = rich.table.Table("Measure", "Value", "Method")
    table.title = f"Machine, {machine['threads']} threads"
    for row in rows:
        table.add_row(*row)
    return table


def _floor_table(model, machine, seconds):
    # Floors at the main-memory bandwidth, and at the bandwidth measured on
    # arrays of the step's own size: the floor if the weights stay in cache.
    table = rich.table.Table(
        "Format", "Bytes per step", "Floor us", "GB/s at step size", "Floor us there"
    )
    table.title = "Batch-1 decode step: weights read, memory-bound floor"
    for weight_format in FORMAT_BYTES:
        nbytes = decode_step_bytes(model, weight_format)
        cached = measure_bandwidth(nbytes / 2**20, machine["threads"], seconds)
        table.add_row(
            weight_format,
            f"{nbytes:,}",
            f"{nbytes / machine['bandwidth_gbs'] / 1e3:.1f}",
            f"{cached['bandwidth_gbs']:.1f}",
            f"{nbytes / cached['bandwidth_gbs'] / 1e3:.1f}",
        )
    return table


def _g2p_model(preset):
    from tfaccel.models import Seq2SeqTransformer
    from tfaccel.tasks import get_task

    overrides = get_task("g2p").model_overrides()
    return Seq2SeqTransformer.from_preset(preset, **overrides)


def _threads(threads):
    return (os.cpu_count() or 1) if threads is None else threads


def _check_threads(threads):
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise UserError(
            f"`threads` must be an int >= 1 or None. Received: threads={threads!r}"
        )
    return _threads(threads)


if __name__ == "__main__":
    main()
