"""What OpenDKIM is told about the panel's database (its DSN has no quoting, and its SQLite
driver joins two slash-free parts): refused with a reason rather than rendered broken."""

from __future__ import annotations

import pytest

from postdesk.dataplane.render import RenderError, opendkim_dsn


def test_a_sqlite_database_is_named_from_its_directory():
    dsn, directory = opendkim_dsn({"engine": "sqlite", "path": "/var/lib/postdesk/db.sqlite3"})
    assert directory == "/var/lib/postdesk"
    # OpenDBX opens HOST + DBASE joined: "d" + "b.sqlite3", relative to BaseDirectory.
    assert dsn == "sqlite3://d/b.sqlite3"


def test_a_postgresql_database_with_and_without_a_password():
    db = {"engine": "pgsql", "host": "10.0.0.5", "port": 5432, "name": "postdesk"}
    assert opendkim_dsn({**db, "user": "mail", "password": "s3cret"}) == (
        "pgsql://mail:s3cret@5432+10.0.0.5/postdesk",
        "",
    )
    assert opendkim_dsn({**db, "user": "mail", "password": ""})[0] == (
        "pgsql://mail@5432+10.0.0.5/postdesk"
    )


@pytest.mark.parametrize(
    "db",
    [
        {"engine": "sqlite", "path": "/var/lib/postdesk/a"},
        {"engine": "sqlite", "path": "/var/lib/postdesk/db+1.sqlite3"},
        {
            "engine": "pgsql",
            "host": "db",
            "port": 5432,
            "name": "postdesk",
            "user": "mail",
            "password": "pa:ss@word",
        },
    ],
)
def test_names_opendkim_cannot_carry_are_refused(db):
    with pytest.raises(RenderError, match="OpenDKIM cannot"):
        opendkim_dsn(db)
