"""Reads of the DNS area: the domain's DNS report, re-evaluated from the stored answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from postdesk.mail.models import Domain
from postdesk.tenancy.access import Actor, require_client_access

from .checks import DnsReport, Replay, evaluate
from .dkim import record_host, record_value
from .models import DkimKey, DkimKeyStatus, DnsStatus
from .services import expectations


@dataclass(frozen=True)
class StoredReport:
    report: DnsReport | None  # None: never checked yet
    checked_at: datetime | None


def dns_report(*, actor: Actor, domain: Domain) -> StoredReport:
    """The last check, in the reader's language and against today's settings and keys."""
    require_client_access(actor, domain.client_id, write=False)
    status = DnsStatus.objects.filter(domain=domain).first()
    if status is None:
        return StoredReport(None, None)
    key = DkimKey.objects.filter(domain=domain, status=DkimKeyStatus.SIGNING).first()
    report = evaluate(expectations(domain, key), Replay(status.answers))
    return StoredReport(report, status.checked_at)


@dataclass(frozen=True)
class DkimRecord:
    selector: str
    status: str
    host: str
    value: str


def dkim_records(*, actor: Actor, domain: Domain) -> list[DkimRecord]:
    """The records to publish: the signing key's, and a prepared one's during a rotation."""
    require_client_access(actor, domain.client_id, write=False)
    keys = DkimKey.objects.filter(
        domain=domain, status__in=[DkimKeyStatus.SIGNING, DkimKeyStatus.PREPARED]
    ).order_by("status")
    return [
        DkimRecord(
            k.selector, k.status, record_host(k.selector, domain.name), record_value(k.public_key)
        )
        for k in keys
    ]
