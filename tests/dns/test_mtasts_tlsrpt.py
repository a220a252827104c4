"""MTA-STS and TLS-RPT (RFC 8461, RFC 8460): the policy we serve, its records, and every state
of their checks, with real answers from the loopback DNS server."""

from __future__ import annotations

import pytest

from postdesk.audit.models import AuditEvent
from postdesk.dns.models import DnsStatus
from postdesk.dns.mtasts import MtaStsState, policy_id, policy_text
from postdesk.dns.selectors import dns_report, mta_sts_policy
from postdesk.dns.services import mta_sts_mode_set
from postdesk.dns.status import dns_check_domain
from postdesk.dns.tlsrpt import TlsRptState
from postdesk.errors import InvalidInput, NotFound, PermissionDenied

pytestmark = pytest.mark.django_db

MX = ["mx1.host.example", "mx2.host.example"]
FRONT = "front.host.example"
FRONT_ADDRESSES = ("192.0.2.10", "2001:db8::10")
REPORTS = "tls-reports@host.example"


@pytest.fixture(autouse=True)
def _our_servers(settings):
    settings.POSTDESK_MX_HOSTS = MX
    settings.POSTDESK_MTA_STS_TARGET = FRONT
    settings.POSTDESK_TLS_RPT_ADDRESS = REPORTS


@pytest.fixture
def front(dns_server):
    """Our web front in the DNS, and the customer's mta-sts host pointing at it."""
    dns_server.set_a(FRONT, FRONT_ADDRESSES[0])
    dns_server.set_aaaa(FRONT, FRONT_ADDRESSES[1])
    dns_server.set_cname("mta-sts.example.com", FRONT)
    return dns_server


def sts_record(mode: str = "testing") -> str:
    return f"v=STSv1; id={policy_id(mode, MX)}"


# --- The policy ----------------------------------------------------------------------------


def test_the_policy_lists_our_mx_hosts_with_a_max_age_per_mode():
    assert policy_text("testing", MX) == (
        "version: STSv1\r\n"
        "mode: testing\r\n"
        "mx: mx1.host.example\r\n"
        "mx: mx2.host.example\r\n"
        "max_age: 86400\r\n"
    )
    assert "mode: enforce\r\n" in policy_text("enforce", MX)
    assert policy_text("enforce", MX).endswith("max_age: 604800\r\n")


def test_the_id_changes_with_the_policy_and_is_what_rfc_8461_allows():
    ids = {policy_id("testing", MX), policy_id("enforce", MX), policy_id("testing", MX[:1])}
    assert len(ids) == 3
    for value in ids:
        assert value.isalnum() and 1 <= len(value) <= 32
    assert policy_id("testing", MX) == policy_id("testing", list(MX))  # nothing stored


def test_the_policy_is_served_for_hosted_domains_only(domain, other_domain):
    assert mta_sts_policy("mta-sts.example.com") == policy_text("testing", MX)
    assert "mode: testing" in mta_sts_policy("mta-sts.example.net")
    assert mta_sts_policy("mta-sts.unknown.example") is None
    assert mta_sts_policy("example.com") is None
    assert mta_sts_policy("mta-sts.") is None
    assert mta_sts_policy("mta-sts.-bad-.example") is None


# --- The mode ------------------------------------------------------------------------------


def test_the_mode_is_testing_until_the_customer_enforces(owner, domain):
    assert domain.mta_sts_mode == "testing"
    mta_sts_mode_set(actor=owner, domain=domain, mode="enforce")
    domain.refresh_from_db()
    assert domain.mta_sts_mode == "enforce"
    assert "mode: enforce" in mta_sts_policy("mta-sts.example.com")
    [event] = AuditEvent.objects.filter(action="mta_sts.mode")
    assert event.changes == {"mta_sts_mode": ["testing", "enforce"]}
    assert event.domain_name == "example.com"
    # The same mode again changes nothing and records nothing.
    mta_sts_mode_set(actor=owner, domain=domain, mode="enforce")
    assert AuditEvent.objects.filter(action="mta_sts.mode").count() == 1


def test_the_mode_is_walled_off_and_viewers_only_look(viewer, outsider, owner, domain):
    with pytest.raises(NotFound):
        mta_sts_mode_set(actor=outsider, domain=domain, mode="enforce")
    with pytest.raises(PermissionDenied):
        mta_sts_mode_set(actor=viewer, domain=domain, mode="enforce")
    with pytest.raises(InvalidInput) as caught:
        mta_sts_mode_set(actor=owner, domain=domain, mode="none")
    assert caught.value.code == "mta_sts_mode_invalid"
    domain.refresh_from_db()
    assert domain.mta_sts_mode == "testing"


# --- MTA-STS states, from the loopback DNS server ------------------------------------------


def mta_sts(domain):
    return dns_check_domain(domain)[1].mta_sts


def test_not_configured_without_an_sts_record(front, domain):
    front.set_txt("_mta-sts.example.com", "some-verification=abc")  # not STSv1: discarded
    result = mta_sts(domain)
    assert result.state == MtaStsState.NOT_CONFIGURED
    assert [(r.type, r.host, r.value) for r in result.expected] == [
        ("TXT", "_mta-sts.example.com", sts_record()),
        ("CNAME", "mta-sts.example.com", FRONT),
    ]
    # What is there is reported: the host already leads to our front.
    assert {(r.type, r.value) for r in result.found} == {
        ("A", "192.0.2.10"),
        ("AAAA", "2001:db8::10"),
    }


