"""`postdesk host` as the operator's scripts drive it: real processes, the JSON keys of
`host list --json`, one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli import assert_fails, assert_ok, run_postdesk

pytestmark = pytest.mark.own_database


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("hosts-migrated")
    assert_ok(run_postdesk(data, "migrate", "--noinput"))
    for args in (
        ["client", "create", "Acme"],
        ["domain", "add", "acme.example", "--client", "Acme"],
        ["mailbox", "create", "before@acme.example", "--generate-password"],
    ):
        assert_ok(run_postdesk(data, *args))
    return data


@pytest.fixture
def pd(migrated, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(migrated, data)
    return lambda *args: run_postdesk(data, *args)


def test_add_list_and_drain(pd):
    first = pd("host", "add", "mail1", "--address", "192.0.2.1", "--role", "backend,mx,proxy")
    assert_ok(first)
    assert first.stdout.splitlines() == [
        "added host mail1 (192.0.2.1, backend,mx,proxy)",
        "1 mailbox(es) without a home now live on mail1",
    ]
    assert_ok(pd("host", "add", "mail2", "--address", "2001:db8::2", "--role", "backend"))
    assert_ok(pd("mailbox", "create", "after@acme.example", "--generate-password"))
    drained = pd("host", "drain", "mail1")
    assert_ok(drained)
    assert drained.stdout == "host mail1 is draining: it takes no new mailboxes\n"

    listed = pd("host", "list", "--json")
    assert_ok(listed)
    assert json.loads(listed.stdout) == [
        {
            "name": "mail1",
            "address": "192.0.2.1",
            "roles": ["backend", "mx", "proxy"],
            "state": "draining",
            "mailboxes": 1,
            # "before" was created on the single host: its task is on the default queue.
            "pending": 0,
        },
        {
            "name": "mail2",
            "address": "2001:db8::2",
            "roles": ["backend"],
            "state": "active",
            "mailboxes": 1,
            "pending": 1,  # "after"'s change tracking, for mail2's worker
        },
    ]
    text = pd("host", "list")
    assert_ok(text)
    assert text.stdout.splitlines() == [
        "mail1\t192.0.2.1\tbackend,mx,proxy\tdraining\t1 mailbox(es)\t0 pending",
        "mail2\t2001:db8::2\tbackend\tactive\t1 mailbox(es)\t1 pending",
    ]


def test_errors_are_one_line_and_exit_non_zero(pd):
    assert_ok(pd("host", "add", "mail1", "--address", "192.0.2.1", "--role", "backend"))

    duplicate = assert_fails(
        pd("host", "add", "mail1", "--address", "192.0.2.9", "--role", "mx"), "host_taken"
    )
    bad_ip = assert_fails(
        pd("host", "add", "mail2", "--address", "192.0.2.256", "--role", "mx"),
        "host_address_invalid",
    )
    bad_role = assert_fails(
        pd("host", "add", "mail2", "--address", "192.0.2.2", "--role", "backend,imap"),
        "host_role_invalid",
    )
    unknown = assert_fails(pd("host", "drain", "mail9"), "not_found")

    assert "A mail host named mail1 already exists." in duplicate
    assert "IP address" in bad_ip
    assert "Unknown role imap" in bad_role
    assert "No mail host is named mail9." in unknown
    listed = pd("host", "list", "--json")
    assert [host["name"] for host in json.loads(listed.stdout)] == ["mail1"]


def test_tasks_pending_names_the_host_each_task_waits_for(pd):
    assert_ok(pd("host", "add", "mail2", "--address", "192.0.2.2", "--role", "backend"))
    assert_ok(pd("mailbox", "create", "after@acme.example", "--generate-password"))
    listed = pd("tasks", "pending", "--json")
    assert_ok(listed)
    tasks = json.loads(listed.stdout)
    # "before" was created on the single host (the default queue), "after" on mail2.
    assert [(t["task"], t["mailbox"], t["host"]) for t in tasks] == [
        ("mailbox_changes_track", "before@acme.example", None),
        ("mailbox_changes_track", "after@acme.example", "mail2"),
    ]
    assert set(tasks[0]) == {
        "task",
        "mailbox",
        "host",
        "status",
        "queued_at",
        "age_seconds",
        "attempt",
        "next_try_at",
    }
    assert (tasks[1]["status"], tasks[1]["attempt"], tasks[1]["next_try_at"]) == ("READY", 0, None)
    text = pd("tasks", "pending")
    assert_ok(text)
    assert text.stdout.splitlines()[1].startswith(
        "mailbox_changes_track\tafter@acme.example\tmail2\t"
    )


def test_mailbox_move_queues_shows_pending_and_says_what_is_wrong_in_one_line(pd):
    assert_ok(pd("host", "add", "mail1", "--address", "192.0.2.1", "--role", "backend,mx,proxy"))
    assert_ok(pd("host", "add", "mail2", "--address", "192.0.2.2", "--role", "backend"))
    assert_ok(pd("host", "add", "edge", "--address", "192.0.2.3", "--role", "mx"))
    for args, code in (
        (["ghost@acme.example", "--to", "mail2"], "not_found"),
        (["before@acme.example", "--to", "mail9"], "not_found"),
        (["before@acme.example", "--to", "edge"], "move_host_not_backend"),
        (["before@acme.example", "--to", "mail1"], "move_already_home"),
    ):
        assert_fails(pd("mailbox", "move", *args), code)
    moved = pd("mailbox", "move", "before@acme.example", "--to", "mail2")
    assert_ok(moved)
    assert "queued: mail1's worker runs it" in moved.stdout
    line = assert_fails(pd("mailbox", "move", "before@acme.example", "--to", "mail2"))
    assert line == (
        "error: before@acme.example is already being moved: wait until that move is done or "
        "failed. [move_under_way]"
    )
    pending = json.loads(pd("tasks", "pending", "--json").stdout)
    assert [
        (t["task"], t["mailbox"], t["host"])
        for t in pending
        if t["task"].startswith("mailbox_move")
    ] == [("mailbox_move_run", "before@acme.example", "mail1")]
    hosts = {
        host["name"]: host["pending"] for host in json.loads(pd("host", "list", "--json").stdout)
    }
    assert hosts["mail1"] >= 1
    [row] = json.loads(pd("mailbox", "moves", "--json").stdout)
    assert (row["mailbox"], row["from"], row["to"], row["state"]) == (
        "before@acme.example",
        "mail1",
        "mail2",
        "queued",
    )
