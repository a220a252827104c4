"""The usage collector: real disk use per mailbox, from Dovecot, into usage samples.

One doveadm call (dataplane.provisioner.mailbox_usage) measures every mailbox; each measure
becomes a usage sample with its time (billing) and the mailbox's current usage (the address
list and the dashboard, with "measured at"), through mail.services.mailbox_usage_record_batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from postdesk.dataplane.provisioner import mailbox_usage
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


def collect_usage(*, at: datetime | None = None) -> CollectSummary:
    """Measure every mailbox through Dovecot, at `at` (default now)."""
    return record_usage(mailbox_usage(), at=at or timezone.now())


def record_usage(measured: dict[str, tuple[int, int]], *, at: datetime) -> CollectSummary:
    """One run's measures (address → bytes, messages) into usage samples, a batch at a time
    (mail's mailbox_usage_record_batch): a run of 10,000 mailboxes is a few dozen queries,
    and a measure that cannot be recorded is reported without stopping the others."""
    collector = Actor.operator("usage-collector", source=Source.SYSTEM)
    mailboxes = mailboxes_by_address()
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
