"""The deliverability self-test end to end: a message leaves a mailbox through the real
submission port (STARTTLS, AUTH with a single-use login, OpenDKIM), our SMTP client takes it
to the probe's receiver (STARTTLS), Dovecot delivers it to the provider's probe mailbox, and
the worker judges it with the records of the loopback DNS server."""

from __future__ import annotations

import json
import smtplib
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from postdesk.dataplane import stack
from postdesk.dns.models import DeliverabilityTest, DeliverabilityTestState
from postdesk.dns.selectors import deliverability_report, dkim_records
from postdesk.dns.services import deliverability_test_request, dkim_enable
from postdesk.errors import NotFound
from postdesk.mail.services import domain_add, mailbox_create
from postdesk.tenancy.models import Client
from tests.conftest import GOOD_PASSWORD
from tests.dataplane.conftest import PROBE_ADDRESS, run_worker

pytestmark = pytest.mark.mailstack

SENDING_IP = "192.0.2.1"


@pytest.fixture
def selftest(
    mail, mail_stack, dns_server, settings, operator, domain, test_ca, tmp_path, monkeypatch
):
    """The self-test's settings against the loopback stack, the provider's probe mailbox, a
    mailbox of the customer's domain, and the DNS of a domain that does everything right."""
    ca_file = tmp_path / "ca.pem"
    test_ca.cert_pem.write_to_path(str(ca_file))
    # The panel checks the submission port's certificate: here it is issued by the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    settings.POSTDESK_PROBE_ADDRESS = PROBE_ADDRESS
    settings.POSTDESK_PROBE_SUBMISSION = f"127.0.0.1:{mail_stack['ports']['submission']}"
    settings.POSTDESK_PROBE_TIMEOUT = 20
    settings.POSTDESK_SENDING_IPS = [SENDING_IP]
    settings.POSTDESK_SPF_MECHANISM = f"ip4:{SENDING_IP}"
    provider = Client.objects.create(name="Provider")
    probe_domain = domain_add(actor=operator, client=provider, name=PROBE_ADDRESS.split("@")[1])
    mailbox_create(actor=operator, domain=probe_domain, username="probe", password=GOOD_PASSWORD)
    mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    dkim_enable(actor=operator, domain=domain)
    run_worker()  # the key file for the signer
    [record] = dkim_records(actor=operator, domain=domain)
    dns_server.set_txt(record.host, record.value)
    dns_server.set_txt("example.com", f"v=spf1 ip4:{SENDING_IP} -all")
    dns_server.set_txt("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:dmarc@example.com")
    return dns_server


