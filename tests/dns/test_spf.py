"""SPF check: every state, the advice the customer gets, and the RFC 7208 rules behind them.

Pure tests: the DNS is a dict behind the documented `fetch_txt` seam (postdesk.dns.answers);
the tests against a real DNS server live elsewhere.
"""

from __future__ import annotations

import pytest
from django.utils import translation

from postdesk.dns.answers import DnsLookups, TemporaryDnsFailure
from postdesk.dns.spf import SpfResult, SpfState, check_spf

DOMAIN = "example.com"
OURS = "include:spf.example.net"
SENDING_IPS = ["192.0.2.10", "192.0.2.200"]  # inside our record's 192.0.2.0/24
HELO = "mail.example.net"

# Third-party records the customer's record may point to.
ZONE: dict[str, list[str] | Exception] = {
    "spf.example.net": ["v=spf1 ip4:192.0.2.0/24 -all"],  # our own record
    "provider.example": ["v=spf1 include:spf.example.net -all"],  # a provider that includes us
    "level2.example": ["v=spf1 ip4:203.0.113.9 include:provider.example -all"],
    "other.example": ["v=spf1 ip4:203.0.113.0/24 -all"],
    "_spf.other.example": ["v=spf1 ip4:203.0.113.0/24 -all"],
    "rejects-us.example": ["v=spf1 -include:spf.example.net ~all"],
    "softfails-us.example": ["v=spf1 ~include:spf.example.net ~all"],
    "broken.example": ["v=spf1 include:spf.example.net foo:bar -all"],
    "twice.example": ["v=spf1 include:spf.example.net -all", "v=spf1 -all"],
    "pass-all.example": ["v=spf1 +all"],
    "after-all.example": ["v=spf1 -all include:spf.example.net"],
    "otherdomain.com": ["v=spf1 ip4:203.0.113.0/24 -all"],
    "_spf.example.com": ["v=spf1 ip4:203.0.113.0/24 -all"],
    # Other record types, keyed "TYPE:name": the names the records below look up exist, so
    # that they are not "void lookups" (RFC 7208 §4.6.4), unless a test says otherwise.
    "A:mx.example.net": ["192.0.2.10", "192.0.2.200"],
    "A:example.com": ["198.51.100.1"],
    "MX:example.com": [(10, "mail.example.com")],
    "A:mail.example.com": ["198.51.100.2"],
    **{f"A:h{i}.example.com": [f"198.51.100.{10 + i}"] for i in range(13)},
}


class FakeDns:
    """A dict-backed DNS: TXT records under the bare name, other types under "TYPE:name"; an
    exception instance is raised; unknown names have no records, like NXDOMAIN."""

    def __init__(self, zone: dict[str, list | Exception], calls: list[str] | None = None):
        self.zone = zone
        self.calls = calls

    def _get(self, kind: str, name: str) -> list:
        if self.calls is not None and kind == "":
            self.calls.append(name)
        answer = self.zone.get(f"{kind}:{name}" if kind else name, [])
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    def txt(self, name: str) -> list[str]:
        return self._get("", name)

    def a(self, name: str) -> list[str]:
        return self._get("A", name)

    def aaaa(self, name: str) -> list[str]:
        return self._get("AAAA", name)

    def mx(self, name: str) -> list[tuple[int, str]]:
        return self._get("MX", name)

    def ptr(self, name: str) -> list[str]:
        return self._get("PTR", name)


def fake_dns(zone: dict[str, list | Exception], calls: list[str] | None = None) -> DnsLookups:
    """`calls` collects the TXT names asked."""
    return FakeDns(zone, calls)


def spf_of(domain: str, required: str, dns: DnsLookups) -> SpfResult:
    return check_spf(domain, required, dns, SENDING_IPS, HELO)


def check(
    *records: str,
    required: str = OURS,
    sending_ips: list[str] = SENDING_IPS,
    **extra: list[str] | Exception,
) -> SpfResult:
    """The check of DOMAIN publishing `records`, with ZONE (and `extra`, dots as "__") around."""
    zone = {**ZONE, **{name.replace("__", "."): v for name, v in extra.items()}}
    dns = fake_dns({**zone, DOMAIN: list(records)})
    return check_spf(DOMAIN, required, dns, sending_ips, HELO)


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def assert_advice_works(result: SpfResult, required: str = OURS) -> None:
    """Publishing the advised record, and nothing else, gives `configured`."""
    assert check(result.record, required=required).state == SpfState.CONFIGURED


def hosts(count: int) -> str:
    """`count` distinct `a:` terms: one DNS lookup each."""
    return " ".join(f"a:h{i}.example.com" for i in range(count))


