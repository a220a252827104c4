"""Moving a mailbox between backends (#19 item 4, docs/scale.md "Moving a mailbox"): the
operator's service, command and admin action, the move's states, and the task its old home's
worker runs. Dovecot's dsync cannot run here (no second backend): the copies are a stand-in
recording what the views said at each; tests/dataplane/test_fleet_move.py runs the real one.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from postdesk.dataplane import provisioner, routing
from postdesk.errors import InvalidInput, NotFound, PermissionDenied
from postdesk.mail import tasks
from postdesk.mail.choices import MoveState
from postdesk.mail.hosts import (
    MOVE_DEAD_AFTER,
    host_add,
    host_drain,
    mailbox_move,
    mailbox_moves,
    mailbox_moves_sweep,
    tasks_pending,
)
from postdesk.mail.models import Mailbox, MailboxMove, MailboxMoveAck
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
    """Stand-ins for doveadm (backup, kick) and for an MX's Postfix (its routes dropped: no
    Postfix runs here; the fleet test runs the real one): each call, with whether the
    mailbox was locked."""
    calls: list[tuple[str, str, bool]] = []

    def copy(address: str, destination: str, timeout: float = 0) -> None:
        calls.append(("copy", destination, _moving(address)))

    def kick(address: str) -> None:
        calls.append(("kick", address, _moving(address)))

    def drop_routes(address: str) -> None:
        calls.append(("routes dropped", address, _moving(address)))

    def refresh_routes() -> None:
        calls.append(("routes refreshed", "", False))

    monkeypatch.setattr(provisioner, "copy_mailbox", copy)
    monkeypatch.setattr(provisioner, "kick_sessions", kick)
    monkeypatch.setattr(provisioner, "drop_cached_routes", drop_routes)
    monkeypatch.setattr(provisioner, "reload_postfix", refresh_routes)
    return calls


@pytest.fixture
def mx_worker(monkeypatch):
    """The MX host edge's worker, running beside the old home's (as on the fleet) until the
    test ends. In a thread, where Python installs no signal handler: the worker's (for a
    graceful stop) are left out there."""
    install = signal.signal
    monkeypatch.setattr(
        signal,
        "signal",
        lambda *args: (
            install(*args) if threading.current_thread() is threading.main_thread() else None
        ),
    )
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            run_worker("host-edge")
            time.sleep(0.05)
        connection.close()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    yield
    stop.set()
    worker.join(timeout=30)


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
    operator, anna, dsync, mx_worker, settings, tmp_path
):
    settings.POSTDESK_VMAIL_DIR = str(tmp_path)  # b1's worker's own disk
    old_copy = tmp_path / "example.com" / anna.storage_id.hex
    (old_copy / "Maildir" / "cur").mkdir(parents=True)
    move = mailbox_move(actor=operator, address="anna@example.com", to="b2")
    run_worker("host-b1")  # the old home's worker
    # The first copy while it works, then, locked, sessions kicked, the MX's routes dropped
    # (by its own worker), and only then the last copy. The MX's refresh after the switch
    # runs on its worker's thread, whenever that one gets to it: checked below.
    assert [call for call in dsync if call[0] != "routes refreshed"] == [
        ("copy", "10.77.0.3", False),
        ("kick", "anna@example.com", True),
        ("routes dropped", "anna@example.com", True),
        ("copy", "10.77.0.3", True),
    ]
    move.refresh_from_db()
    anna.refresh_from_db()
    assert (move.state, move.last_error, anna.home.name) == (MoveState.DONE, "", "b2")
    assert move.started_at <= move.locked_at <= move.finished_at
    [ack] = MailboxMoveAck.objects.filter(move=move)
    assert ack.host.name == "edge" and ack.acknowledged_at <= move.finished_at
    [drop] = DBTaskResult.objects.filter(task_path__endswith="mailbox_move_routes_drop")
    assert (drop.queue_name, drop.status) == ("host-edge", "SUCCESSFUL")
    # Once it is over, the MX's processes start afresh: none answers from the lock's route.
    [refresh] = DBTaskResult.objects.filter(task_path__endswith="mailbox_move_routes_refresh")
    assert refresh.queue_name == "host-edge"
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
    operator, anna, dsync, mx_worker, monkeypatch
):
    def refused(address: str, destination: str, timeout: float = 0) -> None:
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


@pytest.mark.django_db(transaction=True)
def test_an_mx_that_never_acknowledges_fails_the_move_in_time_keeping_the_old_home(
    operator, anna, dsync, monkeypatch
):
    """edge's worker is down: the lock waits for it, bounded, then ends; no last copy."""
    monkeypatch.setattr(tasks, "MOVE_ACK_TIMEOUT", 0.5)
    move = mailbox_move(actor=operator, address="anna@example.com", to="b2")
    run_worker("host-b1")
    move.refresh_from_db()
    anna.refresh_from_db()
    assert (move.state, anna.home.name) == (MoveState.FAILED, "b1")
    assert "no acknowledgement from the MX host(s) edge within 0 s" in move.last_error
    assert not _moving("anna@example.com")
    assert [call[0] for call in dsync] == ["copy", "kick"]  # never the last copy
    # When edge's worker is back, its task sees the move over and leaves Postfix alone.
    run_worker("host-edge")
    [drop] = DBTaskResult.objects.filter(task_path__endswith="mailbox_move_routes_drop")
    assert drop.return_value == "the move is no longer switching"
    assert [call[0] for call in dsync] == ["copy", "kick"]


