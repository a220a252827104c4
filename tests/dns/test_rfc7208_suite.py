"""The official RFC 7208 test suite (openspf.org, release 2014.04, BSD licence beside it),
run through postdesk.dns.check_host against the real DNS server on loopback.

Each scenario's zone is published on the server (SPF-type records copied to TXT when a name
has no TXT, as the suite's drivers do; a TIMEOUT name answers SERVFAIL, a temporary failure
like a timeout, only faster), then check_host() runs for the test's address, MAIL FROM and
HELO through the real resolver. The result must be the one the suite expects (or one of the
several it accepts). It covers §4 (evaluation, record lookup and selection), §4.6.4 (the
limits), §5 (every mechanism, CIDR lengths), §6 (redirect) and §7 (macros). Explanations
(exp=) are not compared: the dashboard never shows one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from postdesk.dns.check_host import check_host
from tests.dns.test_spf_live import live_dns

SUITE = Path(__file__).parent / "rfc7208" / "rfc7208-tests.yml"


def _scenarios() -> list[tuple[str, dict, dict]]:
    cases = []
    for scenario in yaml.safe_load_all(SUITE.read_text()):
        for name, test in scenario["tests"].items():
            cases.append(pytest.param(test, scenario["zonedata"], id=name))
    return cases


def _publish(server, zonedata: dict) -> None:
    for name, records in zonedata.items():
        txt, spf, mode, has_txt = [], [], "answer", False
        a, aaaa, ptr, mx = [], [], [], []
        for record in records:
            if record == "TIMEOUT":
                # As the suite's drivers do: a timeout for the types not answered before it. We
                # only ask TXT of a name that has records: the name fails when TXT is not one.
                mode = "answer" if txt else "fail"
                continue
            ((kind, value),) = record.items()
            has_txt = has_txt or kind == "TXT"  # then SPF records are not copied to TXT
            if value == "NONE" or value == []:  # no record (an empty TXT cannot be sent)
                continue
            if kind == "TXT":
                txt.append(value if isinstance(value, str) else tuple(value))
            elif kind == "SPF":
                spf.append(value if isinstance(value, str) else tuple(value))
            elif kind == "A":
                a.append(value)
            elif kind == "AAAA":
                aaaa.append(value)
            elif kind == "PTR":
                ptr.append(value)
            elif kind == "MX":
                mx.append((value[0], value[1] or "."))
            elif kind == "CNAME":
                server.set_cname(name, value)
        server.set_txt(name, *(txt if has_txt else spf))
        server.set_a(name, *a)
        server.set_aaaa(name, *aaaa)
        server.set_ptr(name, *ptr)
        server.set_mx(name, mx)
        if mode == "fail":
            server.fail(name)


@pytest.mark.parametrize(("test", "zonedata"), _scenarios())
def test_rfc7208_suite(dns_server, test, zonedata):
    _publish(dns_server, zonedata)
    sender = test.get("mailfrom") or f"postmaster@{test['helo']}"
    domain = sender.rpartition("@")[2] or test["helo"]
    evaluation = check_host(test["host"], domain, sender, test["helo"], live_dns())
    expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
    assert evaluation.verdict in expected, f"{test.get('spec')}: {test.get('description')}"


# RFC 7208 §7.4, "Expansion Examples": the sender strong-bad@email.example.com, the client
# 192.0.2.3 or 2001:db8::cb01. Each macro is published as `exists:MACRO`: the result is a pass
# only when the name the evaluation asks for is exactly the one the RFC gives.
SENDER = "strong-bad@email.example.com"
IP6_NIBBLES = "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"


@pytest.mark.parametrize(
    ("ip", "macro", "name"),
    [
        ("192.0.2.3", "%{s}", "strong-bad@email.example.com"),
        ("192.0.2.3", "%{o}", "email.example.com"),
        ("192.0.2.3", "%{d}", "email.example.com"),
        ("192.0.2.3", "%{d4}", "email.example.com"),
        ("192.0.2.3", "%{d3}", "email.example.com"),
        ("192.0.2.3", "%{d2}", "example.com"),
        ("192.0.2.3", "%{d1}", "com"),
        ("192.0.2.3", "%{dr}", "com.example.email"),
        ("192.0.2.3", "%{d2r}", "example.email"),
        ("192.0.2.3", "%{l}", "strong-bad"),
        ("192.0.2.3", "%{l-}", "strong.bad"),
        ("192.0.2.3", "%{lr}", "strong-bad"),
        ("192.0.2.3", "%{lr-}", "bad.strong"),
        ("192.0.2.3", "%{l1r-}", "strong"),
        ("192.0.2.3", "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("192.0.2.3", "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        (
            "192.0.2.3",
            "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
            "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
        ),
        (
            "192.0.2.3",
            "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
            "3.2.0.192.in-addr.strong.lp._spf.example.com",
        ),
        (
            "192.0.2.3",
            "%{d2}.trusted-domains.example.net",
            "example.com.trusted-domains.example.net",
        ),
        ("2001:db8::cb01", "%{ir}.%{v}._spf.%{d2}", f"{IP6_NIBBLES}.ip6._spf.example.com"),
    ],
)
def test_rfc7208_expansion_examples(dns_server, ip, macro, name):
    dns_server.set_txt("email.example.com", f"v=spf1 exists:{macro} -all")
    dns_server.set_a(name, "127.0.0.2")
    evaluation = check_host(ip, "email.example.com", SENDER, "mx.example.org", live_dns())
    assert evaluation.verdict == "pass"
    dns_server.set_a(name)  # no address: the exists no longer matches
    evaluation = check_host(ip, "email.example.com", SENDER, "mx.example.org", live_dns())
    assert evaluation.verdict == "fail"
