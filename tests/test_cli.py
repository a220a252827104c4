"""The operator CLI, driven as a script would: real `postdesk` processes, exit codes, one-line
errors on stderr, passwords on stdin only, results read back through `address list --json`.

Each test gets its own copy of a SQLite database migrated once per module.
"""

from __future__ import annotations

import copy
import json
import shutil
import sqlite3
import subprocess
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.hashers import check_password

from postdesk.dataplane.passwords import verify_password
from postdesk.mail.passwords import password_checks
from tests.cli import Runner, assert_fails, assert_ok, run_postdesk

GOOD_PASSWORD = "Vq7!rTz#Lp2wXk"
OTHER_PASSWORD = "Hm4^wQs9=Ljd8Pz"
DOMAIN = "example.com"
DB_NAME = "postdesk.sqlite3"


pytestmark = pytest.mark.own_database


def _copy_data(source: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for file in source.glob(DB_NAME + "*"):  # with -wal/-shm, should any be left
        shutil.copy2(file, target / file.name)
    return target


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("migrated")
    result = run_postdesk(data, "migrate", "--noinput")
    assert_ok(result)
    return data


@pytest.fixture(scope="module")
def seeded(migrated, tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """A client with example.com, two mailboxes with opposite settings, and a forward; and
    their rows as `address list --json` shows them."""
    data = _copy_data(migrated, tmp_path_factory.mktemp("seeded"))
    steps = [
        (["client", "create", "Acme"], None),
        (["domain", "add", DOMAIN, "--client", "Acme"], None),
        (
            [
                *("mailbox", "create", "base@example.com", "--alias", "b1", "--quota", "100"),
                *("--forward", "one@example.net", "--mapi", "--keep-original-sender"),
            ],
            GOOD_PASSWORD + "\n",
        ),
        (
            [
                *("mailbox", "create", "other@example.com", "--generate-password", "--eas"),
                *("--forward", "two@example.net", "--delete-after-forwarding"),
            ],
            None,
        ),
        (["forward", "create", "team@example.com", "lead@partner.example.org"], None),
    ]
    for args, stdin in steps:
        assert_ok(run_postdesk(data, *args, input=stdin))
    result = run_postdesk(data, "address", "list", DOMAIN, "--json")
    assert_ok(result)
    rows = {row["address"]: row for row in json.loads(result.stdout)}
    flags = ("eas", "mapi", "delete_after_forwarding", "keep_original_sender")
    # The toggle tests below rely on these opposite starting points.
    assert [rows["base@example.com"][f] for f in flags] == [False, True, False, True]
    assert [rows["other@example.com"][f] for f in flags] == [True, False, True, False]
    return data, rows


@pytest.fixture
def data_dir(seeded, tmp_path) -> Path:
    return _copy_data(seeded[0], tmp_path / "data")


def make_runner(data_dir: Path) -> Runner:
    def pd(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return run_postdesk(data_dir, *args, input=input)

    return pd


@pytest.fixture
def pd(data_dir) -> Runner:
    return make_runner(data_dir)


@pytest.fixture
def base_rows(seeded) -> dict[str, dict]:
    return copy.deepcopy(seeded[1])


def listing(pd: Runner, *args: str, domain: str = DOMAIN) -> list[dict]:
    result = pd("address", "list", domain, "--json", *args)
    assert_ok(result)
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    return rows


def rows_by_address(pd: Runner, *args: str) -> dict[str, dict]:
    return {row["address"]: row for row in listing(pd, *args)}


def query(data_dir: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(sqlite3.connect(data_dir / DB_NAME)) as db:
        return db.execute(sql, params).fetchall()


def stored_hash(data_dir: Path, email: str) -> str:
    local_part, domain = email.split("@")
    [(value,)] = query(
        data_dir,
        "SELECT m.password_hash FROM mail_mailbox m JOIN mail_address a ON m.address_id = a.id"
        " JOIN mail_domain d ON a.domain_id = d.id WHERE a.local_part = ? AND d.name = ?",
        (local_part, domain),
    )
    return value


def address_kinds(data_dir: Path) -> dict[str, str]:
    """local part → kind, straight from the database: cheaper than a listing to show that a
    refused command changed nothing."""
    return dict(query(data_dir, "SELECT local_part, kind FROM mail_address"))


def audit_text(data_dir: Path) -> str:
    return "\n".join(repr(row) for row in query(data_dir, "SELECT * FROM audit_auditevent"))


def assert_never_shown(password: str, *results: subprocess.CompletedProcess) -> None:
    for result in results:
        assert password not in result.stdout
        assert password not in result.stderr


def generated_password(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stdout.splitlines() if line.startswith("password: ")]
    assert len(lines) == 1, result.stdout
    password = lines[0].removeprefix("password: ")
    assert result.stdout.count(password) == 1
    return password


# --- Setting up: migrate, client, domain, user --------------------------------------------------


def test_migrate_client_and_domain(migrated, tmp_path):
    pd = make_runner(_copy_data(migrated, tmp_path / "data"))

    assert_ok(pd("migrate", "--noinput"))  # again: nothing to do, still exit 0

    result = pd("client", "create", "Acme")
    assert_ok(result)
    assert "Acme" in result.stdout
    assert_fails(pd("client", "create", "Acme"), "client_exists")

    assert_ok(pd("domain", "add", DOMAIN, "--client", "Acme"))
    assert listing(pd) == []
    assert_fails(pd("domain", "add", DOMAIN, "--client", "Acme"), "domain_taken")
    assert_fails(pd("domain", "add", "example.org", "--client", "Nobody"), "not_found")


def test_user_create_reads_the_password_from_stdin(pd, data_dir):
    result = pd(
        "user", "create", "owner@example.org", "--client", "Acme", "--role", "owner",
        input=GOOD_PASSWORD + "\n",
    )  # fmt: skip
    assert_ok(result)
    assert "owner@example.org" in result.stdout
    assert "owner" in result.stdout
    assert_never_shown(GOOD_PASSWORD, result)
    [(password, role)] = query(
        data_dir,
        "SELECT u.password, m.role FROM tenancy_user u"
        " JOIN tenancy_membership m ON m.user_id = u.id WHERE u.email = ?",
        ("owner@example.org",),
    )
    assert role == "owner"
    assert check_password(GOOD_PASSWORD, password)
    assert GOOD_PASSWORD not in audit_text(data_dir)

    again = pd(
        "user", "create", "owner@example.org", "--client", "Acme", "--role", "admin",
        input=GOOD_PASSWORD + "\n",
    )  # fmt: skip
    assert_fails(again)
    assert_never_shown(GOOD_PASSWORD, again)


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        pytest.param(["--role", "boss"], GOOD_PASSWORD + "\n", id="bad-role"),
        pytest.param(["--role", "viewer"], "Zq9xw!\n", id="weak-password"),
        pytest.param(["--role", "viewer"], None, id="no-password"),
    ],
)
def test_user_create_refused(pd, data_dir, args, stdin):
    result = pd("user", "create", "viewer@example.org", "--client", "Acme", *args, input=stdin)
    assert_fails(result)
    if stdin:
        assert_never_shown(stdin.strip(), result)
    assert query(data_dir, "SELECT 1 FROM tenancy_user WHERE email = 'viewer@example.org'") == []


# --- One-line usage errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["mailbox"], id="missing-action"),
        pytest.param(["client"], id="client-missing-action"),
        pytest.param(["mailbox", "frob", "base@example.com"], id="unknown-action"),
        pytest.param(["mailbox", "delete", "base@example.com"], id="delete-without-yes"),
        pytest.param(["forward", "delete", "team@example.com"], id="forward-delete-without-yes"),
        pytest.param(["mailbox", "edit", "base@example.com", "--colour", "red"], id="unknown-flag"),
        pytest.param(["mailbox", "create", "x@example.com", "--quota", "lots"], id="bad-int"),
        pytest.param(["mailbox", "create", "--generate-password"], id="missing-address"),
        pytest.param(["forward", "create", "new@example.com"], id="forward-without-dest"),
        pytest.param(
            ["mailbox", "edit", "base@example.com", "--forward", "x@example.net", "--no-forward"],
            id="forward-and-no-forward",
        ),
        pytest.param(
            [
                *("mailbox", "edit", "base@example.com"),
                *("--delete-after-forwarding", "--keep-after-forwarding"),
            ],
            id="both-toggles",
        ),
        pytest.param(["address", "list", DOMAIN, "--type", "alias"], id="bad-type"),
        pytest.param(["address", "list", DOMAIN, "--sort", "size"], id="bad-sort"),
        pytest.param(["domain", "add", "example.org"], id="domain-without-client"),
    ],
)
def test_usage_errors_are_one_line(pd, args):
    assert_fails(pd(*args), "usage")