@pytest.mark.django_db(transaction=True)
def test_an_old_home_that_is_the_mx_drops_its_routes_itself(operator, domain, dsync):
    """One host in all roles and a new backend: nothing to wait for but the host itself."""
    host_add(actor=operator, name="mail1", address="10.77.0.1", roles=["backend", "mx", "proxy"])
    mailbox_create(actor=operator, domain=domain, username="anna", password=GOOD_PASSWORD)
    host_add(actor=operator, name="mail2", address="10.77.0.2", roles=["backend"])
    move = mailbox_move(actor=operator, address="anna@example.com", to="mail2")
    run_worker("host-mail1")
    move.refresh_from_db()
    assert (move.state, move.last_error) == (MoveState.DONE, "")
    assert ("routes dropped", "anna@example.com", True) in dsync
    assert [ack.host.name for ack in MailboxMoveAck.objects.filter(move=move)] == ["mail1"]
    assert not DBTaskResult.objects.filter(task_path__endswith="mailbox_move_routes_drop")


def _move_in(anna, state: MoveState, since: timedelta, *, task: TaskResultStatus | None):
    """A move of anna left in `state` since that long ago, its task in that status (None:
    no task row at all)."""
    MailboxMove.objects.filter(mailbox=anna).delete()
    DBTaskResult.objects.all().delete()
    started = timezone.now() - since
    move = MailboxMove.objects.create(
        mailbox=anna,
        source=anna.home,
        target=anna.home.__class__.objects.get(name="b2"),
        state=state,
        started_at=started,
        locked_at=started if state == MoveState.SWITCHING else None,
    )
    if task is not None:
        tasks.mailbox_move_run.using(queue_name="host-b1").enqueue(move.pk, "anna@example.com")
        DBTaskResult.objects.update(status=task)
    return move


@pytest.mark.parametrize(
    ("state", "since", "task", "swept"),
    [
        # A worker under way with its step: left alone.
        (MoveState.COPYING, timedelta(minutes=1), TaskResultStatus.RUNNING, False),
        (MoveState.SWITCHING, timedelta(minutes=1), TaskResultStatus.RUNNING, False),
        # Queued moves wait for their worker; finished ones are history.
        (MoveState.QUEUED, timedelta(days=1), TaskResultStatus.READY, False),
        (MoveState.DONE, timedelta(days=1), None, False),
        (MoveState.FAILED, timedelta(days=1), None, False),
        # Its task no longer under way (the worker's row ended, or is gone): dead at once.
        (MoveState.COPYING, timedelta(minutes=1), TaskResultStatus.FAILED, True),
        (MoveState.SWITCHING, timedelta(minutes=1), None, True),
        # A killed worker leaves its task RUNNING: dead once longer than its step could take.
        (MoveState.COPYING, MOVE_DEAD_AFTER[MoveState.COPYING], TaskResultStatus.RUNNING, True),
        (
            MoveState.SWITCHING,
            MOVE_DEAD_AFTER[MoveState.SWITCHING],
            TaskResultStatus.RUNNING,
            True,
        ),
    ],
)
def test_the_sweeper_ends_a_dead_move_unlocking_the_mailbox_on_its_old_home(
    anna, state, since, task, swept
):
    move = _move_in(anna, state, since + timedelta(seconds=1), task=task)
    assert _moving("anna@example.com") == (state == MoveState.SWITCHING)
    assert mailbox_moves_sweep() == (["anna@example.com"] if swept else [])
    move.refresh_from_db()
    anna.refresh_from_db()
    assert anna.home.name == "b1"  # whatever happened: the old home has its mail
    if swept:
        assert move.state == MoveState.FAILED and move.finished_at
        assert move.last_error == (
            f"The worker of b1 stopped while the move was {state}: the mailbox stays on b1, "
            "unlocked. Move it again when that worker runs."
        )
        assert not _moving("anna@example.com")
    else:
        assert move.state == state


@pytest.mark.django_db(transaction=True)
def test_a_task_that_outlives_its_sweep_does_not_switch_the_home(
    operator, anna, dsync, mx_worker, monkeypatch
):
    """A worker taken for dead that was only slow: its move stays failed, on the old home."""

    def copy_then_swept(address: str, destination: str, timeout: float = 0) -> None:
        dsync.append(("copy", destination, _moving(address)))
        if _moving(address):  # the last copy, slow: the sweeper ran meanwhile
            mailbox_moves_sweep(now=timezone.now() + MOVE_DEAD_AFTER[MoveState.SWITCHING])

    monkeypatch.setattr(provisioner, "copy_mailbox", copy_then_swept)
    move = mailbox_move(actor=operator, address="anna@example.com", to="b2")
    run_worker("host-b1")
    move.refresh_from_db()
    anna.refresh_from_db()
    assert (move.state, anna.home.name) == (MoveState.FAILED, "b1")
    assert "The worker of b1 stopped while the move was switching" in move.last_error
    assert not DBTaskResult.objects.filter(task_path__endswith="mailbox_storage_remove").exists()


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


def test_a_copy_that_cannot_reach_its_target_names_it_and_where_the_reason_is(settings):
    """Dovecot's doveadm API answers a `backup` whose target it cannot reach by closing the
    connection, with no reason (which is in its own log only): the move's error names the
    mailbox, the target and that log. No Dovecot here: a socket that closes as doveadm
    does stands for it (the real copy is tests/dataplane/test_fleet.py's)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def close_each() -> None:
        with listener:
            connection, _address = listener.accept()
            connection.recv(65536)
            connection.close()

    closer = threading.Thread(target=close_each, daemon=True)
    closer.start()
    settings.POSTDESK_DOVEADM_URL = f"http://127.0.0.1:{port}/doveadm/v1"
    with pytest.raises(provisioner.ProvisionerUnavailable) as raised:
        provisioner.copy_mailbox("marie@example.com", "10.0.0.9", timeout=5)
    closer.join(timeout=5)
    message = str(raised.value)
    assert "marie@example.com" in message and "10.0.0.9" in message
    assert "Dovecot's log on this host" in message
