"""Outgoing mail from a domain with DKIM enabled carries a signature that verifies (dkimpy)
against the published record; after "Disable DKIM", the next message leaves unsigned."""

from __future__ import annotations

import dkim
import pytest

from postdesk.dns.selectors import dkim_records
from postdesk.dns.services import dkim_disable, dkim_enable
from postdesk.mail.services import mailbox_create
from tests.conftest import GOOD_PASSWORD
from tests.dataplane.conftest import run_worker

pytestmark = pytest.mark.mailstack


def send_out(mail, sink, subject: str) -> bytes:
    sink.clear()
    mail.send(
        "friend@example.net",
        sender="marie@example.com",
        subject=subject,
        submission_login=("marie@example.com", GOOD_PASSWORD),
    )
    sink.wait_for("friend@example.net")
    return sink.raw["friend@example.net"]


def test_signed_while_enabled_and_unsigned_at_once_after_disable(mail, sink, operator, domain):
    mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    assert b"DKIM-Signature" not in send_out(mail, sink, "Before")

    dkim_enable(actor=operator, domain=domain)
    run_worker()  # hands OpenDKIM the key
    [record] = dkim_records(actor=operator, domain=domain)
    published = {record.host + ".": record.value.encode()}
    signed = send_out(mail, sink, "Signed")
    assert b"DKIM-Signature" in signed
    assert b"d=example.com" in signed and b"s=mail" in signed
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: published.get(name.decode()))

    dkim_disable(actor=operator, domain=domain, confirmed=True)
    run_worker()
    assert b"DKIM-Signature" not in send_out(mail, sink, "After")