def test_usage_error_names_the_choices_plainly(pd):
    """A script's author reads the valid values from the error line."""
    line = assert_fails(pd("address", "list", DOMAIN, "--type", "alias"), "usage")
    assert "'mailbox'" in line
    assert "'forward'" in line


@pytest.mark.parametrize("action", ["create", "password"])
def test_no_password_is_accepted_from_argv(pd, data_dir, action):
    before = stored_hash(data_dir, "base@example.com")
    address = "new@example.com" if action == "create" else "base@example.com"
    result = pd("mailbox", action, address, "--password", OTHER_PASSWORD)
    assert_fails(result, "usage")
    assert OTHER_PASSWORD not in result.stderr  # the refusal does not echo it either
    assert "new" not in address_kinds(data_dir)
    assert stored_hash(data_dir, "base@example.com") == before


# --- mailbox create -------------------------------------------------------------------------------


def test_mailbox_create_with_every_option(pd, data_dir):
    result = pd(
        *("mailbox", "create", "Full.Box@Example.COM", "--alias", "fb", "--alias", "FBox"),
        *("--quota", "2048", "--eas", "--mapi"),
        *("--forward", "a@example.net", "--forward", "b@example.org"),
        *("--delete-after-forwarding", "--keep-original-sender"),
        input=GOOD_PASSWORD + "\n",
    )
    assert_ok(result)
    assert "full.box@example.com" in result.stdout
    assert_never_shown(GOOD_PASSWORD, result)

    plain = pd("mailbox", "create", "plain@example.com", input=OTHER_PASSWORD + "\n")
    assert_ok(plain)
    assert_never_shown(OTHER_PASSWORD, plain)

    rows = rows_by_address(pd, "--type", "mailbox")
    assert rows["full.box@example.com"] == {
        "address": "full.box@example.com",
        "type": "mailbox",
        "aliases": ["fb@example.com", "fbox@example.com"],
        "destinations": ["a@example.net", "b@example.org"],
        "quota_mb": 2048,
        "used_bytes": 0,
        "eas": True,
        "mapi": True,
        "delete_after_forwarding": True,
        "keep_original_sender": True,
        "growth_7d_bytes": 0,
    }
    plain_row = rows["plain@example.com"]
    assert (plain_row["aliases"], plain_row["destinations"], plain_row["quota_mb"]) == ([], [], 0)
    assert not any(
        plain_row[k] for k in ("eas", "mapi", "delete_after_forwarding", "keep_original_sender")
    )

    # The password taken from stdin is the one stored, hashed; it is in no log.
    assert verify_password(GOOD_PASSWORD, stored_hash(data_dir, "full.box@example.com"))
    assert verify_password(OTHER_PASSWORD, stored_hash(data_dir, "plain@example.com"))
    log = audit_text(data_dir)
    assert "full.box@example.com" in log
    assert GOOD_PASSWORD not in log
    assert OTHER_PASSWORD not in log


