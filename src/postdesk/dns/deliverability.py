"""The deliverability self-test's judgement: what a receiving server concludes from a message
as it arrived, and the same in plain words with the fix for each failure. Pure functions over
the message's bytes and the DNS lookups passed in (no database, no network of its own).

`judge(raw, mail_from, dns, sending_ips, helo, spf_mechanism)` returns the facts, as codes a
page can store and put in words later, in the reader's language (`explain`):

- SPF: RFC 7208 `check_host()` for each of our sending IP addresses (POSTDESK_SENDING_IPS),
  the message's envelope sender (its Return-Path) and our HELO name: the address receivers
  see is the one our server sends from, never the loopback peer the probe came in from. The
  first address that does not pass decides; the fix is the record `check_spf` advises.
- DKIM: the first DKIM-Signature verified with dkimpy, its key read through `dns` (our
  resolver). "none" when the message is unsigned (DKIM disabled); a missing key record and a
  key that does not match the signature are told apart, since their fixes differ.
- DMARC (RFC 7489): the policy receivers find for the From domain (dmarc.check_dmarc: its own
  _dmarc record, or its organizational domain's with `sp=`); DMARC passes when SPF or DKIM
  passes for a domain aligned with the From domain (`aspf`/`adkim`: strict, the same name;
  relaxed, the same organizational domain). The disposition is what the policy asks for a
  failing message: deliver (p=none or passing), quarantine or reject; `pct=` is not read.
- TLS: each SMTP hop of the message's Received headers (Postfix writes "using TLSv1.3 with
  cipher …" for an encrypted session), oldest first: the submission from the mailbox
  (authenticated: ESMTPSA) and the delivery to the receiving server.
- seconds: from the moment the panel started sending to the receiving server's Received
  time (which has whole seconds only).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any

import dkim
from django.utils.translation import gettext as _

from .answers import DnsLookups, TemporaryDnsFailure
from .check_host import Verdict, check_host
from .dkim import parse_tags
from .dmarc import Alignment, DmarcState, check_dmarc, organizational_domain
from .dmarc import record_host as dmarc_host
from .dmarc import suggested_record as dmarc_suggested_record
from .spf import check_spf

_USING_TLS = re.compile(
    r"\(using\s+(?P<protocol>TLSv[\d.]+|SSLv\d)\s+with\s+cipher\s+(?P<cipher>\S+)"
)
_WITH = re.compile(r"\bwith\s+(?P<protocol>[A-Z]+)\b")
_BY = re.compile(r"\bby\s+(?P<host>\S+)")
_FROM = re.compile(r"^\s*from\s+(?P<host>\S+)")


@dataclass(frozen=True)
class Hop:
    """One SMTP hop of a message, as the server that received it recorded it."""

    sender: str  # the client's name, as the receiving server wrote it
    receiver: str
    protocol: str  # ESMTPSA, ESMTPS, ESMTP, SMTP…
    tls: str  # "TLSv1.3", or "" when the session was not encrypted
    cipher: str
    at: datetime | None

    @property
    def authenticated(self) -> bool:
        # RFC 3848: ESMTPA/ESMTPSA are sessions where the client logged in (submission).
        return self.protocol.endswith("A")


def smtp_hops(message: email.message.Message) -> list[Hop]:
    """The message's SMTP hops from its Received headers, oldest first (LMTP and other
    deliveries inside the receiving server are left out)."""
    hops = []
    for header in reversed(message.get_all("Received") or []):
        text = " ".join(str(header).split())
        protocol = _WITH.search(text)
        if protocol is None or "SMTP" not in protocol["protocol"] or "LMTP" in text.split(";")[0]:
            continue
        tls = _USING_TLS.search(text)
        sender, receiver = _FROM.search(text), _BY.search(text)
        try:
            at = parsedate_to_datetime(text.rsplit(";", 1)[1].strip()) if ";" in text else None
        except (TypeError, ValueError, IndexError):
            at = None
        hops.append(
            Hop(
                sender=sender["host"] if sender else "",
                receiver=receiver["host"] if receiver else "",
                protocol=protocol["protocol"],
                tls=tls["protocol"] if tls else "",
                cipher=tls["cipher"] if tls else "",
                at=at,
            )
        )
    return hops


def _domain_of(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2].lower().rstrip(".")


def _aligned(identifier: str, from_domain: str, mode: str) -> bool:
    """RFC 7489 §3.1: strict, the same name; relaxed, the same organizational domain."""
    if not identifier or not from_domain:
        return False
    if identifier == from_domain:
        return True
    return mode != "s" and organizational_domain(identifier) == organizational_domain(from_domain)


def _judge_spf(
    mail_from: str,
    dns: DnsLookups,
    sending_ips: Sequence[str],
    helo: str,
    spf_mechanism: str,
) -> dict[str, Any]:
    domain = _domain_of(mail_from) or helo
    evaluations = [check_host(ip, domain, mail_from, helo, dns) for ip in sending_ips]
    failing = next((e for e in evaluations if e.verdict != Verdict.PASS), None)
    shown = failing or evaluations[0]
    facts = {"result": str(shown.verdict), "ip": shown.ip, "domain": domain, "advice": ""}
    if failing is not None and failing.verdict != Verdict.TEMPERROR:
        # Without an answer, the fix is "see the SPF card".
        with contextlib.suppress(TemporaryDnsFailure):
            facts["advice"] = check_spf(domain, spf_mechanism, dns, sending_ips, helo).record
    return facts


def _judge_dkim(raw: bytes, message: email.message.Message, dns: DnsLookups) -> dict[str, Any]:
    header = message.get("DKIM-Signature")
    if header is None:
        return {"result": "none", "reason": "no_signature", "domain": "", "selector": ""}
    tags = parse_tags(" ".join(str(header).split()))
    domain, selector = tags.get("d", "").lower(), tags.get("s", "")
    facts = {"result": "fail", "reason": "", "domain": domain, "selector": selector}
    name = f"{selector}._domainkey.{domain}"
    try:
        records = dns.txt(name)
    except TemporaryDnsFailure:
        return facts | {"result": "temperror", "reason": "dns"}
    if not records:
        return facts | {"reason": "no_key"}

    def published(_name: bytes, timeout: int = 5) -> bytes:
        return records[0].encode()

    try:
        verified = dkim.DKIM(raw).verify(dnsfunc=published)
    except dkim.DKIMException:
        verified = False
    if verified:
        return facts | {"result": "pass"}
    return facts | {"reason": "key_mismatch"}


def _judge_dmarc(
    from_domain: str, spf: dict[str, Any], dkim_facts: dict[str, Any], dns: DnsLookups
) -> dict[str, Any]:
    found = check_dmarc(from_domain, dns.txt)
    if found.state == DmarcState.UNKNOWN:
        return {"result": "temperror", "policy": "", "disposition": ""}
    modes = found.alignment or Alignment("r", "r", None, None)
    spf_aligned = spf["result"] == Verdict.PASS and _aligned(spf["domain"], from_domain, modes.aspf)
    dkim_aligned = dkim_facts["result"] == "pass" and _aligned(
        dkim_facts["domain"], from_domain, modes.adkim
    )
    passed = spf_aligned or dkim_aligned
    if found.state != DmarcState.CONFIGURED or found.policy is None:
        # No (usable) policy: receivers decide alone, as without DMARC.
        return {
            "result": "none",
            "policy": "",
            "spf_aligned": spf_aligned,
            "dkim_aligned": dkim_aligned,
            "disposition": "deliver" if passed else "receiver_decides",
        }
    return {
        "result": "pass" if passed else "fail",
        "policy": found.policy,
        "spf_aligned": spf_aligned,
        "dkim_aligned": dkim_aligned,
        "disposition": "deliver" if passed or found.policy == "none" else found.policy,
    }


def judge(
    raw: bytes,
    *,
    dns: DnsLookups,
    sending_ips: Sequence[str],
    helo: str,
    spf_mechanism: str,
    sent_at: datetime,
) -> dict[str, Any]:
    """What a receiver concludes from the probe message `raw`, as it arrived (see the module's
    docstring); the envelope sender is its Return-Path."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    mail_from = (
        parseaddr(str(message.get("Return-Path", "")))[1]
        or parseaddr(str(message.get("From", "")))[1]
    )
    from_domain = _domain_of(str(message.get("From", "")))
    spf = _judge_spf(mail_from, dns, sending_ips, helo, spf_mechanism)
    dkim_facts = _judge_dkim(raw, message, dns)
    hops = smtp_hops(message)
    arrived = hops[-1].at if hops else None
    seconds = (
        max(0, round((arrived - sent_at.replace(microsecond=0)).total_seconds()))
        if arrived
        else None
    )
    return {
        "from_domain": from_domain,
        "spf": spf,
        "dkim": dkim_facts,
        "dmarc": _judge_dmarc(from_domain, spf, dkim_facts, dns),
        "tls": [
            {
                "hop": "submission" if hop.authenticated else "delivery",
                "from": hop.sender,
                "by": hop.receiver,
                "protocol": hop.tls,
                "cipher": hop.cipher,
            }
            for hop in hops
        ],
        "seconds": seconds,
    }


