"""RFC 7208 `check_host()`: what a receiving server concludes for one client IP address.

`check_host(ip, domain, sender, helo, dns)` evaluates the domain's SPF record exactly as a
receiver does (§4): the record is fetched and parsed (a syntax error anywhere is a permerror,
§4.6), its mechanisms are tried in order with their qualifiers (§4.6.2, §5: `all`, `include`,
`a`, `mx`, `ptr`, `ip4`, `ip6`, `exists`, with CIDR lengths), `redirect=` applies when none
matched (§6.1), and macros are expanded for the sender, the HELO name and the IP address
(§7). The limits of §4.6.4 are enforced as receivers do: at most 10 DNS-querying terms in the
whole evaluation, at most 2 void lookups (an empty answer or NXDOMAIN), at most 10 MX names per
`mx`; a `ptr` (or `%{p}`) looks at the first 10 PTR names only. A DNS failure is a temperror,
kept apart from the permerrors: it says "ask again", not "broken".

Besides the result, an `Evaluation` says where evaluation ended in the domain's own record
(`term`: the index of the term a receiver stopped at, the one whose include led to an error,
or None when it ran off the end) and, for a permerror, which problem, in which domain's record
and because of which term: what the dashboard needs to tell the customer what to change.

Written here rather than driving pyspf (PyPI `pyspf`, Debian python3-spf), which was
considered: pyspf reads the DNS through a module-level function (`spf.DNSLookup`), so feeding
it our recorded answers would mean replacing a global shared by the threads of
`dns recheck-all`; it reports a permerror as an English sentence, not the term at fault in the
customer's own record, which the advice and the translated messages need; and it departs from
RFC 7208 where the dashboard would show it: it counts a `redirect=` against the lookup limit
even beside an `all` that makes the redirect ignored (§6.1), and looks up `exp=` on every
evaluation. The official RFC 7208 test suite (tests/dns/rfc7208-tests.yml) runs against this
module through a real DNS server instead.

Choices where the RFC leaves room (the same as pyspf's and Mail::SPF's):
- Void lookups are counted per query: an `mx` whose hosts have no address counts each host.
- `exp=` is never looked up: an explanation is only shown to a rejected sender, and a
  broken one does not change the result (§6.2).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from .answers import DnsLookups, TemporaryDnsFailure
from .spf_syntax import MAX_LOOKUPS, Term, is_spf, normalize, parse_record

MAX_VOID_LOOKUPS = 2  # §4.6.4
MAX_MX_NAMES = 10  # §4.6.4: more is a permerror
MAX_PTR_NAMES = 10  # §4.6.4: the rest are ignored
MAX_NAME_LENGTH = 253  # §7.3: longer expansions lose labels on the left

_MACRO = re.compile(
    r"%\{(?P<letter>[a-z])(?P<digits>\d*)(?P<reverse>r?)(?P<delimiters>[.\-+,/_=]*)\}|%%|%_|%-",
    re.IGNORECASE,
)


class Verdict(StrEnum):
    """The results of §2.6."""

    PASS = "pass"  # noqa: S105 - the SPF result, not a password
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    PERMERROR = "permerror"
    TEMPERROR = "temperror"


QUALIFIER_VERDICT = {
    "+": Verdict.PASS,
    "-": Verdict.FAIL,
    "~": Verdict.SOFTFAIL,
    "?": Verdict.NEUTRAL,
}


class Problem(StrEnum):
    """Why a permerror: what the customer (or the owner of an included record) must fix."""

    NO_RECORD = "no_record"  # an include:/redirect= target publishes no SPF record (§5.2, §6.1)
    MULTIPLE_RECORDS = "multiple_records"  # §4.5
    SYNTAX = "syntax"  # §4.6
    TOO_MANY_LOOKUPS = "too_many_lookups"  # §4.6.4
    TOO_MANY_VOID_LOOKUPS = "too_many_void_lookups"  # §4.6.4
    TOO_MANY_MX = "too_many_mx"  # §4.6.4


@dataclass(frozen=True)
class Evaluation:
    ip: str
    verdict: Verdict
    # The index, in the domain's own record, of the term where evaluation ended (the matching
    # mechanism, `redirect=`, or the term whose evaluation failed); None when it ran off the end.
    term: int | None
    problem: Problem | None = None
    where: str = ""  # the domain whose record, or the name whose lookup, is at fault
    culprit: str = ""  # the term (in `where`'s record) at fault, as written
    lookups: int = 0
    void_lookups: int = 0


class _PermError(Exception):
    def __init__(self, problem: Problem, where: str, culprit: str = "") -> None:
        super().__init__(problem, where, culprit)
        self.problem, self.where, self.culprit = problem, where, culprit


class _TempError(Exception):
    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


def client_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address a receiver evaluates: an IPv4-mapped IPv6 address is its IPv4 address."""
    address = ipaddress.ip_address(ip.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def reverse_name(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The in-addr.arpa / ip6.arpa name a PTR query asks for."""
    return address.reverse_pointer


def valid_domain_name(name: str) -> bool:
    """§4.3: a name a receiver would look up at all (no empty label, none over 63 bytes)."""
    labels = name.rstrip(".").split(".")
    return bool(name) and len(name) <= MAX_NAME_LENGTH and all(0 < len(x) <= 63 for x in labels)


def check_host(
    ip: str,
    domain: str,
    sender: str,
    helo: str,
    dns: DnsLookups,
    record: str | None = None,
) -> Evaluation:
    """What a receiver concludes for mail from `ip` with MAIL FROM `sender` (HELO `helo`).

    `record`, when given, is evaluated as if `domain` published it (to test an advice before
    the customer publishes it); otherwise the domain's TXT records are fetched."""
    return _Evaluator(client_address(ip), sender, helo, dns).run(normalize(domain), record)


class _Evaluator:
    def __init__(
        self,
        address: ipaddress.IPv4Address | ipaddress.IPv6Address,
        sender: str,
        helo: str,
        dns: DnsLookups,
    ) -> None:
        self.address = address
        local, _, sender_domain = sender.rpartition("@")
        self.local = local or "postmaster"  # §4.3
        self.sender_domain = normalize(sender_domain or helo)
        self.sender = f"{self.local}@{self.sender_domain}"
        self.helo = helo
        self.dns = dns
        self.lookups = 0
        self.void_lookups = 0
        self.stopped_at: int | None = None
        self._validated: list[str] | None = None
        self._cache: dict[tuple[str, str], list] = {}

    # --- the evaluation ---------------------------------------------------------------------

    def run(self, domain: str, record: str | None) -> Evaluation:
        try:
            verdict = self.evaluate(domain, 0, record)
        except _PermError as error:
            return self._result(Verdict.PERMERROR, error.problem, error.where, error.culprit)
        except _TempError as error:
            return self._result(Verdict.TEMPERROR, None, error.where, "")
        return self._result(verdict, None, "", "")

    def _result(
        self, verdict: Verdict, problem: Problem | None, where: str, culprit: str
    ) -> Evaluation:
        return Evaluation(
            ip=str(self.address),
            verdict=verdict,
            term=self.stopped_at,
            problem=problem,
            where=where,
            culprit=culprit,
            lookups=self.lookups,
            void_lookups=self.void_lookups,
        )

    def evaluate(self, domain: str, depth: int, record: str | None = None) -> Verdict:
        """check_host() for `domain`: its record's result for our address (§4.6.2)."""
        if record is None:
            terms = self.record_terms(domain)
            if terms is None:
                return Verdict.NONE
        else:
            terms = self.parsed(domain, record)
        for index, term in enumerate(terms):
            if term.modifier:
                continue
            if depth == 0:
                self.stopped_at = index
            if self.matches(term, domain, depth):
                return QUALIFIER_VERDICT[term.qualifier]
        redirect = next(
            ((i, t) for i, t in enumerate(terms) if t.modifier and t.name == "redirect"), None
        )
        if redirect is None:  # §4.7: no match, no redirect
            if depth == 0:
                self.stopped_at = None
            return Verdict.NEUTRAL
        # Reaching here means no `all` (it always matches), so the redirect applies (§6.1).
        index, term = redirect
        if depth == 0:
            self.stopped_at = index
        self.spend_lookup(term, domain)
        target = self.expand_domain(term.domain or "", domain)
        verdict = self.evaluate(target, depth + 1)
        if verdict == Verdict.NONE:
            raise _PermError(Problem.NO_RECORD, target, term.text)
        return verdict

    def record_terms(self, domain: str) -> list[Term] | None:
        """The domain's one SPF record, parsed; None when it has none (§4.5)."""
        if not valid_domain_name(domain):
            return None  # §4.3: a malformed name has no record
        try:
            txts = self.dns.txt(domain)
        except TemporaryDnsFailure as failure:
            raise _TempError(domain) from failure
        records = [txt for txt in txts if is_spf(txt)]
        if not records:
            return None
        if len(records) > 1:
            raise _PermError(Problem.MULTIPLE_RECORDS, domain)
        return self.parsed(domain, records[0])

    @staticmethod
    def parsed(domain: str, record: str) -> list[Term]:
        terms = parse_record(record)
        bad = next((term for term in terms if term.error), None)
        if bad is not None:
            raise _PermError(Problem.SYNTAX, domain, bad.text)
        return terms

    def spend_lookup(self, term: Term, domain: str) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _PermError(Problem.TOO_MANY_LOOKUPS, domain, term.text)

    def matches(self, term: Term, domain: str, depth: int) -> bool:
        name = term.name
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            network = term.network
            return (
                network is not None
                and network.version == self.address.version
                and (self.address in network)
            )
        self.spend_lookup(term, domain)
        if name == "include":
            target = self.expand_domain(term.domain or "", domain)
            verdict = self.evaluate(target, depth + 1)
            if verdict == Verdict.NONE:  # §5.2
                raise _PermError(Problem.NO_RECORD, target, term.text)
            return verdict == Verdict.PASS
        target = self.expand_domain(term.domain, domain) if term.domain else domain
        if name == "exists":
            # Always an A query, whatever the client's address family (§5.7).
            return bool(self.lookup("a", target, term))
        if name == "a":
            return self.within(self.addresses(target, term), term)
        if name == "mx":
            hosts = [host for _preference, host in self.lookup("mx", target, term)]
            if len(hosts) > MAX_MX_NAMES:
                raise _PermError(Problem.TOO_MANY_MX, target, term.text)
            addresses = [a for host in hosts if host for a in self.addresses(host, term)]
            return self.within(addresses, term)
        # ptr (§5.5)
        target = normalize(target)
        return any(n == target or n.endswith("." + target) for n in self.validated_names())

    def within(self, addresses: list[str], term: Term) -> bool:
        v4_length, v6_length = term.prefix_lengths
        length = v4_length if self.address.version == 4 else v6_length
        network = ipaddress.ip_network(f"{self.address}/{length}", strict=False)
        for text in addresses:
            try:
                if ipaddress.ip_address(text) in network:
                    return True
            except ValueError:
                continue
        return False

    # --- DNS ---------------------------------------------------------------------------------

    def lookup(self, kind: str, name: str, term: Term) -> list:
        """One query of the evaluation; an empty answer counts as a void lookup (§4.6.4)."""
        key = (kind, normalize(name))
        if key not in self._cache:
            if not valid_domain_name(key[1]):
                self._cache[key] = []
            else:
                try:
                    self._cache[key] = list(getattr(self.dns, kind)(key[1]))
                except TemporaryDnsFailure as failure:
                    raise _TempError(key[1]) from failure
        answer = self._cache[key]
        if not answer:
            self.void_lookups += 1
            if self.void_lookups > MAX_VOID_LOOKUPS:
                raise _PermError(Problem.TOO_MANY_VOID_LOOKUPS, key[1], term.text)
        return answer

    def addresses(self, name: str, term: Term) -> list[str]:
        return self.lookup("a" if self.address.version == 4 else "aaaa", name, term)

    def validated_names(self) -> list[str]:
        """§5.5: the PTR names of our address whose own A/AAAA records lead back to it. A DNS
        failure on the PTR query matches nothing; on a name's address query skips the name."""
        if self._validated is not None:
            return self._validated
        try:
            names = self.dns.ptr(reverse_name(self.address))
        except TemporaryDnsFailure:
            names = []
        if not names:
            self.void_lookups += 1
            if self.void_lookups > MAX_VOID_LOOKUPS:
                raise _PermError(Problem.TOO_MANY_VOID_LOOKUPS, reverse_name(self.address), "ptr")
        validated = []
        for name in names[:MAX_PTR_NAMES]:
            kind = "a" if self.address.version == 4 else "aaaa"
            try:
                found = getattr(self.dns, kind)(normalize(name))
            except TemporaryDnsFailure:
                continue
            if str(self.address) in {str(client_address(a)) for a in found if _is_ip(a)}:
                validated.append(normalize(name))
        self._validated = validated
        return validated

    # --- macros (§7) ------------------------------------------------------------------------

    def expand_domain(self, spec: str, domain: str) -> str:
        """A domain-spec with its macros expanded, as the name to query (§7.3)."""
        name = normalize(self.expand(spec, domain))  # DNS names ignore case
        while len(name) > MAX_NAME_LENGTH and "." in name:
            name = name.split(".", 1)[1]
        return name

    def expand(self, text: str, domain: str) -> str:
        def replace(match: re.Match[str]) -> str:
            whole = match.group(0)
            if whole == "%%":
                return "%"
            if whole == "%_":
                return " "
            if whole == "%-":
                return "%20"
            letter = match["letter"]
            value = self.macro_value(letter.lower(), domain)
            parts = re.split("[" + re.escape(match["delimiters"] or ".") + "]", value)
            if match["reverse"]:
                parts.reverse()
            if match["digits"]:
                count = int(match["digits"])
                if count == 0:  # §7.3: the number of parts, if given, is not zero
                    raise _PermError(Problem.SYNTAX, domain, text)
                parts = parts[-count:]
            expanded = ".".join(parts)
            # An upper-case letter asks for URL escaping of all but the unreserved characters.
            return quote(expanded, safe="-._~") if letter.isupper() else expanded

        return _MACRO.sub(replace, text)

    def macro_value(self, letter: str, domain: str) -> str:
        if letter == "s":
            return self.sender
        if letter == "l":
            return self.local
        if letter == "o":
            return self.sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            if self.address.version == 4:
                return str(self.address)
            return ".".join(self.address.exploded.replace(":", ""))
        if letter == "v":
            return "in-addr" if self.address.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "p":
            return self.validated_name_for(domain)
        # c, r, t are for explanations only, which the parser already refused here.
        raise _PermError(Problem.SYNTAX, domain, f"%{{{letter}}}")

    def validated_name_for(self, domain: str) -> str:
        """§7.3 `%{p}`: the validated name equal to the domain, else one under it, else any;
        "unknown" when there is none."""
        try:
            names = self.validated_names()
        except _PermError:
            names = []
        target = normalize(domain)
        if target in names:
            return target
        under = [n for n in names if n.endswith("." + target)]
        if under:
            return under[0]
        return names[0] if names else "unknown"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
