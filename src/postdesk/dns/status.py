"""The stored DNS status of domains: asked of the live DNS, kept for the pages.

A system action (the task worker's "Check now", `dns check`, `dns recheck-all` from cron): no
actor, no audit. The pages re-evaluate the stored answers (selectors.dns_report), so a change
of settings or keys shows without asking the DNS again.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from postdesk import metrics
from postdesk.mail.models import Domain

from . import resolver
from .checks import DnsReport, Recorder, evaluate
from .dmarc import DmarcState
from .hosts import SendingHost, check_sending_hosts
from .models import DkimKey, DkimKeyStatus, DnsStatus
from .selectors import expectations, keys_in_use, replay

# A domain's keys in use: the signing one and a rotation's prepared one (each may be None).
KeysInUse = tuple[DkimKey | None, DkimKey | None]

logger = logging.getLogger(__name__)


def live_dns(dns_resolver) -> Recorder:
    """The live DNS through `dns_resolver`, each answer remembered (see checks.Recorder)."""
    return Recorder(
        lambda name: resolver.lookup_txt(name, dns_resolver),
        lambda name: resolver.lookup_mx(name, dns_resolver),
        lookup_a=lambda name: resolver.lookup_a(name, dns_resolver),
        lookup_aaaa=lambda name: resolver.lookup_aaaa(name, dns_resolver),
        lookup_ptr=lambda name: resolver.lookup_ptr(name, dns_resolver),
    )


def _ask(domain: Domain, keys: KeysInUse, dns_resolver) -> DnsStatus:
    """Run every check against the live DNS; an unsaved status row with the answers."""
    recorder = live_dns(dns_resolver)
    report = evaluate(expectations(domain, *keys), recorder)
    return DnsStatus(
        domain=domain,
        answers=recorder.answers,
        spf_state=report.spf.state,
        dkim_state=report.dkim.state,
        dmarc_state=report.dmarc.state,
        mx_state=report.mx.state,
        mta_sts_state=report.mta_sts.state,
        tls_rpt_state=report.tls_rpt.state,
        # None: the DNS could not tell; _date_dmarc_policy keeps what was seen before.
        dmarc_policy=None
        if report.dmarc.state == DmarcState.UNKNOWN
        else report.dmarc.policy or "",
        checked_at=timezone.now(),
    )


_STATUS_FIELDS = [
    "answers",
    "spf_state",
    "dkim_state",
    "dmarc_state",
    "mx_state",
    "mta_sts_state",
    "tls_rpt_state",
    "dmarc_policy",
    "dmarc_policy_since",
    "checked_at",
]


def _date_dmarc_policy(statuses: list[DnsStatus]) -> None:
    """Date each observed DMARC policy: since the check that first saw it, so a `p=none` that
    stays is flagged after weeks. An unanswered check keeps the earlier policy and date."""
    before = {
        domain_id: (policy, since)
        for domain_id, policy, since in DnsStatus.objects.filter(
            domain_id__in=[s.domain_id for s in statuses]
        ).values_list("domain_id", "dmarc_policy", "dmarc_policy_since")
    }
    for status in statuses:
        policy, since = before.get(status.domain_id, ("", None))
        if status.dmarc_policy is None:
            status.dmarc_policy, status.dmarc_policy_since = policy, since
        elif status.dmarc_policy != policy or since is None:
            status.dmarc_policy_since = status.checked_at
        else:
            status.dmarc_policy_since = since


def _store(statuses: list[DnsStatus]) -> None:
    """Keep the answers, then count each check's states for Prometheus (postdesk.metrics)."""
    with transaction.atomic():
        _date_dmarc_policy(statuses)
        DnsStatus.objects.bulk_create(
            statuses,
            update_conflicts=True,
            unique_fields=["domain"],
            update_fields=_STATUS_FIELDS,
            batch_size=500,
        )
    for status in statuses:
        for record, state in (
            ("spf", status.spf_state),
            ("dkim", status.dkim_state),
            ("dmarc", status.dmarc_state),
            ("mx", status.mx_state),
        ):
            metrics.DNS_CHECKS.labels(record=record, state=state).inc()


def dns_check_domain(domain: Domain, dns_resolver=None) -> tuple[DnsStatus, DnsReport]:
    """Ask the DNS now and store its answers. A system action: no actor, no audit."""
    keys = keys_in_use(domain)
    status = _ask(domain, keys, dns_resolver or resolver.make_resolver())
    _store([status])
    return status, replay(domain, status, keys)


@dataclass(frozen=True)
class RecheckSummary:
    checked: int
    unknown: int
    failed: int


def dns_recheck_all(*, stale_after_seconds: int = 0, concurrency: int = 32) -> RecheckSummary:
    """Re-check every domain whose answers are older than `stale_after_seconds`.

    DNS waits dominate, so threads overlap the lookups; they touch no database. The answers
    are then written in batches, a few statements for a thousand domains.
    """
    cutoff = timezone.now() - timedelta(seconds=stale_after_seconds)
    domains = list(
        Domain.objects.exclude(dns_status__checked_at__gt=cutoff).only(
            "id", "name", "client_id", "mta_sts_mode"
        )
    )
    keys: dict[int, dict[str, DkimKey]] = {}
    for key in DkimKey.objects.filter(
        domain__in=domains, status__in=[DkimKeyStatus.SIGNING, DkimKeyStatus.PREPARED]
    ):
        keys.setdefault(key.domain_id, {})[key.status] = key
    dns_resolver = resolver.make_resolver()  # dnspython resolvers are safe to share

    def check(domain: Domain) -> DnsStatus | None:
        try:
            held = keys.get(domain.pk, {})
            in_use = (held.get(DkimKeyStatus.SIGNING), held.get(DkimKeyStatus.PREPARED))
            return _ask(domain, in_use, dns_resolver)
        except Exception:  # one domain's failure must not stop the others
            logger.exception("DNS check of %s failed", domain.name)
            return None

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(check, domains))
    statuses = [s for s in results if s is not None]
    _store(statuses)
    unknown = sum(s.has_unknown for s in statuses)
    return RecheckSummary(
        checked=len(statuses), unknown=unknown, failed=len(results) - len(statuses)
    )


def sending_hosts_check(dns_resolver=None) -> list[SendingHost]:
    """Our sending IPs as receivers see them: reverse DNS against the HELO name, and each
    blocklist of POSTDESK_DNSBL_ZONES. Asked live each time, stored nowhere: for the operator."""
    return check_sending_hosts(
        list(settings.POSTDESK_SENDING_IPS),
        settings.POSTDESK_SENDING_HELO,
        list(settings.POSTDESK_DNSBL_ZONES),
        live_dns(dns_resolver or resolver.make_resolver()),
    )