# --- not configured ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "published",
    [
        [],
        ["google-site-verification=abc123"],
        ["v=spf10 include:spf.example.net ~all"],  # another version, not SPF 1
        ["spf2.0/pra include:spf.example.net ~all"],
        ["v=spf1include:spf.example.net"],  # the version must stand alone
    ],
)
def test_no_spf_record_gets_a_complete_new_one(published):
    result = check(*published)
    assert result.state == SpfState.NOT_CONFIGURED
    assert result.record == "v=spf1 include:spf.example.net ~all"
    assert result.fault is None
    assert result.current == []
    assert result.lookups == 0
    assert "no SPF record" in result.message
    assert_advice_works(result)


def test_new_record_carries_any_mechanism_as_given():
    result = check(required="ip4:192.0.2.0/24")
    assert result.record == "v=spf1 ip4:192.0.2.0/24 ~all"


# --- configured -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "published",
    [
        "v=spf1 include:spf.example.net ~all",
        "v=spf1 +include:spf.example.net -all",
        "v=spf1 mx ip4:198.51.100.7 include:spf.example.net ?all",
        "v=spf1 include:spf.example.net",  # no `all`: neutral for others, still passes us
        "V=SPF1 INCLUDE:SPF.EXAMPLE.NET -ALL",
        "v=spf1 Include:Spf.Example.Net. -all",  # a trailing dot names the same domain
        "v=spf1   include:spf.example.net   ~all  ",
    ],
)
def test_record_including_us_is_configured(published):
    result = check("google-site-verification=abc123", published)
    assert result.state == SpfState.CONFIGURED
    assert result.record == published  # nothing to change: the record as published
    assert result.current == [published]  # the non-SPF TXT record is not counted
    assert result.fault is None
    assert result.message == "Your SPF record includes our servers. No action needed."


@pytest.mark.parametrize(
    "published",
    [
        pytest.param("v=spf1 include:provider.example ~all", id="nested-depth-2"),
        pytest.param("v=spf1 include:level2.example ~all", id="nested-depth-3"),
        pytest.param("v=spf1 redirect=provider.example", id="redirect-to-provider"),
        pytest.param("v=spf1 redirect=spf.example.net", id="redirect-to-our-record"),
        pytest.param("v=spf1 ip4:198.51.100.7 redirect=level2.example", id="redirect-nested"),
        pytest.param(
            # The first include fails us, so it does not match: evaluation goes on to the second.
            "v=spf1 include:rejects-us.example include:provider.example -all",
            id="after-an-include-that-does-not-match",
        ),
    ],
)
def test_reaching_us_through_include_or_redirect_is_configured(published):
    result = check(published)
    assert result.state == SpfState.CONFIGURED
    assert result.record == published


@pytest.mark.parametrize(
    ("required", "published"),
    [
        ("a:mx.example.net", "v=spf1 A:MX.Example.Net. ~all"),
        ("a:mx.example.net/24", "v=spf1 a:mx.example.net/24 ~all"),
        ("ip4:192.0.2.0/24", "v=spf1 ip4:192.0.2.0/24 -all"),
        ("ip4:192.0.2.0/24", "v=spf1 ip4:192.0.0.0/16 -all"),  # a wider range covers ours
        ("ip6:2001:db8::/32", "v=spf1 ip6:2001:DB8:0::/32 -all"),
        ("INCLUDE:SPF.EXAMPLE.NET", "v=spf1 include:spf.example.net ~all"),
        ("+include:spf.example.net", "v=spf1 include:spf.example.net ~all"),
    ],
)
def test_any_required_mechanism_is_compared_case_insensitively(required, published):
    sending_ips = ["2001:db8::25"] if required.startswith("ip6") else SENDING_IPS
    result = check(published, required=required, sending_ips=sending_ips)
    assert result.state == SpfState.CONFIGURED


# --- needs update -----------------------------------------------------------------------------


def test_the_guides_example():
    result = spf_of(
        DOMAIN,
        "include:ourserver.com",
        fake_dns(
            {
                DOMAIN: ["v=spf1 include:otherdomain.com ~all"],
                "otherdomain.com": ["v=spf1 ip4:203.0.113.0/24 -all"],
                "ourserver.com": ["v=spf1 ip4:192.0.2.0/24 -all"],
            }
        ),
    )
    assert result.state == SpfState.NEEDS_UPDATE
    assert result.record == "v=spf1 include:otherdomain.com include:ourserver.com ~all"
    assert result.current == ["v=spf1 include:otherdomain.com ~all"]
    assert result.fault is None