def test_mailbox_create_with_a_generated_password(pd, data_dir):
    result = pd("mailbox", "create", "gen@example.com", "--generate-password")  # stdin empty
    assert_ok(result)
    password = generated_password(result)
    assert all(c.passed for c in password_checks(password, password, username="gen", domain=DOMAIN))
    assert verify_password(password, stored_hash(data_dir, "gen@example.com"))
    assert password not in audit_text(data_dir)
    assert "gen@example.com" in rows_by_address(pd)


def test_the_password_is_one_line_of_stdin(pd, data_dir):
    # A CRLF line end (a Windows script) is not part of the password; later lines are ignored.
    result = pd(
        "mailbox", "create", "crlf@example.com", input=f"{GOOD_PASSWORD}\r\n{OTHER_PASSWORD}\n"
    )
    assert_ok(result)
    assert_never_shown(GOOD_PASSWORD, result)
    assert verify_password(GOOD_PASSWORD, stored_hash(data_dir, "crlf@example.com"))


@pytest.mark.parametrize(
    ("stdin", "code"),
    [
        pytest.param("Sh0rt!\n", "password_weak", id="too-short"),
        pytest.param("alllowercase-and-long1\n", "password_weak", id="no-uppercase"),
        pytest.param("Weak!Newbox-1234\n", "password_weak", id="contains-username"),
        pytest.param("Weak!Example-1234\n", "password_weak", id="contains-domain-label"),
        pytest.param("\n", None, id="empty-line"),
        pytest.param(None, None, id="no-stdin"),
    ],
)
def test_mailbox_create_refuses_a_weak_or_missing_password(pd, data_dir, stdin, code):
    result = pd("mailbox", "create", "newbox@example.com", input=stdin)
    assert_fails(result, code)
    if stdin and stdin.strip():
        assert_never_shown(stdin.strip(), result)
    assert "newbox" not in address_kinds(data_dir)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        pytest.param(["base@example.com"], "address_taken", id="mailbox-address"),
        pytest.param(["BASE@Example.com"], "address_taken", id="mailbox-address-any-case"),
        pytest.param(["b1@example.com"], "address_taken", id="an-alias"),
        pytest.param(["team@example.com"], "address_taken", id="a-forward"),
        pytest.param(["new@example.com", "--alias", "B1"], "address_taken", id="alias-taken"),
        pytest.param(["new@example.com", "--alias", "team"], "address_taken", id="alias-forward"),
        pytest.param(["new@nowhere.example.org"], "not_found", id="unknown-domain"),
        pytest.param(["two..dots@example.com"], None, id="bad-local-part"),
        pytest.param(["new@example.com", "--forward", "new@example.com"], None, id="self-forward"),
        pytest.param(["new@example.com", "--forward", "not-an-email"], None, id="bad-destination"),
        pytest.param(
            ["new@example.com", "--forward", "x@example.net", "--forward", "X@example.net"],
            None,
            id="duplicate-destination",
        ),
        pytest.param(["new@example.com", "--quota", "-1"], None, id="negative-quota"),
    ],
)
def test_mailbox_create_refused(pd, data_dir, args, code):
    before = address_kinds(data_dir)
    result = pd("mailbox", "create", *args, input=OTHER_PASSWORD + "\n")
    line = assert_fails(result, code)
    assert_never_shown(OTHER_PASSWORD, result)
    if code == "address_taken":
        assert "@example.com" in line
    assert address_kinds(data_dir) == before


