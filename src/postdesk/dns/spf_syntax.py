"""SPF record syntax (RFC 7208 §4.5, §4.6, §5, §6, §7.1): one record's terms, parsed.

A term the ABNF rejects is kept with `error` set, as written, so that the check can name it to
the customer and leave it out of the record it advises; a receiver rejects the whole record for
it (§4.6: permerror). Shared by the evaluation (`check_host`) and the advice (`spf`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

MAX_LOOKUPS = 10
VERSION = "v=spf1"
PASS = "+"  # noqa: S105 - the SPF pass qualifier, not a password

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


@dataclass(frozen=True)
class Term:
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
            return f"{self.name}={normalize(self.domain or '')}"
        if self.network is not None:
            return f"{self.name}:{self.network}"
        domain = f":{normalize(self.domain)}" if self.domain is not None else ""
        return f"{self.name}{domain}{self.cidr}"

    @property
    def prefix_lengths(self) -> tuple[int, int]:
        """The CIDR lengths of an `a`/`mx` term, IPv4 then IPv6: the whole address unless
        written (`a/24//64`)."""
        parts = _DUAL_CIDR.fullmatch(self.cidr)
        v4 = parts["v4"] if parts is not None else None
        v6 = parts["v6"] if parts is not None else None
        return int(v4 or 32), int(v6 or 128)


def normalize(name: str) -> str:
    return name.strip().rstrip(".").lower()


def is_spf(txt: str) -> bool:
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


def parse_term(text: str) -> Term:
    """One term of a record; `error` is set when a receiver would reject its syntax."""
    modifier = _MODIFIER.fullmatch(text)
    if modifier:
        name, value = modifier["name"].lower(), modifier["value"]
        if name in ("redirect", "exp"):
            return Term(text, name, PASS, True, domain=value, error=not _valid_domain(value))
        # Unknown modifiers are ignored by receivers (§6), but their value must still parse.
        bad = _MACRO_STRING.fullmatch(value) is None
        return Term(text, name, PASS, True, domain=value, error=bad)

    qualifier = PASS
    body = text
    if body and body[0] in "+-~?":
        qualifier, body = body[0], body[1:]
    mechanism = _MECHANISM.fullmatch(body)
    name = mechanism["name"].lower() if mechanism else ""
    if not mechanism or name not in MECHANISMS:
        return Term(text, name, qualifier, False, error=True)
    rest = mechanism["rest"] or ""

    if name == "all":
        return Term(text, name, qualifier, False, error=rest != "")
    if name in ("include", "exists"):
        domain = rest[1:] if rest.startswith(":") else None
        return Term(text, name, qualifier, False, domain=domain, error=not _valid_domain(domain))
    if name == "ptr":
        domain = rest[1:] if rest.startswith(":") else None
        bad = rest != "" and not _valid_domain(domain)
        return Term(text, name, qualifier, False, domain=domain, error=bad)
    if name in ("a", "mx"):
        parts = _DUAL_CIDR.fullmatch(rest)
        if parts is None:  # "a/x", "mx/24/"...
            return Term(text, name, qualifier, False, error=True)
        domain = parts["domain"]
        cidr = rest[len(":" + domain) :] if domain is not None else rest
        bad = (
            (domain is not None and not _valid_domain(domain))
            or not _valid_cidr(parts["v4"], 32)
            or not _valid_cidr(parts["v6"], 128)
        )
        return Term(text, name, qualifier, False, domain=domain, cidr=cidr, error=bad)

    # ip4 / ip6: an address of the right family, an optional prefix length in range.
    parts = _IP_NETWORK.fullmatch(rest)
    maximum = 32 if name == "ip4" else 128
    if parts is None or "%" in parts["address"] or not _valid_cidr(parts["length"], maximum):
        return Term(text, name, qualifier, False, error=True)
    try:
        address = ipaddress.ip_address(parts["address"])
    except ValueError:
        return Term(text, name, qualifier, False, error=True)
    if address.version != (4 if name == "ip4" else 6):
        return Term(text, name, qualifier, False, error=True)
    network = ipaddress.ip_network(f"{address}/{parts['length'] or maximum}", strict=False)
    return Term(text, name, qualifier, False, network=network)


def parse_record(txt: str) -> list[Term]:
    terms = [parse_term(text) for text in txt[len(VERSION) :].split(" ") if text]
    # redirect= and exp= may appear once (§6): a second one is a syntax error.
    seen: set[str] = set()
    for index, term in enumerate(terms):
        if term.modifier and term.name in ("redirect", "exp"):
            if term.name in seen:
                terms[index] = Term(term.text, term.name, PASS, True, term.domain, error=True)
            seen.add(term.name)
    return terms
