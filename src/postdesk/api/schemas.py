"""Request and response shapes of /api/v1.

Inputs are strict (no "5" for 5, no "yes" for true) and refuse unknown fields, so a typo in a
script fails loudly instead of being ignored. The product's rules (what a valid name, quota
or destination is) are checked by the services, not here: one place per rule.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field

# --- Errors ------------------------------------------------------------------------------------


class ErrorItem(Schema):
    code: str
    message: str
    field: str | None


class ErrorOut(ErrorItem):
    """The first (or only) error, and all of them when several fields are wrong."""

    errors: list[ErrorItem] | None = None


def _errors(*statuses: int) -> dict[int, type[Schema]]:
    return {status: ErrorOut for status in statuses}


# The error statuses a route documents, by what the route does; each answers an ErrorOut.
# Any route: 401 (no valid token), 403 (the token's scope or the user's role), 404 (not
# there, or another client's), 422 (a malformed request), 429 (too many failed tokens).
READ_ERRORS = _errors(401, 403, 404, 422, 429)
# And 400: the services check a value of the request (a filter, a moment, a plan, an expiry).
CHECKED_ERRORS = _errors(400, 401, 403, 404, 422, 429)
# And 409 too: a change, which can meet a taken name or a state that refuses it.
WRITE_ERRORS = _errors(400, 401, 403, 404, 409, 422, 429)


# --- Inputs ------------------------------------------------------------------------------------


class StrictIn(Schema):
    model_config = ConfigDict(extra="forbid", strict=True)


class MailboxCreateIn(StrictIn):
    username: str = Field(description="The part before the @.")
    password: str | None = Field(
        None, description="Omit it to have one generated: it is then returned once, here only."
    )
    aliases: list[str] = Field(default_factory=list, description="Local parts.")
    quota_mb: int = Field(
        0, description="Disk space limit in MB (1 MB = 1024² bytes); 0 = the plan's limit only."
    )
    destinations: list[str] = Field(default_factory=list, description="Forward copies here.")
    delete_after_forwarding: bool = False
    keep_original_sender: bool = False
    eas: bool = Field(False, description="ActiveSync")
    mapi: bool = Field(False, description="MAPI/Exchange")


class MailboxUpdateIn(StrictIn):
    """Only the fields sent change. `aliases` and `destinations` replace the whole list."""

    quota_mb: int | None = None
    aliases: list[str] | None = None
    destinations: list[str] | None = None
    delete_after_forwarding: bool | None = None
    keep_original_sender: bool | None = None
    eas: bool | None = None
    mapi: bool | None = None


class PasswordIn(StrictIn):
    password: str | None = Field(
        None, description="Omit it to have one generated: it is then returned once."
    )


class AliasIn(StrictIn):
    name: str = Field(description="The alias's local part (or its full address).")


class ForwardCreateIn(StrictIn):
    name: str = Field(description="The part before the @.")
    destinations: list[str]


class ForwardUpdateIn(StrictIn):
    destinations: list[str] = Field(description="Replaces the whole list.")


class ConfirmIn(StrictIn):
    confirm: bool = Field(False, description="Must be true.")


# --- Outputs -----------------------------------------------------------------------------------


class DomainOut(Schema):
    name: str
    client: str
    created_at: datetime


class DomainPage(Schema):
    items: list[DomainOut]
    total: int
    page: int
    per_page: int


class MailboxOut(Schema):
    address: str
    aliases: list[str]
    destinations: list[str]
    quota_mb: int
    used_bytes: int
    eas: bool
    mapi: bool
    delete_after_forwarding: bool
    keep_original_sender: bool
    password_changed_at: datetime
    created_at: datetime


class MailboxCreatedOut(MailboxOut):
    password: str | None = Field(None, description="The generated password, shown only now.")


class GeneratedPasswordOut(Schema):
    password: str = Field(description="Shown only now.")


class ForwardOut(Schema):
    address: str
    destinations: list[str]
    created_at: datetime
    updated_at: datetime


class AddressRowOut(Schema):
    address: str
    type: Literal["mailbox", "forward"]
    aliases: list[str]
    destinations: list[str]
    quota_mb: int | None
    used_bytes: int | None
    eas: bool
    mapi: bool
    delete_after_forwarding: bool
    keep_original_sender: bool
    growth_7d_bytes: int | None = Field(
        description=(
            "Bytes gained over the 7 days up to the mailbox's latest usage measure (negative: "
            "shrank); null for a forward."
        )
    )


class AddressPageOut(Schema):
    items: list[AddressRowOut]
    total: int
    page: int | None = Field(description="null on a page read from a cursor.")
    per_page: int
    num_pages: int
    next: str | None = Field(None, description="The next page's cursor; null on the last page.")
    previous: str | None = Field(
        None, description="The previous page's cursor; null on the first page."
    )


# The DNS status: the shape of `postdesk dns check DOMAIN --json` (docs/dns.md explains each
# state and each check). Every message and warning is in the reader's language.

_UNKNOWN = "unknown: the DNS did not answer in time, retried"


class SpfOut(Schema):
    state: str = Field(
        description="What receivers decide for our sending servers: configured, not_configured, "
        f"needs_update, invalid, or {_UNKNOWN}."
    )
    record: str = Field(description="The record to publish: ours, or the corrected one.")
    message: str
    warning: str = Field(
        "",
        description="Does not block configured: the record passes our servers but is broken "
        "for the domain's other senders. Empty when there is nothing to say.",
    )


class DkimKeyStateOut(Schema):
    """One DKIM key's record, as a verifier reads it."""

    state: str = Field(
        description="disabled, pending (no record), active, testing (t=y: receivers treat the "
        f"mail as unsigned), mismatch, or {_UNKNOWN}."
    )
    host: str = Field(description="Where the record lives: SELECTOR._domainkey.DOMAIN.")
    value: str = Field(description="The record to publish.")
    message: str
    selector: str = Field(description="Empty when DKIM is disabled.")
    found: list[str] = Field(description="The TXT records found at the host.")
    bits: int | None = Field(description="The published RSA key's size; null when unreadable.")


