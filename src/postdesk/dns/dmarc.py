"""DMARC: is a policy published at _dmarc.DOMAIN? Pure functions over the TXT answers.

We suggest a monitoring-only starter (`p=none`) whose aggregate reports go to the domain's
postmaster: it changes nothing for delivery, and lets the customer see who sends as them
before choosing a stricter policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.utils.translation import gettext as _

from .answers import FetchTxt, TemporaryDnsFailure
from .dkim import parse_tags

_POLICIES = {"none", "quarantine", "reject"}


class DmarcState(StrEnum):
    CONFIGURED = "configured"
    NOT_CONFIGURED = "not_configured"
    INVALID = "invalid"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class DmarcResult:
    state: str
    host: str
    record: str  # what to publish (the current record when it is fine)
    message: str
    policy: str | None
    found: list[str]


def record_host(domain: str) -> str:
    return f"_dmarc.{domain}"


def suggested_record(domain: str) -> str:
    return f"v=DMARC1; p=none; rua=mailto:postmaster@{domain}"


def _is_dmarc(text: str) -> bool:
    return text.strip().lower().replace(" ", "").startswith("v=dmarc1")


def check_dmarc(domain: str, fetch_txt: FetchTxt) -> DmarcResult:
    host = record_host(domain)
    suggestion = suggested_record(domain)
    try:
        records = [t for t in fetch_txt(host) if _is_dmarc(t)]
    except TemporaryDnsFailure:
        return DmarcResult(
            DmarcState.UNKNOWN,
            host,
            suggestion,
            _("The DNS did not answer in time. We will check again shortly."),
            None,
            [],
        )
    if not records:
        return DmarcResult(
            DmarcState.NOT_CONFIGURED,
            host,
            suggestion,
            _(
                "No DMARC policy is published. Add our suggested TXT record at %(host)s: it only "
                "asks receivers to send reports to your postmaster, and changes nothing for "
                "delivery."
            )
            % {"host": host},
            None,
            [],
        )
    if len(records) > 1:
        return DmarcResult(
            DmarcState.INVALID,
            host,
            records[0],
            _(
                "%(count)d DMARC records are published at %(host)s; receivers ignore them all. "
                "Keep only one."
            )
            % {"count": len(records), "host": host},
            None,
            records,
        )
    tags = parse_tags(records[0])
    policy = tags.get("p", "").lower()
    if tags.get("v", "").upper() != "DMARC1" or policy not in _POLICIES:
        return DmarcResult(
            DmarcState.INVALID,
            host,
            suggestion,
            _(
                "The DMARC record at %(host)s is not valid: it needs “v=DMARC1” first and a "
                "policy “p=none”, “p=quarantine” or “p=reject”."
            )
            % {"host": host},
            None,
            records,
        )
    return DmarcResult(
        DmarcState.CONFIGURED,
        host,
        records[0],
        _("A DMARC policy is published (p=%(policy)s).") % {"policy": policy},
        policy,
        records,
    )