# --- In words ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One check of the self-test as the customer reads it."""

    check: str  # "spf", "dkim", "dmarc", "tls", "time"
    title: str
    ok: bool
    message: str
    fix: str = ""


def _temporary_error(check: str, title: str, name: str) -> Finding:
    """A check the DNS did not answer in time: nothing is known to be wrong, so the only fix
    is to try again."""
    return Finding(
        check,
        title,
        False,
        _("Temporary error: the DNS did not answer in time while checking %(check)s for %(name)s.")
        % {"check": title, "name": name},
        _("Nothing to change for now: run the test again in a few minutes."),
    )


def _spf_finding(spf: dict[str, Any]) -> Finding:
    values = {"ip": spf["ip"], "domain": spf["domain"], "record": spf["advice"]}
    if spf["result"] == Verdict.TEMPERROR:
        return _temporary_error("spf", "SPF", spf["domain"])
    if spf["result"] == Verdict.PASS:
        return Finding(
            "spf",
            "SPF",
            True,
            _("Pass: the SPF record of %(domain)s authorizes our server %(ip)s.") % values,
        )
    words = {
        Verdict.FAIL: _("Fail: the SPF record of %(domain)s rejects our server %(ip)s."),
        Verdict.SOFTFAIL: _(
            "Soft fail: the SPF record of %(domain)s marks mail from our server %(ip)s as "
            "suspicious."
        ),
        Verdict.NEUTRAL: _(
            "Neutral: the SPF record of %(domain)s neither authorizes nor rejects our server "
            "%(ip)s."
        ),
        Verdict.NONE: _("None: %(domain)s publishes no SPF record."),
        Verdict.PERMERROR: _(
            "Permanent error: receiving servers cannot use the SPF record of %(domain)s."
        ),
    }
    message = words.get(spf["result"], words[Verdict.PERMERROR]) % values
    if spf["advice"] and spf["result"] == Verdict.NONE:
        fix = _("Publish this SPF record (TXT) at %(domain)s: %(record)s") % values
    elif spf["advice"]:
        fix = (
            _("Publish this SPF record (TXT) at %(domain)s, replacing the current one: %(record)s")
            % values
        )
    else:
        fix = _("Publish the SPF record shown on the SPF card above.")
    return Finding("spf", "SPF", False, message, fix)


