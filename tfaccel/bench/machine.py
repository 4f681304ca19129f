"""What a measurement ran on: CPU, cores, threads and library versions."""

import os
import platform
from importlib import metadata

LIBRARIES = (
    "tensorflow",
    "keras",
    "keras-hub",
    "ai-edge-litert",
    "onnxruntime",
    "tf2onnx",
    "numpy",
)


def cpu_name():
    """Returns the CPU model name, e.g. 'Intel(R) Xeon(R) Platinum 8481C'."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions():
    """Returns the installed versions of the libraries that shape timings."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_info():
    """Returns a dict describing this machine, for benchmark records."""
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": library_versions(),
    }