@pytest.mark.parametrize(
    ("published", "advice"),
    [
        pytest.param(
            "v=spf1 include:otherdomain.com ~all",
            "v=spf1 include:otherdomain.com include:spf.example.net ~all",
            id="before-all",
        ),
        pytest.param(
            "v=spf1 -ip4:192.0.2.1 ?a ~mx +include:other.example ip6:2001:db8::1 -all",
            "v=spf1 -ip4:192.0.2.1 ?a ~mx +include:other.example ip6:2001:db8::1 "
            "include:spf.example.net -all",
            id="qualifiers-kept-in-order",
        ),
        pytest.param(
            "v=spf1 ip4:198.51.100.7 redirect=_spf.other.example",
            "v=spf1 ip4:198.51.100.7 include:spf.example.net redirect=_spf.other.example",
            id="before-redirect",
        ),
        pytest.param(
            "v=spf1 ip4:198.51.100.7",
            "v=spf1 ip4:198.51.100.7 include:spf.example.net",
            id="at-the-end",
        ),
        pytest.param("v=spf1", "v=spf1 include:spf.example.net", id="empty-record"),
        pytest.param(
            "v=spf1 a exp=explain.example.com foo=bar ~all",
            "v=spf1 a exp=explain.example.com foo=bar include:spf.example.net ~all",
            id="modifiers-kept",
        ),
        pytest.param(
            "V=SPF1 INCLUDE:other.example ~ALL",
            "v=spf1 INCLUDE:other.example include:spf.example.net ~ALL",
            id="terms-kept-as-written",
        ),
        pytest.param(
            "v=spf1  a   ~all ",
            "v=spf1 a include:spf.example.net ~all",
            id="extra-spaces",
        ),
        pytest.param(
            "v=spf1 ~all include:spf.example.net",
            "v=spf1 include:spf.example.net ~all",
            id="ours-after-all-is-never-reached",
        ),
        pytest.param(
            "v=spf1 -all +all",
            "v=spf1 include:spf.example.net -all +all",
            id="pass-all-after-all-is-never-reached",
        ),
        pytest.param(
            "v=spf1 ip4:198.51.100.7 ~all redirect=provider.example",
            "v=spf1 ip4:198.51.100.7 include:spf.example.net ~all redirect=provider.example",
            id="redirect-ignored-when-all-present",
        ),
    ],
)
def test_record_not_reaching_us_gets_ours_inserted(published, advice):
    result = check(published)
    assert result.state == SpfState.NEEDS_UPDATE
    assert result.record == advice
    assert result.current == [published]
    assert result.fault is None
    assert_advice_works(result)


@pytest.mark.parametrize(
    ("published", "advice"),
    [
        # Our own mechanism with a non-pass qualifier: replaced where it stands.
        ("v=spf1 -include:spf.example.net ~all", "v=spf1 include:spf.example.net ~all"),
        ("v=spf1 mx ~include:spf.example.net ~all", "v=spf1 mx include:spf.example.net ~all"),
        ("v=spf1 ?include:spf.example.net -all", "v=spf1 include:spf.example.net -all"),
        # An include reaching us with a non-pass qualifier catches our servers first: ours goes
        # before it, or its qualifier would still apply to us.
        (
            "v=spf1 ~include:provider.example ~all",
            "v=spf1 include:spf.example.net ~include:provider.example ~all",
        ),
        (
            "v=spf1 a -include:level2.example -all",
            "v=spf1 a include:spf.example.net -include:level2.example -all",
        ),
        # Nested records that do not pass us: the include does not match, evaluation goes on.
        (
            "v=spf1 include:rejects-us.example ~all",
            "v=spf1 include:rejects-us.example include:spf.example.net ~all",
        ),
        (
            "v=spf1 include:softfails-us.example ~all",
            "v=spf1 include:softfails-us.example include:spf.example.net ~all",
        ),
        (
            "v=spf1 include:after-all.example ~all",
            "v=spf1 include:after-all.example include:spf.example.net ~all",
        ),
    ],
)
def test_only_a_pass_qualified_path_to_us_counts(published, advice):
    result = check(published)
    assert result.state == SpfState.NEEDS_UPDATE
    assert result.record == advice
    assert_advice_works(result)


@pytest.mark.parametrize(
    ("required", "published", "advice"),
    [
        ("a:mx.example.net", "v=spf1 a ~all", "v=spf1 a a:mx.example.net ~all"),
        (
            "ip4:192.0.2.0/24",
            "v=spf1 ip4:192.0.2.0/25 -all",  # narrower than ours: part of our servers left out
            "v=spf1 ip4:192.0.2.0/25 ip4:192.0.2.0/24 -all",
        ),
        (
            "ip4:192.0.2.0/24",
            "v=spf1 -ip4:192.0.0.0/16 -all",  # a range rejecting ours: ours must come first
            "v=spf1 ip4:192.0.2.0/24 -ip4:192.0.0.0/16 -all",
        ),
    ],
)
def test_other_required_mechanisms_are_inserted_as_given(required, published, advice):
    result = check(published, required=required)
    assert result.state == SpfState.NEEDS_UPDATE
    assert result.record == advice
    assert_advice_works(result, required)


