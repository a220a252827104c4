"""Reads of the DNS area: the domain's DNS report, re-evaluated from the stored answers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from postdesk.billing.selectors import plan_applies
from postdesk.compiled import CompiledRead
from postdesk.errors import InvalidInput
from postdesk.mail.addresses import normalize_domain_name
from postdesk.mail.models import Domain
from postdesk.mail.selectors import DomainSummary, domain_summary_columns, domain_summary_of
from postdesk.tenancy.access import Actor, require_client_access

from .answers import Record
from .checks import DnsExpectations, DnsReport, Replay, evaluate
from .deliverability import Finding, explain
from .dkim import record_host, record_value
from .dmarc import none_flagged_weeks, suggested_record
from .dmarc import record_host as dmarc_host
from .models import (
    DeliverabilityTest,
    DeliverabilityTestState,
    DkimKey,
    DkimKeyStatus,
    DnsStatus,
)
from .mtasts import domain_of_policy_host, policy_text
from .mtasts import expected_records as mta_sts_records
from .mx import suggested_records
from .spf import new_record
from .tlsrpt import expected_records as tls_rpt_records


def expectations(
    domain: Domain, key: DkimKey | None, prepared: DkimKey | None = None
) -> DnsExpectations:
    """What the domain's DNS should say: our SPF mechanism and MX hosts, `key`'s record, and
    during a rotation the `prepared` key's."""
    return DnsExpectations(
        domain=domain.name,
        spf_mechanism=settings.POSTDESK_SPF_MECHANISM,
        mx_hosts=list(settings.POSTDESK_MX_HOSTS),
        dkim_selector=key.selector if key else None,
        dkim_public_key=key.public_key if key else None,
        dkim_prepared_selector=prepared.selector if prepared else None,
        dkim_prepared_public_key=prepared.public_key if prepared else None,
        sending_ips=list(settings.POSTDESK_SENDING_IPS),
        helo=settings.POSTDESK_SENDING_HELO,
        mta_sts_mode=domain.mta_sts_mode,
        mta_sts_target=settings.POSTDESK_MTA_STS_TARGET,
        tls_rpt_address=settings.POSTDESK_TLS_RPT_ADDRESS,
    )


def signing_key(domain: Domain) -> DkimKey | None:
    """The key OpenDKIM signs the domain's mail with, if DKIM is on."""
    return DkimKey.objects.filter(domain=domain, status=DkimKeyStatus.SIGNING).first()


def keys_in_use(domain: Domain) -> tuple[DkimKey | None, DkimKey | None]:
    """The signing key and a rotation's prepared key (each may be missing), in one query."""
    keys = {
        k.status: k
        for k in DkimKey.objects.filter(
            domain=domain, status__in=[DkimKeyStatus.SIGNING, DkimKeyStatus.PREPARED]
        )
    }
    return keys.get(DkimKeyStatus.SIGNING), keys.get(DkimKeyStatus.PREPARED)


def replay(
    domain: Domain,
    status: DnsStatus,
    keys: tuple[DkimKey | None, DkimKey | None],
    now: datetime | None = None,
):
    """The stored answers re-evaluated against today's settings and keys, at `now` (default:
    now)."""
    none_since = status.dmarc_policy_since if status.dmarc_policy == "none" else None
    return evaluate(
        expectations(domain, *keys),
        Replay(status.answers),
        dmarc_none_since=none_since,
        now=now or timezone.now(),
    )


@dataclass(frozen=True)
class StoredReport:
    report: DnsReport | None  # None: never checked yet
    checked_at: datetime | None
    # What SPF needs whatever the DNS says, for before the first check (or when it could not
    # answer): our mechanism, and the whole record for a domain that has none.
    spf_mechanism: str = ""
    spf_new_record: str = ""
    # Likewise for DMARC (a monitoring-only starter) and MX (our servers): what we suggest.
    dmarc_host: str = ""
    dmarc_record: str = ""
    mx_records: list[tuple[int, str]] = field(default_factory=list)
    # MTA-STS (for the domain's current mode) and TLS-RPT: the records to publish.
    mta_sts_records: list[Record] = field(default_factory=list)
    tls_rpt_records: list[Record] = field(default_factory=list)


@dataclass(frozen=True)
class DkimRecord:
    selector: str
    status: str
    host: str
    value: str


