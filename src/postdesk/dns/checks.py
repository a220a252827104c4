"""All the DNS checks of one domain, from live DNS or from answers stored earlier.

A check asks the DNS through a recorder that keeps every answer (or the failure); the answers
are stored, and a page later replays them through the same pure functions, in the reader's
language and with the current settings. No Django models here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .answers import TemporaryDnsFailure
from .dkim import DkimResult, DkimState, check_dkim
from .dmarc import DmarcResult, check_dmarc
from .mtasts import MtaStsResult, check_mta_sts
from .mx import MxResult, check_mx
from .spf import SpfResult, SpfState, check_spf
from .tlsrpt import TlsRptResult, check_tls_rpt

# The settings' defaults (postdesk.settings), for callers that give none.
DEFAULT_SENDING_IPS = ("192.0.2.1",)
DEFAULT_HELO = "mail.postdesk.example"


@dataclass(frozen=True)
class DnsExpectations:
    """What the domain's DNS should contain, from our settings and its DKIM key."""

    domain: str
    spf_mechanism: str
    mx_hosts: list[str]
    dkim_selector: str | None = None
    dkim_public_key: str | None = None
    # A rotation's prepared key: published before it signs, so checked alike.
    dkim_prepared_selector: str | None = None
    dkim_prepared_public_key: str | None = None
    # Our outgoing servers' addresses and HELO name: what receivers evaluate SPF for.
    sending_ips: list[str] = field(default_factory=lambda: list(DEFAULT_SENDING_IPS))
    helo: str = DEFAULT_HELO
    mta_sts_mode: str = "testing"
    mta_sts_target: str = ""  # where mta-sts.DOMAIN leads: our web front
    tls_rpt_address: str = ""


@dataclass(frozen=True)
class DnsReport:
    spf: SpfResult
    dkim: DkimResult
    dmarc: DmarcResult
    mx: MxResult
    mta_sts: MtaStsResult
    tls_rpt: TlsRptResult

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """The `postdesk dns check --json` shape."""
        return {
            "spf": {
                "state": self.spf.state,
                "record": self.spf.record,
                "message": self.spf.message,
                "warning": self.spf.warning,
            },
            "dkim": {
                "state": self.dkim.state,
                "host": self.dkim.host,
                "value": self.dkim.value,
                "message": self.dkim.message,
                "selector": self.dkim.selector,
                "found": self.dkim.found,
                "bits": self.dkim.bits,
                "warning": self.dkim.warning,
                # Every key in use: the signing one, then a rotation's prepared one.
                "keys": [
                    {"status": status, **result.as_dict()}
                    for status, result in (("signing", self.dkim), ("prepared", self.dkim.prepared))
                    if result is not None and result.state != DkimState.DISABLED
                ],
            },
            "dmarc": {
                "state": self.dmarc.state,
                "host": self.dmarc.host,
                "record": self.dmarc.record,
                "message": self.dmarc.message,
                "policy": self.dmarc.policy,
                "policy_domain": self.dmarc.policy_domain,
                "found": self.dmarc.found,
                "alignment": self.dmarc.alignment.as_dict() if self.dmarc.alignment else None,
                "policy_none_since": (
                    self.dmarc.none_since.isoformat() if self.dmarc.none_since else None
                ),
                "reports": [report.as_dict() for report in self.dmarc.reports],
                "warnings": self.dmarc.warnings,
            },
            "mx": {
                "state": self.mx.state,
                "records": [[p, h] for p, h in self.mx.records],
                "message": self.mx.message,
                "found": [[p, h or "."] for p, h in self.mx.found],
            },
            "mta_sts": {
                "state": self.mta_sts.state,
                "mode": self.mta_sts.mode,
                "found": [r.as_dict() for r in self.mta_sts.found],
                "expected": [r.as_dict() for r in self.mta_sts.expected],
                "message": self.mta_sts.message,
            },
            "tls_rpt": {
                "state": self.tls_rpt.state,
                "found": [r.as_dict() for r in self.tls_rpt.found],
                "expected": [r.as_dict() for r in self.tls_rpt.expected],
                "message": self.tls_rpt.message,
            },
        }