@pytest.mark.parametrize(
    "term",
    [
        "a",
        "a/24",
        "a//64",
        "a/24//64",
        "a:mail.example.com",
        "a:mail.example.com/24//64",
        "mx",
        "mx:example.com/28",
        "ptr",
        "ptr:example.com",
        "exists:%{i}._spf.example.com",
        "exists:%{ir}.%{l1r+-}._spf.%{d}",
        "ip4:198.51.100.7",
        "ip4:198.51.100.0/24",
        "ip6:2001:db8::/32",
        "ip6:::ffff:198.51.100.7",
        "exp=explain.%{d}",
        "foo=bar",
        "foo=",
        "include:_spf.example.com.",
        "?a",
        "~mx",
        "-ptr",
        "+ip4:198.51.100.7",
    ],
)
def test_valid_terms_are_kept(term):
    result = check(f"v=spf1 {term} ~all")
    assert result.state == SpfState.NEEDS_UPDATE
    assert result.record == f"v=spf1 {term} include:spf.example.net ~all"


# --- invalid: multiple records ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("published", "advice"),
    [
        pytest.param(
            ["v=spf1 include:otherdomain.com ~all", "v=spf1 include:spf.example.net -all"],
            "v=spf1 include:otherdomain.com include:spf.example.net ~all",
            id="ours-in-the-second",
        ),
        pytest.param(
            ["v=spf1 include:spf.example.net ~all", "v=spf1 include:spf.example.net ~all"],
            "v=spf1 include:spf.example.net ~all",
            id="identical",
        ),
        pytest.param(
            ["v=spf1 mx -all", "v=spf1 include:other.example ~all"],
            "v=spf1 mx include:other.example include:spf.example.net -all",
            id="first-all-qualifier-kept",
        ),
        pytest.param(
            ["v=spf1 mx +all", "v=spf1 a -all"],
            "v=spf1 mx a include:spf.example.net ~all",
            id="pass-all-becomes-softfail",
        ),
        pytest.param(
            ["v=spf1 mx", "v=spf1 a"],
            "v=spf1 mx a include:spf.example.net ~all",
            id="no-all",
        ),
        pytest.param(
            ["v=spf1 MX ~all", "v=spf1 mx include:spf.example.net -all"],
            "v=spf1 MX include:spf.example.net ~all",
            id="dedupe-ignores-case",
        ),
        pytest.param(
            ["v=spf1 +include:spf.example.net ~all", "v=spf1 include:spf.example.net"],
            "v=spf1 +include:spf.example.net ~all",
            id="dedupe-explicit-pass",
        ),
        pytest.param(
            ["v=spf1 mx ~all", "v=spf1 -mx -all"],
            "v=spf1 mx -mx include:spf.example.net ~all",
            id="different-qualifiers-both-kept",
        ),
        pytest.param(
            ["v=spf1 redirect=_spf.other.example", "v=spf1 ip4:198.51.100.7 -all"],
            "v=spf1 include:_spf.other.example ip4:198.51.100.7 include:spf.example.net -all",
            id="redirect-becomes-include",
        ),
        pytest.param(
            ["v=spf1 mx ~all redirect=_spf.other.example", "v=spf1 a -all"],
            "v=spf1 mx a include:spf.example.net ~all",
            id="ignored-redirect-dropped",
        ),
        pytest.param(
            ["v=spf1 a exp=one.example.com ~all", "v=spf1 exp=two.example.com -all"],
            "v=spf1 a exp=one.example.com include:spf.example.net ~all",
            id="one-exp",
        ),
        pytest.param(
            ["google-site-verification=abc", "v=spf1 a ~all", "v=spf1 mx ~all"],
            "v=spf1 a mx include:spf.example.net ~all",
            id="non-spf-txt-ignored",
        ),
    ],
)
def test_several_records_are_invalid_and_merged(published, advice):
    result = check(*published)
    assert result.state == SpfState.INVALID
    assert result.fault == "multiple_records"
    assert result.record == advice
    assert result.current == [txt for txt in published if txt.lower().startswith("v=spf1")]
    assert "several SPF records" in result.message
    assert "only the suggested one" in result.message
    assert_advice_works(result)


def test_merged_records_drop_their_syntax_errors_and_name_them():
    result = check("v=spf1 a foo ~all", "v=spf1 mx -all")
    assert result.state == SpfState.INVALID
    assert result.fault == "multiple_records"
    assert result.record == "v=spf1 a mx include:spf.example.net ~all"
    assert "several SPF records" in result.message
    assert "foo" in result.message


