"""Which worker runs a side effect: the task queues of the mail hosts (docs/dataplane.md,
"Task queues").

A task that touches a host's disk or daemons (a Sieve script, a deleted mailbox's files, a
session kick, Dovecot's change tracking, the usage measure, DKIM key files) goes to the queue
of the host that holds them, `host-NAME`, run by that host's own worker
(`postdesk db_worker --queue-name host-NAME`), which reaches its local Dovecot and disk with
its own settings. A host that is down leaves its queue waiting and delays nothing else.
Without a host (a mailbox with no home: the install's single host), a task stays on django-tasks'
`default` queue, as before hosts existed.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Concat
from django_tasks import DEFAULT_TASK_QUEUE_NAME
from django_tasks.base import Task, TaskResultStatus
from django_tasks.exceptions import InvalidTaskError
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from .models import Host

HOST_QUEUE_PREFIX = "host-"
# django-tasks-db stores a queue's name in 32 characters: a host's name must leave room for
# the prefix (mail.hosts checks it when the host is added).
QUEUE_NAME_MAX = DBTaskResult._meta.get_field("queue_name").max_length
HOST_NAME_MAX = QUEUE_NAME_MAX - len(HOST_QUEUE_PREFIX)

# A task still to do: waiting for its worker (or its retry's time), or running.
PENDING = (TaskResultStatus.READY, TaskResultStatus.RUNNING)


def host_queue(host_name: str | None) -> str:
    """The queue of a host's worker; `default` without a host (the install's single host)."""
    return f"{HOST_QUEUE_PREFIX}{host_name}" if host_name else DEFAULT_TASK_QUEUE_NAME


def queue_host(queue_name: str) -> str | None:
    """The host whose worker runs a queue; None for any other queue (`default`)."""
    if queue_name.startswith(HOST_QUEUE_PREFIX):
        return queue_name.removeprefix(HOST_QUEUE_PREFIX)
    return None


def worker_queues(host_name: str | None, *, default: bool = False) -> list[str]:
    """The queues a worker runs (`db_worker --queue-name`, comma-separated): the host's own,
    with `default` too when asked (the host the panel runs on); `default` alone without a
    host."""
    if not host_name:
        return [DEFAULT_TASK_QUEUE_NAME]
    own = host_queue(host_name)
    return [DEFAULT_TASK_QUEUE_NAME, own] if default else [own]


def on_host(task: Task, host_name: str | None) -> Task:
    """The task, to be run by that host's worker (the `default` queue without a host)."""
    return task.using(queue_name=host_queue(host_name))


def signing_hosts() -> QuerySet[Host]:
    """The hosts whose Postfix signs with OpenDKIM: every MX and backend (a backend sends
    what its Sieve scripts forward), draining ones too, since they still hold mail."""
    return Host.objects.filter(Q(mx=True) | Q(backend=True))


def signer_queues() -> list[str]:
    """The queues of every host that needs the DKIM key files, one each; `default` alone
    while no host is registered. One query."""
    names = list(signing_hosts().order_by("name").values_list("name", flat=True))
    return [host_queue(name) for name in names] or [DEFAULT_TASK_QUEUE_NAME]


def pending_tasks() -> QuerySet[DBTaskResult]:
    """The tasks not done yet, on every queue."""
    return DBTaskResult.objects.filter(status__in=PENDING)


def with_pending(hosts: QuerySet[Host]) -> QuerySet[Host]:
    """The hosts, each with `pending`: how many tasks wait for (or run on) its worker. A
    count per host off the index on the queue's name, in the hosts' own query."""
    counts = (
        pending_tasks()
        .filter(queue_name=Concat(Value(HOST_QUEUE_PREFIX), OuterRef("name")))
        .order_by()
        .values("queue_name")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return hosts.annotate(pending=Coalesce(Subquery(counts, output_field=IntegerField()), Value(0)))


class HostQueuesBackend(DatabaseBackend):
    """django-tasks' database backend, accepting the hosts' queues besides the QUEUES setting.

    django-tasks checks each task's queue against a fixed list (`QUEUES`) so that no task
    goes to a queue no worker runs; the hosts are registered at run time, so their queues
    cannot be listed in the settings. A `host-NAME` queue is accepted when NAME could be a
    host's; anything else still has to be listed.
    """

    def validate_task(self, task: Task[Any, Any]) -> None:
        host = queue_host(task.queue_name)
        if host is not None:
            if not host or len(task.queue_name) > QUEUE_NAME_MAX:
                raise InvalidTaskError(f"Queue '{task.queue_name}' is not a host's queue.")
            task = task.using(queue_name=DEFAULT_TASK_QUEUE_NAME)
        super().validate_task(task)
