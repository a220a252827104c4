"""`postdesk token`, driven as a script would: real processes, the token alone on stdout,
one-line errors on stderr, and the database holding only a hash."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.cli import assert_fails, assert_ok, run_postdesk

pytestmark = pytest.mark.own_database

TOKEN_RE = re.compile(r"pd_([a-z0-9]{8})_([A-Za-z0-9_-]{43})")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tokens")
    assert_ok(run_postdesk(path, "migrate", "--noinput"))
    assert_ok(run_postdesk(path, "client", "create", "Acme"))
    result = run_postdesk(
        path,
        *("user", "create", "boss@acme.example", "--client", "Acme", "--role", "owner"),
        input="Vq7!rTz#Lp2wXk-long\n",
    )
    assert_ok(result)
    return path


def rows(data: Path) -> dict[str, tuple]:
    with closing(sqlite3.connect(data / "postdesk.sqlite3")) as db:
        return {
            r[0]: r[1:]
            for r in db.execute(
                "SELECT prefix, secret_hash, scope, operator_name, expires_at, revoked_at "
                "FROM api_apitoken"
            )
        }


def create(data: Path, *args: str) -> tuple[str, str]:
    result = run_postdesk(data, "token", "create", *args)
    assert_ok(result)
    assert result.stderr == ""
    # Exactly the token, one line: `TOKEN=$(postdesk token create …)` captures it.
    match = TOKEN_RE.fullmatch(result.stdout.rstrip("\n"))
    assert match and result.stdout.count("\n") == 1, result.stdout
    return match.group(1), match.group(2)


def test_personal_token_is_printed_once_and_stored_hashed(data):
    prefix, secret = create(data, "BOSS@acme.example", "--scope", "write", "--expires", "30")
    secret_hash, scope, operator, expires_at, revoked_at = rows(data)[prefix]
    assert secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert (scope, operator, revoked_at) == ("write", "", None)
    assert expires_at is not None
    assert secret.encode() not in (data / "postdesk.sqlite3").read_bytes()

    listing = run_postdesk(data, "token", "list")
    assert_ok(listing)
    [line] = [x for x in listing.stdout.splitlines() if x.startswith(prefix)]
    assert "boss@acme.example" in line and "write" in line and "active" in line
    assert secret not in listing.stdout


def test_default_scope_is_read_and_no_expiry(data):
    prefix, _secret = create(data, "boss@acme.example")
    _hash, scope, _op, expires_at, _rev = rows(data)[prefix]
    assert (scope, expires_at) == ("read", None)


def test_provisioning_token_and_revocation(data):
    prefix, _secret = create(data, "--operator", "billing", "--scope", "write")
    assert rows(data)[prefix][2] == "billing"
    result = run_postdesk(data, "token", "revoke", prefix)
    assert_ok(result)
    assert result.stdout.strip() == f"revoked token {prefix} (operator:billing)"
    assert rows(data)[prefix][4] is not None
    listing = run_postdesk(data, "token", "list").stdout
    assert any(x.startswith(prefix) and x.endswith("revoked") for x in listing.splitlines())


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["create", "nobody@acme.example"], "not_found"),
        (["create", "boss@acme.example", "--expires", "0"], "expires_invalid"),
        (["create", "boss@acme.example", "--operator", "billing"], "usage"),
        (["create"], "usage"),
        (["create", "boss@acme.example", "--scope", "admin"], "usage"),
        (["create", "--operator", "   "], "operator_name_invalid"),
        (["revoke", "zzzzzzzz"], "not_found"),
    ],
)
def test_errors_are_one_line(data, args, code):
    before = rows(data)
    line = assert_fails(run_postdesk(data, "token", *args), code)
    assert "pd_" not in line
    assert rows(data) == before