# --- invalid: pass-all ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("published", "advice", "written"),
    [
        ("v=spf1 include:spf.example.net +all", "v=spf1 include:spf.example.net ~all", "+all"),
        # A bare `all` has the default qualifier, "+": the same pass-all.
        ("v=spf1 include:spf.example.net all", "v=spf1 include:spf.example.net ~all", "all"),
        ("v=spf1 mx +all", "v=spf1 mx include:spf.example.net ~all", "+all"),
        ("V=SPF1 MX +ALL", "v=spf1 MX include:spf.example.net ~all", "+ALL"),
        (
            "v=spf1 +all redirect=other.example",
            "v=spf1 include:spf.example.net ~all redirect=other.example",
            "+all",
        ),
    ],
)
def test_pass_all_is_invalid_even_when_it_reaches_us(published, advice, written):
    result = check(published)
    assert result.state == SpfState.INVALID
    assert result.fault == "plus_all"
    assert result.record == advice
    assert f"ends with {written}," in result.message
    assert "any server" in result.message
    assert "~all" in result.message
    assert_advice_works(result)


# --- invalid: syntax --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "foo:bar.example",  # unknown mechanism
        "!include:other.example",  # unknown qualifier
        "++all",
        "include",
        "include:",
        "include:example",  # a domain-spec ends with a dotted top label
        "include:%{x}.example.com",  # no such macro letter
        "include:%{c}.example.com",  # c, r and t are for explanations only
        "include:spf.example.net%",
        "exists",
        "exists:",
        "ptr:",
        "mx:",
        "a/abc",
        "a:example.com/33",
        "a//129",
        "a/024",  # no leading zero in a prefix length
        "all:example.com",
        "ip4",
        "ip4:192.0.2.300",
        "ip4:192.0.2.0/33",
        "ip4:2001:db8::1",
        "ip6:2001:db8::/129",
        "ip6:198.51.100.7",
        "ip6:fe80::1%eth0",
        "redirect=",
        "redirect=example",
        "foo=%{",
    ],
)
def test_syntax_error_is_invalid_and_the_term_removed(bad):
    result = check(f"v=spf1 include:other.example {bad} ~all")
    assert result.state == SpfState.INVALID
    assert result.fault == "syntax"
    assert result.record == "v=spf1 include:other.example include:spf.example.net ~all"
    assert f"cannot read: {bad}." in result.message
    assert_advice_works(result)


def test_syntax_error_wins_over_reaching_us():
    result = check("v=spf1 include:spf.example.net ip4:192.0.2.0/40 ~all")
    assert result.state == SpfState.INVALID
    assert result.fault == "syntax"
    assert result.record == "v=spf1 include:spf.example.net ~all"


def test_second_redirect_is_a_syntax_error():
    result = check("v=spf1 redirect=_spf.other.example redirect=provider.example")
    assert result.state == SpfState.INVALID
    assert result.fault == "syntax"
    assert result.record == "v=spf1 include:spf.example.net redirect=_spf.other.example"
    assert "redirect=provider.example" in result.message


def test_every_fault_is_named_the_first_one_reported():
    result = check("v=spf1 foo +all")
    assert result.fault == "syntax"
    assert result.record == "v=spf1 include:spf.example.net ~all"
    assert "foo" in result.message
    assert "ends with +all" in result.message


# --- invalid: the 10-lookup limit -------------------------------------------------------------

# 4 lookups at the top, 4 in big.example, 1 in each of n1 and n2: 10 in all.
LIMIT_ZONE: dict[str, list[str] | Exception] = {
    "big.example": [
        "v=spf1 include:n1.example include:n2.example a:mail.big.example mx:big.example "
        "ip4:203.0.113.1 -all"
    ],
    "n1.example": ["v=spf1 a -all"],
    "n2.example": ["v=spf1 exists:%{i}.n2.example -all"],
    "A:mail.big.example": ["203.0.113.2"],
    "MX:big.example": [(10, "mail.big.example")],
    "A:n1.example": ["203.0.113.3"],
}
LIMIT_RECORD = "v=spf1 a mx include:spf.example.net include:big.example ~all"


def test_ten_lookups_across_nested_includes_are_allowed():
    zone = {**ZONE, **LIMIT_ZONE, DOMAIN: [LIMIT_RECORD]}
    result = spf_of(DOMAIN, OURS, fake_dns(zone))
    assert result.state == SpfState.CONFIGURED
    assert result.lookups == 10


def test_eleven_lookups_after_ours_pass_us_and_warn_for_the_other_senders():
    # Receivers stop at the 11th lookup, but our servers pass at the 3rd: configured, with a
    # warning for the senders that go further (before #16 this was "invalid").
    zone = {**ZONE, **LIMIT_ZONE, DOMAIN: [LIMIT_RECORD]}
    zone["n2.example"] = ["v=spf1 exists:%{i}.n2.example ptr -all"]
    result = spf_of(DOMAIN, OURS, fake_dns(zone))
    assert result.state == SpfState.CONFIGURED
    assert result.lookups == 11
    assert result.record == LIMIT_RECORD
    assert "your other senders" in result.warning
    assert "more than 10 DNS lookups" in result.warning
    assert "“include:big.example”" in result.warning


