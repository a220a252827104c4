"""SPF check: does the customer's domain authorize our servers, and what should they publish?

`check_spf(domain, required, fetch_txt)` reads the domain's TXT records (and, following
`include:` and `redirect=`, those of the domains they point to) and answers with one state:

- `configured`: exactly one SPF record, valid, and a receiving server evaluating it for our
  servers reaches our mechanism with a pass qualifier, directly or through nested
  `include:`/`redirect=` (RFC 7208 evaluation order). Nothing to do.
- `not_configured`: no SPF record at all. The advice is a complete new record.
- `needs_update`: one valid record that does not authorize us. The advice is the customer's
  record with our mechanism inserted where it is reached first, every other term kept as written.
- `invalid`: several SPF records, more than 10 DNS-querying terms, a pass-all, or a syntax error.
  Invalid wins over configured: receivers reject such a record (or, for a pass-all, it lets the
  whole world send as the customer). The advice is the single repaired record to keep.
- `unknown`: the DNS could not answer now (`TemporaryDnsFailure`, here or in a nested
  include): the check is retried, never shown as "not configured".

Every result carries `record`, the exact TXT value the customer should have published
(the current one when configured; empty when unknown, since advising a record we cannot compare
with what is published could lead to a second SPF record), and a message for the customer.

RFC 7208 choices made here, where the RFC leaves a checker room or a strict reading would help
nobody:

- An `include:`/`redirect=` target without exactly one valid SPF record is a permerror for a
  receiver; here that branch simply does not authorize us and evaluation goes on. Flagging it
  would need a fault the dashboard does not have yet.
- A pass-all (`+all` or a bare `all`) never counts as authorizing our servers: a third party's
  `+all` authorizing us by accident is not a configuration.
- Lookups are counted like a receiver counts them in the worst case (an address that matches
  nothing): every DNS-querying term up to and including the first `all`, then `redirect=` only
  when there is no `all`; includes are followed whatever their qualifier. Counting stops at the
  11th term, where receivers stop (§4.6.4), so `lookups` is at most 11, meaning "over the limit";
  this also ends include loops. The void-lookup and MX/PTR sub-limits are not checked.
- Macros (`include:%{d}.example`) cannot be expanded without a sender: such terms count as one
  lookup and are not followed.
- Several records are merged in the order the DNS returned them (DNS has no order; the advice
  is stable as long as the resolver's order is). A `redirect=` of a record without `all` becomes
  an `include:` in the merge, since the merged record ends with an `all` that would void it.
- Our mechanism goes before the first term that stops evaluation without passing us: the first
  `all`, a `redirect=`, or a term catching our servers with a non-pass qualifier (a
  `~include:` of a provider that includes us). Before the final `all` alone would leave such a
  term catching us first.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from django.utils.translation import gettext as _

from postdesk.dns.answers import FetchTxt, TemporaryDnsFailure

MAX_LOOKUPS = 10
VERSION = "v=spf1"
PASS = "+"  # noqa: S105 - the SPF pass qualifier, not a password

# Terms that make a receiver query the DNS (RFC 7208 §4.6.4); `all`, `ip4`, `ip6` and `exp=`
# (only read after a fail) do not count.
LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists", "redirect"})
MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})

# RFC 7208 §7.1 ABNF. Macro letters c, r and t are only allowed in explanation text (§7.3).
_MACRO_LETTERS = "slodiphv"
_MACRO_EXPAND = r"(?:%\{[" + _MACRO_LETTERS + r"]\d*r?[.\-+,/_=]*\}|%%|%_|%-)"
_MACRO_EXPAND_ANY = r"(?:%\{[" + _MACRO_LETTERS + r"crt]\d*r?[.\-+,/_=]*\}|%%|%_|%-)"
_MACRO_LITERAL = r"[\x21-\x24\x26-\x7e]"
_TOPLABEL = r"(?:[a-z0-9]*[a-z][a-z0-9]*|[a-z0-9]+-[a-z0-9\-]*[a-z0-9])"
_DOMAIN_SPEC = re.compile(
    rf"(?:{_MACRO_EXPAND}|{_MACRO_LITERAL})*(?:\.{_TOPLABEL}\.?|{_MACRO_EXPAND})", re.IGNORECASE
)
_MACRO_STRING = re.compile(rf"(?:{_MACRO_EXPAND_ANY}|{_MACRO_LITERAL})*", re.IGNORECASE)
_MODIFIER = re.compile(r"(?P<name>[a-z][a-z0-9_.\-]*)=(?P<value>.*)", re.IGNORECASE)
_MECHANISM = re.compile(r"(?P<name>[a-z0-9]+)(?P<rest>[:/].*)?", re.IGNORECASE)
# a and mx: [":" domain-spec] [ip4-cidr-length] ["/" ip6-cidr-length]; the lazy domain leaves
# a trailing CIDR to the groups after it.
_DUAL_CIDR = re.compile(r"(?::(?P<domain>.*?))?(?:/(?P<v4>\d+))?(?://(?P<v6>\d+))?")
_IP_NETWORK = re.compile(r":(?P<address>[^/]+)(?:/(?P<length>\d+))?")


class SpfState(StrEnum):
    CONFIGURED = "configured"
    NOT_CONFIGURED = "not_configured"
    NEEDS_UPDATE = "needs_update"
    INVALID = "invalid"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SpfResult:
    state: str
    record: str
    message: str
    fault: str | None
    current: list[str]
    lookups: int


@dataclass(frozen=True)
class _Term:
    text: str  # as written, qualifier included
    name: str  # lower-case mechanism or modifier name
    qualifier: str  # "+", "-", "~" or "?" ("+" when none is written, and for modifiers)
    modifier: bool
    domain: str | None = None  # the domain-spec of include/a/mx/ptr/exists/redirect/exp
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr: str = ""  # the CIDR suffix of a/mx, part of the term's identity
    error: bool = False

    @property
    def identity(self) -> str:
        """What the term designates, qualifier aside: equal for `INCLUDE:X.` and `include:x`."""
        if self.modifier:
            return f"{self.name}={_normalize(self.domain or '')}"
        if self.network is not None:
            return f"{self.name}:{self.network}"
        domain = f":{_normalize(self.domain)}" if self.domain is not None else ""
        return f"{self.name}{domain}{self.cidr}"

    @property
    def target(self) -> str | None:
        """The name a receiver fetches for include/redirect; None when macros need a sender."""
        if self.name not in ("include", "redirect") or not self.domain or "%" in self.domain:
            return None
        return _normalize(self.domain)


def _normalize(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _is_spf(txt: str) -> bool:
    # §4.5: the version tag alone, or followed by a space; anything else ("v=spf10") is not SPF.
    head = txt[: len(VERSION) + 1].lower()
    return head == VERSION or head == VERSION + " "


def _valid_cidr(length: str | None, maximum: int) -> bool:
    # ABNF: "0" or a number without leading zero, at most 32 (IPv4) or 128 (IPv6).
    if length is None:
        return True
    return re.fullmatch(r"0|[1-9]\d{0,2}", length) is not None and int(length) <= maximum


def _valid_domain(domain: str | None) -> bool:
    return domain is not None and _DOMAIN_SPEC.fullmatch(domain) is not None


def _parse_term(text: str) -> _Term:
    """One term of a record; `error` is set when a receiver would reject its syntax."""
    modifier = _MODIFIER.fullmatch(text)
    if modifier:
        name, value = modifier["name"].lower(), modifier["value"]
        if name in ("redirect", "exp"):
            return _Term(text, name, PASS, True, domain=value, error=not _valid_domain(value))
        # Unknown modifiers are ignored by receivers (§6), but their value must still parse.
        bad = _MACRO_STRING.fullmatch(value) is None
        return _Term(text, name, PASS, True, domain=value, error=bad)

    qualifier = PASS
    body = text
    if body and body[0] in "+-~?":
        qualifier, body = body[0], body[1:]
    mechanism = _MECHANISM.fullmatch(body)
    name = mechanism["name"].lower() if mechanism else ""
    if not mechanism or name not in MECHANISMS:
        return _Term(text, name, qualifier, False, error=True)
    rest = mechanism["rest"] or ""

    if name == "all":
        return _Term(text, name, qualifier, False, error=rest != "")
    if name in ("include", "exists"):
        domain = rest[1:] if rest.startswith(":") else None
        return _Term(text, name, qualifier, False, domain=domain, error=not _valid_domain(domain))
    if name == "ptr":
        domain = rest[1:] if rest.startswith(":") else None
        bad = rest != "" and not _valid_domain(domain)
        return _Term(text, name, qualifier, False, domain=domain, error=bad)
    if name in ("a", "mx"):
        parts = _DUAL_CIDR.fullmatch(rest)
        if parts is None:  # "a/x", "mx/24/"...
            return _Term(text, name, qualifier, False, error=True)
        domain = parts["domain"]
        cidr = rest[len(":" + domain) :] if domain is not None else rest
        bad = (
            (domain is not None and not _valid_domain(domain))
            or not _valid_cidr(parts["v4"], 32)
            or not _valid_cidr(parts["v6"], 128)
        )
        return _Term(text, name, qualifier, False, domain=domain, cidr=cidr, error=bad)

    # ip4 / ip6: an address of the right family, an optional prefix length in range.
    parts = _IP_NETWORK.fullmatch(rest)
    maximum = 32 if name == "ip4" else 128
    if parts is None or "%" in parts["address"] or not _valid_cidr(parts["length"], maximum):
        return _Term(text, name, qualifier, False, error=True)
    try:
        address = ipaddress.ip_address(parts["address"])
    except ValueError:
        return _Term(text, name, qualifier, False, error=True)
    if address.version != (4 if name == "ip4" else 6):
        return _Term(text, name, qualifier, False, error=True)
    network = ipaddress.ip_network(f"{address}/{parts['length'] or maximum}", strict=False)
    return _Term(text, name, qualifier, False, network=network)


def _parse_record(txt: str) -> list[_Term]:
    terms = [_parse_term(text) for text in txt[len(VERSION) :].split(" ") if text]
    # redirect= and exp= may appear once (§6): a second one is a syntax error.
    seen: set[str] = set()
    for index, term in enumerate(terms):
        if term.modifier and term.name in ("redirect", "exp"):
            if term.name in seen:
                terms[index] = _Term(term.text, term.name, PASS, True, term.domain, error=True)
            seen.add(term.name)
    return terms


def _format(terms: list[_Term]) -> str:
    return " ".join([VERSION, *(term.text for term in terms)])


def _first_all(terms: list[_Term]) -> int | None:
    return next((i for i, t in enumerate(terms) if t.name == "all" and not t.modifier), None)


def _evaluated(terms: list[_Term]) -> Iterator[tuple[int, _Term]]:
    """The terms a receiver evaluates, in order: mechanisms up to and including the first `all`
    (nothing after it is ever reached), then `redirect=` only when there is no `all` (§6.1)."""
    for index, term in enumerate(terms):
        if term.modifier:
            continue
        yield index, term
        if term.name == "all":
            return
    for index, term in enumerate(terms):
        if term.modifier and term.name == "redirect":
            yield index, term
            return


class _OverLimit(Exception):
    """A receiver would have given up here: more than MAX_LOOKUPS DNS-querying terms."""


class _Budget:
    def __init__(self) -> None:
        self.used = 0

    def spend(self) -> None:
        self.used += 1
        if self.used > MAX_LOOKUPS:
            raise _OverLimit


@dataclass(frozen=True)
class _Match:
    """Where evaluation for our servers stops: the term's index in the record evaluated, the
    result it gives, and whether it is our mechanism (rather than an `all`)."""

    index: int
    qualifier: str
    ours: bool


class _Checker:
    def __init__(self, required: _Term, fetch_txt: FetchTxt) -> None:
        self.required = required
        self.fetch_txt = fetch_txt
        self._records: dict[str, list[str]] = {}

    def spf_records(self, name: str) -> list[str]:
        # Cached: a name included twice is fetched once. TemporaryDnsFailure propagates.
        if name not in self._records:
            self._records[name] = [txt for txt in self.fetch_txt(name) if _is_spf(txt)]
        return self._records[name]

    def nested_terms(self, term: _Term) -> list[_Term] | None:
        """The record an include/redirect points to, or None when it cannot be followed:
        macros, no SPF record, several, or a syntax error (each a permerror for receivers)."""
        if term.target is None:
            return None
        records = self.spf_records(term.target)
        if len(records) != 1:
            return None
        terms = _parse_record(records[0])
        return None if any(t.error for t in terms) else terms

    def is_ours(self, term: _Term) -> bool:
        required = self.required
        if term.modifier:
            # redirect=X hands the whole evaluation to X: it authorizes what include:X does.
            return (
                term.name == "redirect"
                and required.name == "include"
                and (term.target is not None and term.target == required.target)
            )
        # A customer's range that contains ours matches our servers' addresses just as well.
        theirs, wanted = term.network, required.network
        if isinstance(theirs, ipaddress.IPv4Network) and isinstance(wanted, ipaddress.IPv4Network):
            return wanted.subnet_of(theirs)
        if isinstance(theirs, ipaddress.IPv6Network) and isinstance(wanted, ipaddress.IPv6Network):
            return wanted.subnet_of(theirs)
        return term.identity == required.identity

    def count_lookups(self, terms: list[_Term]) -> int:
        budget = _Budget()
        with contextlib.suppress(_OverLimit):  # counting stops where receivers stop
            self._count(terms, budget)
        return budget.used

    def _count(self, terms: list[_Term], budget: _Budget) -> None:
        for _index, term in _evaluated(terms):
            if term.name in LOOKUP_TERMS:
                budget.spend()
            if term.name in ("include", "redirect"):
                nested = self.nested_terms(term)
                if nested is not None:
                    self._count(nested, budget)

    def match(self, terms: list[_Term]) -> _Match | None:
        """Evaluate the record for our servers: the term where a receiver would stop, or None
        when evaluation runs off the end (or over the lookup limit) without matching."""
        try:
            return self._match(terms, _Budget())
        except _OverLimit:
            return None

    def _match(self, terms: list[_Term], budget: _Budget) -> _Match | None:
        for index, term in _evaluated(terms):
            if term.name == "all":
                return _Match(index, term.qualifier, ours=False)
            if term.name in LOOKUP_TERMS:
                budget.spend()
            if self.is_ours(term):
                return _Match(index, term.qualifier, ours=True)
            nested = self.nested_terms(term) if term.name in ("include", "redirect") else None
            if term.name == "include" and nested is not None:
                # An include matches only when the included record passes our servers; its own
                # qualifier then gives the result ("-include:" or "~include:" reject us).
                found = self._match(nested, budget)
                if found is not None and found.ours and found.qualifier == PASS:
                    return _Match(index, term.qualifier, ours=True)
            if term.name == "redirect":
                found = self._match(nested, budget) if nested is not None else None
                return None if found is None else _Match(index, found.qualifier, found.ours)
        return None


def _insert_ours(terms: list[_Term], required: _Term, found: _Match | None) -> list[_Term]:
    """Our mechanism placed where a receiver reaches it before anything that rejects us.

    That is before the term where evaluation stopped without passing us: the first `all`, a
    `redirect=`, or a term that matches our servers with a non-pass qualifier (a
    `~include:` of a provider that includes us, say). Without any, at the end. Other copies of
    our mechanism (with a non-pass qualifier, or unreachable after `all`) are dropped; every
    other term is kept, in order, as written."""
    if found is not None:
        position = found.index
    else:
        position = _first_all(terms)
        if position is None:
            redirects = [i for i, t in enumerate(terms) if t.modifier and t.name == "redirect"]
            position = redirects[0] if redirects else len(terms)
    result: list[_Term] = []
    for index, term in enumerate(terms):
        if index == position:
            result.append(required)
        copy_of_ours = not term.modifier and term.identity == required.identity
        if not copy_of_ours:
            result.append(term)
    if position >= len(terms):
        result.append(required)
    return result


def _dedupe_key(term: _Term) -> str:
    return f"{term.qualifier}{term.identity}"


def _merge(records: list[list[_Term]]) -> list[_Term]:
    """Several records as the one to keep: their valid terms in order (first record first),
    identical terms once, and a single final `all` with the first record's qualifier unless it
    passes everyone (`~all` when none has one)."""
    merged: list[_Term] = []
    seen: set[str] = set()
    final_all: _Term | None = None
    for record in records:
        terms = [term for term in record if not term.error]
        has_all = _first_all(terms) is not None
        for term in terms:
            if term.name == "all" and not term.modifier:
                final_all = final_all or term
                continue
            if term.modifier and term.name == "redirect":
                if has_all:
                    continue  # it was ignored in its own record (§6.1); keep it ignored
                # With the final `all` it would be ignored; as an include it still authorizes
                # the servers its record was delegating to.
                term = _parse_term(f"include:{term.domain}")
            # exp= may appear once: the first record's explanation is kept.
            key = "exp" if term.modifier and term.name == "exp" else _dedupe_key(term)
            if key in seen:
                continue
            seen.add(key)
            merged.append(term)
    if final_all is None or final_all.qualifier == PASS:
        final_all = _parse_term("~all")
    return [*merged, final_all]


def _pass_all(terms: list[_Term]) -> _Term | None:
    # A bare `all` has the default qualifier "+": it is a pass-all just like `+all`. Only the
    # first `all` counts: one written after it is never reached.
    index = _first_all(terms)
    if index is not None and terms[index].qualifier == PASS:
        return terms[index]
    return None


def new_record(required: str) -> str:
    """The record a domain without SPF should publish: our mechanism, then a soft fail."""
    return _format([_parse_term(required.strip()), _parse_term("~all")])


def check_spf(domain: str, required: str, fetch_txt: FetchTxt) -> SpfResult:
    """The SPF state of `domain` for our mechanism `required` (e.g. "include:spf.example.net").

    `fetch_txt` answers TXT queries (see postdesk.dns.answers); it is called for the domain and
    for the targets of the includes and redirects it leads to.
    """
    ours = _parse_term(required.strip())
    if ours.error or ours.modifier or ours.name == "all" or ours.qualifier != PASS:
        raise ValueError(f"not a pass mechanism: {required!r}")
    checker = _Checker(ours, fetch_txt)

    try:
        current = checker.spf_records(_normalize(domain))
    except TemporaryDnsFailure:
        return _unknown([])

    if not current:
        return SpfResult(
            state=SpfState.NOT_CONFIGURED,
            record=new_record(required),
            message=_(
                "Your domain has no SPF record, so receiving servers cannot tell that our "
                "servers may send your emails, and your messages may end up in spam. Add a TXT "
                "record with the suggested value to your domain's DNS zone."
            ),
            fault=None,
            current=[],
            lookups=0,
        )

    parsed = [_parse_record(txt) for txt in current]
    faulty = [term.text for record in parsed for term in record if term.error]
    valid = [[term for term in record if not term.error] for record in parsed]
    # What the checks read: the one record as receivers would have it without its unreadable
    # terms, or the merge of several records.
    terms = _merge(parsed) if len(parsed) > 1 else valid[0]
    pass_all = [found for found in map(_pass_all, valid) if found is not None]

    try:
        lookups = checker.count_lookups(terms)
        found = checker.match(terms)
    except TemporaryDnsFailure:
        return _unknown(current)
    reached = found is not None and found.ours and found.qualifier == PASS

    faults = []
    if len(parsed) > 1:
        faults.append("multiple_records")
    if faulty:
        faults.append("syntax")
    if lookups > MAX_LOOKUPS:
        faults.append("too_many_lookups")
    if pass_all:
        faults.append("plus_all")

    if not faults and reached:
        return SpfResult(
            state=SpfState.CONFIGURED,
            record=current[0],
            message=_("Your SPF record includes our servers. No action needed."),
            fault=None,
            current=current,
            lookups=lookups,
        )

    advice = terms
    index = _first_all(advice)
    if index is not None and advice[index].qualifier == PASS:
        advice = [*advice[:index], _parse_term("~all"), *advice[index + 1 :]]
    if not reached:
        advice = _insert_ours(advice, ours, found)

    sentences: list[str] = []
    if not faults:
        sentences.append(
            _(
                "Your domain already has an SPF record, but it does not authorize our servers, "
                "so your emails may end up in spam. Replace the existing record with the "
                "suggested one, which keeps your current entries and adds ours. Do not create "
                "a second SPF record: only one is allowed per domain."
            )
        )
    if "multiple_records" in faults:
        sentences.append(
            _(
                "Your domain has several SPF records. Only one is allowed per domain: with more "
                "than one, receiving servers ignore them all and your emails may end up in spam."
            )
        )
    if "syntax" in faults:
        sentences.append(
            _(
                "Your SPF record contains something receiving servers cannot read: %(terms)s. "
                "Because of it, they ignore the whole record."
            )
            % {"terms": ", ".join(faulty)}
        )
    if "too_many_lookups" in faults:
        sentences.append(
            _(
                "Your SPF record needs more than %(limit)s DNS lookups, counting the includes "
                "inside other includes. Receiving servers stop at %(limit)s and then ignore the "
                "record."
            )
            % {"limit": MAX_LOOKUPS}
        )
    if "plus_all" in faults:
        sentences.append(
            _(
                "Your SPF record ends with %(term)s, which allows any server in the world to "
                "send emails in your name. It should end with ~all."
            )
            % {"term": pass_all[0].text}
        )
    if "multiple_records" in faults:
        sentences.append(
            _(
                "Delete all your SPF records and publish only the suggested one, which combines "
                "their entries and includes our servers."
            )
        )
    elif faults and faults != ["too_many_lookups"]:
        sentences.append(
            _(
                "Replace your SPF record with the suggested one, which fixes this and includes "
                "our servers."
            )
        )
    elif faults:
        # Too many lookups cannot be fixed for the customer: which services to drop is theirs.
        sentences.append(
            _("Replace your SPF record with the suggested one, which includes our servers.")
        )
    if "too_many_lookups" in faults:
        sentences.append(
            _(
                "Before publishing it, remove the includes of services you no longer use, so "
                "that it needs at most %(limit)s lookups."
            )
            % {"limit": MAX_LOOKUPS}
        )
    elif _over_limit_with_ours(checker, advice):
        sentences.append(
            _(
                "With our servers added, the suggested record needs more than %(limit)s DNS "
                "lookups: before publishing it, remove the includes of services you no longer "
                "use."
            )
            % {"limit": MAX_LOOKUPS}
        )

    return SpfResult(
        state=SpfState.INVALID if faults else SpfState.NEEDS_UPDATE,
        record=_format(advice),
        message=" ".join(sentences),
        fault=faults[0] if faults else None,
        current=current,
        lookups=lookups,
    )


def _over_limit_with_ours(checker: _Checker, advice: list[_Term]) -> bool:
    # Adding our include adds its own lookups: a record just under the limit goes over it.
    try:
        return checker.count_lookups(advice) > MAX_LOOKUPS
    except TemporaryDnsFailure:
        return False  # only a warning: not worth turning the whole answer into "unknown"


def _unknown(current: list[str]) -> SpfResult:
    return SpfResult(
        state=SpfState.UNKNOWN,
        record="",
        message=_(
            "We could not check your SPF record because of a temporary DNS failure. We will "
            "check again automatically; there is nothing to do for now."
        ),
        fault="temporary_failure",
        current=current,
        lookups=0,
    )
