"""MX: does the domain's mail reach our servers? Pure functions over the MX answer.

States:
- configured:     every MX host is one of ours;
- not_configured: no MX record (senders then try the domain's own address, RFC 5321 §5.1);
- null_mx:        the domain publishes a null MX (RFC 7505: `0 .`, "this domain accepts no
                  mail"): senders return every message at once, none can be received;
- needs_update:   some or all MX hosts are not ours, or a null MX stands beside other MX
                  records (RFC 7505 §3 forbids it: senders may treat the domain either way);
- unknown:        the DNS could not answer now; retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from django.utils.translation import gettext as _

from .answers import TemporaryDnsFailure

FetchMx = Callable[[str], list[tuple[int, str]]]


class MxState(StrEnum):
    CONFIGURED = "configured"
    NOT_CONFIGURED = "not_configured"
    NEEDS_UPDATE = "needs_update"
    NULL_MX = "null_mx"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class MxResult:
    state: str
    records: list[tuple[int, str]]  # what to publish: (preference, host)
    message: str
    found: list[tuple[int, str]]

    @property
    def record(self) -> str:
        return "\n".join(f"{preference} {host}." for preference, host in self.records)


def suggested_records(our_hosts: list[str]) -> list[tuple[int, str]]:
    return [(10 * (i + 1), host) for i, host in enumerate(our_hosts)]


def check_mx(domain: str, our_hosts: list[str], fetch_mx: FetchMx) -> MxResult:
    wanted = suggested_records(our_hosts)
    try:
        found = fetch_mx(domain)
    except TemporaryDnsFailure:
        return MxResult(
            MxState.UNKNOWN,
            wanted,
            _("The DNS did not answer in time. We will check again shortly."),
            [],
        )
    hosts = {host for _preference, host in found if host}
    ours = set(our_hosts)
    null_mx = any(not host for _preference, host in found)
    if null_mx and not hosts:
        return MxResult(
            MxState.NULL_MX,
            wanted,
            _(
                "Your domain publishes a “null MX” (0 .), which tells every sender that it "
                "accepts no mail: no message can be received. Replace it with our MX records."
            ),
            found,
        )
    if null_mx:
        return MxResult(
            MxState.NEEDS_UPDATE,
            wanted,
            _(
                "Your domain publishes a “null MX” (0 .), which says it accepts no mail, "
                "beside other MX records: senders may refuse to deliver. Keep only our MX "
                "records."
            ),
            found,
        )
    if not hosts:
        return MxResult(
            MxState.NOT_CONFIGURED,
            wanted,
            _("No MX record: mail sent to your domain cannot be delivered. Add our MX records."),
            found,
        )
    if hosts <= ours:
        return MxResult(
            MxState.CONFIGURED, found, _("Your domain's mail is delivered to our servers."), found
        )
    others = ", ".join(sorted(hosts - ours))
    if hosts & ours:
        message = _(
            "Some of your MX records point elsewhere (%(others)s): part of your mail may not "
            "reach your mailboxes. Keep only ours."
        ) % {"others": others}
    else:
        message = _(
            "Your MX records point to other servers (%(others)s): mail does not reach your "
            "mailboxes here. Replace them with ours."
        ) % {"others": others}
    return MxResult(MxState.NEEDS_UPDATE, wanted, message, found)