def test_eleven_lookups_before_ours_are_invalid():
    zone = {**ZONE, **LIMIT_ZONE, "n2.example": ["v=spf1 exists:%{i}.n2.example ptr -all"]}
    zone[DOMAIN] = ["v=spf1 a mx include:big.example include:spf.example.net ~all"]
    result = spf_of(DOMAIN, OURS, fake_dns(zone))
    assert result.state == SpfState.INVALID
    assert result.fault == "too_many_lookups"
    assert result.lookups == 11
    assert "more than 10 DNS lookups" in result.message
    assert "remove the includes of services you no longer use" in result.message


@pytest.mark.parametrize(
    ("published", "state", "lookups"),
    [
        (f"v=spf1 {hosts(9)} include:spf.example.net ~all", SpfState.CONFIGURED, 10),
        (f"v=spf1 {hosts(10)} include:spf.example.net ~all", SpfState.INVALID, 11),
        (
            "v=spf1 a mx ptr exists:%{i}.example.com include:spf.example.net ~all",
            SpfState.CONFIGURED,
            5,
        ),
        # all, ip4, ip6, exp= and unknown modifiers query nothing
        (
            "v=spf1 include:spf.example.net ip4:198.51.100.1 ip6:2001:db8::1 "
            "exp=explain.example.com foo=bar -all",
            SpfState.CONFIGURED,
            1,
        ),
        # terms after `all` are never evaluated, nor is a redirect beside an `all`
        (f"v=spf1 include:spf.example.net -all {hosts(12)}", SpfState.CONFIGURED, 1),
        ("v=spf1 include:spf.example.net -all redirect=other.example", SpfState.CONFIGURED, 1),
        ("v=spf1 include:spf.example.net redirect=_spf.other.example", SpfState.CONFIGURED, 2),
        ("v=spf1 include:provider.example ~all", SpfState.CONFIGURED, 2),
        ("v=spf1 include:level2.example ~all", SpfState.CONFIGURED, 3),
    ],
)
def test_lookups_are_counted_as_receivers_do(published, state, lookups):
    result = check(published)
    assert result.state == state
    assert result.lookups == lookups


def test_over_the_limit_without_us_gets_ours_inserted():
    published = f"v=spf1 {hosts(11)} ~all"
    result = check(published)
    assert result.state == SpfState.INVALID
    assert result.fault == "too_many_lookups"
    assert result.record == f"v=spf1 {hosts(11)} include:spf.example.net ~all"


def test_needs_update_warns_when_ours_would_pass_the_limit():
    result = check(f"v=spf1 {hosts(10)} ~all")
    assert result.state == SpfState.NEEDS_UPDATE
    assert result.lookups == 10
    assert result.record == f"v=spf1 {hosts(10)} include:spf.example.net ~all"
    assert "more than 10 DNS lookups" in result.message


def test_needs_update_does_not_warn_below_the_limit():
    result = check(f"v=spf1 {hosts(9)} ~all")
    assert result.state == SpfState.NEEDS_UPDATE
    assert "lookups" not in result.message


@pytest.mark.parametrize(
    ("zone", "advice"),
    [
        pytest.param(
            {
                DOMAIN: ["v=spf1 include:loop.example ~all"],
                "loop.example": [f"v=spf1 include:{DOMAIN} ~all"],
            },
            "v=spf1 include:loop.example include:spf.example.net ~all",
            id="a-b-a",
        ),
        pytest.param(
            {DOMAIN: [f"v=spf1 include:{DOMAIN} ~all"]},
            "v=spf1 include:example.com include:spf.example.net ~all",
            id="self",
        ),
        pytest.param(
            {
                DOMAIN: ["v=spf1 redirect=loop.example"],
                "loop.example": [f"v=spf1 redirect={DOMAIN}"],
            },
            "v=spf1 include:spf.example.net redirect=loop.example",
            id="redirect",
        ),
    ],
)
def test_include_loop_terminates_over_the_limit(zone, advice):
    calls: list[str] = []
    result = spf_of(DOMAIN, OURS, fake_dns({**ZONE, **zone}, calls))
    assert result.state == SpfState.INVALID
    assert result.fault == "too_many_lookups"
    assert result.lookups == 11
    assert result.record == advice
    assert len(set(calls)) <= 3  # each name fetched once


# --- unknown ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "current"),
    [
        pytest.param({DOMAIN: TemporaryDnsFailure()}, [], id="top"),
        pytest.param(
            {DOMAIN: ["v=spf1 include:flaky.example ~all"], "flaky.example": TemporaryDnsFailure()},
            ["v=spf1 include:flaky.example ~all"],
            id="nested",
        ),
        pytest.param(
            {
                DOMAIN: ["v=spf1 include:level.example ~all"],
                "level.example": ["v=spf1 include:flaky.example -all"],
                "flaky.example": TemporaryDnsFailure(),
            },
            ["v=spf1 include:level.example ~all"],
            id="nested-depth-3",
        ),
        pytest.param(
            {DOMAIN: ["v=spf1 redirect=flaky.example"], "flaky.example": TemporaryDnsFailure()},
            ["v=spf1 redirect=flaky.example"],
            id="redirect",
        ),
    ],
)
def test_temporary_failure_is_unknown_never_not_configured(zone, current):
    result = spf_of(DOMAIN, OURS, fake_dns({**ZONE, **zone}))
    assert result.state == SpfState.UNKNOWN
    assert result.fault == "temporary_failure"
    assert result.record == ""  # nothing to publish until we know what is there
    assert result.current == current
    assert "temporary DNS failure" in result.message
    assert "check again automatically" in result.message


