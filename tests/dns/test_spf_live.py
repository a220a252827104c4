"""SPF through the real resolver and a real DNS server on loopback: every state, records
split into several strings, nested include and redirect, the 10-lookup limit, timeouts.

The exhaustive rules are in test_spf.py (pure, dict-backed); this proves that the same rules
hold end to end, on real DNS answers."""

from __future__ import annotations

import time

import pytest

from postdesk.dns import resolver
from postdesk.dns.spf import SpfState, check_spf

OURS = "include:spf.host.example"


@pytest.fixture
def spf(dns_server):
    dns_server.set_txt("spf.host.example", "v=spf1 ip4:192.0.2.0/24 -all")

    def check():
        live = resolver.make_resolver()
        return check_spf("example.com", OURS, lambda name: resolver.lookup_txt(name, live))

    return check


def test_not_configured(dns_server, spf):
    dns_server.set_txt("example.com", "google-site-verification=abc")
    result = spf()
    assert result.state == SpfState.NOT_CONFIGURED
    assert result.record == "v=spf1 include:spf.host.example ~all"


def test_configured_directly_with_the_record_split_into_strings(dns_server, spf):
    dns_server.set_txt("example.com", ("v=spf1 ip4:198.51.100.1 ", "include:spf.host.example -all"))
    result = spf()
    assert result.state == SpfState.CONFIGURED
    assert result.current == ["v=spf1 ip4:198.51.100.1 include:spf.host.example -all"]


def test_configured_through_nested_include_and_redirect(dns_server, spf):
    dns_server.set_txt("example.com", "v=spf1 mx redirect=_spf.example.com")
    dns_server.set_txt("_spf.example.com", "v=spf1 include:spf.provider.example ~all")
    dns_server.set_txt("spf.provider.example", "v=spf1 include:spf.host.example -all")
    assert spf().state == SpfState.CONFIGURED


def test_needs_update_keeps_the_guides_example(dns_server, spf):
    dns_server.set_txt("example.com", "v=spf1 include:otherdomain.com ~all")
    dns_server.set_txt("otherdomain.com", "v=spf1 ip4:203.0.113.0/24 -all")
    result = spf()
    assert result.state == SpfState.NEEDS_UPDATE
    assert result.record == "v=spf1 include:otherdomain.com include:spf.host.example ~all"


def test_two_records_are_invalid_and_merged(dns_server, spf):
    dns_server.set_txt(
        "example.com", "v=spf1 include:spf.host.example ~all", "v=spf1 ip4:198.51.100.7 -all"
    )
    result = spf()
    assert (result.state, result.fault) == (SpfState.INVALID, "multiple_records")
    assert result.record.count("v=spf1") == 1
    assert "include:spf.host.example" in result.record
    assert "ip4:198.51.100.7" in result.record


def test_the_ten_lookup_limit_counts_nested_includes(dns_server, spf):
    # Ours (1) + a provider (1) whose record has 8 lookups = 10: accepted.
    dns_server.set_txt(
        "spf.provider.example", "v=spf1 " + " ".join(f"a:h{i}.provider.example" for i in range(8))
    )
    dns_server.set_txt(
        "example.com", "v=spf1 include:spf.host.example include:spf.provider.example -all"
    )
    assert spf().state == SpfState.CONFIGURED
    # One more nested lookup makes 11: invalid, even though it reaches us.
    dns_server.set_txt(
        "spf.provider.example", "v=spf1 " + " ".join(f"a:h{i}.provider.example" for i in range(9))
    )
    result = spf()
    assert (result.state, result.fault) == (SpfState.INVALID, "too_many_lookups")


def test_plus_all_is_invalid_even_when_it_reaches_us(dns_server, spf):
    dns_server.set_txt("example.com", "v=spf1 include:spf.host.example +all")
    result = spf()
    assert (result.state, result.fault) == (SpfState.INVALID, "plus_all")
    assert result.record == "v=spf1 include:spf.host.example ~all"


def test_syntax_error_is_invalid(dns_server, spf):
    dns_server.set_txt("example.com", "v=spf1 ip4:999.1.1.1 include:spf.host.example ~all")
    result = spf()
    assert (result.state, result.fault) == (SpfState.INVALID, "syntax")


@pytest.mark.parametrize("where", ["example.com", "spf.provider.example"])
def test_timeouts_are_unknown_not_not_configured(dns_server, spf, where):
    dns_server.set_txt("example.com", "v=spf1 include:spf.provider.example ~all")
    dns_server.set_txt("spf.provider.example", "v=spf1 include:spf.host.example -all")
    dns_server.hang(where)
    started = time.monotonic()
    result = spf()
    assert result.state == SpfState.UNKNOWN
    assert result.fault == "temporary_failure"
    assert time.monotonic() - started < 5