def test_mailbox_create_says_every_error_at_once(pd, data_dir):
    """A taken name and a bad quota on the one line, not one per attempt (#14)."""
    before = address_kinds(data_dir)
    result = pd(
        "mailbox", "create", "base@example.com", "--quota", "-1", input=OTHER_PASSWORD + "\n"
    )
    line = assert_fails(result)
    assert "base@example.com is already used by a mailbox." in line
    assert "Enter a whole number of megabytes" in line
    assert address_kinds(data_dir) == before


# --- mailbox edit ---------------------------------------------------------------------------------


EDITS = [
    pytest.param("base", ["--quota", "512"], {"quota_mb": 512}, id="quota"),
    pytest.param("base", ["--quota", "0"], {"quota_mb": 0}, id="quota-plan-only"),
    pytest.param(
        "base",
        ["--add-alias", "Sales", "--add-alias", "billing"],
        {"aliases": ["b1@example.com", "billing@example.com", "sales@example.com"]},
        id="add-alias",
    ),
    pytest.param("base", ["--remove-alias", "b1"], {"aliases": []}, id="remove-alias"),
    pytest.param(
        "base",
        ["--forward", "z@example.org", "--forward", "y@example.org"],
        {"destinations": ["z@example.org", "y@example.org"]},
        id="forward-replaces",
    ),
    pytest.param("base", ["--no-forward"], {"destinations": []}, id="no-forward"),
    # The toggles, each way: base starts with EAS off, MAPI on, delete-after-forwarding off
    # and keep-original-sender on; other starts with the opposite of each.
    pytest.param(
        "base",
        ["--eas", "--no-mapi", "--delete-after-forwarding", "--no-keep-original-sender"],
        {
            "eas": True,
            "mapi": False,
            "delete_after_forwarding": True,
            "keep_original_sender": False,
        },
        id="eas-no-mapi-delete-after-no-keep-sender",
    ),
    pytest.param(
        "other",
        ["--no-eas", "--mapi", "--keep-after-forwarding", "--keep-original-sender"],
        {
            "eas": False,
            "mapi": True,
            "delete_after_forwarding": False,
            "keep_original_sender": True,
        },
        id="no-eas-mapi-keep-after-keep-sender",
    ),
]