class DkimKeyCheckOut(DkimKeyStateOut):
    status: Literal["signing", "prepared"] = Field(
        description="signing: the key in use; prepared: a rotation's new key, to publish first."
    )


class DkimCheckOut(DkimKeyStateOut):
    """The signing key's check, a warning, and every key in use."""

    warning: str = Field(
        description="Does not block active: a key under 2048 bits, a prepared key whose record "
        "is not published yet. Empty when there is nothing to say."
    )
    keys: list[DkimKeyCheckOut] = Field(
        description="Every key in use, each checked: the signing one, then a rotation's "
        "prepared one."
    )


class DmarcAlignmentOut(Schema):
    adkim: str = Field(description="r (relaxed) or s (strict).")
    aspf: str = Field(description="r (relaxed) or s (strict).")
    dkim_aligned: bool | None = Field(
        description="Our DKIM signature passes, aligned with the From domain; null when DKIM "
        "is unknown."
    )
    spf_aligned: bool | None = Field(
        description="SPF passes for our MAIL FROM, aligned with the From domain; null when "
        "SPF is unknown."
    )
    aligned: bool | None = Field(
        description="Our mail passes DMARC (either of the above); null when that cannot be told."
    )


class DmarcReportOut(Schema):
    uri: str = Field(description="A rua= or ruf= address of the record.")
    domain: str
    external: bool = Field(description="In another organizational domain than yours.")
    authorized: bool | None = Field(
        description="Whether that domain accepts your reports (RFC 7489 §7.1); null when not "
        "external or when the DNS did not answer."
    )
    host: str = Field(description="Where that domain must publish the authorization.")
    record: str = Field(description="The authorization record it must publish there.")


class DmarcOut(Schema):
    state: str = Field(
        description=f"configured, not_configured, invalid (receivers apply none), or {_UNKNOWN}."
    )
    host: str
    record: str = Field(
        description="The record to publish: the corrected one when one applies (p=quarantine "
        "after weeks of p=none), else the published one, or a starter."
    )
    message: str
    policy: str | None = Field(
        None, description="none, quarantine or reject; null when no valid record applies."
    )
    policy_domain: str = Field(
        "",
        description="The domain whose _dmarc record applies: yours, or its organizational "
        "domain's.",
    )
    found: list[str] = Field(default_factory=list, description="The DMARC records found.")
    alignment: DmarcAlignmentOut | None = Field(
        None, description="What the policy means for our mail; null unless a record applies."
    )
    policy_none_since: datetime | None = Field(
        None,
        description="Since the check that first saw p=none; null unless the policy is none.",
    )
    reports: list[DmarcReportOut] = Field(default_factory=list)
    warnings: list[str] = Field(
        default_factory=list,
        description="What a configured policy means for our mail, each with its fix.",
    )


class MxOut(Schema):
    state: str = Field(
        description="configured, not_configured, null_mx (a null MX, RFC 7505: the domain "
        f"accepts no mail), needs_update, or {_UNKNOWN}."
    )
    records: list[tuple[int, str]] = Field(description="What to publish: [preference, host].")
    message: str
    found: list[tuple[int, str]] = Field(
        default_factory=list,
        description='What the DNS answered, [preference, host]; a null MX is [0, "."].',
    )


class DnsRecordOut(Schema):
    type: str = Field(description="TXT, CNAME, A or AAAA.")
    host: str
    value: str


class MtaStsOut(Schema):
    state: str = Field(
        description="configured, not_configured, needs_update (senders cannot fetch the policy, "
        f"or the record's id is an older policy's), invalid, or {_UNKNOWN}."
    )
    mode: str = Field(description="testing or enforce, as chosen on the dashboard.")
    found: list[DnsRecordOut] = Field(
        description="The v=STSv1 TXT records and the addresses of mta-sts.DOMAIN found."
    )
    expected: list[DnsRecordOut] = Field(description="The records to publish.")
    message: str


