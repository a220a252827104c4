"""What the panel shows is what the mail servers do: real SMTP and IMAP on 127.0.0.1 against
Debian's Postfix and Dovecot reading the panel's database through the dataplane_* views."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import time
from email.message import EmailMessage

import pytest
from django.utils import timezone

from postdesk.mail.services import (
    alias_remove,
    forward_create,
    forward_delete,
    mailbox_create,
    mailbox_delete,
    mailbox_set_password,
)
from postdesk.tenancy.models import Client
from tests.conftest import GOOD_PASSWORD

from .conftest import pop3_subjects

pytestmark = pytest.mark.mailstack

NEW_PASSWORD = "Other-Secret-42xy"


def create(operator, domain, username="marie", **kwargs):
    return mailbox_create(
        actor=operator, domain=domain, username=username, password=GOOD_PASSWORD, **kwargs
    )


def refused_at_rcpt(mail, to: str) -> tuple[int, bytes]:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        mail.send(to)
    return caught.value.recipients[to]


def test_a_new_mailbox_receives_at_once_and_reads_over_imap(mail, operator, domain):
    create(operator, domain)
    mail.send("marie@example.com", subject="Welcome")
    assert mail.subjects("marie@example.com", GOOD_PASSWORD) == ["Welcome"]


def test_pop3_retrieves_a_delivered_message_over_tls_only(mail, operator, domain):
    """The customers' other protocol: POP3 with STLS and POP3S, the mailbox's own password,
    and no login in clear (#19 item 2: the proxy forwards POP3 logins as it does IMAP's)."""
    create(operator, domain)
    mail.send("marie@example.com", subject="Over POP3")
    assert mail.subjects("marie@example.com", GOOD_PASSWORD) == ["Over POP3"]
    for port, implicit in ((mail.ports["pop3"], False), (mail.ports["pop3s"], True)):
        found = pop3_subjects(
            "127.0.0.1", port, "marie@example.com", GOOD_PASSWORD, mail.tls, implicit=implicit
        )
        assert found == ["Over POP3"]
    with pytest.raises(poplib.error_proto, match="Authentication failed"):
        pop3_subjects(
            "127.0.0.1",
            mail.ports["pop3s"],
            "marie@example.com",
            NEW_PASSWORD,
            mail.tls,
            implicit=True,
        )
    # Before STLS the password is not even asked for (Dovecot counts loopback as secure, so
    # this is checked in the fleet, from another address: test_fleet_protocols.py).


def test_an_alias_delivers_to_the_same_inbox_and_a_removed_one_bounces(mail, operator, domain):
    mailbox = create(operator, domain, aliases=["m.dupont"])
    mail.send("M.Dupont@example.com", subject="Via alias")
    assert mail.subjects("marie@example.com", GOOD_PASSWORD) == ["Via alias"]
    alias_remove(actor=operator, mailbox=mailbox, name="m.dupont")
    code, text = refused_at_rcpt(mail, "m.dupont@example.com")
    assert code == 550
    assert b"User unknown" in text


def test_a_deleted_mailbox_bounces_and_unknown_addresses_too(mail, operator, domain):
    mailbox = create(operator, domain)
    mailbox_delete(actor=operator, mailbox=mailbox)
    assert refused_at_rcpt(mail, "marie@example.com")[0] == 550
    assert refused_at_rcpt(mail, "nobody@example.com")[0] == 550


def test_the_old_password_fails_after_a_change(mail, operator, domain):
    mailbox = create(operator, domain)
    mail.imap("marie@example.com", GOOD_PASSWORD).logout()
    mailbox_set_password(actor=operator, mailbox=mailbox, password=NEW_PASSWORD)
    with pytest.raises(imaplib.IMAP4.error):
        mail.imap("marie@example.com", GOOD_PASSWORD)
    mail.imap("marie@example.com", NEW_PASSWORD).logout()


def test_submission_needs_the_mailboxs_own_password_and_nobody_relays_without_it(
    mail, sink, operator, domain
):
    create(operator, domain)
    mail.send(
        "friend@example.net",
        sender="marie@example.com",
        subject="Outgoing",
        submission_login=("marie@example.com", GOOD_PASSWORD),
    )
    assert sink.wait_for("friend@example.net")["Subject"] == "Outgoing"
    assert sink.senders["friend@example.net"] == "marie@example.com"  # no SRS for own mail

    with pytest.raises(smtplib.SMTPAuthenticationError):
        mail.send(
            "friend@example.net",
            sender="marie@example.com",
            submission_login=("marie@example.com", "Wrong-Password-1!"),
        )
    # The inbound port relays for nobody, loopback included.
    code, text = refused_at_rcpt(mail, "friend@example.net")
    assert code == 554
    assert b"Relay access denied" in text
    # The submission port refuses a client that did not log in.
    with smtplib.SMTP("127.0.0.1", mail.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=mail.tls)
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("marie@example.com", ["friend@example.net"], "Subject: x\n\nx")


def test_a_standalone_forward_delivers_to_every_destination_and_stores_nothing(
    mail, sink, operator, domain
):
    create(operator, domain)
    forward = forward_create(
        actor=operator,
        domain=domain,
        name="info",
        destinations=["marie@example.com", "boss@example.net"],
    )
    mail.send("info@example.com", subject="Question")
    assert mail.subjects("marie@example.com", GOOD_PASSWORD) == ["Question"]
    assert sink.wait_for("boss@example.net")["Subject"] == "Question"
    # A forward has no inbox to log in to.
    with pytest.raises(imaplib.IMAP4.error):
        mail.imap("info@example.com", GOOD_PASSWORD)
    forward_delete(actor=operator, forward=forward)
    assert refused_at_rcpt(mail, "info@example.com")[0] == 550


def test_a_suspended_client_receives_nothing_and_cannot_log_in(mail, operator, domain):
    create(operator, domain)
    Client.objects.filter(pk=domain.client_id).update(suspended_at=timezone.now())
    code, _text = refused_at_rcpt(mail, "marie@example.com")
    assert code in (550, 554)
    with pytest.raises(imaplib.IMAP4.error):
        mail.imap("marie@example.com", GOOD_PASSWORD)
    Client.objects.filter(pk=domain.client_id).update(suspended_at=None)
    time.sleep(0.1)
    mail.imap("marie@example.com", GOOD_PASSWORD).logout()


def test_a_full_mailbox_refuses_mail_at_rcpt_and_a_higher_limit_lets_it_in(mail, operator, domain):
    from postdesk.mail.services import mailbox_update

    mailbox = create(operator, domain, quota_mb=1)
    big = "x" * (600 * 1024)
    mail.send("marie@example.com", subject="First", body=big)
    assert mail.subjects("marie@example.com", GOOD_PASSWORD) == ["First"]

    # The sender gets the error during the SMTP conversation (smtplib declares SIZE).
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        mail.send("marie@example.com", subject="Second", body=big)
    code, text = caught.value.recipients["marie@example.com"]
    assert code == 552
    assert b"disk space limit" in text

    mailbox_update(actor=operator, mailbox=mailbox, quota_mb=10)
    mail.send("marie@example.com", subject="Second", body=big)
    assert sorted(mail.subjects("marie@example.com", GOOD_PASSWORD, expect=2)) == [
        "First",
        "Second",
    ]


def test_quota_zero_means_no_individual_limit(mail, operator, domain):
    create(operator, domain, quota_mb=0)
    mail.send("marie@example.com", subject="Large", body="y" * (2 * 1024 * 1024))
    assert mail.subjects("marie@example.com", GOOD_PASSWORD) == ["Large"]


def test_quota_zero_falls_back_to_the_plans_overall_limit(mail, operator, domain):
    from datetime import timedelta

    from postdesk.billing.services import client_set_plan, plan_create

    plan = plan_create(
        actor=operator,
        name="Small",
        currency="CAD",
        storage_gb_price="0.10",
        eas_price="2",
        mapi_price="4",
        eas_mapi_price="5",
        storage_limit_mb=1,
    )
    client_set_plan(
        actor=operator, client=domain.client, plan=plan, at=timezone.now() - timedelta(days=1)
    )
    create(operator, domain, quota_mb=0)
    big = "x" * (600 * 1024)
    mail.send("marie@example.com", subject="First", body=big)
    assert mail.subjects("marie@example.com", GOOD_PASSWORD) == ["First"]
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        mail.send("marie@example.com", subject="Second", body=big)
    assert caught.value.recipients["marie@example.com"][0] == 552


def forwarding_mailbox(operator, domain, **options):
    from tests.dataplane.conftest import run_worker

    create(operator, domain, username="jean")
    mailbox = create(
        operator, domain, destinations=["friend@example.net", "jean@example.com"], **options
    )
    run_worker()  # writes the mailbox's forwarding script
    return mailbox


def test_forwarding_keeps_a_copy_and_points_replies_at_the_mailbox(mail, sink, operator, domain):
    forwarding_mailbox(operator, domain)
    mail.send("marie@example.com", subject="Forward me", sender="client@example.org")
    relayed = sink.wait_for("friend@example.net")
    assert relayed["Subject"] == "Forward me"
    assert relayed["From"] == "client@example.org"
    assert relayed["Reply-To"] == "marie@example.com"
    # Leaving for another domain, the forwarded copy has an SRS envelope sender (postsrsd).
    srs = sink.senders["friend@example.net"]
    assert srs.startswith("SRS0=") and srs.endswith("@mail.postdesk.test"), srs
    assert "client@example.org" not in srs and "=example.org=client@" in srs
    assert mail.subjects("jean@example.com", GOOD_PASSWORD) == ["Forward me"]
    assert mail.subjects("marie@example.com", GOOD_PASSWORD) == ["Forward me"]


def bounce(mail, to: str, subject: str) -> None:
    """What a remote server does when it cannot deliver: a message from the null sender."""
    message = EmailMessage()
    message["From"] = "MAILER-DAEMON@example.net"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Delivery failed.")
    with smtplib.SMTP("127.0.0.1", mail.ports["smtp"], timeout=20) as smtp:
        smtp.send_message(message, from_addr="", to_addrs=[to])


def test_a_bounce_to_the_srs_address_reaches_the_original_sender(mail, sink, operator, domain):
    forwarding_mailbox(operator, domain)
    mail.send("marie@example.com", subject="Forward me", sender="client@example.org")
    sink.wait_for("friend@example.net")
    srs = sink.senders["friend@example.net"]
    sink.clear()
    # The destination refuses the forwarded copy and bounces it to its envelope sender.
    bounce(mail, srs, "Undelivered Mail Returned to Sender")
    returned = sink.wait_for("client@example.org")
    assert returned["Subject"] == "Undelivered Mail Returned to Sender"
    assert sink.senders["client@example.org"] in ("", "<>")  # still a bounce: no loops


def test_a_forged_srs_address_is_refused_at_rcpt(mail, sink):
    forged = "SRS0=AAAA=ZZ=example.org=victim@mail.postdesk.test"
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        bounce(mail, forged, "Backscatter")
    code, _ = caught.value.recipients[forged]
    assert 500 <= code < 600
    time.sleep(1)
    assert not sink.messages


def test_delete_after_forwarding_and_keep_original_sender(mail, sink, operator, domain):
    forwarding_mailbox(operator, domain, delete_after_forwarding=True, keep_original_sender=True)
    mail.send("marie@example.com", subject="Pass through", sender="client@example.org")
    relayed = sink.wait_for("friend@example.net")
    assert relayed["Reply-To"] is None  # a reply goes to the original sender
    assert relayed["From"] == "client@example.org"
    assert mail.subjects("jean@example.com", GOOD_PASSWORD) == ["Pass through"]
    time.sleep(1)
    assert mail.subjects("marie@example.com", GOOD_PASSWORD, expect=0) == []


def test_clearing_the_forwarding_stops_it(mail, sink, operator, domain):
    from postdesk.mail.services import mailbox_update
    from tests.dataplane.conftest import run_worker

    mailbox = forwarding_mailbox(operator, domain)
    mailbox_update(actor=operator, mailbox=mailbox, destinations=[])
    run_worker()
    mail.send("marie@example.com", subject="Mine only")
    assert mail.subjects("marie@example.com", GOOD_PASSWORD) == ["Mine only"]
    time.sleep(1)
    assert mail.subjects("jean@example.com", GOOD_PASSWORD, expect=0) == []
    assert not sink.messages