@pytest.mark.parametrize(("name", "args", "changes"), EDITS)
def test_mailbox_edit_changes_those_settings_only(pd, base_rows, name, args, changes):
    address = f"{name}@example.com"
    result = pd("mailbox", "edit", address, *args)
    assert_ok(result)
    assert address in result.stdout
    base_rows[address].update(changes)
    assert rows_by_address(pd) == base_rows


def test_mailbox_edit_refused(pd, base_rows):
    for args, code in [
        (["--add-alias", "team"], "address_taken"),  # a forward
        (["--add-alias", "other"], "address_taken"),  # a mailbox
        (["--add-alias", "b1"], None),  # already its alias
        (["--remove-alias", "nope"], None),  # not its alias
        (["--forward", "base@example.com"], None),  # itself
        (["--forward", "b1@example.com"], None),  # its own alias
        (["--forward", "x@example.net", "--forward", "x@example.net"], None),
        (["--quota", "-5"], None),
    ]:
        assert_fails(pd("mailbox", "edit", "base@example.com", *args), code)
    assert rows_by_address(pd) == base_rows


def test_mailbox_edit_unknown_mailbox(pd):
    assert_fails(pd("mailbox", "edit", "ghost@example.com", "--eas"), "not_found")
    assert_fails(pd("mailbox", "edit", "team@example.com", "--eas"), "not_found")  # a forward


def test_a_removed_alias_is_reserved(pd):
    assert_ok(pd("mailbox", "edit", "base@example.com", "--remove-alias", "b1"))
    assert rows_by_address(pd)["base@example.com"]["aliases"] == []
    assert listing(pd, "--search", "b1@") == []

    attempts = [
        pd("mailbox", "create", "b1@example.com", "--generate-password"),
        pd("mailbox", "edit", "other@example.com", "--add-alias", "b1"),
        pd("forward", "create", "b1@example.com", "x@example.net"),
    ]
    for result in attempts:
        line = assert_fails(result, "address_taken")
        assert "b1@example.com" in line
    rows = rows_by_address(pd)
    assert "b1@example.com" not in rows
    assert rows["other@example.com"]["aliases"] == []


# --- mailbox delete and password ------------------------------------------------------------------