def finished(domain, actor, timeout: float = 30):
    """Run the worker until the domain's test has its final state; its report."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_worker()
        test = DeliverabilityTest.objects.get(domain=domain)
        if test.state not in (DeliverabilityTestState.QUEUED, DeliverabilityTestState.WAITING):
            return deliverability_report(actor=actor, domain=domain)
        time.sleep(0.5)
    raise AssertionError(f"the test is still {test.state} after {timeout} s")


def findings(report) -> dict:
    return {finding.check: finding for finding in report.findings}


def test_correct_records_pass_every_check(selftest, owner, domain, sink):
    deliverability_test_request(actor=owner, domain=domain)
    report = finished(domain, owner)

    assert report.state == DeliverabilityTestState.DONE, report.error
    assert report.passed, [(f.check, f.message) for f in report.findings]
    found = findings(report)
    assert f"authorizes our server {SENDING_IP}" in found["spf"].message
    assert "mail._domainkey.example.com" in found["dkim"].message
    assert "p=reject" in found["dmarc"].message and "deliver it" in found["dmarc"].message
    # Both hops encrypted: the submission from the mailbox and the delivery to the receiver.
    hops = report.facts["tls"]
    assert [hop["hop"] for hop in hops] == ["submission", "delivery"]
    assert all(hop["protocol"].startswith("TLSv1.") for hop in hops), hops
    assert "not encrypted" not in found["tls"].message
    assert report.facts["seconds"] is not None and report.facts["seconds"] < 20
    # It went to the probe mailbox, not to the outside world, and was removed once read.
    assert sink.messages == []
    # The single-use login is gone.
    assert DeliverabilityTest.objects.get(domain=domain).login_hash == ""


def test_dkim_disabled_and_broken_spf_show_their_fix(selftest, owner, operator, domain):
    from postdesk.dns.services import dkim_disable

    dkim_disable(actor=operator, domain=domain, confirmed=True)
    # An include of a domain that publishes no SPF record: receivers answer permerror.
    selftest.set_txt("example.com", "v=spf1 include:gone.example.net -all")
    deliverability_test_request(actor=owner, domain=domain)
    report = finished(domain, owner)

    assert report.state == DeliverabilityTestState.DONE
    assert not report.passed
    found = findings(report)
    assert not found["spf"].ok and report.facts["spf"]["result"] == "permerror"
    # The fix is the record receivers would pass, with our mechanism and the dead include gone.
    assert f"ip4:{SENDING_IP}" in found["spf"].fix and "gone.example.net" not in found["spf"].fix
    assert not found["dkim"].ok and report.facts["dkim"]["reason"] == "no_signature"
    assert "Enable DKIM" in found["dkim"].fix
    # Neither passes for the domain: p=reject has receivers refuse it.
    assert not found["dmarc"].ok and report.facts["dmarc"]["disposition"] == "reject"
    assert "refuse it" in found["dmarc"].message


def test_the_fix_in_french(selftest, owner, operator, domain):
    from django.utils import translation

    from postdesk.dns.services import dkim_disable

    dkim_disable(actor=operator, domain=domain, confirmed=True)
    deliverability_test_request(actor=owner, domain=domain)
    finished(domain, owner)
    with translation.override("fr"):
        report = deliverability_report(actor=owner, domain=domain)
    assert "Activez DKIM" in findings(report)["dkim"].fix


def test_a_probe_that_never_arrives_says_so(selftest, owner, domain, settings, mail_stack):
    settings.POSTDESK_PROBE_TIMEOUT = 3
    deliverability_test_request(actor=owner, domain=domain)
    run_worker()  # sent
    assert DeliverabilityTest.objects.get(domain=domain).state == DeliverabilityTestState.WAITING
    # The receiving side goes down: the message waits in our queue, and never arrives in time.
    stack.stop_dovecot(Path(mail_stack["dir"]))
    try:
        report = finished(domain, owner)
    finally:
        stack.start_dovecot(Path(mail_stack["dir"]))
    assert report.state == DeliverabilityTestState.NOT_ARRIVED
    assert "did not arrive within 3 seconds" in report.message
    assert not report.passed and report.findings == []


def test_the_probe_login_is_single_use_and_smtp_only(selftest, owner, domain, mail, monkeypatch):
    """The login the panel submits with is accepted once, by SMTP AUTH only."""
    from postdesk.dataplane import probe

    used = {}
    real_submit = probe.submit

    def remember(message, *, target, login, password):
        used["login"], used["password"] = login, password
        real_submit(message, target=target, login=login, password=password)

    monkeypatch.setattr(probe, "submit", remember)
    deliverability_test_request(actor=owner, domain=domain)
    finished(domain, owner)
    assert used["login"] == "marie@example.com"
    with smtplib.SMTP("127.0.0.1", mail.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=mail.tls)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login(used["login"], used["password"])


def test_another_client_cannot_start_or_read_a_test(selftest, owner, outsider, domain):
    with pytest.raises(NotFound):
        deliverability_test_request(actor=outsider, domain=domain)
    deliverability_test_request(actor=owner, domain=domain)
    with pytest.raises(NotFound):
        deliverability_report(actor=outsider, domain=domain)


def test_cli_json(selftest, domain, capsys):
    call_command("deliverability", "test", "marie@example.com", "--json")
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {
        "sender",
        "probe",
        "state",
        "passed",
        "message",
        "error",
        "requested_at",
        "submitted_at",
        "received_at",
        "seconds",
        "spf",
        "dkim",
        "dmarc",
        "tls",
    }
    assert result["state"] == "done" and result["passed"] is True
    assert result["sender"] == "marie@example.com" and result["probe"] == PROBE_ADDRESS
    assert result["spf"]["result"] == "pass" and result["spf"]["ip"] == SENDING_IP
    assert result["dkim"]["result"] == "pass" and result["dkim"]["selector"] == "mail"
    assert result["dmarc"]["result"] == "pass" and result["dmarc"]["disposition"] == "deliver"
    assert [hop["hop"] for hop in result["tls"]["hops"]] == ["submission", "delivery"]
