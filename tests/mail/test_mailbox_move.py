"""Moving a mailbox between backends (#19 item 4, docs/scale.md "Moving a mailbox"): the
operator's service, command and admin action, the move's states, and the task its old home's
worker runs. Dovecot's dsync cannot run here (no second backend): the copies are a stand-in
recording what the views said at each; tests/dataplane/test_fleet_move.py runs the real one.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from postdesk.dataplane import provisioner, routing
from postdesk.errors import InvalidInput, NotFound, PermissionDenied
from postdesk.mail import tasks
from postdesk.mail.choices import MoveState
from postdesk.mail.hosts import host_add, host_drain, mailbox_move, mailbox_moves, tasks_pending
from postdesk.mail.models import Mailbox, MailboxMove
from postdesk.mail.services import mailbox_create
from tests.conftest import GOOD_PASSWORD
from tests.mail.test_task_queues import run_worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def anna(operator, domain) -> Mailbox:
    """anna lives on b1; b2 is the other backend, edge an MX and proxy."""
    host_add(actor=operator, name="edge", address="10.77.0.1", roles=["mx", "proxy"])
    host_add(actor=operator, name="b1", address="10.77.0.2", roles=["backend"])
    mailbox = mailbox_create(actor=operator, domain=domain, username="anna", password=GOOD_PASSWORD)
    host_add(actor=operator, name="b2", address="10.77.0.3", roles=["backend"])
    assert mailbox.home.name == "b1"
    return mailbox


def _moving(address: str) -> bool:
    """What the daemons read: dataplane_mailboxes.moving."""
    local_part, domain = address.split("@")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT moving FROM dataplane_mailboxes WHERE local_part = %s AND domain = %s",
            [local_part, domain],
        )
        return bool(cursor.fetchone()[0])


@pytest.fixture
def dsync(monkeypatch):
    """Stand-ins for doveadm (backup, kick): each call, with whether the mailbox was locked."""
    calls: list[tuple[str, str, bool]] = []

    def copy(address: str, destination: str) -> None:
        calls.append(("copy", destination, _moving(address)))

    def kick(address: str) -> None:
        calls.append(("kick", address, _moving(address)))

    monkeypatch.setattr(provisioner, "copy_mailbox", copy)
    monkeypatch.setattr(provisioner, "kick_sessions", kick)
    monkeypatch.setattr(tasks, "MOVE_SETTLE_SECONDS", 0)
    return calls


def test_a_move_is_queued_on_the_old_homes_queue_and_shown_pending(operator, anna):
    move = mailbox_move(actor=operator, address="Anna@Example.com", to="b2")
    assert (move.state, move.source.name, move.target.name) == (MoveState.QUEUED, "b1", "b2")
    [task] = [t for t in tasks_pending(actor=operator) if t.task == "mailbox_move_run"]
    assert (task.host, task.mailbox) == ("b1", "anna@example.com")
    [row] = mailbox_moves(actor=operator)
    assert (row.mailbox, row.source, row.target, row.state) == (
        "anna@example.com",
        "b1",
        "b2",
        "queued",
    )
    assert not _moving("anna@example.com")  # nothing locked before the final copy


@pytest.mark.parametrize(
    ("address", "to", "error", "words"),
    [
        ("nobody@example.com", "b2", NotFound, "No mailbox nobody@example.com"),
        ("anna@example.com", "b9", NotFound, "No mail host is named b9"),
        ("anna@example.com", "edge", InvalidInput, "edge is not an active backend"),
        ("anna@example.com", "b1", InvalidInput, "anna@example.com already lives on b1"),
    ],
)
def test_a_move_that_cannot_be_is_refused_with_why(operator, anna, address, to, error, words):
    with pytest.raises(error, match=words):
        mailbox_move(actor=operator, address=address, to=to)
    assert not MailboxMove.objects.exists()


def test_a_draining_backend_takes_no_move_and_one_move_at_a_time(operator, anna):
    host_drain(actor=operator, name="b2")
    with pytest.raises(InvalidInput, match="b2 is not an active backend"):
        mailbox_move(actor=operator, address="anna@example.com", to="b2")
    host_add(actor=operator, name="b3", address="10.77.0.4", roles=["backend"])
    mailbox_move(actor=operator, address="anna@example.com", to="b3")
    with pytest.raises(InvalidInput, match="already being moved"):
        mailbox_move(actor=operator, address="anna@example.com", to="b3")
    assert MailboxMove.objects.count() == 1


def test_only_the_operator_moves_a_mailbox(owner, anna):
    with pytest.raises(PermissionDenied):
        mailbox_move(actor=owner, address="anna@example.com", to="b2")
    with pytest.raises(PermissionDenied):
        mailbox_moves(actor=owner)


@pytest.mark.django_db(transaction=True)  # the worker commits each step, as in production
def test_the_move_copies_live_then_locked_then_switches_home_and_removes_the_old_copy(
    operator, anna, dsync, settings, tmp_path
):
    settings.POSTDESK_VMAIL_DIR = str(tmp_path)  # b1's worker's own disk
    old_copy = tmp_path / "example.com" / anna.storage_id.hex
    (old_copy / "Maildir" / "cur").mkdir(parents=True)
    move = mailbox_move(actor=operator, address="anna@example.com", to="b2")
    run_worker("host-b1")  # the old home's worker
    # The first copy while it works, then sessions kicked and a last copy while it is locked.
    assert dsync == [
        ("copy", "10.77.0.3", False),
        ("kick", "anna@example.com", True),
        ("copy", "10.77.0.3", True),
    ]
    move.refresh_from_db()
    anna.refresh_from_db()
    assert (move.state, move.last_error, anna.home.name) == (MoveState.DONE, "", "b2")
    assert move.started_at and move.finished_at
    assert not _moving("anna@example.com")  # the lock ended with the switch
    # The views route it to its new home at once.
    source = "dataplane_mailboxes WHERE local_part = 'anna' AND domain = 'example.com'"
    with connection.cursor() as cursor:
        cursor.execute(routing.transport_query(source, routing.fleet_host("edge"), 24))
        assert cursor.fetchall() == [("lmtp:inet:[10.77.0.3]:24",)]
    # The old copy is removed by b1's worker, on its queue, once the switch is done.
    [cleanup] = DBTaskResult.objects.filter(task_path__endswith="mailbox_storage_remove")
    assert (cleanup.queue_name, cleanup.status) == ("host-b1", "SUCCESSFUL")
    assert not old_copy.exists() and old_copy.parent.exists()
    [row] = mailbox_moves(actor=operator)
    assert row.state == "done"


@pytest.mark.django_db(transaction=True)
def test_a_failed_copy_leaves_the_mailbox_on_its_old_home_unlocked(
    operator, anna, dsync, monkeypatch
):
    def refused(address: str, destination: str) -> None:
        if dsync:  # the final copy, locked
            raise provisioner.ProvisionerUnavailable("doveadm backup failed: exit code 75")
        dsync.append(("copy", destination, _moving(address)))

    monkeypatch.setattr(provisioner, "copy_mailbox", refused)
    move = mailbox_move(actor=operator, address="anna@example.com", to="b2")
    run_worker("host-b1")  # the old home's worker
    move.refresh_from_db()
    anna.refresh_from_db()
    assert (move.state, anna.home.name) == (MoveState.FAILED, "b1")
    assert move.last_error == "doveadm backup failed: exit code 75"
    assert not _moving("anna@example.com")  # its mail and logins go on at its old home
    assert not DBTaskResult.objects.filter(task_path__endswith="mailbox_storage_remove").exists()
    # Another move may be tried.
    assert mailbox_move(actor=operator, address="anna@example.com", to="b2").state == "queued"


def test_the_command_moves_and_lists_and_says_what_is_wrong_in_one_line(anna, capsys):
    out = StringIO()
    call_command("mailbox", "move", "anna@example.com", "--to", "b2", stdout=out)
    assert out.getvalue().strip() == (
        "move of anna@example.com from b1 to b2 queued: b1's worker runs it "
        "(`mailbox moves`, `tasks pending`)"
    )
    out = StringIO()
    call_command("mailbox", "moves", "--json", stdout=out)
    [row] = json.loads(out.getvalue())
    assert {key: row[key] for key in ("mailbox", "from", "to", "state")} == {
        "mailbox": "anna@example.com",
        "from": "b1",
        "to": "b2",
        "state": "queued",
    }


def test_the_admin_moves_the_selected_mailboxes_to_a_backend(staff, anna):
    url = reverse("admin:mail_mailbox_changelist")
    page = staff.get(url).content.decode()
    assert "Move to b2" in page and "Move to edge" not in page  # active backends only
    response = staff.post(url, {"action": "move_to_b2", "_selected_action": [anna.pk]}, follow=True)
    assert "1 move to b2 queued." in response.content.decode()
    assert MailboxMove.objects.get().target.name == "b2"
    # Again: refused, and said why.
    response = staff.post(url, {"action": "move_to_b2", "_selected_action": [anna.pk]}, follow=True)
    assert "already being moved" in response.content.decode()
    moves = staff.get(reverse("admin:mail_mailboxmove_changelist")).content.decode()
    assert "anna@example.com" in moves and "Queued" in moves
