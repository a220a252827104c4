"""MTA-STS (RFC 8461): the policy we serve for each hosted domain, and the check of the two
records that lead senders to it. Pure functions: no database, no network.

The policy, served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt (web/mtasts.py):

    version: STSv1
    mode: testing            (or enforce: the customer's choice on the dashboard)
    mx: mx1.postdesk.example (one line per host of POSTDESK_MX_HOSTS)
    max_age: 86400

Choices against the RFC:
- max_age. `testing`: one day. Testing never stops a message, and a sender that cached it sees a
  switch to enforce within a day. `enforce`: one week. §3.2 expects "weeks or greater", so an
  attacker cannot wait for the cached policy to lapse, and senders refresh it before it does
  (§5.1), so a domain that stays with us stays protected; and a week bounds how long senders
  that cached it still hold a domain that left us to our MX hosts (its policy then answers
  404, and §5.1 keeps using a cached policy until it expires).
- id: the first 20 hex digits of the policy text's SHA-256. It changes with anything that
  changes the policy (the mode, our MX hosts, max_age) and needs nothing stored; going back to
  an earlier policy gives its id back, which still differs from what senders cached since
  (§3.1: they refetch when the id is not the cached one).
- The `mta-sts` host: mta-sts.DOMAIN must resolve only to addresses of POSTDESK_MTA_STS_TARGET,
  the web front that holds its certificate and forwards the Host header to the panel (a CNAME
  to it, or A/AAAA records copying its addresses). That the front's certificate covers the
  name is the operator's part, not checked here.

States of a domain's MTA-STS, as the dashboard shows them:
- not_configured: no `v=STSv1` record at _mta-sts.DOMAIN: senders do not use MTA-STS (nothing
                  breaks; an attacker on the path can still strip encryption);
- invalid:        several STSv1 records, or one senders cannot read: §3.1 has them ignore it;
- needs_update:   the record's id is not our policy's (senders keep an older policy), or
                  mta-sts.DOMAIN does not lead to our front (senders cannot fetch the policy);
- configured:     both records lead senders to the policy in force;
- unknown:        the DNS could not answer now; retried.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum

from django.utils.translation import gettext as _

from postdesk.mail.choices import MtaStsMode

from .answers import FetchAddresses, FetchTxt, Record, TemporaryDnsFailure

MAX_AGE = {MtaStsMode.TESTING: 86400, MtaStsMode.ENFORCE: 604800}
POLICY_PATH = "/.well-known/mta-sts.txt"
HOST_PREFIX = "mta-sts."
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")  # §3.1: sts-id = 1*32(ALPHA / DIGIT)


class MtaStsState(StrEnum):
    CONFIGURED = "configured"
    NOT_CONFIGURED = "not_configured"
    INVALID = "invalid"
    NEEDS_UPDATE = "needs_update"
    UNKNOWN = "unknown"


def policy_text(mode: str, mx_hosts: list[str]) -> str:
    """The policy file, lines ended with CRLF as in the RFC's own example (§3.2)."""
    lines = ["version: STSv1", f"mode: {mode}"]
    lines += [f"mx: {host}" for host in mx_hosts]
    lines.append(f"max_age: {MAX_AGE[MtaStsMode(mode)]}")
    return "".join(f"{line}\r\n" for line in lines)


def policy_id(mode: str, mx_hosts: list[str]) -> str:
    return hashlib.sha256(policy_text(mode, mx_hosts).encode()).hexdigest()[:20]


def txt_host(domain: str) -> str:
    return f"_mta-sts.{domain}"


def policy_host(domain: str) -> str:
    return f"{HOST_PREFIX}{domain}"


def domain_of_policy_host(host: str) -> str | None:
    """DOMAIN for a host name `mta-sts.DOMAIN`; None for any other name."""
    if not host.startswith(HOST_PREFIX) or len(host) == len(HOST_PREFIX):
        return None
    return host[len(HOST_PREFIX) :]


def expected_records(domain: str, mode: str, mx_hosts: list[str], target: str) -> list[Record]:
    return [
        Record("TXT", txt_host(domain), f"v=STSv1; id={policy_id(mode, mx_hosts)}"),
        Record("CNAME", policy_host(domain), target),
    ]


