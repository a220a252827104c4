"""Running the `postdesk` command as a script would, for the CLI tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def _executable() -> str:
    beside_python = Path(sys.executable).parent / "postdesk"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("postdesk")
    assert found, "the postdesk command is not installed"
    return found


POSTDESK = _executable()


def _child_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POSTDESK_", "DJANGO_")) and k != "DATABASE_URL"
    }
    # No DATABASE_URL: the child process cannot see pytest-django's test database (it lives
    # in this process's connection, or is a test_* database created and dropped around the
    # run), so when the suite runs on PostgreSQL the CLI still gets its own SQLite file here.
    env.update(
        DJANGO_SETTINGS_MODULE="postdesk.settings",
        DJANGO_SECRET_KEY="cli-tests-only",
        POSTDESK_DATA_DIR=str(data_dir),
        # Argon2's production cost is needless here; the hash format stays the same.
        POSTDESK_ARGON2_MEMORY_KIB="1024",
        POSTDESK_ARGON2_TIME_COST="1",
    )
    return env


def run_postdesk(
    data_dir: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [POSTDESK, *args],
        input=input,
        # No stdin given: an empty one, never the terminal pytest runs in.
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
        env={**_child_env(data_dir), **(env or {})},
        timeout=60,
        check=False,
    )


Runner = Callable[..., subprocess.CompletedProcess]


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)


def assert_fails(result: subprocess.CompletedProcess, code: str | None = None) -> str:
    """Non-zero, nothing on stdout, exactly one line on stderr; returns that line."""
    assert result.returncode != 0, (result.args, result.stdout)
    assert result.stdout == "", result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    if code is not None:
        assert line.endswith(f"[{code}]"), line
    return line