def test_mailbox_delete(pd, base_rows):
    result = pd("mailbox", "delete", "base@example.com", "--yes")
    assert_ok(result)
    assert "base@example.com" in result.stdout
    del base_rows["base@example.com"]
    assert rows_by_address(pd) == base_rows  # its alias went with it

    assert_fails(pd("mailbox", "delete", "base@example.com", "--yes"), "not_found")
    # The deleted mailbox's alias stays reserved like any removed alias.
    assert_fails(pd("mailbox", "create", "b1@example.com", "--generate-password"), "address_taken")


def test_mailbox_password_from_stdin(pd, data_dir):
    result = pd("mailbox", "password", "base@example.com", input=OTHER_PASSWORD + "\n")
    assert_ok(result)
    assert_never_shown(OTHER_PASSWORD, result)
    new_hash = stored_hash(data_dir, "base@example.com")
    assert verify_password(OTHER_PASSWORD, new_hash)
    assert not verify_password(GOOD_PASSWORD, new_hash)

    for weak in ("Sh0rt!", "Base-is-my-name-1!", "alllowercase-and-long1"):
        refused = pd("mailbox", "password", "base@example.com", input=weak + "\n")
        assert_fails(refused, "password_weak")
        assert_never_shown(weak, refused)
    assert_fails(pd("mailbox", "password", "base@example.com"))  # nothing on stdin
    assert stored_hash(data_dir, "base@example.com") == new_hash

    missing = pd("mailbox", "password", "ghost@example.com", input=OTHER_PASSWORD + "\n")
    assert_fails(missing, "not_found")
    assert_never_shown(OTHER_PASSWORD, missing)

    events = query(
        data_dir,
        "SELECT source, target FROM audit_auditevent WHERE action = 'mailbox.password'",
    )
    assert events == [("cli", "base@example.com")]
    assert OTHER_PASSWORD not in audit_text(data_dir)


def test_mailbox_password_generated(pd, data_dir):
    result = pd("mailbox", "password", "base@example.com", "--generate-password")
    assert_ok(result)
    password = generated_password(result)
    assert all(
        c.passed for c in password_checks(password, password, username="base", domain=DOMAIN)
    )
    assert verify_password(password, stored_hash(data_dir, "base@example.com"))
    assert password not in audit_text(data_dir)


def test_no_password_is_stored_in_clear(pd, data_dir):
    assert_ok(pd("mailbox", "create", "clear@example.com", input=GOOD_PASSWORD + "\n"))
    assert_ok(pd("mailbox", "password", "clear@example.com", input=OTHER_PASSWORD + "\n"))
    contents = b"".join(f.read_bytes() for f in data_dir.glob(DB_NAME + "*"))
    assert GOOD_PASSWORD.encode() not in contents
    assert OTHER_PASSWORD.encode() not in contents
    sources = query(data_dir, "SELECT DISTINCT source FROM audit_auditevent")
    assert sources == [("cli",)]


# --- forwards -------------------------------------------------------------------------------------


def test_forward_create_and_delete(pd, base_rows):
    result = pd("forward", "create", "Info@Example.com", "b@example.net", "a@example.org")
    assert_ok(result)
    assert "info@example.com" in result.stdout
    rows = rows_by_address(pd, "--type", "forward")
    assert rows["info@example.com"]["type"] == "forward"
    assert rows["info@example.com"]["aliases"] == []
    assert rows["info@example.com"]["destinations"] == ["b@example.net", "a@example.org"]

    for args, code in [
        (["info@example.com", "x@example.net"], "address_taken"),
        (["base@example.com", "x@example.net"], "address_taken"),
        (["new@example.com", "new@example.com"], None),
        (["new@example.com", "x@example.net", "x@example.net"], None),
        (["new@example.com", "not-an-email"], None),
    ]:
        assert_fails(pd("forward", "create", *args), code)

    result = pd("forward", "delete", "info@example.com", "--yes")
    assert_ok(result)
    assert rows_by_address(pd) == base_rows
    assert_fails(pd("forward", "delete", "info@example.com", "--yes"), "not_found")
    assert_fails(pd("forward", "delete", "base@example.com", "--yes"), "not_found")  # a mailbox


