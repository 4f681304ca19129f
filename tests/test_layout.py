"""Package layout rules: who may import whose modules.

Techniques share what they need through `tfaccel.core` (targets, kernel
layouts, the technique registry), never through each other's private
modules; `tfaccel.core` and `tfaccel.models` import no technique at all.
Every `tfaccel/**/*.py` is parsed with `ast`, so imports inside functions
count too.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tfaccel"
TECHNIQUES = ("clustering", "compression", "distillation", "pruning", "quantization")


def imports(source, package):
    """Returns every module or name that `source` imports, as dotted paths.

    `import a.b` gives `a.b`; `from a.b import c` gives `a.b.c` (a module or
    a name in it); relative imports are resolved against `package`, the
    package the file is in.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                names = package.split(".")
                parent = names[: len(names) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.extend(f"{base}.{alias.name}" for alias in node.names)
    return found


def technique_of(dotted):
    """Returns the technique package that `dotted` is in, or None."""
    parts = dotted.split(".")
    if len(parts) >= 2 and parts[0] == "tfaccel" and parts[1] in TECHNIQUES:
        return parts[1]
    return None


def is_private(dotted):
    """Returns whether a module or name below the technique package is private."""
    return any(
        part.startswith("_") and part != "__init__" for part in dotted.split(".")[2:]
    )


def violations(relative, source):
    """Returns `[(file, import, rule)]` for one file, `relative` to the root."""
    parts = pathlib.PurePosixPath(relative).with_suffix("").parts
    package = ".".join(parts[:-1])
    owner = parts[1] if len(parts) > 2 else None  # tfaccel/<owner>/...
    found = []
    for dotted in imports(source, package):
        target = technique_of(dotted)
        if target is None:
            continue
        if owner == "core":
            found.append((relative, dotted, "tfaccel.core imports a technique"))
        elif owner == "models":
            found.append((relative, dotted, "tfaccel.models imports a technique"))
        elif not is_private(dotted) or owner == target:
            continue
        elif owner in TECHNIQUES:
            found.append((relative, dotted, "private module of another technique"))
        else:
            found.append((relative, dotted, "private module of a technique"))
    return found


def _files():
    return sorted(PACKAGE.rglob("*.py"))


def test_packages_import_only_what_they_may():
    found = []
    for path in _files():
        relative = path.relative_to(ROOT).as_posix()
        found.extend(violations(relative, path.read_text()))
    assert not found, "\n".join(f"{f}: {d} ({rule})" for f, d, rule in found)


@pytest.mark.parametrize(
    "relative, source",
    [
        (
            "tfaccel/compression/shrink.py",
            "from tfaccel.pruning import _state",
        ),
        (
            "tfaccel/clustering/cluster.py",
            "def f():\n    from tfaccel.quantization.quantize_aware import _weight",
        ),
        ("tfaccel/models/_loading.py", "import tfaccel.quantization"),
        ("tfaccel/core/registry.py", "from tfaccel.pruning import prune"),
        ("tfaccel/export/tflite.py", "from tfaccel.quantization import _state"),
        ("tfaccel/bench/layers.py", "import tfaccel.clustering._state"),
        ("tfaccel/recipe/stage.py", "from tfaccel.pruning import _state"),
        ("tfaccel/recipe/checkpoint.py", "from tfaccel.quantization import _state"),
        ("tfaccel/cli.py", "from tfaccel.pruning._state import find_states"),
        ("tfaccel/compat/twin_tflite.py", "import tfaccel.quantization._fake_quant"),
        ("tfaccel/pruning/prune.py", "from ..clustering._state import x"),
        ("tfaccel/quantization/strip.py", "from ..clustering import _state"),
    ],
)
def test_a_forbidden_import_is_found(relative, source):
    assert violations(relative, source)


@pytest.mark.parametrize(
    "relative, source",
    [
        ("tfaccel/pruning/prune.py", "from tfaccel.pruning import _state"),
        ("tfaccel/pruning/__init__.py", "from . import _state"),
        ("tfaccel/clustering/cluster.py", "from tfaccel.core import registry"),
        ("tfaccel/compression/shrink.py", "from tfaccel.models import load_model"),
        ("tfaccel/export/api.py", "from tfaccel.quantization import QATConfig"),
    ],
)
def test_an_allowed_import_passes(relative, source):
    assert not violations(relative, source)