class TlsRptOut(Schema):
    state: str = Field(
        description="configured, not_configured, needs_update (our report address is missing), "
        f"invalid, or {_UNKNOWN}."
    )
    found: list[DnsRecordOut] = Field(description="The v=TLSRPTv1 TXT records found.")
    expected: list[DnsRecordOut] = Field(
        description="The record to publish: the published one when it is fine."
    )
    message: str


class DnsReportOut(Schema):
    checked_at: datetime | None = Field(description="null: not checked yet.")
    spf: SpfOut | None
    dkim: DkimCheckOut | None
    dmarc: DmarcOut | None
    mx: MxOut | None
    mta_sts: MtaStsOut | None = Field(None, description="MTA-STS (RFC 8461).")
    tls_rpt: TlsRptOut | None = Field(None, description="TLS reporting (RFC 8460).")


class QueuedOut(Schema):
    queued: bool


class DkimRecordOut(Schema):
    selector: str
    status: str
    host: str
    value: str


class DkimOut(Schema):
    enabled: bool
    records: list[DkimRecordOut]


class DkimRotateIn(StrictIn):
    force: bool = Field(
        False,
        description="Switch even though the new key's record is not visible in the DNS yet.",
    )


# --- Usage, estimate, audit ---------------------------------------------------------------------


class UsageOut(Schema):
    used_bytes: int
    mailboxes: int
    aliases: int
    forwards: int
    eas_accounts: int
    mapi_accounts: int


class EstimateLineOut(Schema):
    item: Literal["storage", "eas", "mapi", "eas_mapi"]
    quantity: str = Field(description="A decimal number, as text.")
    unit_price: str
    amount: str
    accrued: str
    projected: str


class EstimateOut(Schema):
    period_start: datetime
    period_end: datetime
    at: datetime
    currency: str
    accrued: str = Field(description="Amounts are decimal numbers, as text.")
    projected: str
    total: str
    combined_saving: str = Field(
        description="What the mailboxes billed the combined EAS + MAPI rate this cycle save "
        "compared with the two prices apart; 0 when the combined price is not lower."
    )
    combined_saving_each: str = Field(
        description="The same saving per mailbox (a unit price); 0 when there is none."
    )
    lines: list[EstimateLineOut]


class AuditEventOut(Schema):
    at: datetime
    actor: str = Field(description="Who: a user's email address, or operator:NAME.")
    source: str = Field(description="From where: web, api, cli or system.")
    ip: str | None
    action: str = Field(description="What, e.g. mailbox.create, dkim.rotate.")
    domain: str
    target: str
    changes: dict


class AuditPageOut(Schema):
    items: list[AuditEventOut]
    total: int
    page: int
    per_page: int
    num_pages: int


# --- Personal API tokens -----------------------------------------------------------------------


class TokenCreateIn(StrictIn):
    scope: Literal["read", "write"] = "read"
    expires_days: int | None = Field(
        None,
        description="Valid for this many days (1 to 3650); null: no expiry. Never later than "
        "the expiry of the token that asks.",
    )


class TokenOut(Schema):
    prefix: str = Field(description="Public: names the token, and revokes it.")
    scope: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    state: Literal["active", "expired", "revoked"]


class TokenCreatedOut(TokenOut):
    token: str = Field(description="The token itself, shown only now.")


class TokenListOut(Schema):
    items: list[TokenOut]


class PingOut(Schema):
    ok: Literal[True] = Field(description="Always true: the token was accepted.")


# --- Provisioning (operator tokens) ------------------------------------------------------------


class ClientCreateIn(StrictIn):
    name: str = Field(description="The client account's name, unique (case-insensitive).")
    owner_email: str = Field(
        description="The first owner's login. An existing login becomes owner and keeps its "
        "password."
    )
    owner_password: str | None = Field(
        None,
        description="The new owner's password; omit it to have one generated, returned once.",
    )
    domain: str = Field(description="The first domain.")
    plan: str | None = Field(None, description="A plan's name: the client is on it from now.")


class ClientOut(Schema):
    id: int
    name: str
    created_at: datetime
    suspended_at: datetime | None = Field(description="null: active.")
    domains: list[str]
    plan: str | None = Field(description="The plan in force now.")


class ClientCreatedOut(Schema):
    client: ClientOut
    owner_email: str
    owner_created: bool = Field(
        description="false: an active login existed and was kept as it was (its password too)."
    )
    owner_password: str | None = Field(
        description="The generated password, returned by this call only (and its replays)."
    )


class TerminateIn(StrictIn):
    confirm: str = Field(description="The client's name, repeated.")


class TerminatedOut(Schema):
    name: str
    domains: list[str]
    mailboxes: int
    deactivated_users: list[str] = Field(description="Owners and members left with no client.")


class ClientPlanIn(StrictIn):
    plan: str
    at: datetime | None = Field(
        None, strict=False, description="ISO 8601 with a zone; default now. A new cycle starts."
    )


class ClientPlanOut(Schema):
    client: str
    plan: str
    starts_at: datetime


class DomainUsageOut(Schema):
    domain: str
    estimate: EstimateOut = Field(description="The billing cycle that contains `at`.")


class UsageReportOut(Schema):
    client: str
    at: datetime
    domains: list[DomainUsageOut]
