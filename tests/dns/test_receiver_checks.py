"""What receivers check besides SPF (issue 16, part 2), with real answers from the loopback DNS
server: DKIM records as a verifier reads them (every key in use), DMARC policy, alignment,
`p=none` for weeks and report authorization, the null MX; and for the operator our sending
IPs' reverse DNS and blocklist listings."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone, translation

from postdesk.dns.dkim import DkimState, check_dkim, record_value
from postdesk.dns.dmarc import DmarcState, check_dmarc
from postdesk.dns.hosts import ListingState, ReverseDnsState, blocklist_query
from postdesk.dns.models import DnsStatus
from postdesk.dns.mx import MxState
from postdesk.dns.selectors import dkim_records, dns_report
from postdesk.dns.services import dkim_enable, dkim_prepare_rotation
from postdesk.dns.status import dns_check_domain, sending_hosts_check
from tests.dns.fakes import fetch_from

pytestmark = pytest.mark.django_db

HOST = "mail._domainkey.example.com"
DMARC = "_dmarc.example.com"


@pytest.fixture(autouse=True)
def _our_servers(settings):
    settings.POSTDESK_SPF_MECHANISM = "include:spf.host.example"
    settings.POSTDESK_MX_HOSTS = ["mx1.host.example", "mx2.host.example"]
    settings.POSTDESK_DKIM_SELECTOR = "mail"
    settings.POSTDESK_SENDING_IPS = ["192.0.2.1"]
    settings.POSTDESK_SENDING_HELO = "mail.host.example"


@pytest.fixture
def spf_passes(dns_server):
    """The customer's SPF record authorizes our servers: receivers' SPF check passes."""
    dns_server.set_txt("example.com", "v=spf1 include:spf.host.example -all")
    dns_server.set_txt("spf.host.example", "v=spf1 ip4:192.0.2.0/24 -all")
    return dns_server


def report(domain):
    return dns_check_domain(domain)[1]


# --- DKIM: the record as a verifier reads it ----------------------------------------------------


@pytest.mark.parametrize(
    ("published", "state", "words"),
    [
        ("v=DKIM1; k=rsa; p=OURS", DkimState.ACTIVE, "DKIM is active"),
        ("p=OURS; k=rsa", DkimState.ACTIVE, "DKIM is active"),  # v= is optional, any order
        ("v=DKIM1; h=sha1:sha256; s=email; t=s; p=OURS", DkimState.ACTIVE, "DKIM is active"),
        ("v=DKIM1; k=rsa; t=y; p=OURS", DkimState.TESTING, "marked as a test"),
        ("v=DKIM1; k=rsa; t=s:y; p=OURS", DkimState.TESTING, "marked as a test"),
        ("v=DKIM1; k=rsa; p=", DkimState.MISMATCH, "revoked"),
        ("v=DKIM1; k=rsa; h=sha1; p=OURS", DkimState.MISMATCH, "SHA-256"),
        ("v=DKIM1; k=ed25519; p=OURS", DkimState.MISMATCH, "another type of key"),
        ("v=DKIM1; s=tlsrpt; p=OURS", DkimState.MISMATCH, "not for email"),
        ("v=DKIM2; p=OURS", DkimState.MISMATCH, "v=DKIM1"),
        ("v=DKIM1; k=rsa; p=bm90IGEga2V5", DkimState.MISMATCH, "no readable key"),
    ],
)
def test_the_dkim_record_is_judged_as_receivers_read_it(
    dns_server, owner, domain, published, state, words
):
    key = dkim_enable(actor=owner, domain=domain)
    dns_server.set_txt(HOST, published.replace("OURS", key.public_key))
    dkim = report(domain).dkim
    assert dkim.state == state
    assert words in dkim.message
    if state != DkimState.ACTIVE:
        # The advice is always our record, as a verifier needs it.
        assert dkim.value == record_value(key.public_key)
    else:
        assert dkim.bits == 2048 and dkim.warning == ""


def _rsa_public_key(bits: int) -> str:
    # Only the public half matters to a verifier's size check; cryptography refuses to
    # generate keys under 1024 bits, so the modulus is made up (odd, of the given size).
    modulus = (1 << (bits - 1)) | 0xF1
    public = rsa.RSAPublicNumbers(65537, modulus).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def test_rsa_keys_under_2048_bits_are_weak_and_under_1024_refused():
    weak, short = _rsa_public_key(1024), _rsa_public_key(512)
    active = check_dkim(
        "example.com", "old", weak, fetch_from({"old._domainkey.example.com": [record_value(weak)]})
    )
    assert (active.state, active.bits) == (DkimState.ACTIVE, 1024)
    assert "only 1024 bits" in active.warning and "new key" in active.warning
    refused = check_dkim(
        "example.com",
        "old",
        short,
        fetch_from({"old._domainkey.example.com": [record_value(short)]}),
    )
    assert (refused.state, refused.bits) == (DkimState.MISMATCH, 512)
    assert "under 1024 bits" in refused.message


def test_every_key_in_use_is_checked_the_prepared_one_too(dns_server, owner, domain):
    signing = dkim_enable(actor=owner, domain=domain)
    prepared = dkim_prepare_rotation(actor=owner, domain=domain)
    dns_server.set_txt(HOST, record_value(signing.public_key))
    dkim = report(domain).dkim
    assert dkim.state == DkimState.ACTIVE
    assert dkim.prepared.state == DkimState.PENDING
    assert "mail2._domainkey.example.com" in dkim.warning
    keys = report(domain).as_dict()["dkim"]["keys"]
    assert [(k["status"], k["selector"], k["state"]) for k in keys] == [
        ("signing", "mail", "active"),
        ("prepared", "mail2", "pending"),
    ]
    dns_server.set_txt("mail2._domainkey.example.com", record_value(prepared.public_key))
    dkim = report(domain).dkim
    assert dkim.prepared.state == DkimState.ACTIVE and dkim.warning == ""
    # The dashboard replays the stored answers of both keys.
    assert dns_report(actor=owner, domain=domain).report.dkim.prepared.state == DkimState.ACTIVE
    assert len(dkim_records(actor=owner, domain=domain)) == 2


# --- DMARC: policy, alignment, p=none for weeks, reports ---------------------------------------


def test_dmarc_says_whether_our_mail_passes(spf_passes, owner, domain):
    spf_passes.set_txt(DMARC, "v=DMARC1; p=reject; adkim=s")
    dmarc = report(domain).dmarc
    assert dmarc.state == DmarcState.CONFIGURED
    assert (dmarc.alignment.adkim, dmarc.alignment.aspf) == ("s", "r")
    # SPF passes under the From domain itself; DKIM is off.
    assert (dmarc.alignment.spf, dmarc.alignment.dkim, dmarc.alignment.passes) == (
        True,
        False,
        True,
    )
    assert dmarc.warnings == []

    spf_passes.set_txt("example.com", "v=spf1 -all")  # our servers no longer pass
    dmarc = report(domain).dmarc
    assert dmarc.alignment.passes is False
    [warning] = dmarc.warnings
    assert "p=reject" in warning and "refuse" in warning
    with translation.override("fr"):
        french = dns_report(actor=owner, domain=domain).report.dmarc.warnings[0]
    assert french != warning and "p=reject" in french

    key = dkim_enable(actor=owner, domain=domain)
    spf_passes.set_txt(HOST, record_value(key.public_key))
    alignment = report(domain).dmarc.alignment
    assert (alignment.dkim, alignment.spf, alignment.passes) == (True, False, True)


def test_a_dns_failure_never_says_our_mail_fails_dmarc(spf_passes, domain):
    spf_passes.set_txt(DMARC, "v=DMARC1; p=reject")
    spf_passes.hang("spf.host.example")
    dmarc = report(domain).dmarc
    assert dmarc.alignment.passes is None and dmarc.warnings == []


def test_p_none_is_flagged_after_weeks_with_the_stricter_record(spf_passes, owner, domain):
    spf_passes.set_txt(DMARC, "v=DMARC1; p=none; rua=mailto:postmaster@example.com")
    report(domain)
    first = DnsStatus.objects.get(domain=domain)
    assert (first.dmarc_policy, first.dmarc_policy_since) == ("none", first.checked_at)
    assert dns_report(actor=owner, domain=domain).report.dmarc.warnings == []

    report(domain)  # the same policy again: still dated from when it was first seen
    assert DnsStatus.objects.get(domain=domain).dmarc_policy_since == first.checked_at
    spf_passes.hang(DMARC)  # an unanswered check forgets nothing
    report(domain)
    assert DnsStatus.objects.get(domain=domain).dmarc_policy_since == first.checked_at
    spf_passes.recover(DMARC)
    report(domain)

    five_weeks_ago = timezone.now() - timedelta(weeks=5)
    DnsStatus.objects.filter(domain=domain).update(dmarc_policy_since=five_weeks_ago)
    stored = dns_report(actor=owner, domain=domain).report.dmarc
    [warning] = stored.warnings
    assert "“p=none” for 5 weeks" in warning
    assert stored.record == "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.com"
    assert stored.none_since == five_weeks_ago
    json = dns_check_domain(domain)[1].as_dict()["dmarc"]
    assert json["policy"] == "none"
    assert json["policy_none_since"] == five_weeks_ago.isoformat()

    spf_passes.set_txt(DMARC, "v=DMARC1; p=quarantine")
    report(domain)  # a new policy starts a new date
    status = DnsStatus.objects.get(domain=domain)
    assert (status.dmarc_policy, status.dmarc_policy_since) == ("quarantine", status.checked_at)


def test_p_none_for_weeks_without_passing_mail_asks_to_fix_dkim_or_spf_first(
    dns_server, owner, domain
):
    dns_server.set_txt(DMARC, "v=DMARC1; p=none")
    report(domain)
    DnsStatus.objects.filter(domain=domain).update(
        dmarc_policy_since=timezone.now() - timedelta(weeks=6)
    )
    stored = dns_report(actor=owner, domain=domain).report.dmarc
    assert any("make DKIM or SPF pass" in w for w in stored.warnings)
    assert stored.record == "v=DMARC1; p=none"  # no stricter advice while it would hurt


def test_reports_to_another_domain_need_its_authorization(spf_passes, domain):
    spf_passes.set_txt(
        DMARC,
        "v=DMARC1; p=quarantine; rua=mailto:agg@reports.example.net,mailto:dmarc@example.com; "
        "ruf=mailto:forensic@sub.example.com!10m",
    )
    dmarc = report(domain).dmarc
    by_uri = {r.uri: r for r in dmarc.reports}
    assert by_uri["mailto:dmarc@example.com"].external is False
    assert by_uri["mailto:forensic@sub.example.com"].external is False  # same organization
    external = by_uri["mailto:agg@reports.example.net"]
    assert (external.external, external.authorized) == (True, False)
    assert external.host == "example.com._report._dmarc.reports.example.net"
    [warning] = dmarc.warnings
    assert "example.com._report._dmarc.reports.example.net" in warning
    assert "agg@reports.example.net" in warning

    spf_passes.hang("example.com._report._dmarc.reports.example.net")
    dmarc = report(domain).dmarc  # the policy stands; only that address is undecided
    assert (dmarc.state, dmarc.warnings) == (DmarcState.CONFIGURED, [])
    assert {r.uri: r.authorized for r in dmarc.reports}["mailto:agg@reports.example.net"] is None
    spf_passes.recover("example.com._report._dmarc.reports.example.net")
    spf_passes.set_txt("example.com._report._dmarc.reports.example.net", "v=DMARC1")
    dmarc = report(domain).dmarc
    assert dmarc.warnings == []
    assert {r["uri"]: r["authorized"] for r in report(domain).as_dict()["dmarc"]["reports"]}[
        "mailto:agg@reports.example.net"
    ] is True


def test_a_subdomain_follows_its_organizational_domains_policy():
    fetch = fetch_from({"_dmarc.example.co.uk": ["v=DMARC1; p=reject; sp=quarantine"]})
    dmarc = check_dmarc("shop.example.co.uk", fetch)
    assert (dmarc.state, dmarc.policy, dmarc.policy_domain) == (
        DmarcState.CONFIGURED,
        "quarantine",
        "example.co.uk",
    )
    assert "example.co.uk" in dmarc.message
    # co.uk is a public suffix: nothing above example.co.uk is asked.
    assert check_dmarc("example.co.uk", fetch_from({})).state == DmarcState.NOT_CONFIGURED


# --- MX ------------------------------------------------------------------------------------------


def test_a_null_mx_is_said_plainly(dns_server, domain):
    dns_server.set_mx("example.com", [(0, ".")])
    mx = report(domain).mx
    assert mx.state == MxState.NULL_MX
    assert "no message can be received" in mx.message
    assert mx.records == [(10, "mx1.host.example"), (20, "mx2.host.example")]
    assert report(domain).as_dict()["mx"]["found"] == [[0, "."]]
    dns_server.set_mx("example.com", [(0, "."), (10, "mx1.host.example")])
    assert report(domain).mx.state == MxState.NEEDS_UPDATE


def test_mx_pointing_at_our_servers(dns_server, domain):
    dns_server.set_mx("example.com", [(10, "MX1.host.example.")])
    assert report(domain).mx.state == MxState.CONFIGURED


# --- Our sending hosts (operator) ---------------------------------------------------------------


@pytest.fixture
def hosts(dns_server, settings):
    settings.POSTDESK_SENDING_IPS = ["192.0.2.1", "2001:db8::1"]
    settings.POSTDESK_DNSBL_ZONES = ["bl.test", "refusing.test"]
    dns_server.set_ptr("1.2.0.192.in-addr.arpa", "mail.host.example")
    dns_server.set_a("mail.host.example", "192.0.2.1")
    v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    dns_server.set_ptr(v6, "out6.host.example")
    dns_server.set_aaaa("out6.host.example", "2001:db8::1")
    # A blocklist zone: 192.0.2.1 listed with its reason; the refusing zone answers as
    # Spamhaus does to a query through a public resolver.
    dns_server.set_a("1.2.0.192.bl.test", "127.0.0.2", "127.0.0.4")
    dns_server.set_txt("1.2.0.192.bl.test", "Listed: see https://bl.test/q/192.0.2.1")
    dns_server.set_txt("bl.test")  # the zone exists; unlisted addresses are NXDOMAIN
    dns_server.set_a("1.2.0.192.refusing.test", "127.255.255.254")
    return dns_server


def test_reverse_dns_is_forward_confirmed_and_matched_with_the_helo(hosts):
    v4, v6 = sending_hosts_check()
    assert (v4.ip, v4.reverse_state, v4.confirmed_names) == (
        "192.0.2.1",
        ReverseDnsState.CONFIRMED,
        ["mail.host.example"],
    )
    # Confirmed, but under another name than the HELO.
    assert (v6.reverse_state, v6.confirmed_names) == (
        ReverseDnsState.HELO_MISMATCH,
        ["out6.host.example"],
    )
    assert "mail.host.example" in v6.message

    hosts.set_a("mail.host.example", "192.0.2.99")  # the name no longer leads back
    assert sending_hosts_check()[0].reverse_state == ReverseDnsState.NOT_CONFIRMED
    hosts.remove("1.2.0.192.in-addr.arpa")
    v4 = sending_hosts_check()[0]
    assert v4.reverse_state == ReverseDnsState.NO_PTR and "PTR" in v4.message
    hosts.fail("1.2.0.192.in-addr.arpa")
    assert sending_hosts_check()[0].reverse_state == ReverseDnsState.UNKNOWN


def test_each_sending_ip_is_checked_against_each_blocklist(hosts):
    assert blocklist_query("2001:db8::1", "bl.test").endswith(".8.b.d.0.1.0.0.2.bl.test")
    v4, v6 = sending_hosts_check()
    listed, refused = v4.listings
    assert (listed.zone, listed.state, listed.codes) == (
        "bl.test",
        ListingState.LISTED,
        ["127.0.0.2", "127.0.0.4"],
    )
    assert listed.reason == "Listed: see https://bl.test/q/192.0.2.1"
    assert refused.state == ListingState.REFUSED  # never read as "listed"
    assert [listing.state for listing in v6.listings] == [ListingState.NOT_LISTED] * 2
    hosts.set_a("1.2.0.192.bl.test", "203.0.113.7")  # a resolver rewriting NXDOMAIN
    assert sending_hosts_check()[0].listings[0].state == ListingState.UNKNOWN
    hosts.hang("1.2.0.192.bl.test")
    assert sending_hosts_check()[0].listings[0].state == ListingState.UNKNOWN