@dataclass(frozen=True)
class MtaStsResult:
    state: str
    mode: str
    policy_id: str
    expected: list[Record]
    found: list[Record]
    message: str


def _is_sts(text: str) -> bool:
    # §3.1: of the TXT records at _mta-sts, those not beginning with "v=STSv1;" are discarded.
    return text.strip().lower().startswith("v=stsv1")


def _record_id(text: str) -> str | None:
    """The id of a well-formed STSv1 record (§3.1), or None."""
    fields = [f.strip() for f in text.split(";") if f.strip()]
    if not fields or fields[0].replace(" ", "") != "v=STSv1":
        return None
    ids = [f.partition("=")[2].strip() for f in fields[1:] if f.partition("=")[0].strip() == "id"]
    if len(ids) != 1 or not _ID.match(ids[0]):
        return None
    return ids[0]


def _address_record(host: str, address: str) -> Record:
    kind = "AAAA" if ipaddress.ip_address(address).version == 6 else "A"
    return Record(kind, host, address)


def check_mta_sts(
    domain: str,
    mode: str,
    mx_hosts: list[str],
    target: str,
    fetch_txt: FetchTxt,
    fetch_addresses: FetchAddresses,
) -> MtaStsResult:
    """Whether senders reach the policy in force: the _mta-sts record, then the host."""
    current_id = policy_id(mode, mx_hosts)
    expected = expected_records(domain, mode, mx_hosts, target)

    def result(state: str, message: str, found: list[Record]) -> MtaStsResult:
        return MtaStsResult(state, mode, current_id, expected, found, message)

    txt, host = txt_host(domain), policy_host(domain)
    try:
        records = [t for t in fetch_txt(txt) if _is_sts(t)]
        addresses = fetch_addresses(host)
        ours = set(fetch_addresses(target)) if addresses else set()
    except TemporaryDnsFailure:
        return result(
            MtaStsState.UNKNOWN,
            _("The DNS did not answer in time. We will check again shortly."),
            [],
        )
    found = [Record("TXT", txt, r) for r in records]
    found += [_address_record(host, a) for a in addresses]
    if not records:
        return result(
            MtaStsState.NOT_CONFIGURED,
            # The way to the records is the card's to say (it has the button), once.
            _(
                "MTA-STS is not published: senders may deliver your mail unencrypted if an "
                "attacker interferes."
            ),
            found,
        )
    published_id = _record_id(records[0]) if len(records) == 1 else None
    if published_id is None:
        if len(records) > 1:
            message = _(
                "%(count)d MTA-STS records are published at %(host)s; senders ignore them all. "
                "Keep only ours."
            ) % {"count": len(records), "host": txt}
        else:
            message = _(
                "The MTA-STS record at %(host)s is not valid: it needs “v=STSv1” first and an "
                "“id” of 1 to 32 letters and digits. Replace it with ours."
            ) % {"host": txt}
        return result(MtaStsState.INVALID, message, found)
    if not addresses:
        return result(
            MtaStsState.NEEDS_UPDATE,
            _(
                "%(host)s does not exist in your DNS, so senders cannot fetch your MTA-STS "
                "policy. Add a CNAME record from %(host)s to %(target)s."
            )
            % {"host": host, "target": target},
            found,
        )
    if not set(addresses) <= ours:
        return result(
            MtaStsState.NEEDS_UPDATE,
            _(
                "%(host)s points to other servers (%(addresses)s), so senders cannot fetch "
                "your MTA-STS policy. Make it a CNAME record to %(target)s."
            )
            % {"host": host, "addresses": ", ".join(addresses), "target": target},
            found,
        )
    if published_id != current_id:
        return result(
            MtaStsState.NEEDS_UPDATE,
            _(
                "Your MTA-STS record has the id of another policy (%(found)s), so senders keep "
                "applying the one they saw before. Replace the record with ours (id=%(id)s)."
            )
            % {"found": published_id, "id": current_id},
            found,
        )
    if mode == MtaStsMode.ENFORCE:
        message = _(
            "MTA-STS is active in enforce mode: senders deliver your mail to our servers only "
            "over verified encryption."
        )
    else:
        message = _(
            "MTA-STS is active in testing mode: senders report a failed encryption check but "
            "still deliver your mail."
        )
    return result(MtaStsState.CONFIGURED, message, found)