def _dkim_finding(facts: dict[str, Any]) -> Finding:
    values = {
        "domain": facts["domain"],
        "host": f"{facts['selector']}._domainkey.{facts['domain']}",
    }
    if facts["result"] == "pass":
        return Finding(
            "dkim",
            "DKIM",
            True,
            _(
                "Pass: the message is signed for %(domain)s and the signature verifies with the "
                "key published at %(host)s."
            )
            % values,
        )
    if facts["reason"] == "no_signature":
        return Finding(
            "dkim",
            "DKIM",
            False,
            _("None: the message left unsigned, so DKIM is disabled for your domain."),
            _("Enable DKIM on the DKIM card above and publish its DNS record."),
        )
    if facts["result"] == "temperror":
        return _temporary_error("dkim", "DKIM", values["host"])
    if facts["reason"] == "no_key":
        return Finding(
            "dkim",
            "DKIM",
            False,
            _("Fail: the message is signed, but no DKIM key is published at %(host)s.") % values,
            _("Publish the TXT record under “View DNS record” on the DKIM card at %(host)s.")
            % values,
        )
    return Finding(
        "dkim",
        "DKIM",
        False,
        _("Fail: the signature does not verify with the key published at %(host)s.") % values,
        _(
            "The published key is not the one we sign with: replace the TXT record at "
            "%(host)s with the one under “View DNS record” on the DKIM card."
        )
        % values,
    )