# --- address list ---------------------------------------------------------------------------------


def test_address_list_json_and_text(pd):
    rows = listing(pd)
    assert [row["address"] for row in rows] == [
        "base@example.com",
        "other@example.com",
        "team@example.com",
    ]
    for row in rows:
        assert {"address", "type", "aliases", "destinations"} <= row.keys()
        assert isinstance(row["aliases"], list)
        assert isinstance(row["destinations"], list)

    text = pd("address", "list", DOMAIN)
    assert_ok(text)
    lines = text.stdout.strip().splitlines()
    assert [line.split("\t")[:2] for line in lines] == [
        ["base@example.com", "mailbox"],
        ["other@example.com", "mailbox"],
        ["team@example.com", "forward"],
    ]
    assert_fails(pd("address", "list", "example.org"), "not_found")


def test_address_list_finds_the_domain_by_the_name_it_was_added_with(pd):
    """Whatever form `domain add` and `mailbox create` accept, `address list` accepts too."""
    assert_ok(pd("domain", "add", "Bücher.example", "--client", "Acme"))
    assert_ok(pd("mailbox", "create", "buch@bücher.example", "--generate-password"))
    expected = ["buch@xn--bcher-kva.example"]
    assert [r["address"] for r in listing(pd, domain="xn--bcher-kva.example")] == expected
    assert [r["address"] for r in listing(pd, domain="EXAMPLE.com")] == [
        r["address"] for r in listing(pd)
    ]
    assert [r["address"] for r in listing(pd, domain="bücher.example")] == expected


def test_address_list_type_filter(pd):
    assert [r["address"] for r in listing(pd, "--type", "mailbox")] == [
        "base@example.com",
        "other@example.com",
    ]
    assert [r["address"] for r in listing(pd, "--type", "forward")] == ["team@example.com"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--search", "BAS"], ["base@example.com"], id="part-of-address"),
        pytest.param(["--search", "b1@exa"], ["base@example.com"], id="part-of-alias"),
        pytest.param(["--search", "partner"], ["team@example.com"], id="part-of-destination"),
        pytest.param(["--search", "two@"], ["other@example.com"], id="mailbox-destination"),
        pytest.param(["--search", "nothing-like-it"], [], id="no-match"),
        pytest.param(
            ["--search", "example.net", "--type", "mailbox"],
            ["base@example.com", "other@example.com"],
            id="with-type",
        ),
        pytest.param(["--search", "base", "--type", "forward"], [], id="with-type-no-match"),
    ],
)
def test_address_list_search(pd, args, expected):
    assert [r["address"] for r in listing(pd, *args)] == expected


def test_address_list_sort_by_storage(pd, data_dir):
    assert_ok(pd("mailbox", "create", "big@example.com", "--generate-password"))
    sizes = {"base": 5 * 1024**2, "other": 900 * 1024**2, "big": 40 * 1024**2}
    with closing(sqlite3.connect(data_dir / DB_NAME)) as db, db:
        for local_part, used in sizes.items():
            db.execute(
                "UPDATE mail_mailbox SET used_bytes = ? WHERE address_id ="
                " (SELECT id FROM mail_address WHERE local_part = ?)",
                (used, local_part),
            )

    rows = listing(pd, "--sort", "storage")
    assert [r["address"] for r in rows] == [
        "other@example.com",
        "big@example.com",
        "base@example.com",
        "team@example.com",  # a forward has no storage: last
    ]
    assert [r["used_bytes"] for r in rows[:3]] == [900 * 1024**2, 40 * 1024**2, 5 * 1024**2]
    assert [r["address"] for r in listing(pd, "--sort", "storage", "--type", "mailbox")] == [
        "other@example.com",
        "big@example.com",
        "base@example.com",
    ]


