"""DMARC (RFC 7489): the policy receivers find for the domain, whether our mail passes it, and
whether the reports it asks for can be sent. Pure functions over the TXT answers.

We suggest a monitoring-only starter (`p=none`) whose aggregate reports go to the domain's
postmaster: it changes nothing for delivery, and lets the customer see who sends as them
before choosing a stricter policy.

States (of the record; what it means for our mail comes as warnings):
- configured:     one valid policy record applies: at _dmarc.DOMAIN, or, when there is none,
                  at _dmarc of the organizational domain (§6.6.3: receivers look there next,
                  and its `sp=` then applies);
- not_configured: no policy applies;
- invalid:        several records (§6.6.3: receivers then apply none), or one without
                  “v=DMARC1” or a valid `p=`;
- unknown:        the DNS could not answer now; retried.

What a configured record means for our mail, each a warning (`warnings`, and the advice when
one applies in `record`):
- alignment (§3.1): our DKIM signature's d= and our MAIL FROM (SPF) are the From domain
  itself, so both align in relaxed and in strict mode (`adkim`/`aspf`); DMARC then passes if
  DKIM is active or SPF is configured. When neither, receivers apply the policy to every
  message: the warning says what it does (nothing, spam folder, rejection) and to fix
  DKIM or SPF;
- `p=none` for weeks (`NONE_FLAGGED_AFTER`, counted from when the checks first saw it, as
  stored with the domain's DNS status): monitoring was meant as a first step; when our mail
  passes, the advice is the same record with `p=quarantine`;
- report addresses in another organizational domain (`rua=`/`ruf=`): receivers send reports
  there only if that domain publishes `DOMAIN._report._dmarc.REPORTDOMAIN` TXT “v=DMARC1”
  (§7.1); a missing authorization is a warning naming that record.

Organizational domains (§3.2) come from the Public Suffix List (publicsuffixlist, bundled).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from django.utils.translation import gettext as _
from publicsuffixlist import PublicSuffixList

from .answers import FetchTxt, TemporaryDnsFailure
from .dkim import parse_tags

_POLICIES = {"none", "quarantine", "reject"}
_ALIGNMENT_MODES = {"r", "s"}
# How long `p=none` may stay before the card suggests enforcing: the few weeks of reports that
# show who else sends as the domain.
NONE_FLAGGED_AFTER = timedelta(weeks=4)

_PSL = PublicSuffixList()


def none_flagged_weeks(none_since: datetime | None, now: datetime | None) -> int | None:
    """The whole weeks `p=none` has stood, once it has stood long enough to be flagged; None
    before (or without the dates). The one time-dependent part of a report: a cache of a
    rendered report keys on it."""
    if none_since is None or now is None or now - none_since < NONE_FLAGGED_AFTER:
        return None
    return (now - none_since).days // 7


class DmarcState(StrEnum):
    CONFIGURED = "configured"
    NOT_CONFIGURED = "not_configured"
    INVALID = "invalid"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ReportAddress:
    """One `rua`/`ruf` address and whether receivers may send reports to it (§7.1)."""

    uri: str
    domain: str
    external: bool
    # None: not external (nothing to authorize), or the DNS could not answer.
    authorized: bool | None
    # Where the authorization lives, and what it must say (empty when not external).
    host: str = ""
    record: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "uri": self.uri,
            "domain": self.domain,
            "external": self.external,
            "authorized": self.authorized,
            "host": self.host,
            "record": self.record,
        }


@dataclass(frozen=True)
class Alignment:
    """Whether our mail passes DMARC: each identifier aligned with the From domain and
    passing (None when the DKIM or SPF state was not given)."""

    adkim: str
    aspf: str
    dkim: bool | None
    spf: bool | None

    @property
    def passes(self) -> bool | None:
        """True when either passes; None when that cannot be told (a check unknown)."""
        if self.dkim or self.spf:
            return True
        if self.dkim is None or self.spf is None:
            return None
        return False

    def as_dict(self) -> dict[str, object]:
        return {
            "adkim": self.adkim,
            "aspf": self.aspf,
            "dkim_aligned": self.dkim,
            "spf_aligned": self.spf,
            "aligned": self.passes,
        }


@dataclass(frozen=True)
class DmarcResult:
    state: str
    host: str
    record: str  # what to publish (the current record when nothing needs changing)
    message: str
    policy: str | None
    found: list[str]
    # The domain whose _dmarc record applies: ours, or the organizational domain's.
    policy_domain: str = ""
    alignment: Alignment | None = None
    none_since: datetime | None = None  # when p=none was first seen, while it lasts
    reports: list[ReportAddress] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def record_host(domain: str) -> str:
    return f"_dmarc.{domain}"


def suggested_record(domain: str) -> str:
    return f"v=DMARC1; p=none; rua=mailto:postmaster@{domain}"


def organizational_domain(domain: str) -> str:
    """§3.2: the registered domain (one label under its public suffix)."""
    return _PSL.privatesuffix(domain.lower().rstrip(".")) or domain.lower().rstrip(".")


def report_authorization_host(domain: str, report_domain: str) -> str:
    return f"{domain}._report._dmarc.{report_domain}"


def _is_dmarc(text: str) -> bool:
    return text.strip().lower().replace(" ", "").startswith("v=dmarc1")


def _uris(value: str) -> list[str]:
    # §6.4: comma-separated URIs, each optionally followed by "!size".
    return [u.strip().split("!")[0] for u in value.split(",") if u.strip()]


def check_dmarc(
    domain: str,
    fetch_txt: FetchTxt,
    *,
    dkim_passes: bool | None = None,
    spf_passes: bool | None = None,
    none_since: datetime | None = None,
    now: datetime | None = None,
) -> DmarcResult:
    """The DMARC policy receivers apply to mail From `domain`, and what it means for ours.

    `dkim_passes`/`spf_passes`: whether our DKIM signature verifies and SPF passes our
    servers (None: not judged). `none_since`: since when the checks have seen `p=none` (the
    flag after weeks needs it, and `now`)."""
    host = record_host(domain)
    suggestion = suggested_record(domain)

    def unknown() -> DmarcResult:
        return DmarcResult(
            DmarcState.UNKNOWN,
            host,
            suggestion,
            _("The DNS did not answer in time. We will check again shortly."),
            None,
            [],
        )

    try:
        records = [t for t in fetch_txt(host) if _is_dmarc(t)]
        policy_domain = domain
        organizational = organizational_domain(domain)
        if not records and organizational != domain:
            records = [t for t in fetch_txt(record_host(organizational)) if _is_dmarc(t)]
            policy_domain = organizational if records else domain
    except TemporaryDnsFailure:
        return unknown()
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
    found_at = record_host(policy_domain)
    if len(records) > 1:
        return DmarcResult(
            DmarcState.INVALID,
            found_at,
            records[0],
            _(
                "%(count)d DMARC records are published at %(host)s; receivers ignore them all. "
                "Keep only one."
            )
            % {"count": len(records), "host": found_at},
            None,
            records,
        )
    tags = parse_tags(records[0])
    inherited = policy_domain != domain
    policy = tags.get("p", "").lower()
    if inherited and tags.get("sp", "").lower() in _POLICIES:
        policy = tags["sp"].lower()
    if tags.get("v", "").upper() != "DMARC1" or tags.get("p", "").lower() not in _POLICIES:
        return DmarcResult(
            DmarcState.INVALID,
            found_at,
            suggestion,
            _(
                "The DMARC record at %(host)s is not valid: it needs “v=DMARC1” first and a "
                "policy “p=none”, “p=quarantine” or “p=reject”."
            )
            % {"host": found_at},
            None,
            records,
        )
    alignment = Alignment(
        adkim=_mode(tags.get("adkim")),
        aspf=_mode(tags.get("aspf")),
        # Our d= and MAIL FROM domain are the From domain itself: aligned in either mode.
        dkim=dkim_passes,
        spf=spf_passes,
    )
    reports = [
        _authorization(policy_domain, uri, fetch_txt)
        for name in ("rua", "ruf")
        for uri in _uris(tags.get(name, ""))
        # A mailto: without a domain can reach no one: there is nothing to authorize.
        if uri.lower().startswith("mailto:") and "@" in uri
    ]
    if inherited:
        message = _("Your domain follows the DMARC policy of %(parent)s (p=%(policy)s).") % {
            "parent": policy_domain,
            "policy": policy,
        }
    else:
        message = _("A DMARC policy is published (p=%(policy)s).") % {"policy": policy}
    warnings = [_alignment_warning(policy, alignment)]
    record = records[0]
    since = none_since if policy == "none" else None
    weeks = none_flagged_weeks(since, now)
    if weeks is not None:
        if alignment.passes:
            warnings.append(
                _(
                    "Your DMARC policy has been “p=none” for %(weeks)d weeks: receivers "
                    "deliver messages that fail DMARC, including forgeries of your address. "
                    "Your own mail passes DMARC, so you can ask receivers to put failing "
                    "messages in spam: publish the record under “View record”."
                )
                % {"weeks": weeks}
            )
            if not inherited:
                record = _with_policy(records[0], "quarantine")
        else:
            warnings.append(
                _(
                    "Your DMARC policy has been “p=none” for %(weeks)d weeks. Before asking "
                    "receivers to filter messages that fail DMARC, make DKIM or SPF pass for "
                    "your mail."
                )
                % {"weeks": weeks}
            )
    warnings += [_report_warning(policy_domain, report) for report in reports]
    return DmarcResult(
        DmarcState.CONFIGURED,
        found_at,
        record,
        message,
        policy,
        records,
        policy_domain=policy_domain,
        alignment=alignment,
        none_since=since,
        reports=reports,
        warnings=[w for w in warnings if w],
    )


def _mode(value: str | None) -> str:
    # §6.3: "r" (relaxed) when absent; an unknown value is ignored as a syntax error would be.
    mode = (value or "r").lower()
    return mode if mode in _ALIGNMENT_MODES else "r"


def _with_policy(record: str, policy: str) -> str:
    """The record with its `p=` tag set to `policy`, every other tag kept as written."""
    parts = record.split(";")
    for i, part in enumerate(parts):
        name, sep, _value = part.partition("=")
        if sep and name.strip().lower() == "p":
            parts[i] = f"{name[: len(name) - len(name.lstrip())]}p={policy}"
    return ";".join(parts)


def _authorization(policy_domain: str, uri: str, fetch_txt: FetchTxt) -> ReportAddress:
    report_domain = uri.partition("@")[2].lower().rstrip(".")
    if organizational_domain(report_domain) == organizational_domain(policy_domain):
        return ReportAddress(uri, report_domain, False, None)
    host = report_authorization_host(policy_domain, report_domain)
    try:
        authorized: bool | None = any(_is_dmarc(t) for t in fetch_txt(host))
    except TemporaryDnsFailure:
        authorized = None  # the policy stands; only this address's reports are unknown
    return ReportAddress(uri, report_domain, True, authorized, host, "v=DMARC1")


def _alignment_warning(policy: str, alignment: Alignment) -> str:
    if alignment.passes is not False:
        return ""
    if policy == "reject":
        return _(
            "Your messages fail DMARC: neither DKIM nor SPF passes for your domain, and your "
            "policy (p=reject) tells receivers to refuse them. Make DKIM active or fix SPF "
            "first."
        )
    if policy == "quarantine":
        return _(
            "Your messages fail DMARC: neither DKIM nor SPF passes for your domain, and your "
            "policy (p=quarantine) tells receivers to put them in spam. Make DKIM active or "
            "fix SPF first."
        )
    return _(
        "Your messages fail DMARC: neither DKIM nor SPF passes for your domain. With "
        "p=none receivers still deliver them, but trust them less. Make DKIM active or fix "
        "SPF."
    )


def _report_warning(policy_domain: str, report: ReportAddress) -> str:
    if report.authorized is not False:
        return ""
    return _(
        "Receivers will not send DMARC reports to %(uri)s: %(report_domain)s has not agreed "
        "to receive reports for %(domain)s. Ask its owner to publish a TXT record "
        "“v=DMARC1” at %(host)s, or send reports to an address of your own domain."
    ) % {
        "uri": report.uri.removeprefix("mailto:"),
        "report_domain": report.domain,
        "domain": policy_domain,
        "host": report.host,
    }