@dataclass(frozen=True)
class DnsState:
    """What a domain's DNS report is made of: the last check's stored answers (None before
    the first check) and the DKIM keys in use (signing, prepared; each may be missing)."""

    domain: Domain
    status: DnsStatus | None
    keys: tuple[DkimKey | None, DkimKey | None]

    @property
    def checked_at(self) -> datetime | None:
        return self.status.checked_at if self.status else None

    def report(self, now: datetime) -> StoredReport:
        """The last check at `now`, in the reader's language and against today's settings
        and keys."""
        domain = self.domain
        mechanism = settings.POSTDESK_SPF_MECHANISM
        advice = {
            "spf_mechanism": mechanism,
            "spf_new_record": new_record(mechanism),
            "dmarc_host": dmarc_host(domain.name),
            "dmarc_record": suggested_record(domain.name),
            "mx_records": suggested_records(list(settings.POSTDESK_MX_HOSTS)),
            "mta_sts_records": mta_sts_records(
                domain.name,
                domain.mta_sts_mode,
                list(settings.POSTDESK_MX_HOSTS),
                settings.POSTDESK_MTA_STS_TARGET,
            ),
            "tls_rpt_records": tls_rpt_records(domain.name, settings.POSTDESK_TLS_RPT_ADDRESS),
        }
        if self.status is None:
            return StoredReport(None, None, **advice)
        report = replay(domain, self.status, self.keys, now)
        return StoredReport(report, self.status.checked_at, **advice)

    def dkim_records(self) -> list[DkimRecord]:
        """The records to publish, as `dkim_records` gives them, from the keys read."""
        return _dkim_records(self.domain, [key for key in self.keys if key is not None])

    def report_inputs(self, now: datetime) -> tuple:
        """Everything `report(now)` and `dkim_records()` are made of, the reader's language
        aside: equal inputs make equal reports, so a rendered report may be kept under them.
        The expectations hold the settings, the domain's name and mode and the keys; the
        check, its answers and the one thing time changes (the `p=none` weeks)."""
        stored = None
        if self.status is not None:
            status = self.status
            since = status.dmarc_policy_since if status.dmarc_policy == "none" else None
            stored = (status.answers, status.dmarc_policy, since, none_flagged_weeks(since, now))
        return (expectations(self.domain, *self.keys), stored)


def dns_report(*, actor: Actor, domain: Domain) -> StoredReport:
    """The last check, in the reader's language and against today's settings and keys."""
    require_client_access(actor, domain.client_id, write=False)
    status = DnsStatus.objects.filter(domain=domain).first()
    return DnsState(domain, status, keys_in_use(domain)).report(timezone.now())


def dkim_records(*, actor: Actor, domain: Domain) -> list[DkimRecord]:
    """The records to publish: the signing key's, and a prepared one's during a rotation."""
    require_client_access(actor, domain.client_id, write=False)
    keys = DkimKey.objects.filter(
        domain=domain, status__in=[DkimKeyStatus.SIGNING, DkimKeyStatus.PREPARED]
    )
    return _dkim_records(domain, keys)


def _dkim_records(domain: Domain, keys: Iterable[DkimKey]) -> list[DkimRecord]:
    return [
        DkimRecord(
            k.selector, k.status, record_host(k.selector, domain.name), record_value(k.public_key)
        )
        for k in sorted(keys, key=lambda k: k.status)
    ]


@dataclass(frozen=True)
class DomainOverview:
    """What a domain's dashboard shows beside its address list."""

    dns: DnsState
    summary: DomainSummary
    has_plan: bool  # whether a plan applies now (billing_has_plan)


def domain_overview(*, actor: Actor, domain: Domain) -> DomainOverview:
    """The domain's DNS state, its summary (mail's `domain_summary`) and whether a plan
    applies (billing's `billing_has_plan`), in one query instead of four. It sits in dns, the
    lowest layer that knows all three; mail's and billing's rules come as their expressions."""
    require_client_access(actor, domain.client_id, write=False)
    found = _OVERVIEW.values(domain_id=domain.pk, at=timezone.now())
    values = found[0] if found else {}  # the domain was deleted meanwhile
    status = None
    if values.get("status_checked_at") is not None:
        status = DnsStatus(
            domain_id=domain.pk,
            **{name: values[f"status_{name}"] for name in _OVERVIEW_STATUS},
        )
    keys = tuple(
        DkimKey(
            domain_id=domain.pk,
            status=key_status,
            **{name: values[f"{key_status}_{name}"] for name in _OVERVIEW_KEY},
        )
        if values.get(f"{key_status}_selector")
        else None
        for key_status in _OVERVIEW_KEY_STATUSES
    )
    return DomainOverview(
        dns=DnsState(domain, status, keys),
        summary=domain_summary_of(values),
        has_plan=bool(values.get("has_plan")),
    )


_OVERVIEW_STATUS = ("answers", "dmarc_policy", "dmarc_policy_since", "checked_at")
_OVERVIEW_KEY = ("selector", "public_key")
# In DnsState.keys' order.
_OVERVIEW_KEY_STATUSES = (DkimKeyStatus.SIGNING.value, DkimKeyStatus.PREPARED.value)


def _overview_read(*, domain_id: int, at: datetime) -> QuerySet:
    def key_column(status: str, name: str) -> Subquery:
        keys = DkimKey.objects.filter(domain=OuterRef("pk"), status=status)
        return Subquery(keys.values(name)[:1])

    return Domain.objects.filter(pk=domain_id).values(
        **{f"status_{name}": F(f"dns_status__{name}") for name in _OVERVIEW_STATUS},
        **{
            f"{status}_{name}": key_column(status, name)
            for status in _OVERVIEW_KEY_STATUSES
            for name in _OVERVIEW_KEY
        },
        **domain_summary_columns(),
        has_plan=plan_applies(OuterRef("client_id"), at),
    )