# --- demo -----------------------------------------------------------------------------------------


def test_demo_is_idempotent_and_prints_a_working_login(migrated, tmp_path):
    data = _copy_data(migrated, tmp_path / "data")
    pd = make_runner(data)

    first = pd("demo")
    assert_ok(first)
    after_first = listing(pd)
    assert after_first
    assert {"mailbox", "forward"} == {row["type"] for row in after_first}
    # Measured as the collector would have: storage and a week's growth to show and sort.
    growth = {row["address"]: row["growth_7d_bytes"] for row in after_first}
    assert growth["jean.tremblay@example.com"] == (4210 - 3020) * 1024**2
    assert growth["comptabilite@example.com"] < 0 and growth["sales@example.com"] == 0

    second = pd("demo")
    assert_ok(second)
    assert listing(pd) == after_first

    # The client has a plan, so the dashboard's billing overview shows an estimate.
    estimate = json.loads(pd("billing", "estimate", "example.com", "--json").stdout)
    assert estimate["currency"] == "CAD" and Decimal(estimate["total"]) > 0

    logins = [line for line in second.stdout.splitlines() if "owner@example.com / " in line]
    assert len(logins) == 1
    email, password = logins[0].split(":", 1)[1].split(" / ")
    [(stored,)] = query(data, "SELECT password FROM tenancy_user WHERE email = ?", (email.strip(),))
    assert check_password(password.strip(), stored)


def test_with_mail_servers_the_demo_leaves_usage_to_the_collector(migrated, tmp_path):
    # Connected (never called here): the collector measures the real use, so no made-up
    # history is seeded that it would then contradict.
    data = _copy_data(migrated, tmp_path / "data")
    pd = make_runner(data)
    connected = {"POSTDESK_DOVEADM_URL": "http://127.0.0.1:9/doveadm/v1"}
    assert_ok(run_postdesk(data, "demo", env=connected))
    rows = listing(pd)
    assert rows and [r["used_bytes"] for r in rows if r["type"] == "mailbox"] == [0, 0, 0, 0], rows


def test_with_a_probe_address_the_demo_creates_the_providers_probe_mailbox(migrated, tmp_path):
    # `./run demo --mail` sets the address, so the dashboard's self-test has its receiver.
    data = _copy_data(migrated, tmp_path / "data")
    pd = make_runner(data)
    probe = {"POSTDESK_PROBE_ADDRESS": "probe@probe.postdesk.test"}
    for _ in range(2):  # idempotent, as the rest of the demo
        result = run_postdesk(data, "demo", env=probe)
        assert_ok(result)
        assert "mails probe@probe.postdesk.test" in result.stdout
    [row] = listing(pd, domain="probe.postdesk.test")
    assert (row["address"], row["type"]) == ("probe@probe.postdesk.test", "mailbox")
    # In a client of the provider's own, not the demo customer's.
    assert query(
        data,
        "SELECT c.name FROM mail_domain d JOIN tenancy_client c ON c.id = d.client_id "
        "WHERE d.name = ?",
        ("probe.postdesk.test",),
    ) == [("Postdesk probe",)]
    # Without it, no probe mailbox and no word of a self-test.
    other = _copy_data(migrated, tmp_path / "other")
    result = run_postdesk(other, "demo")
    assert_ok(result)
    assert "Self-test" not in result.stdout
    assert query(other, "SELECT name FROM tenancy_client WHERE name = 'Postdesk probe'") == []


def test_db_replicas_on_sqlite_lists_none(tmp_path):
    """SQLite has no replicas: an empty list for scripts, one plain line for people."""
    listed = run_postdesk(tmp_path, "db", "replicas", "--json")
    assert_ok(listed)
    assert json.loads(listed.stdout) == []
    text = run_postdesk(tmp_path, "db", "replicas")
    assert_ok(text)
    assert text.stdout == "no replica streams from this database\n"
