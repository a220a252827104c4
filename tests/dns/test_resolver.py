"""The resolver against a real DNS server on 127.0.0.1 (tests/dns_server.py): what each kind of
answer becomes, and how the settings choose the servers. No query leaves the loopback."""

from __future__ import annotations

import time
from pathlib import Path

import dns.exception
import dns.resolver
import pytest
from django.core.exceptions import ImproperlyConfigured

from postdesk.dns.answers import TemporaryDnsFailure
from postdesk.dns.resolver import lookup_mx, lookup_txt, make_resolver, parse_nameserver

# --- TXT ------------------------------------------------------------------------------------


def test_txt_single_string(dns_server):
    dns_server.set_txt("example.test", "v=spf1 include:spf.postdesk.example -all")

    assert lookup_txt("example.test") == ["v=spf1 include:spf.postdesk.example -all"]


def test_names_are_case_insensitive_with_or_without_final_dot(dns_server):
    dns_server.set_txt("Example.TEST.", "hello")

    assert lookup_txt("example.test") == ["hello"]
    assert lookup_txt("EXAMPLE.test.") == ["hello"]


def test_txt_split_into_strings_is_joined_without_separator(dns_server):
    dns_server.set_txt(
        "split.test", ("v=spf1 ip4:192.0.2.1 ", "include:spf.postdesk.example", " -all")
    )

    assert lookup_txt("split.test") == ["v=spf1 ip4:192.0.2.1 include:spf.postdesk.example -all"]


def test_txt_longer_than_255_bytes_arrives_in_several_strings_and_is_joined(dns_server):
    key = "p=" + "A" * 600  # a DKIM public key is ~400 characters of base64
    dns_server.set_txt("mail._domainkey.example.test", "v=DKIM1; k=rsa; " + key)

    # The server really sent several character-strings: the join is the resolver's doing.
    answer = make_resolver().resolve("mail._domainkey.example.test.", "TXT")
    assert len(answer[0].strings) == 3

    assert lookup_txt("mail._domainkey.example.test") == ["v=DKIM1; k=rsa; " + key]


def test_utf8_character_split_across_strings_is_joined_before_decoding(dns_server):
    text = "é" * 200  # 400 bytes: the cut at byte 255 falls inside a character
    dns_server.set_txt("utf8.test", text)

    assert lookup_txt("utf8.test") == [text]


def test_bytes_that_are_not_utf8_become_replacement_characters(dns_server):
    dns_server.set_txt("latin1.test", b"caf\xe9")

    assert lookup_txt("latin1.test") == ["caf\ufffd"]


def test_several_txt_records(dns_server):
    records = ["v=spf1 -all", "google-site-verification=abc", ("part one, ", "part two")]
    dns_server.set_txt("multi.test", *records)

    assert sorted(lookup_txt("multi.test")) == sorted(
        ["v=spf1 -all", "google-site-verification=abc", "part one, part two"]
    )


def test_large_answer_is_truncated_over_udp_and_read_over_tcp(dns_server):
    # 20 records of 200 bytes: far over UDP's 512 bytes, so the server sets TC.
    records = [f"{i:02d}" + "x" * 198 for i in range(20)]
    dns_server.set_txt("big.test", *records)

    assert sorted(lookup_txt("big.test")) == records
    # One UDP query answered truncated, then the same question over TCP.
    assert dns_server.queries == 2


def test_nothing_is_cached(dns_server):
    dns_server.set_txt("fresh.test", "v=spf1 -all")
    assert lookup_txt("fresh.test") == ["v=spf1 -all"]

    dns_server.set_txt("fresh.test", "v=spf1 include:spf.postdesk.example -all")

    assert lookup_txt("fresh.test") == ["v=spf1 include:spf.postdesk.example -all"]
    assert dns_server.queries == 2


def test_a_resolver_can_be_passed_in(dns_server):
    dns_server.set_txt("shared.test", "one")
    dns_server.set_mx("shared.test", [(10, "mx.test")])
    resolver = make_resolver()

    assert lookup_txt("shared.test", resolver) == ["one"]
    assert lookup_mx("shared.test", resolver) == [(10, "mx.test")]


# --- no records -----------------------------------------------------------------------------


def test_nxdomain_is_no_records(dns_server):
    assert lookup_txt("absent.test") == []
    assert lookup_mx("absent.test") == []


def test_name_without_records_of_the_type_is_no_records(dns_server):
    dns_server.set_mx("mx-only.test", [(10, "mx.test")])
    dns_server.set_txt("txt-only.test", "v=spf1 -all")

    assert lookup_txt("mx-only.test") == []
    assert lookup_mx("txt-only.test") == []


def test_removed_name_is_nxdomain_again(dns_server):
    dns_server.set_txt("gone.test", "v=spf1 -all")
    dns_server.remove("gone.test")

    assert lookup_txt("gone.test") == []


@pytest.mark.parametrize("name", ["a..test", "x" * 64 + ".test", ("a" * 60 + ".") * 5 + "test"])
def test_a_name_that_cannot_exist_has_no_records_and_is_not_asked(dns_server, name):
    assert lookup_txt(name) == []
    assert lookup_mx(name) == []
    assert dns_server.queries == 0


# --- failures -------------------------------------------------------------------------------