# Built once: a dozen subqueries cost Django more to compile than PostgreSQL to run. Prepared
# (its generic plan): its values are an id and a time, which never decide the best plan, and
# planning a dozen subqueries took PostgreSQL three times as long as running them.
_OVERVIEW = CompiledRead(
    _overview_read,
    prepared=True,
    domain_id=-(2**40) - 5,
    at=datetime(1901, 1, 1, tzinfo=UTC),
)


def mta_sts_policy(host: str) -> str | None:
    """The MTA-STS policy served at `host` (mta-sts.DOMAIN, DOMAIN hosted here), or None.

    Public, as RFC 8461 wants: any sender fetches it without credentials. A suspended client's
    domain keeps its policy: its MX hosts are still ours, and a 404 would only leave senders on
    their cached policy or none, weakening the protection for when the service resumes."""
    name = domain_of_policy_host(host)
    if name is None:
        return None
    try:
        name = normalize_domain_name(name)
    except InvalidInput:
        return None
    mode = Domain.objects.filter(name=name).values_list("mta_sts_mode", flat=True).first()
    if mode is None:
        return None
    return policy_text(mode, list(settings.POSTDESK_MX_HOSTS))


@dataclass(frozen=True)
class DeliverabilityReport:
    """The domain's last self-test, in the reader's language."""

    state: str  # a DeliverabilityTestState
    sender: str
    probe: str
    requested_at: datetime
    submitted_at: datetime | None
    received_at: datetime | None
    findings: list[Finding]  # one per check, once the message arrived
    message: str  # the state in words
    error: str  # why it could not be sent (the server's answer)
    facts: dict

    @property
    def running(self) -> bool:
        return self.state in (DeliverabilityTestState.QUEUED, DeliverabilityTestState.WAITING)

    @property
    def passed(self) -> bool:
        return self.state == DeliverabilityTestState.DONE and all(f.ok for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        """The `postdesk deliverability test --json` shape (docs/dns.md)."""
        facts = self.facts
        by_check = {f.check: f for f in self.findings}

        def part(check: str, values: dict[str, Any]) -> dict[str, Any] | None:
            found = by_check.get(check)
            if found is None:
                return None
            return {**values, "ok": found.ok, "message": found.message, "fix": found.fix}

        return {
            "sender": self.sender,
            "probe": self.probe,
            "state": self.state,
            "passed": self.passed,
            "message": self.message,
            "error": self.error,
            "requested_at": _iso(self.requested_at),
            "submitted_at": _iso(self.submitted_at),
            "received_at": _iso(self.received_at),
            "seconds": facts.get("seconds"),
            "spf": part(
                "spf", {k: facts.get("spf", {}).get(k) for k in ("result", "ip", "domain")}
            ),
            "dkim": part(
                "dkim", {k: facts.get("dkim", {}).get(k) for k in ("result", "domain", "selector")}
            ),
            "dmarc": part(
                "dmarc",
                {
                    k: facts.get("dmarc", {}).get(k)
                    for k in ("result", "policy", "spf_aligned", "dkim_aligned", "disposition")
                },
            ),
            "tls": part("tls", {"hops": facts.get("tls", [])}),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _state_message(test: DeliverabilityTest) -> str:
    if test.state == DeliverabilityTestState.QUEUED:
        return _("The test message is about to leave %(sender)s.") % {"sender": test.sender}
    if test.state == DeliverabilityTestState.WAITING:
        return _("The test message has left %(sender)s; waiting for it to arrive.") % {
            "sender": test.sender
        }
    if test.state == DeliverabilityTestState.FAILED:
        return _(
            "Our submission server did not accept the test message from %(sender)s, so it "
            "was not sent. Try again in a few minutes; if it fails again, tell our support."
        ) % {"sender": test.sender}
    if test.state == DeliverabilityTestState.NOT_ARRIVED:
        return _(
            "The test message left %(sender)s but did not arrive within %(seconds)s seconds. "
            "It may be stuck in a queue: try again later, and tell our support if it happens "
            "again."
        ) % {"sender": test.sender, "seconds": settings.POSTDESK_PROBE_TIMEOUT}
    return _("What a receiving server saw of the message from %(sender)s:") % {
        "sender": test.sender
    }


def deliverability_report(*, actor: Actor, domain: Domain) -> DeliverabilityReport | None:
    """The domain's last deliverability self-test, or None when it never had one."""
    require_client_access(actor, domain.client_id, write=False)
    test = DeliverabilityTest.objects.filter(domain=domain).first()
    if test is None:
        return None
    done = test.state == DeliverabilityTestState.DONE
    return DeliverabilityReport(
        state=test.state,
        sender=test.sender,
        probe=settings.POSTDESK_PROBE_ADDRESS,
        requested_at=test.requested_at,
        submitted_at=test.submitted_at,
        received_at=test.received_at,
        findings=explain(test.facts) if done else [],
        message=_state_message(test),
        error=test.error,
        facts=test.facts if done else {},
    )