def test_failure_on_our_own_record_only_skips_the_limit_warning():
    # Our record is only read to warn about the limit of the advised record: not worth "unknown".
    result = check("v=spf1 mx ~all", spf__example__net=TemporaryDnsFailure())
    assert result.state == SpfState.NEEDS_UPDATE
    assert result.record == "v=spf1 mx include:spf.example.net ~all"


# --- inputs and messages ----------------------------------------------------------------------


def test_domain_is_looked_up_in_lower_case_without_trailing_dot():
    calls: list[str] = []
    zone = {**ZONE, DOMAIN: ["v=spf1 include:spf.example.net ~all"]}
    result = spf_of("Example.COM.", OURS, fake_dns(zone, calls))
    assert result.state == SpfState.CONFIGURED
    assert calls[0] == DOMAIN


@pytest.mark.parametrize(
    "required",
    ["", "include:", "-include:spf.example.net", "all", "redirect=spf.example.net", "foo:x"],
)
def test_required_mechanism_must_be_a_valid_pass_mechanism(required):
    with pytest.raises(ValueError, match="not a pass mechanism"):
        check("v=spf1 ~all", required=required)


@pytest.mark.parametrize(
    ("published", "facts"),
    [
        ([], ["no SPF record", "Add a TXT record"]),
        (["v=spf1 include:spf.example.net ~all"], ["No action needed"]),
        (
            ["v=spf1 mx ~all"],
            ["does not authorize our servers", "Replace the existing record", "only one"],
        ),
        (["v=spf1 a ~all", "v=spf1 mx ~all"], ["several SPF records", "Only one is allowed"]),
        (["v=spf1 ip4:1.2.3.4/99 ~all"], ["ip4:1.2.3.4/99", "ignore the whole record"]),
        (["v=spf1 all"], ["ends with all", "any server in the world"]),
        ([f"v=spf1 {hosts(11)} ~all"], ["more than 10 DNS lookups", "no longer use"]),
    ],
)
def test_messages_tell_the_customer_what_is_wrong_and_what_to_do(published, facts):
    message = check(*published).message
    for fact in facts:
        assert fact in message


@pytest.mark.parametrize(
    "published",
    [
        [],
        ["v=spf1 include:spf.example.net ~all"],
        ["v=spf1 mx ~all"],
        ["v=spf1 a ~all", "v=spf1 mx ~all"],
        ["v=spf1 foo ~all"],
        ["v=spf1 +all"],
        [f"v=spf1 {hosts(11)} ~all"],
    ],
)
def test_messages_are_translated(published):
    english = check(*published).message
    with translation.override("fr"):
        french = check(*published).message
    assert french != english


# --- what receivers conclude (RFC 7208 check_host) ----------------------------------------------


def test_a_failure_after_ours_does_not_matter_to_receivers():
    # Receivers pass our servers before they reach the flaky include (before #16: "unknown").
    result = check(
        "v=spf1 include:spf.example.net include:flaky.example ~all",
        flaky__example=TemporaryDnsFailure(),
    )
    assert result.state == SpfState.CONFIGURED
    assert result.warning == ""  # the other senders' evaluation could not conclude: no warning


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("gone.example", "gone.example, which publishes no SPF record"),
        ("twice.example", "twice.example, which publishes several SPF records"),
        ("broken.example", "cannot read: foo:bar"),
    ],
)
def test_an_include_without_usable_record_is_invalid_and_left_out(target, reason):
    # §5.2: an include of a domain without (one valid) SPF record is a permerror for every
    # receiver, whatever comes after it (before #16 it was skipped and this was "configured").
    result = check(f"v=spf1 include:{target} include:spf.example.net -all")
    assert result.state == SpfState.INVALID
    assert result.fault == "broken_include"
    assert f"“include:{target}”" in result.message
    assert reason in result.message
    assert "permerror" in result.message
    assert result.record == "v=spf1 include:spf.example.net -all"
    assert_advice_works(result)


def test_an_include_with_a_macro_is_expanded_and_ours_goes_before_it():
    # %{d} is the domain: example.com.spf.example.net has no record, a permerror. The term
    # depends on the sender, so it is kept, after ours.
    result = check("v=spf1 include:%{d}.spf.example.net ~all")
    assert result.state == SpfState.INVALID
    assert "example.com.spf.example.net, which publishes no SPF record" in result.message
    assert result.record == "v=spf1 include:spf.example.net include:%{d}.spf.example.net ~all"
    assert_advice_works(result)


