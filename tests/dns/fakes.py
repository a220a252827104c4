"""A dict-backed DNS for the pure checks' unit tests (the real-DNS tests use tests.dns_server)."""

from __future__ import annotations

from postdesk.dns.answers import TemporaryDnsFailure

FAIL = TemporaryDnsFailure("test failure")


def fetch_from(zone: dict[str, object]):
    """zone: name → list of answers, or an exception instance to raise."""

    def fetch(name: str):
        value = zone.get(name.lower().rstrip("."), [])
        if isinstance(value, Exception):
            raise value
        return value

    return fetch