def _dmarc_finding(facts: dict[str, Any], from_domain: str) -> Finding:
    dispositions = {
        "deliver": _("receiving servers deliver it."),
        "quarantine": _("receiving servers put it in the spam folder (p=quarantine)."),
        "reject": _("receiving servers refuse it (p=reject)."),
        "receiver_decides": _("each receiving server decides alone, often for the spam folder."),
    }
    values = {
        "domain": from_domain,
        "host": dmarc_host(from_domain),
        "record": dmarc_suggested_record(from_domain),
        "policy": facts.get("policy", ""),
        "disposition": dispositions.get(facts.get("disposition", ""), ""),
    }
    if facts["result"] == "temperror":
        return _temporary_error("dmarc", "DMARC", values["host"])
    if facts["result"] == "pass":
        return Finding(
            "dmarc",
            "DMARC",
            True,
            _(
                "Pass (policy p=%(policy)s): SPF or DKIM passes for your own domain, so "
                "%(disposition)s"
            )
            % values,
        )
    fix_alignment = (
        _("Make SPF or DKIM pass above: DMARC passes as soon as one of them passes for %(domain)s.")
        % values
    )
    if facts["result"] == "none":
        fix = _("Publish a DMARC policy (TXT) at %(host)s, for example: %(record)s") % values
        if facts.get("disposition") != "deliver":
            fix = f"{fix_alignment} {fix}"
        return Finding(
            "dmarc",
            "DMARC",
            False,
            _("None: %(domain)s publishes no DMARC policy, so %(disposition)s") % values,
            fix,
        )
    return Finding(
        "dmarc",
        "DMARC",
        False,
        _(
            "Fail (policy p=%(policy)s): neither SPF nor DKIM passes for %(domain)s, so "
            "%(disposition)s"
        )
        % values,
        fix_alignment,
    )


def _tls_finding(hops: list[dict[str, Any]]) -> Finding:
    names = {
        "submission": _("from the mailbox to our server"),
        "delivery": _("from our server to the receiving server"),
    }
    parts, clear = [], []
    for hop in hops:
        where = names.get(hop["hop"], hop["hop"])
        if hop["protocol"]:
            parts.append(
                _("%(where)s: encrypted (%(protocol)s, %(cipher)s)")
                % {"where": where, "protocol": hop["protocol"], "cipher": hop["cipher"]}
            )
        else:
            parts.append(_("%(where)s: not encrypted") % {"where": where})
            clear.append(where)
    if not hops:
        return Finding("tls", "TLS", False, _("The message carries no record of its way."), "")
    message = "; ".join(parts) + "."
    if not clear:
        return Finding("tls", "TLS", True, message[:1].upper() + message[1:])
    return Finding(
        "tls",
        "TLS",
        False,
        message[:1].upper() + message[1:],
        _(
            "Part of the way was not encrypted. This is on our side, not in your DNS: "
            "tell our support."
        ),
    )


def _time_finding(seconds: int | None) -> Finding:
    if seconds is None:
        return Finding("time", _("Time"), True, _("The message arrived."))
    return Finding(
        "time",
        _("Time"),
        True,
        _("The message arrived %(seconds)s s after it was sent.") % {"seconds": seconds},
    )


def explain(facts: dict[str, Any]) -> list[Finding]:
    """The facts of `judge` in the reader's language: one finding per check, in the order a
    receiver meets them, each failure with its fix."""
    return [
        _spf_finding(facts["spf"]),
        _dkim_finding(facts["dkim"]),
        _dmarc_finding(facts["dmarc"], facts["from_domain"]),
        _tls_finding(facts["tls"]),
        _time_finding(facts["seconds"]),
    ]
