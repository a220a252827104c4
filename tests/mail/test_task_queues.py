"""Side effects run where the files are: each goes to the queue of its mailbox's home host,
run by that host's worker; a host that is down delays only its own (docs/dataplane.md,
"Task queues")."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tasks.base import TaskResultStatus
from django_tasks.exceptions import InvalidTaskError
from django_tasks_db.models import DBTaskResult

from postdesk.dataplane.queues import on_host, worker_queues
from postdesk.dns.services import dkim_enable
from postdesk.dns.tasks import dkim_keys_deploy
from postdesk.errors import InvalidInput
from postdesk.mail.hosts import host_add, host_list, tasks_pending
from postdesk.mail.models import Mailbox
from postdesk.mail.services import (
    mailbox_create,
    mailbox_delete,
    mailbox_set_password,
    mailbox_update,
)
from postdesk.mail.tasks import mailbox_sessions_kick
from postdesk.workflows.clients import client_suspend
from postdesk.workflows.usage import collect_usage_on_homes, record_usage, usage_collect_at_home
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

OTHER_PASSWORD = "Other-Secret-42xy"


def queued() -> list[tuple[str, str]]:
    """(task, queue) of every task still to do, in the order they were queued."""
    return [
        (path.rpartition(".")[2], queue)
        for path, queue in DBTaskResult.objects.filter(status=TaskResultStatus.READY)
        .order_by("enqueued_at")
        .values_list("task_path", "queue_name")
    ]


def make(operator, domain, username: str, **options) -> Mailbox:
    return mailbox_create(
        actor=operator, domain=domain, username=username, password=GOOD_PASSWORD, **options
    )


def test_a_mailboxs_side_effects_go_to_its_homes_queue(operator, domain):
    host_add(actor=operator, name="mail2", address="192.0.2.2", roles=["backend"])
    marie = make(operator, domain, "marie", destinations=["ext@elsewhere.example"])
    mailbox_update(actor=operator, mailbox=marie, keep_original_sender=True)
    mailbox_set_password(actor=operator, mailbox=marie, password=OTHER_PASSWORD)
    mailbox_delete(actor=operator, mailbox=marie)
    assert queued() == [
        ("mailbox_forwarding_apply", "host-mail2"),
        ("mailbox_changes_track", "host-mail2"),
        ("mailbox_forwarding_apply", "host-mail2"),
        ("mailbox_sessions_kick", "host-mail2"),
        # SOGo's cache is the panel's, not a host's.
        ("mailbox_groupware_forget", "default"),
        ("mailbox_sessions_kick", "host-mail2"),
        ("mailbox_groupware_forget", "default"),
        ("mailbox_storage_remove", "host-mail2"),
    ]


def test_without_a_host_every_task_stays_on_the_default_queue(operator, domain):
    """A single-host install: nothing changes, its one worker runs `default`."""
    marie = make(operator, domain, "marie")
    mailbox_set_password(actor=operator, mailbox=marie, password=OTHER_PASSWORD)
    dkim_enable(actor=operator, domain=domain)
    assert {queue for _task, queue in queued()} == {"default"}
    assert worker_queues(None) == ["default"]


def test_a_clients_sessions_are_kicked_on_each_home_of_its_domains(
    operator, domain, client_a, settings
):
    host_add(actor=operator, name="mail1", address="192.0.2.1", roles=["backend"])
    host_add(actor=operator, name="mail2", address="192.0.2.2", roles=["backend"])
    # The least loaded backend takes each new mailbox: one on each host.
    homes = {make(operator, domain, name).home.name for name in ("marie", "jean")}
    assert homes == {"mail1", "mail2"}
    DBTaskResult.objects.all().delete()
    client_suspend(actor=operator, client=client_a)
    kicks = DBTaskResult.objects.filter(task_path__endswith="mailbox_sessions_kick")
    assert sorted(kicks.values_list("queue_name", "args_kwargs__args__0")) == [
        ("host-mail1", "*@example.com"),
        ("host-mail2", "*@example.com"),
    ]


def test_dkim_keys_deploy_to_every_host_that_signs(operator, domain):
    for name, roles in (("mx1", ["mx"]), ("mail2", ["backend"]), ("imap1", ["proxy"])):
        host_add(actor=operator, name=name, address="192.0.2.9", roles=roles)
    DBTaskResult.objects.all().delete()
    dkim_enable(actor=operator, domain=domain)
    # A proxy runs no Postfix: it signs nothing.
    assert sorted(queued()) == [
        ("dkim_keys_deploy", "host-mail2"),
        ("dkim_keys_deploy", "host-mx1"),
    ]


def test_the_backend_accepts_host_queues_and_still_refuses_a_misspelt_one():
    on_host(dkim_keys_deploy, "mail2").enqueue()
    with pytest.raises(InvalidTaskError):
        dkim_keys_deploy.using(queue_name="defualt").enqueue()
    assert queued() == [("dkim_keys_deploy", "host-mail2")]


def test_a_host_name_must_leave_room_for_its_queue(operator):
    """django-tasks keeps a queue's name in 32 characters: `host-` and 27."""
    with pytest.raises(InvalidInput) as refused:
        host_add(actor=operator, name="b" * 28, address="192.0.2.1", roles=["backend"])
    assert refused.value.code == "host_name_invalid"
    host_add(actor=operator, name="b" * 27, address="192.0.2.1", roles=["backend"])


