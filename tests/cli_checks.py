"""Checks shared by the CLI tests (tests/ is on sys.path: its conftest.py)."""


def assert_user_error(code, stderr, *fragments):
    """The CLI exited 2 with one `tfaccel: error:` line holding `fragments`."""
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("tfaccel: error:")]
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
