"""Run ``tether eval ... score --json`` in-process, as a user would, for the differential tests."""

import contextlib
import io
import json

from tether.cli import main


def score_json(*argv) -> dict:
    """The metrics tether prints with ``--json`` (a TetherError propagates as a SystemExit code 2)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main([str(a) for a in argv] + ["--json"])
    if code != 0:
        raise RefusedError(err.getvalue().strip())
    return json.loads(out.getvalue())


class RefusedError(Exception):
    """tether refused the input (exit code 2 and a message naming file and line)."""
