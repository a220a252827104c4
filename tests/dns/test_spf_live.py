"""SPF through the real resolver and a real DNS server on loopback: every state, records
split into several strings, nested include and redirect, the 10-lookup limit, timeouts.

The exhaustive rules are in test_spf.py (pure, dict-backed); this proves that the same rules
hold end to end, on real DNS answers."""

from __future__ import annotations

import time

import pytest

from postdesk.dns import resolver
from postdesk.dns.checks import Recorder
from postdesk.dns.spf import SpfState, check_spf

OURS = "include:spf.host.example"
SENDING_IPS = ["192.0.2.10", "2001:db8::10"]
HELO = "mail.host.example"


def live_dns() -> Recorder:
    """The lookups a check makes, through the real resolver (as postdesk.dns.status does)."""
    live = resolver.make_resolver()
    return Recorder(
        lambda name: resolver.lookup_txt(name, live),
        lambda name: resolver.lookup_mx(name, live),
        lookup_a=lambda name: resolver.lookup_a(name, live),
        lookup_aaaa=lambda name: resolver.lookup_aaaa(name, live),
        lookup_ptr=lambda name: resolver.lookup_ptr(name, live),
    )


@pytest.fixture
def spf(dns_server):
    dns_server.set_txt("spf.host.example", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/64 -all")

    def check():
        return check_spf("example.com", OURS, live_dns(), SENDING_IPS, HELO)

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
    dns_server.set_mx("example.com", [(10, "mail.example.com")])
    dns_server.set_a("mail.example.com", "198.51.100.25")
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
    # A provider (1) whose record has 8 lookups, then ours (1) = 10: accepted.
    for i in range(9):
        dns_server.set_a(f"h{i}.provider.example", f"203.0.113.{i + 1}")
        dns_server.set_aaaa(f"h{i}.provider.example", f"2001:db8:1::{i + 1}")
    dns_server.set_txt(
        "spf.provider.example", "v=spf1 " + " ".join(f"a:h{i}.provider.example" for i in range(8))
    )
    dns_server.set_txt(
        "example.com", "v=spf1 include:spf.provider.example include:spf.host.example -all"
    )
    assert spf().state == SpfState.CONFIGURED
    # One more nested lookup makes ours the 11th: receivers give up before reaching us.
    dns_server.set_txt(
        "spf.provider.example", "v=spf1 " + " ".join(f"a:h{i}.provider.example" for i in range(9))
    )
    result = spf()
    assert (result.state, result.fault) == (SpfState.INVALID, "too_many_lookups")
    assert result.lookups == 11


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


# --- RFC 7208 on real answers: each mechanism and limit, for every sending IP ------------------


def test_a_mx_and_ptr_pass_with_cidr_lengths_in_both_families(dns_server, spf):
    # §5.3, §5.4, §5.5, §5.6: a and mx with an IPv4 and an IPv6 prefix length, ptr validated.
    dns_server.set_txt("example.com", "v=spf1 a:web.example.com/24//64 mx/24//64 -all")
    dns_server.set_a("web.example.com", "192.0.2.99")  # same /24 as 192.0.2.10
    dns_server.set_mx("example.com", [(10, "mail.example.com")])
    dns_server.set_aaaa("mail.example.com", "2001:db8::99")  # same /64 as 2001:db8::10
    dns_server.set_a("mail.example.com", "198.51.100.1")
    # 192.0.2.10 passes through a (same /24), 2001:db8::10 through mx (same /64).
    assert spf().state == SpfState.CONFIGURED
    dns_server.set_aaaa("mail.example.com", "2001:db8:0:1::99")  # another /64
    result = spf()
    assert result.state == SpfState.NEEDS_UPDATE
    assert "For our server 2001:db8::10, receiving servers stop at “-all”" in result.message


def test_ptr_is_validated_forward_and_back(dns_server, spf):
    dns_server.set_txt("example.com", "v=spf1 ptr -all")
    dns_server.set_ptr("10.2.0.192.in-addr.arpa", "out.example.com")
    dns_server.set_ptr(
        "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
        "out6.example.com",
    )
    dns_server.set_a("out.example.com", "192.0.2.10")
    dns_server.set_aaaa("out6.example.com", "2001:db8::10")
    assert spf().state == SpfState.CONFIGURED
    dns_server.set_a("out.example.com", "198.51.100.1")  # PTR name not leading back: no match
    assert spf().state == SpfState.NEEDS_UPDATE


def test_exists_with_macros_is_expanded_for_each_ip(dns_server, spf):
    # §5.7, §7: %{ir}.%{v} is the reversed address; %{l} the sender's local part, postmaster.
    dns_server.set_txt("example.com", "v=spf1 exists:%{ir}.%{v}.%{l}._spf.%{d} -all")
    dns_server.set_a("10.2.0.192.in-addr.postmaster._spf.example.com", "127.0.0.2")
    ip6 = "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
    dns_server.set_a(f"{ip6}.ip6.postmaster._spf.example.com", "127.0.0.2")
    assert spf().state == SpfState.CONFIGURED


def test_an_include_of_a_domain_without_spf_is_invalid(dns_server, spf):
    # The first example: `include:other.example -all`, other.example without SPF.
    dns_server.set_txt("example.com", "v=spf1 include:other.example include:spf.host.example -all")
    dns_server.set_txt("other.example", "google-site-verification=x")
    result = spf()
    assert (result.state, result.fault) == (SpfState.INVALID, "broken_include")
    assert result.record == "v=spf1 include:spf.host.example -all"


def test_mx_with_eleven_names_is_invalid(dns_server, spf):
    dns_server.set_txt("example.com", "v=spf1 mx include:spf.host.example -all")
    dns_server.set_mx("example.com", [(i, f"mx{i}.example.com") for i in range(11)])
    for i in range(11):
        dns_server.set_a(f"mx{i}.example.com", f"198.51.100.{i + 1}")
    result = spf()
    assert (result.state, result.fault) == (SpfState.INVALID, "too_many_mx")


def test_three_void_lookups_are_invalid(dns_server, spf):
    dns_server.set_txt(
        "example.com",
        "v=spf1 a:gone1.example.com a:gone2.example.com a:gone3.example.com "
        "include:spf.host.example -all",
    )
    result = spf()
    assert (result.state, result.fault) == (SpfState.INVALID, "too_many_void_lookups")


def test_redirect_without_record_after_ours_is_a_warning(dns_server, spf):
    dns_server.set_txt("example.com", "v=spf1 include:spf.host.example redirect=gone.example.com")
    result = spf()
    assert result.state == SpfState.CONFIGURED
    assert "gone.example.com, which publishes no SPF record" in result.warning


def test_a_failing_address_lookup_is_unknown_then_recovers(dns_server, spf):
    dns_server.set_txt("example.com", "v=spf1 a:flaky.example.com include:spf.host.example -all")
    dns_server.set_a("flaky.example.com", "198.51.100.1")
    dns_server.fail("flaky.example.com")
    assert spf().state == SpfState.UNKNOWN
    dns_server.recover("flaky.example.com")
    assert spf().state == SpfState.CONFIGURED
