"""Any JSON where tfaccel reads a run's metrics.json: a report or one line.

Hypothesis writes arbitrary JSON values (with the keys tfaccel looks for)
as `metrics.json`, and `tfaccel report` and the task lookup of `export` and
`bench` must give a result or a `UserError`: exit 0 or 2, never a
traceback.
"""

import contextlib
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfaccel.bench.targets import run_task
from tfaccel.cli import main
from tfaccel.errors import UserError

KEYS = st.sampled_from(
    [
        "recipe",
        "task",
        "name",
        "config",
        "stages",
        "test",
        "baseline",
        "final",
        "exports",
        "file",
        "max_examples",
        "wer",
        "per",
        "parameters",
        "seconds",
    ]
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
VALUES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(KEYS | st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=25,
)
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(data=VALUES)
def test_any_metrics_json_gives_a_report_or_one_line(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("run")
    (folder / "metrics.json").write_text(json.dumps(data))
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main(["report", str(folder)])
    text = stderr.getvalue()
    assert code in (0, 2), text
    assert "Traceback" not in text
    if code == 2:
        assert len([x for x in text.splitlines() if x.startswith("tfaccel:")]) == 1


@FUZZ
@given(data=VALUES)
def test_any_metrics_json_names_a_task_or_says_why(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("run")
    (folder / "metrics.json").write_text(json.dumps(data))
    try:
        found = run_task(folder)
    except UserError as error:
        assert "\n" not in str(error)
        return
    assert found is None or (isinstance(found[0], str) and len(found) == 2)
