"""DKIM's life cycle and the stored DNS checks, against a real DNS server on loopback."""

from __future__ import annotations

import pytest
from django.utils import translation

from postdesk import crypto
from postdesk.audit.models import AuditEvent
from postdesk.dns.dkim import DkimState, record_value
from postdesk.dns.models import DkimKey, DkimKeyStatus, DnsStatus
from postdesk.dns.selectors import dkim_records, dns_report
from postdesk.dns.services import (
    dkim_disable,
    dkim_enable,
    dkim_prepare_rotation,
    dkim_rotate,
)
from postdesk.dns.status import dns_check_domain
from postdesk.errors import InvalidInput, NotFound, PermissionDenied

pytestmark = pytest.mark.django_db

HOST = "mail._domainkey.example.com"


@pytest.fixture(autouse=True)
def _our_servers(settings):
    settings.POSTDESK_SPF_MECHANISM = "include:spf.host.example"
    settings.POSTDESK_MX_HOSTS = ["mx1.host.example", "mx2.host.example"]
    settings.POSTDESK_DKIM_SELECTOR = "mail"


def dkim_state(domain) -> str:
    return dns_check_domain(domain)[1].dkim.state


def test_dkim_life_cycle(dns_server, owner, domain):
    """enable → pending → publish → active → another key → mismatch → disable."""
    assert dkim_state(domain) == DkimState.DISABLED

    key = dkim_enable(actor=owner, domain=domain)
    assert key.selector == "mail"
    [record] = dkim_records(actor=owner, domain=domain)
    assert (record.host, record.value) == (HOST, record_value(key.public_key))
    assert record.value.startswith("v=DKIM1; k=rsa; p=")
    assert dkim_state(domain) == DkimState.PENDING

    # The registrar splits the 400-character value into 255-byte strings; we join them.
    value = record.value.encode()
    dns_server.set_txt(HOST, (value[:255].decode(), value[255:].decode()))
    assert dkim_state(domain) == DkimState.ACTIVE

    dns_server.set_txt(HOST, "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAother")
    assert dkim_state(domain) == DkimState.MISMATCH

    with pytest.raises(InvalidInput) as caught:
        dkim_disable(actor=owner, domain=domain, confirmed=False)
    assert caught.value.code == "confirmation_required"
    assert DkimKey.objects.get().status == DkimKeyStatus.SIGNING

    dkim_disable(actor=owner, domain=domain, confirmed=True)
    assert not DkimKey.objects.filter(status=DkimKeyStatus.SIGNING).exists()
    assert dkim_state(domain) == DkimState.DISABLED
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="dkim")] == [
        "dkim.enable",
        "dkim.disable",
    ]


def test_enabling_again_reuses_the_kept_key_so_the_published_record_still_works(
    dns_server, owner, domain
):
    key = dkim_enable(actor=owner, domain=domain)
    dns_server.set_txt(HOST, record_value(key.public_key))
    dkim_disable(actor=owner, domain=domain, confirmed=True)
    again = dkim_enable(actor=owner, domain=domain)
    assert again.pk == key.pk
    assert dkim_state(domain) == DkimState.ACTIVE
    assert dkim_enable(actor=owner, domain=domain).pk == key.pk  # enabling twice is harmless


def test_private_key_is_encrypted_at_rest(owner, domain):
    key = dkim_enable(actor=owner, domain=domain)
    assert "PRIVATE KEY" not in key.private_key_encrypted
    assert crypto.decrypt(key.private_key_encrypted).startswith(b"-----BEGIN PRIVATE KEY-----")


def test_rotation_publishes_the_new_key_before_it_signs(dns_server, owner, domain):
    old = dkim_enable(actor=owner, domain=domain)
    dns_server.set_txt(HOST, record_value(old.public_key))
    new = dkim_prepare_rotation(actor=owner, domain=domain)
    assert new.selector == "mail2"
    assert dkim_prepare_rotation(actor=owner, domain=domain).pk == new.pk
    hosts = {r.host: r.status for r in dkim_records(actor=owner, domain=domain)}
    assert hosts == {HOST: "signing", "mail2._domainkey.example.com": "prepared"}

    # Not published yet: switching would send signatures nobody can verify.
    with pytest.raises(InvalidInput) as caught:
        dkim_rotate(actor=owner, domain=domain)
    assert caught.value.code == "dkim_not_published"
    assert DkimKey.objects.get(pk=old.pk).status == DkimKeyStatus.SIGNING

    dns_server.set_txt("mail2._domainkey.example.com", record_value(new.public_key))
    dkim_rotate(actor=owner, domain=domain)
    assert DkimKey.objects.get(pk=old.pk).status == DkimKeyStatus.RETIRED
    assert DkimKey.objects.get(pk=new.pk).status == DkimKeyStatus.SIGNING
    assert dns_check_domain(domain)[1].dkim.host == "mail2._domainkey.example.com"
    assert dkim_state(domain) == DkimState.ACTIVE