class Recorder:
    """Asks the live DNS and remembers each answer, or None for a temporary failure."""

    def __init__(
        self,
        lookup_txt: Callable[[str], list[str]],
        lookup_mx: Callable[[str], list[tuple[int, str]]],
        *,
        lookup_a: Callable[[str], list[str]],
        lookup_aaaa: Callable[[str], list[str]],
        lookup_ptr: Callable[[str], list[str]],
    ) -> None:
        self._lookups: dict[str, Callable[[str], list]] = {
            "txt": lookup_txt,
            "mx": lookup_mx,
            "a": lookup_a,
            "aaaa": lookup_aaaa,
            "ptr": lookup_ptr,
        }
        self.answers: dict[str, dict[str, Any]] = {kind: {} for kind in self._lookups}

    def txt(self, name: str) -> list[str]:
        return self._ask("txt", name)

    def mx(self, name: str) -> list[tuple[int, str]]:
        return [tuple(r) for r in self._ask("mx", name)]

    def a(self, name: str) -> list[str]:
        return self._ask("a", name)

    def aaaa(self, name: str) -> list[str]:
        return self._ask("aaaa", name)

    def ptr(self, name: str) -> list[str]:
        return self._ask("ptr", name)

    def _ask(self, kind: str, name: str) -> list:
        key = name.lower().rstrip(".")
        store = self.answers[kind]
        if key not in store:
            try:
                store[key] = [
                    list(r) if isinstance(r, tuple) else r for r in self._lookups[kind](key)
                ]
            except TemporaryDnsFailure:
                store[key] = None
        if store[key] is None:
            raise TemporaryDnsFailure(key)
        return store[key]


class Replay:
    """Answers from a stored check. A name not asked then counts as not answered yet (so do
    the address and PTR lookups of answers stored before SPF asked for them)."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers

    def txt(self, name: str) -> list[str]:
        return self._get("txt", name)

    def mx(self, name: str) -> list[tuple[int, str]]:
        return [tuple(r) for r in self._get("mx", name)]

    def a(self, name: str) -> list[str]:
        return self._get("a", name)

    def aaaa(self, name: str) -> list[str]:
        return self._get("aaaa", name)

    def ptr(self, name: str) -> list[str]:
        return self._get("ptr", name)

    def _get(self, kind: str, name: str) -> list:
        value = self.answers.get(kind, {}).get(name.lower().rstrip("."))
        if value is None:
            raise TemporaryDnsFailure(name)
        return value


def evaluate(
    expected: DnsExpectations,
    source: Recorder | Replay,
    *,
    dmarc_none_since: datetime | None = None,
    now: datetime | None = None,
) -> DnsReport:
    """Every check. `dmarc_none_since`: since when the stored checks have seen `p=none`, for
    the DMARC flag after weeks (with `now`)."""

    def addresses(name: str) -> list[str]:
        return source.a(name) + source.aaaa(name)

    prepared = None
    if expected.dkim_prepared_selector and expected.dkim_prepared_public_key:
        prepared = (expected.dkim_prepared_selector, expected.dkim_prepared_public_key)
    spf = check_spf(
        expected.domain,
        expected.spf_mechanism,
        source,
        expected.sending_ips,
        expected.helo,
    )
    dkim = check_dkim(
        expected.domain,
        expected.dkim_selector,
        expected.dkim_public_key,
        source.txt,
        prepared=prepared,
    )
    return DnsReport(
        spf=spf,
        dkim=dkim,
        # Our DKIM d= and MAIL FROM are the From domain: DMARC passes when either passes.
        dmarc=check_dmarc(
            expected.domain,
            source.txt,
            dkim_passes=_passes(dkim.state, DkimState.ACTIVE, DkimState.UNKNOWN),
            spf_passes=_passes(spf.state, SpfState.CONFIGURED, SpfState.UNKNOWN),
            none_since=dmarc_none_since,
            now=now,
        ),
        mx=check_mx(expected.domain, expected.mx_hosts, source.mx),
        mta_sts=check_mta_sts(
            expected.domain,
            expected.mta_sts_mode,
            expected.mx_hosts,
            expected.mta_sts_target,
            source.txt,
            addresses,
        ),
        tls_rpt=check_tls_rpt(expected.domain, expected.tls_rpt_address, source.txt),
    )


def _passes(state: str, passing: str, unknown: str) -> bool | None:
    return None if state == unknown else state == passing
