"""The apps depend one way (docs/architecture.md), and the tools that say so in `./run test`
can fail: an upward import or an import hidden in a function is refused.

Each case runs the real tool (import-linter, ruff) on a copy of the package with one line
added, so the checked-in code is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import postdesk

PACKAGE = Path(postdesk.__file__).parent
PYPROJECT = PACKAGE.parent.parent / "pyproject.toml"
BIN = Path(sys.executable).parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's package and its pyproject.toml (the contracts, ruff's rules)."""
    shutil.copytree(
        PACKAGE, tmp_path / "src" / "postdesk", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    # The copy comes first on the path, so import-linter reads it rather than the installed one.
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    return subprocess.run(
        [BIN / "lint-imports", "--no-cache"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_the_layers_hold(project):
    result = lint_imports(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # The ledger reading mail's tables: billing is below mail.
        ("billing/selectors.py", "from postdesk.mail.models import Mailbox", "postdesk.billing"),
        # An adapter reaching into a domain app: dataplane is below tenancy.
        ("dataplane/render.py", "import postdesk.tenancy.models", "postdesk.dataplane"),
        # A domain app calling a workflow, hidden in a function: still an import.
        (
            "mail/services.py",
            "def _late():\n    from postdesk.workflows import clients",
            "postdesk.mail",
        ),
    ],
)
def test_an_upward_import_breaks_the_contract(project, module, line, broken):
    append(project / "src" / "postdesk" / module, f"\n\n{line}  # noqa\n")
    result = lint_imports(project)
    assert result.returncode == 1, result.stdout
    assert "0 kept, 1 broken" in result.stdout
    assert f"{broken} is not allowed to import" in result.stdout


def test_an_import_inside_a_function_is_refused_by_ruff(project):
    module = project / "src" / "postdesk" / "billing" / "selectors.py"
    append(
        module,
        "\n\ndef _late():\n    from postdesk.errors import NotFound\n\n    return NotFound\n",
    )
    result = subprocess.run(
        [BIN / "ruff", "check", "--no-cache", str(module)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout
    assert "PLC0415" in result.stdout