@pytest.fixture
def doveadm(settings) -> Iterator[list[str]]:
    """A stand-in for one host's doveadm HTTP API, answering every command with success
    (no Dovecot per host on this machine); yields the users it was asked about."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            command = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            asked.append(command[0][1].get("mask", [command[0][1].get("user")])[0])
            body = json.dumps([["doveadmResponse", [], "postdesk"]]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.POSTDESK_DOVEADM_URL = f"http://127.0.0.1:{server.server_port}/doveadm/v1"
    settings.POSTDESK_DOVEADM_API_KEY = "key"
    yield asked
    server.shutdown()
    server.server_close()


def run_worker(queues: str) -> None:
    """`postdesk db_worker --queue-name QUEUES`, once, in this process."""
    call_command("db_worker", "--batch", "--no-startup-delay", "--queue-name", queues, verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_a_host_that_is_down_delays_only_its_own_tasks(
    operator, domain, other_domain, doveadm, settings
):
    host_add(actor=operator, name="mail-a", address="192.0.2.1", roles=["backend"])
    host_add(actor=operator, name="mail-b", address="192.0.2.2", roles=["backend"])
    settings.POSTDESK_CLIENT_HOSTS = {
        domain.client_id: ["mail-a"],
        other_domain.client_id: ["mail-b"],
    }
    on_a = [make(operator, domain, name) for name in ("marie", "jean")]
    on_b = make(operator, other_domain, "paul")
    assert {m.home.name for m in on_a} == {"mail-a"} and on_b.home.name == "mail-b"
    for mailbox in (*on_a, on_b):
        mailbox_set_password(actor=operator, mailbox=mailbox, password=OTHER_PASSWORD)

    # Only host A's worker runs: host B is down.
    run_worker("host-mail-a")
    done = DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL)
    assert {queue for queue in done.values_list("queue_name", flat=True)} == {"host-mail-a"}
    assert sorted(doveadm) == sorted(["marie@example.com", "jean@example.com"] * 2)
    assert queued() == [
        ("mailbox_changes_track", "host-mail-b"),
        *[("mailbox_groupware_forget", "default")] * 2,
        ("mailbox_sessions_kick", "host-mail-b"),
        ("mailbox_groupware_forget", "default"),
    ]
    operator_view = {(t.task, t.mailbox, t.host) for t in tasks_pending(actor=operator)}
    assert ("mailbox_sessions_kick", "paul@example.net", "mail-b") in operator_view
    assert {row.name: row.pending for row in host_list(actor=operator)} == {
        "mail-a": 0,
        "mail-b": 2,
    }

    # Host B is back: its worker runs what waited for it, and nothing else.
    run_worker("host-mail-b")
    assert doveadm[-2:] == ["paul@example.net"] * 2
    assert {queue for _task, queue in queued()} == {"default"}


@pytest.mark.django_db(transaction=True)
def test_a_retry_waits_on_its_own_hosts_queue(operator, domain, settings):
    host_add(actor=operator, name="mail-a", address="192.0.2.1", roles=["backend"])
    marie = make(operator, domain, "marie")
    DBTaskResult.objects.all().delete()
    settings.POSTDESK_DOVEADM_URL = "http://127.0.0.1:9/doveadm/v1"  # nothing listens
    mailbox_set_password(actor=operator, mailbox=marie, password=OTHER_PASSWORD)
    run_worker("host-mail-a")
    retry = DBTaskResult.objects.get(status=TaskResultStatus.READY, queue_name="host-mail-a")
    assert retry.task_path.endswith("mailbox_sessions_kick")
    assert retry.args_kwargs == {"args": ["marie@example.com"], "kwargs": {"attempt": 1}}


def test_usage_is_collected_per_host_and_not_piled_up_while_a_host_is_down(operator, domain):
    assert collect_usage_on_homes() is None  # a single host measures in the job itself
    host_add(actor=operator, name="mail1", address="192.0.2.1", roles=["backend", "mx"])
    host_add(actor=operator, name="mx2", address="192.0.2.2", roles=["mx"])
    host_add(actor=operator, name="mail2", address="192.0.2.3", roles=["backend"])
    DBTaskResult.objects.all().delete()
    first = collect_usage_on_homes()
    assert first.queued == ["mail1", "mail2"] and first.waiting == []
    assert sorted(queued()) == [
        ("usage_collect_at_home", "host-mail1"),
        ("usage_collect_at_home", "host-mail2"),
    ]
    # Neither worker ran: the next run queues no second collection.
    second = collect_usage_on_homes()
    assert second.queued == [] and second.waiting == ["mail1", "mail2"]
    assert len(queued()) == 2
    assert usage_collect_at_home.module_path.endswith("usage_collect_at_home")


def test_a_host_records_only_the_usage_of_its_own_mailboxes(operator, domain):
    host_add(actor=operator, name="mail1", address="192.0.2.1", roles=["backend"])
    host_add(actor=operator, name="mail2", address="192.0.2.2", roles=["backend"])
    marie, jean = make(operator, domain, "marie"), make(operator, domain, "jean")
    here = marie.home.name
    assert jean.home.name != here
    # Every host's Dovecot lists every user of the view: the other host's is not its to say.
    measured = {"marie@example.com": (1000, 3), "jean@example.com": (0, 0)}
    summary = record_usage(measured, at=marie.created_at, home=here)
    assert summary.measured == 1 and summary.unreported == 0
    marie.refresh_from_db()
    jean.refresh_from_db()
    assert marie.used_bytes == 1000
    assert jean.used_measured_at is None


def test_the_operators_lists_take_a_fixed_number_of_queries(operator, domain):
    host_add(actor=operator, name="mail1", address="192.0.2.1", roles=["backend"])

    def counted(call) -> int:
        with CaptureQueriesContext(connection) as queries:
            call(actor=operator)
        return len(queries)

    make(operator, domain, "marie", destinations=["ext@elsewhere.example"])
    few = counted(tasks_pending), counted(host_list)
    for name in ("jean", "paul", "anne", "lucie"):
        make(operator, domain, name, destinations=["ext@elsewhere.example"])
    assert len(tasks_pending(actor=operator)) == 10
    assert (counted(tasks_pending), counted(host_list)) == few == (2, 1)
    forwarding = [t for t in tasks_pending(actor=operator) if t.task == "mailbox_forwarding_apply"]
    assert {t.mailbox for t in forwarding} == {
        f"{name}@example.com" for name in ("marie", "jean", "paul", "anne", "lucie")
    }
    assert {t.host for t in forwarding} == {"mail1"}


def test_only_the_operator_lists_pending_tasks(owner):
    from postdesk.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        tasks_pending(actor=owner)


def test_a_kick_queued_on_the_default_queue_is_not_a_hosts(operator, domain):
    mailbox_sessions_kick.enqueue("marie@example.com")
    (task,) = tasks_pending(actor=operator)
    assert (task.task, task.mailbox, task.host, task.attempt) == (
        "mailbox_sessions_kick",
        "marie@example.com",
        None,
        0,
    )


def test_the_usage_job_hands_each_backend_its_own_collection(operator, domain):
    from postdesk.jobs.services import job_get, job_run

    host_add(actor=operator, name="mail1", address="192.0.2.1", roles=["backend"])
    host_add(actor=operator, name="mail2", address="192.0.2.2", roles=["backend"])
    # No doveadm on the panel: with hosts, the job needs none, each host's worker measures.
    state = job_run(job_get("collect-usage"))
    assert (state.last_outcome, state.last_summary) == ("ok", "queued on 2 host(s): mail1, mail2")
    state = job_run(job_get("collect-usage"))
    assert state.last_summary == "queued on 0 host(s); still waiting for mail1, mail2"
