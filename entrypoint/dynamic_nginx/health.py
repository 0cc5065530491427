"""What the image's HEALTHCHECK (bin/healthcheck) reads about reloads: since when nginx -t has refused the files.

The reloader keeps `invalid-since` in the run dir: made at the first reload
that nginx -t refuses (its modification time is that moment, its text nginx's
error), left alone while the files stay invalid, removed once a reload
succeeds. A file rather than a question to the reloader, so the check is a
shell script that starts no Python, and the reloader needs no listener.
"""

from __future__ import annotations

from pathlib import Path

from . import rundir

INVALID_SINCE = rundir.INVALID_SINCE


def note(run_dir: Path, result: str, error: str) -> None:
    """Keep `invalid-since` in step with a reload's result (ok, invalid or failed)."""
    path = run_dir / INVALID_SINCE
    try:
        if result == "ok":
            path.unlink(missing_ok=True)
        elif result == "invalid" and not path.exists():
            path.write_text((error or "nginx -t failed") + "\n")
        # failed (nginx took no new workers): the check's own request to nginx tells.
    except OSError:
        pass  # the health check then sees the files as valid: it never makes nginx worse off
