"""Outgoing mail from a domain with DKIM enabled carries a signature that verifies (dkimpy)
against the published record; after "Disable DKIM", the next message leaves unsigned."""

from __future__ import annotations

import smtplib

import dkim
import pytest
from django.utils import timezone

from postdesk.dns.selectors import dkim_records
from postdesk.dns.services import dkim_disable, dkim_enable
from postdesk.mail.services import mailbox_create
from postdesk.tenancy.models import Client
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


def verifies(signed: bytes, operator, domain) -> bool:
    [record] = dkim_records(actor=operator, domain=domain)
    published = {record.host + ".": record.value.encode()}
    return dkim.verify(signed, dnsfunc=lambda name, timeout=5: published.get(name.decode()))


def test_signed_while_enabled_and_unsigned_at_once_after_disable(mail, sink, operator, domain):
    mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    assert b"DKIM-Signature" not in send_out(mail, sink, "Before")

    dkim_enable(actor=operator, domain=domain)
    # Until the worker has written the new key's file, mail leaves unsigned, never refused.
    assert b"DKIM-Signature" not in send_out(mail, sink, "Key not written yet")
    run_worker()  # writes the key file
    signed = send_out(mail, sink, "Signed")
    assert b"DKIM-Signature" in signed
    assert b"d=example.com" in signed and b"s=mail" in signed
    assert verifies(signed, operator, domain)

    # "The effect is immediate": the very next message, with no worker run in between
    # (OpenDKIM reads dataplane_dkim for each message).
    dkim_disable(actor=operator, domain=domain, confirmed=True)
    assert b"DKIM-Signature" not in send_out(mail, sink, "After")

    # Enabled again: the key is still on disk, so signing resumes at once too.
    dkim_enable(actor=operator, domain=domain)
    again = send_out(mail, sink, "Again")
    assert b"DKIM-Signature" in again and verifies(again, operator, domain)


def test_signing_resumes_at_once_when_a_suspended_client_is_restored(mail, sink, operator, domain):
    mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    dkim_enable(actor=operator, domain=domain)
    run_worker()
    assert b"DKIM-Signature" in send_out(mail, sink, "Signed")
    Client.objects.filter(pk=domain.client_id).update(suspended_at=timezone.now())
    # A suspended client's mailboxes cannot log in at all: nothing leaves, signed or not.
    with pytest.raises(smtplib.SMTPAuthenticationError):
        send_out(mail, sink, "Suspended")
    Client.objects.filter(pk=domain.client_id).update(suspended_at=None)
    assert b"DKIM-Signature" in send_out(mail, sink, "Back")
