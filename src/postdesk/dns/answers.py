"""What the DNS checks read, as plain data, so the checks are pure functions.

A check receives a `fetch_txt(name) -> list[str]` callable: each TXT record of the name as one
string (a record split into several character-strings is joined), `[]` when the name has no
TXT record or does not exist, and `TemporaryDnsFailure` when the answer could not be had
(timeout, SERVFAIL, network): that is never "not configured", only "unknown, retry".

SPF evaluation asks more than TXT (RFC 7208 `a`, `mx`, `ptr`, `exists`): it receives a
`DnsLookups`, one such callable per record type, with the same three outcomes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class TemporaryDnsFailure(Exception):
    """The DNS could not answer now; the check must be retried, not concluded."""


FetchTxt = Callable[[str], list[str]]


class DnsLookups(Protocol):
    """The lookups SPF evaluation makes; `checks.Recorder` and `checks.Replay` provide them.

    Each returns `[]` for "no such records" (NXDOMAIN or an empty answer: a "void lookup" for
    RFC 7208 §4.6.4) and raises `TemporaryDnsFailure` when the DNS could not answer now."""

    def txt(self, name: str) -> list[str]:
        """The TXT records of `name`, each joined into one string."""

    def a(self, name: str) -> list[str]:
        """The IPv4 addresses of `name`, as text."""

    def aaaa(self, name: str) -> list[str]:
        """The IPv6 addresses of `name`, as text."""

    def mx(self, name: str) -> list[tuple[int, str]]:
        """The MX records of `name`: (preference, host); a null MX is (0, "")."""

    def ptr(self, name: str) -> list[str]:
        """The names a PTR record of `name` (an in-addr.arpa or ip6.arpa name) points to."""


# Each address (A and AAAA) a name resolves to, CNAMEs followed; `[]` when there is none.
FetchAddresses = Callable[[str], list[str]]


@dataclass(frozen=True)
class Record:
    """One DNS record, as a check shows what it found or what to publish."""

    type: str  # "TXT", "CNAME", "A", "AAAA"
    host: str
    value: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "host": self.host, "value": self.value}