def test_a_macro_include_that_exists_for_the_domain_passes_us():
    result = check(
        "v=spf1 include:_spf.%{o} -all", _spf__example__com=["v=spf1 include:spf.example.net"]
    )
    assert result.state == SpfState.CONFIGURED


def test_a_redirect_to_a_domain_without_spf_after_ours_is_a_warning():
    result = check("v=spf1 include:spf.example.net redirect=gone.example")
    assert result.state == SpfState.CONFIGURED
    assert "your other senders" in result.warning
    assert "“redirect=gone.example” leads to gone.example" in result.warning
    assert result.message == "Your SPF record includes our servers. No action needed."


def test_a_broken_include_never_reached_for_us_is_a_warning():
    result = check("v=spf1 include:spf.example.net include:broken.example -all")
    assert result.state == SpfState.CONFIGURED
    assert "cannot read: foo:bar" in result.warning


def test_a_third_partys_pass_all_is_a_warning():
    result = check("v=spf1 include:pass-all.example ~all")
    assert result.state == SpfState.CONFIGURED  # receivers do pass our servers
    assert "any server in the world" in result.warning
    assert "“include:pass-all.example”" in result.warning


def test_every_sending_ip_must_pass():
    result = check("v=spf1 ip4:192.0.2.0/25 -all", required="ip4:192.0.2.0/24")
    assert result.state == SpfState.NEEDS_UPDATE
    # 192.0.2.10 passes; 192.0.2.200 is outside /25 and meets -all.
    assert "For our server 192.0.2.200, receiving servers stop at “-all”" in result.message
    assert "rejects it" in result.message


def test_needs_update_says_where_receivers_stop():
    result = check("v=spf1 mx ~include:provider.example ~all")
    assert result.state == SpfState.NEEDS_UPDATE
    assert "stop at “~include:provider.example”, which marks it as suspicious" in result.message
    assert result.record == "v=spf1 mx include:spf.example.net ~include:provider.example ~all"


def test_needs_update_when_nothing_matches():
    result = check("v=spf1 ip4:198.51.100.7")
    assert "no term of your record matches" in result.message


def test_more_than_two_void_lookups_are_invalid():
    # §4.6.4: a, mx and exists find nothing three times before ours: permerror for us.
    result = check(
        "v=spf1 a:gone1.example mx:gone2.example exists:gone3.example include:spf.example.net ~all"
    )
    assert result.state == SpfState.INVALID
    assert result.fault == "too_many_void_lookups"
    assert "gone3.example" in result.message
    assert "“exists:gone3.example”" in result.message
    assert result.record == (
        "v=spf1 a:gone1.example mx:gone2.example include:spf.example.net exists:gone3.example ~all"
    )
    assert_advice_works(result)


def test_two_void_lookups_are_allowed():
    result = check("v=spf1 a:gone1.example mx:gone2.example include:spf.example.net ~all")
    assert result.state == SpfState.CONFIGURED


def test_an_mx_with_more_than_ten_names_is_invalid():
    names = [(10, f"mx{i}.example.com") for i in range(11)]
    addresses = {f"A:mx{i}.example.com": ["198.51.100.9"] for i in range(11)}
    zone = {**ZONE, **addresses, "MX:example.com": names}
    zone[DOMAIN] = ["v=spf1 mx include:spf.example.net ~all"]
    result = spf_of(DOMAIN, OURS, fake_dns(zone))
    assert result.state == SpfState.INVALID
    assert result.fault == "too_many_mx"
    assert "more than 10 MX records" in result.message
    zone["MX:example.com"] = names[:10]
    assert spf_of(DOMAIN, OURS, fake_dns(zone)).state == SpfState.CONFIGURED


def test_a_temporary_failure_of_an_address_lookup_is_unknown():
    result = check(
        "v=spf1 a:flaky.example include:spf.example.net ~all",
        **{"A:flaky.example": TemporaryDnsFailure()},
    )
    assert result.state == SpfState.UNKNOWN
    assert result.fault == "temporary_failure"


@pytest.mark.parametrize(
    "published",
    [
        ["v=spf1 include:gone.example include:spf.example.net -all"],
        ["v=spf1 a:gone1.example mx:gone2.example exists:gone3.example ~all"],
        ["v=spf1 mx ~include:provider.example ~all"],
    ],
)
def test_new_messages_are_translated(published):
    english = check(*published).message
    with translation.override("fr"):
        french = check(*published).message
    assert french != english


def test_the_warning_is_translated():
    english = check("v=spf1 include:spf.example.net redirect=gone.example").warning
    with translation.override("fr"):
        french = check("v=spf1 include:spf.example.net redirect=gone.example").warning
    assert english and french != english
