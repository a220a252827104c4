"""TLS-RPT (RFC 8460): does _smtp._tls.DOMAIN ask senders to report their failed TLS
connections to us? Pure functions over the TXT answers.

The reports go to one address of the provider (POSTDESK_TLS_RPT_ADDRESS), not to the
customer: they describe failures of encryption towards our MX hosts, which only we can mend.
A record that already sends reports elsewhere keeps those addresses; ours is added (§3: `rua`
is a comma-separated list).

States:
- not_configured: no `v=TLSRPTv1` record: failures go unreported (nothing breaks);
- invalid:        several TLSRPTv1 records (§3: senders then ignore them all), or one without
                  a `rua` of mailto: or https: addresses;
- needs_update:   a valid record that does not send reports to us;
- configured:     our address is among the record's `rua`;
- unknown:        the DNS could not answer now; retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.utils.translation import gettext as _

from .answers import FetchTxt, Record, TemporaryDnsFailure


class TlsRptState(StrEnum):
    CONFIGURED = "configured"
    NOT_CONFIGURED = "not_configured"
    INVALID = "invalid"
    NEEDS_UPDATE = "needs_update"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class TlsRptResult:
    state: str
    host: str
    record: str  # what to publish (the current record when it is fine)
    expected: list[Record]
    found: list[Record]
    message: str


def record_host(domain: str) -> str:
    return f"_smtp._tls.{domain}"


def _record(uris: list[str]) -> str:
    return "v=TLSRPTv1; rua=" + ",".join(uris)


def expected_records(domain: str, address: str) -> list[Record]:
    """What a domain without a TLS-RPT record publishes."""
    return [Record("TXT", record_host(domain), _record([f"mailto:{address}"]))]


def _is_tlsrpt(text: str) -> bool:
    # §3: of the TXT records at _smtp._tls, those not beginning with "v=TLSRPTv1" are discarded.
    return text.strip().lower().startswith("v=tlsrptv1")


def _report_uris(text: str) -> list[str] | None:
    """The `rua` addresses of a well-formed record, or None."""
    fields = [f.strip() for f in text.split(";") if f.strip()]
    if not fields or fields[0].replace(" ", "") != "v=TLSRPTv1":
        return None
    ruas = [f.partition("=")[2] for f in fields[1:] if f.partition("=")[0].strip() == "rua"]
    if len(ruas) != 1:
        return None
    uris = [u.strip() for u in ruas[0].split(",")]
    if not all(u.lower().startswith(("mailto:", "https:")) and len(u) > 7 for u in uris):
        return None
    return uris


def check_tls_rpt(domain: str, address: str, fetch_txt: FetchTxt) -> TlsRptResult:
    host = record_host(domain)
    ours = f"mailto:{address}"
    suggestion = _record([ours])

    def result(state: str, record: str, found: list[str], message: str) -> TlsRptResult:
        expected = [Record("TXT", host, record)]
        return TlsRptResult(
            state, host, record, expected, [Record("TXT", host, t) for t in found], message
        )

    try:
        records = [t for t in fetch_txt(host) if _is_tlsrpt(t)]
    except TemporaryDnsFailure:
        return result(
            TlsRptState.UNKNOWN,
            suggestion,
            [],
            _("The DNS did not answer in time. We will check again shortly."),
        )
    if not records:
        return result(
            TlsRptState.NOT_CONFIGURED,
            suggestion,
            [],
            _(
                "No TLS reporting record is published: when a sender fails to encrypt a "
                "message to you, nobody hears of it. Add our TXT record at %(host)s."
            )
            % {"host": host},
        )
    parsed = [_report_uris(r) for r in records]
    # Whatever the records already send reports to is kept, with our address added.
    theirs = [u for uris in parsed if uris for u in uris if u.lower() != ours.lower()]
    corrected = _record([*dict.fromkeys(theirs), ours])
    if len(records) > 1:
        return result(
            TlsRptState.INVALID,
            corrected,
            records,
            _(
                "%(count)d TLS reporting records are published at %(host)s; senders ignore "
                "them all. Replace them with one record: ours, which keeps their report addresses."
            )
            % {"count": len(records), "host": host},
        )
    if parsed[0] is None:
        return result(
            TlsRptState.INVALID,
            suggestion,
            records,
            _(
                "The TLS reporting record at %(host)s is not valid: it needs “v=TLSRPTv1” first "
                "and “rua=” with mailto: or https: addresses. Replace it with ours."
            )
            % {"host": host},
        )
    if ours.lower() not in {u.lower() for u in parsed[0]}:
        return result(
            TlsRptState.NEEDS_UPDATE,
            corrected,
            records,
            _(
                "Your TLS reporting record does not send reports to us, so we cannot see when "
                "senders fail to encrypt mail to you. Replace it with the record under “View "
                "record”, which keeps your current addresses."
            ),
        )
    return result(
        TlsRptState.CONFIGURED,
        records[0],
        records,
        _("TLS reporting is set up: senders tell us when they cannot encrypt mail to you."),
    )
