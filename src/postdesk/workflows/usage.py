"""The usage collector: real disk use per mailbox, from Dovecot, into usage samples.

One doveadm call (dataplane.provisioner.mailbox_usage) measures every mailbox of a host; each
measure becomes a usage sample with its time (billing) and the mailbox's current usage (the
address list and the dashboard, with "measured at"), through
mail.services.mailbox_usage_record_batch.

Each host measures its own mailboxes: with mail hosts registered, the periodic job queues one
collection per backend on that host's worker (`collect_usage_on_homes`), which records only
the mailboxes whose home it is. A single-host install measures in the job itself, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django_tasks import task

from postdesk.dataplane.provisioner import mailbox_usage
from postdesk.dataplane.queues import host_queue, on_host, pending_tasks
from postdesk.mail.hosts import backend_names
from postdesk.mail.selectors import mailboxes_by_address
from postdesk.mail.services import Measure, mailbox_usage_record_batch
from postdesk.tenancy.access import Actor, Source


@dataclass(frozen=True)
class CollectSummary:
    measured: int
    unknown: int  # Dovecot reported a user the panel no longer has
    # The panel's mailboxes Dovecot did not report: their usage and growth stay as last
    # measured (the address list shows when, "measured at").
    unreported: int = 0
    # (address, message) of each measure refused (see mail's mailbox_usage_record_batch)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> str:
        """One line for the job's record and the task's result."""
        text = f"measured {self.measured} mailbox(es)"
        if self.refused:
            text += f", {len(self.refused)} not recorded"
        if self.unreported:
            text += f", {self.unreported} not reported by Dovecot"
        return text


def collect_usage(*, at: datetime | None = None, home: str | None = None) -> CollectSummary:
    """Measure through this host's Dovecot, at `at` (default now), the mailboxes whose home
    is the host named `home` (None: those without a home, every mailbox of a single-host
    install). A Dovecot lists every user of the view, wherever they live: only the host's
    own mailboxes are recorded."""
    return record_usage(mailbox_usage(), at=at or timezone.now(), home=home)


def record_usage(
    measured: dict[str, tuple[int, int]], *, at: datetime, home: str | None = None
) -> CollectSummary:
    """One run's measures (address → bytes, messages) into usage samples for the mailboxes of
    `home` (collect_usage), a batch at a time (mail's mailbox_usage_record_batch): a run of
    10,000 mailboxes is a few dozen queries, and a measure that cannot be recorded is
    reported without stopping the others."""
    collector = Actor.operator("usage-collector", source=Source.SYSTEM)
    mailboxes = mailboxes_by_address(home=home)
    measures = [
        Measure(mailbox=mailboxes[address], used_bytes=used_bytes, messages=messages)
        for address, (used_bytes, messages) in measured.items()
        if address in mailboxes
    ]
    result = mailbox_usage_record_batch(actor=collector, measures=measures, at=at)
    return CollectSummary(
        measured=result.recorded,
        unknown=len(measured) - len(measures),
        unreported=len(mailboxes) - len(measures),
        refused=[(address, error.message) for address, error in result.refused],
    )


@task()
def usage_collect_at_home(host: str) -> str:
    """collect_usage on the host's own worker, for the mailboxes that live there. A Dovecot
    that does not answer fails the task (its error on record): the next periodic run queues
    another, so there is no retry of its own."""
    return collect_usage(home=host).describe()


@dataclass(frozen=True)
class CollectQueued:
    # The backends whose worker was handed a collection now.
    queued: list[str]
    # The backends whose previous collection still waits for their worker (down, or busy):
    # not given another, so a host that is down does not pile them up.
    waiting: list[str]

    def describe(self) -> str:
        """One line for the job's record, as CollectSummary.describe."""
        text = f"queued on {len(self.queued)} host(s)"
        if self.queued:
            text += f": {', '.join(self.queued)}"
        if self.waiting:
            text += f"; still waiting for {', '.join(self.waiting)}"
        return text


def collect_usage_on_homes() -> CollectQueued | None:
    """Queue one usage collection per backend host, on its worker's queue; None while no
    backend is registered (a single host measures in the caller). Two queries."""
    backends = backend_names()
    if not backends:
        return None
    waiting = set(
        pending_tasks()
        .filter(task_path=usage_collect_at_home.module_path)
        .values_list("queue_name", flat=True)
    )
    queued = []
    for name in backends:
        if host_queue(name) not in waiting:
            on_host(usage_collect_at_home, name).enqueue(name)
            queued.append(name)
    return CollectQueued(
        queued=queued, waiting=[name for name in backends if host_queue(name) in waiting]
    )
