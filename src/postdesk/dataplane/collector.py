"""The usage collector: real disk use per mailbox, from Dovecot, into usage samples.

One doveadm call (`quota get` for all users, through the HTTP API) measures every mailbox;
each measure becomes a usage sample with its time (billing) and the mailbox's current usage
(the address list and the dashboard, with "measured at").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from postdesk.mail.models import Mailbox
from postdesk.tenancy.access import Actor, Source

from .provisioner import _doveadm


@dataclass(frozen=True)
class CollectSummary:
    measured: int
    unknown: int  # Dovecot reported a user the panel no longer has


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
    from postdesk.billing.services import usage_record

    moment = at or timezone.now()
    measured = dovecot_usage()
    collector = Actor.operator("usage-collector", source=Source.SYSTEM)
    mailboxes = {m.address.email: m for m in Mailbox.objects.select_related("address__domain")}
    count = 0
    for address, (used_bytes, messages) in measured.items():
        mailbox = mailboxes.get(address)
        if mailbox is None:
            continue
        usage_record(
            actor=collector, mailbox=mailbox, used_bytes=used_bytes, messages=messages, at=moment
        )
        count += 1
    return CollectSummary(measured=count, unknown=len(measured) - count)
