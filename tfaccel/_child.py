"""Runs a tfaccel module's work in a fresh interpreter, through two JSON files.

The parent writes a spec, runs `python -m MODULE SPEC RESULT`, and reads the
result the child wrote. `tfaccel bench` times each runtime this way, and
`tools/peers.py` trains tfmot's twin this way, so that nothing one of them
loads or leaves behind slows the process that times the others.
"""

import json
import os
import pathlib
import subprocess
import sys

from tfaccel._io import scratch_dir


def run_module(module, spec, env=None, capture_stderr=False):
    """Runs `python -m module SPEC RESULT` with `spec` written as JSON.

    tfaccel's source root is put first on the child's `PYTHONPATH`, so this
    also works from a checkout that is not installed.

    Args:
        module: the module's dotted name; its `__main__` calls `serve`.
        spec: a JSON-able dict, the child's input.
        env: variables to set in the child, over this process's environment.
        capture_stderr: keep the child's stderr (as text) instead of passing
            it through.

    Returns:
        `(process, result)`: the `subprocess.CompletedProcess`, and the dict
        the child wrote, or None when it wrote none.
    """
    with scratch_dir("child") as tmp:
        spec_path, result_path = pathlib.Path(tmp, "spec"), pathlib.Path(tmp, "out")
        spec_path.write_text(json.dumps(spec))
        child_env = {**os.environ, **(env or {})}
        root = str(pathlib.Path(__file__).parents[1])
        paths = [root, child_env.get("PYTHONPATH")]
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        command = [sys.executable, "-m", module, spec_path, result_path]
        stderr = subprocess.PIPE if capture_stderr else None
        done = subprocess.run(command, env=child_env, stderr=stderr, text=True)
        result = json.loads(result_path.read_text()) if result_path.is_file() else None
    return done, result


def serve(function, argv, handled, describe):
    """The child's side of `run_module`: writes `function(spec)` to RESULT.

    Args:
        function: takes the spec dict and returns a JSON-able dict.
        argv: `[SPEC, RESULT]`, the two paths `run_module` passed.
        handled: the exception class(es) recorded as `{"error": ...}`; any
            other error ends the child with no result.
        describe: turns a handled error into the recorded text.
    """
    spec_path, result_path = argv[:2]
    try:
        result = function(json.loads(pathlib.Path(spec_path).read_text()))
    except handled as error:
        result = {"error": describe(error)}
    pathlib.Path(result_path).write_text(json.dumps(result))