def test_rotation_needs_a_signing_key_and_a_prepared_one(owner, domain):
    with pytest.raises(InvalidInput):
        dkim_prepare_rotation(actor=owner, domain=domain)
    dkim_enable(actor=owner, domain=domain)
    with pytest.raises(InvalidInput) as caught:
        dkim_rotate(actor=owner, domain=domain)
    assert caught.value.code == "dkim_not_prepared"


def test_dkim_is_walled_off_and_viewers_only_look(owner, viewer, outsider, domain):
    with pytest.raises(NotFound):
        dkim_enable(actor=outsider, domain=domain)
    with pytest.raises(PermissionDenied):
        dkim_enable(actor=viewer, domain=domain)
    dkim_enable(actor=owner, domain=domain)
    for attempt in (
        lambda: dkim_disable(actor=outsider, domain=domain, confirmed=True),
        lambda: dkim_records(actor=outsider, domain=domain),
        lambda: dns_report(actor=outsider, domain=domain),
    ):
        with pytest.raises(NotFound):
            attempt()
    with pytest.raises(PermissionDenied):
        dkim_disable(actor=viewer, domain=domain, confirmed=True)
    assert dkim_records(actor=viewer, domain=domain)


def test_stored_answers_are_replayed_in_the_readers_language(dns_server, owner, domain):
    dns_server.set_txt("example.com", "v=spf1 include:spf.host.example ~all")
    # Our record, which receivers follow (RFC 7208: an include without one is a permerror).
    dns_server.set_txt("spf.host.example", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_server.set_mx("example.com", [(10, "mx1.host.example")])
    assert dns_report(actor=owner, domain=domain).report is None  # never checked

    dns_check_domain(domain)
    status = DnsStatus.objects.get(domain=domain)
    assert (status.spf_state, status.mx_state, status.dmarc_state) == (
        "configured",
        "configured",
        "not_configured",
    )
    queries = dns_server.queries
    stored = dns_report(actor=owner, domain=domain)
    assert dns_server.queries == queries  # reading the dashboard asks the DNS nothing
    assert stored.report.spf.state == "configured"
    assert stored.checked_at == status.checked_at
    with translation.override("fr"):
        french = dns_report(actor=owner, domain=domain).report
    assert french.dmarc.message != stored.report.dmarc.message


def test_a_dns_failure_is_unknown_never_not_configured(dns_server, owner, domain):
    dns_server.fail("example.com")
    dns_server.hang("_dmarc.example.com")
    report = dns_check_domain(domain)[1]
    assert report.spf.state == "unknown"
    assert report.mx.state == "unknown"
    assert report.dmarc.state == "unknown"
    assert dns_report(actor=owner, domain=domain).report.spf.state == "unknown"


def test_check_now_is_queued_and_run_by_the_worker(dns_server, viewer, outsider, domain):
    from django_tasks_db.models import DBTaskResult

    from postdesk.dns.services import dns_request_check
    from postdesk.dns.tasks import check_domain_dns

    with pytest.raises(NotFound):
        dns_request_check(actor=outsider, domain=domain)
    dns_request_check(actor=viewer, domain=domain)
    queued = DBTaskResult.objects.get()
    assert queued.task_path == "postdesk.dns.tasks.check_domain_dns"
    assert queued.args_kwargs["args"] == [domain.pk]

    dns_server.set_txt("example.com", "v=spf1 include:spf.host.example ~all")
    # Our record, which receivers follow (RFC 7208: an include without one is a permerror).
    dns_server.set_txt("spf.host.example", "v=spf1 ip4:192.0.2.0/24 -all")
    assert check_domain_dns.call(domain.pk) in {"checked", "unknown"}
    assert DnsStatus.objects.get(domain=domain).spf_state == "configured"


def test_a_check_that_meets_a_dns_failure_queues_a_retry(dns_server, domain):
    from django_tasks_db.models import DBTaskResult

    from postdesk.dns.tasks import check_domain_dns

    dns_server.hang("example.com")
    assert check_domain_dns.call(domain.pk) == "unknown, retry queued"
    retry = DBTaskResult.objects.get()
    assert retry.args_kwargs["args"] == [domain.pk, 1]
    assert retry.run_after is not None
