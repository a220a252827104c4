"""The usage collector: real disk use per mailbox, from Dovecot, into usage samples.

One doveadm call (`quota get` for all users, through the HTTP API) measures every mailbox;
each measure becomes a usage sample with its time (billing) and the mailbox's current usage
(the address list and the dashboard, with "measured at").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from postdesk.mail.models import Mailbox
from postdesk.tenancy.access import Actor, Source

from .provisioner import _doveadm


@dataclass(frozen=True)
class CollectSummary:
    measured: int
    unknown: int  # Dovecot reported a user the panel no longer has
    # The panel's mailboxes Dovecot did not report: their usage and growth stay as last
    # measured (the address list shows when, "measured at").
    unreported: int = 0
    # (address, message) of each measure refused (see billing's usage_record_batch)
    refused: list[tuple[str, str]] = field(default_factory=list)


def dovecot_usage() -> dict[str, tuple[int, int]]:
    """address → (bytes, messages), as Dovecot's quota accounting knows them."""
    usage: dict[str, list[int]] = {}
    for row in _doveadm("quotaGet", {"allUsers": True}):
        bucket = usage.setdefault(row["username"].lower(), [0, 0])
        if row["type"] == "STORAGE":
            bucket[0] = int(row["value"]) * 1024  # Dovecot counts storage in KiB
        elif row["type"] == "MESSAGE":
            bucket[1] = int(row["value"])
    return {address: (values[0], values[1]) for address, values in usage.items()}


def collect_usage(*, at: datetime | None = None) -> CollectSummary:
    """Measure every mailbox through Dovecot, at `at` (default now)."""
    return record_usage(dovecot_usage(), at=at or timezone.now())


def record_usage(measured: dict[str, tuple[int, int]], *, at: datetime) -> CollectSummary:
    """One run's measures (address → bytes, messages) into usage samples, a batch at a time
    (billing's usage_record_batch): a run of 10,000 mailboxes is a few dozen queries, and a
    measure that cannot be recorded is reported without stopping the others."""
    from postdesk.billing.services import Measure, usage_record_batch

    collector = Actor.operator("usage-collector", source=Source.SYSTEM)
    # Only what matching and recording read: converting the rows' other columns (hashes,
    # times, UUIDs) made loading the mailboxes cost as much as recording them.
    loaded = Mailbox.objects.select_related("address__domain").only(
        "address__local_part", "address__domain__name"
    )
    mailboxes = {m.address.email: m for m in loaded.iterator()}
    measures = [
        Measure(mailbox=mailboxes[address], used_bytes=used_bytes, messages=messages)
        for address, (used_bytes, messages) in measured.items()
        if address in mailboxes
    ]
    result = usage_record_batch(actor=collector, measures=measures, at=at)
    return CollectSummary(
        measured=result.recorded,
        unknown=len(measured) - len(measures),
        unreported=len(mailboxes) - len(measures),
        refused=[(address, error.message) for address, error in result.refused],
    )