def test_servfail_is_a_temporary_failure(dns_server):
    dns_server.set_txt("broken.test", "v=spf1 -all")
    dns_server.fail("broken.test")

    with pytest.raises(TemporaryDnsFailure):
        lookup_txt("broken.test")
    with pytest.raises(TemporaryDnsFailure):
        lookup_mx("broken.test")

    dns_server.recover("broken.test")
    assert lookup_txt("broken.test") == ["v=spf1 -all"]


def test_no_reply_is_a_temporary_failure_within_the_timeout(dns_server):
    dns_server.hang("slow.test")

    started = time.monotonic()
    with pytest.raises(TemporaryDnsFailure, match="timeout"):
        lookup_txt("slow.test")
    assert time.monotonic() - started < 3  # POSTDESK_DNS_TIMEOUT is 1.0 here


class _BrokenResolver(dns.resolver.Resolver):
    def __init__(self, error: Exception) -> None:
        super().__init__(configure=False)
        self.error = error

    def resolve(self, *args, **kwargs):
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        OSError(101, "Network is unreachable"),
        dns.exception.FormError("malformed reply"),
        dns.exception.Timeout(),
        dns.resolver.NoNameservers(),
    ],
    ids=["network", "formerr", "timeout", "no-nameservers"],
)
def test_network_and_other_dns_errors_are_temporary_failures(error):
    resolver = _BrokenResolver(error)

    with pytest.raises(TemporaryDnsFailure):
        lookup_txt("example.test", resolver)
    with pytest.raises(TemporaryDnsFailure):
        lookup_mx("example.test", resolver)


# --- MX -------------------------------------------------------------------------------------


def test_mx_sorted_lowercase_without_final_dot(dns_server):
    dns_server.set_mx(
        "example.test",
        [(20, "MX2.Postdesk.Example."), (10, "mx1.postdesk.example"), (10, "Backup.Example.")],
    )

    assert lookup_mx("example.test") == [
        (10, "backup.example"),
        (10, "mx1.postdesk.example"),
        (20, "mx2.postdesk.example"),
    ]


def test_null_mx(dns_server):
    dns_server.set_mx("nomail.test", [(0, ".")])

    assert lookup_mx("nomail.test") == [(0, "")]


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", ("192.0.2.1", 53)),
        ("192.0.2.1:5353", ("192.0.2.1", 5353)),
        (" 127.0.0.1:53 ", ("127.0.0.1", 53)),
        ("2001:db8::1", ("2001:db8::1", 53)),
        ("::1", ("::1", 53)),
        ("[::1]", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[2001:DB8::1]:65535", ("2001:db8::1", 65535)),
    ],
)
def test_parse_nameserver(text, expected):
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "ns1.example.net",  # a host name would need a resolver to find it
        "localhost:53",
        "192.0.2.1:",
        "192.0.2.1:0",
        "192.0.2.1:65536",
        "192.0.2.1:dns",
        "192.0.2.1:-53",
        "192.0.2.1:٥٣",
        "192.0.2.300",
        "[::1",
        "[::1]:",
        "[::1]5353",
        "[192.0.2.1]:53",
        "::1:5353:x",
    ],
)
def test_parse_nameserver_refuses_bad_entries(text):
    with pytest.raises(ValueError, match="nameserver"):
        parse_nameserver(text)


def test_make_resolver_from_settings(settings):
    settings.POSTDESK_DNS_NAMESERVERS = ["127.0.0.1:5353", "[::1]:5300", "192.0.2.1"]
    settings.POSTDESK_DNS_TIMEOUT = 2.5

    resolver = make_resolver()

    assert [(ns.address, ns.port) for ns in resolver.nameservers] == [
        ("127.0.0.1", 5353),
        ("::1", 5300),
        ("192.0.2.1", 53),
    ]
    assert resolver.timeout == 2.5
    assert resolver.lifetime == 2.5
    assert resolver.cache is None


def test_make_resolver_refuses_a_bad_setting(settings):
    settings.POSTDESK_DNS_NAMESERVERS = ["127.0.0.1:5353", "ns1.example.net"]

    with pytest.raises(ImproperlyConfigured, match=r"POSTDESK_DNS_NAMESERVERS.*ns1\.example\.net"):
        make_resolver()


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_make_resolver_refuses_a_timeout_that_is_not_positive(settings, timeout):
    settings.POSTDESK_DNS_TIMEOUT = timeout

    with pytest.raises(ImproperlyConfigured, match="POSTDESK_DNS_TIMEOUT"):
        make_resolver()


def test_empty_setting_uses_the_system_resolvers(settings):
    resolv_conf = Path("/etc/resolv.conf")
    if not resolv_conf.exists() or "nameserver" not in resolv_conf.read_text():
        pytest.skip("this system has no resolv.conf with a nameserver")
    settings.POSTDESK_DNS_NAMESERVERS = []
    settings.POSTDESK_DNS_TIMEOUT = 1.5

    resolver = make_resolver()  # reads resolv.conf; asks nothing

    assert resolver.nameservers
    assert resolver.timeout == 1.5
    assert resolver.lifetime == 1.5
    assert resolver.cache is None


def test_empty_setting_without_system_resolvers_is_a_configuration_error(settings, monkeypatch):
    def no_resolv_conf(self, filename):
        raise dns.resolver.NoResolverConfiguration("no nameservers")

    monkeypatch.setattr(dns.resolver.Resolver, "read_resolv_conf", no_resolv_conf)
    settings.POSTDESK_DNS_NAMESERVERS = []

    with pytest.raises(ImproperlyConfigured, match="POSTDESK_DNS_NAMESERVERS"):
        make_resolver()