def test_configured_through_a_cname_or_a_copy_of_our_addresses(front, domain):
    front.set_txt("_mta-sts.example.com", sts_record())
    result = mta_sts(domain)
    assert result.state == MtaStsState.CONFIGURED
    assert "testing mode" in result.message

    front.remove("mta-sts.example.com")
    front.set_a("mta-sts.example.com", "192.0.2.10")
    assert mta_sts(domain).state == MtaStsState.CONFIGURED
    assert DnsStatus.objects.get(domain=domain).mta_sts_state == "configured"


@pytest.mark.parametrize(
    "records",
    [
        ["v=STSv1; id=abc", "v=STSv1; id=def"],  # two: senders ignore both
        ["v=STSv1;"],  # no id
        ["v=STSv1; id=not-alphanumeric"],
        ["v=STSv1; id=" + "a" * 33],  # longer than 32
        ["v=STSv1 id=abc"],  # no delimiter before the id
    ],
)
def test_invalid_records_are_what_senders_ignore(front, domain, records):
    front.set_txt("_mta-sts.example.com", *records)
    result = mta_sts(domain)
    assert result.state == MtaStsState.INVALID
    assert result.expected[0].value == sts_record()


def test_needs_update_when_senders_cannot_fetch_the_policy(front, domain):
    front.set_txt("_mta-sts.example.com", sts_record())
    front.remove("mta-sts.example.com")
    result = mta_sts(domain)
    assert result.state == MtaStsState.NEEDS_UPDATE
    assert "mta-sts.example.com does not exist" in result.message
    assert FRONT in result.message

    front.set_a("mta-sts.example.com", "198.51.100.7")  # another web server
    result = mta_sts(domain)
    assert result.state == MtaStsState.NEEDS_UPDATE
    assert "198.51.100.7" in result.message


def test_a_change_of_mode_needs_the_record_published_again(front, owner, domain):
    front.set_txt("_mta-sts.example.com", sts_record("testing"))
    assert mta_sts(domain).state == MtaStsState.CONFIGURED

    mta_sts_mode_set(actor=owner, domain=domain, mode="enforce")
    queries = front.queries
    # The dashboard re-reads the stored answers: the new mode shows at once, without the DNS.
    stored = dns_report(actor=owner, domain=domain).report.mta_sts
    assert front.queries == queries
    assert stored.state == MtaStsState.NEEDS_UPDATE
    assert policy_id("testing", MX) in stored.message
    assert stored.expected[0].value == sts_record("enforce")

    front.set_txt("_mta-sts.example.com", sts_record("enforce"))
    result = mta_sts(domain)
    assert result.state == MtaStsState.CONFIGURED
    assert "enforce mode" in result.message


def test_a_dns_failure_is_unknown_and_retried(front, domain):
    from postdesk.dns.tasks import check_domain_dns

    front.set_txt("_mta-sts.example.com", sts_record())
    front.fail("mta-sts.example.com")
    assert mta_sts(domain).state == MtaStsState.UNKNOWN
    front.recover("mta-sts.example.com")
    front.hang("_smtp._tls.example.com")
    report = dns_check_domain(domain)[1]
    assert (report.mta_sts.state, report.tls_rpt.state) == ("configured", "unknown")
    assert check_domain_dns.call(domain.pk) == "unknown, retry queued"


# --- TLS-RPT states --------------------------------------------------------------------------


def tls_rpt(domain):
    return dns_check_domain(domain)[1].tls_rpt


OURS = f"v=TLSRPTv1; rua=mailto:{REPORTS}"


@pytest.mark.parametrize(
    "records,state,to_publish",
    [
        ([], TlsRptState.NOT_CONFIGURED, OURS),
        (["v=spf1 -all"], TlsRptState.NOT_CONFIGURED, OURS),
        ([OURS], TlsRptState.CONFIGURED, OURS),
        (
            [f"v=TLSRPTv1;rua=https://reports.example.org/tls, MAILTO:{REPORTS.upper()}"],
            TlsRptState.CONFIGURED,
            f"v=TLSRPTv1;rua=https://reports.example.org/tls, MAILTO:{REPORTS.upper()}",
        ),
        # The customer's own address is kept, ours added.
        (
            ["v=TLSRPTv1; rua=mailto:tls@example.com"],
            TlsRptState.NEEDS_UPDATE,
            f"v=TLSRPTv1; rua=mailto:tls@example.com,mailto:{REPORTS}",
        ),
        # Two records: senders ignore both; one record with the addresses of both.
        (
            ["v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1; rua=mailto:b@example.com"],
            TlsRptState.INVALID,
            f"v=TLSRPTv1; rua=mailto:a@example.com,mailto:b@example.com,mailto:{REPORTS}",
        ),
        (["v=TLSRPTv1;"], TlsRptState.INVALID, OURS),
        (["v=TLSRPTv1; rua=ftp://reports.example.org"], TlsRptState.INVALID, OURS),
    ],
)
def test_tls_rpt_states(dns_server, domain, records, state, to_publish):
    if records:
        dns_server.set_txt("_smtp._tls.example.com", *records)
    result = tls_rpt(domain)
    assert result.state == state
    assert [(r.type, r.host, r.value) for r in result.expected] == [
        ("TXT", "_smtp._tls.example.com", to_publish)
    ]
    assert [r.value for r in result.found] == [r for r in records if r.startswith("v=TLSRPT")]
    assert DnsStatus.objects.get(domain=domain).tls_rpt_state == state


def test_records_to_publish_are_known_before_the_first_check(owner, domain):
    stored = dns_report(actor=owner, domain=domain)
    assert stored.report is None
    assert [(r.type, r.host, r.value) for r in stored.mta_sts_records] == [
        ("TXT", "_mta-sts.example.com", sts_record()),
        ("CNAME", "mta-sts.example.com", FRONT),
    ]
    assert [(r.host, r.value) for r in stored.tls_rpt_records] == [("_smtp._tls.example.com", OURS)]
