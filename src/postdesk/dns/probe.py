"""The deliverability self-test's run: send the probe message, find it at the probe address,
judge it and store the result. System actions (the task worker, `deliverability test`): the
request was checked and audited by `services.deliverability_test_request`.

How the message leaves (docs/dns.md): a mailbox password is never stored in clear, so the
panel cannot log in as the mailbox with it. Instead, right before sending, it makes a random
single-use login for that one mailbox: the {ARGON2ID} hash goes to the test's row, which
Dovecot's second passdb reads through `dataplane_probe_logins` (SMTP AUTH only, never IMAP;
never for a suspended client), for at most LOGIN_LIFETIME; it is erased as soon as the
submission is over, whatever its outcome. The login itself lives only in this process's
memory. The message then takes the path any message of the mailbox takes: the submission
port (STARTTLS, AUTH), OpenDKIM's signature, our SMTP client, and the receiving smtpd of the
probe address.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from django.conf import settings
from django.utils import timezone

from postdesk.dataplane import probe
from postdesk.dataplane.passwords import hash_password
from postdesk.dataplane.provisioner import ProvisionerUnavailable

from . import resolver
from .deliverability import judge
from .models import DeliverabilityTest, DeliverabilityTestState
from .status import live_dns

# Long enough for one SMTP session; the login is erased right after it anyway.
LOGIN_LIFETIME = timedelta(minutes=2)
# How often the probe mailbox is looked at while waiting.
POLL_SECONDS = 2


def _probe_message(test: DeliverabilityTest) -> EmailMessage:
    message = EmailMessage()
    message["From"] = test.sender
    message["To"] = settings.POSTDESK_PROBE_ADDRESS
    message["Subject"] = "Postdesk deliverability test"
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = make_msgid(domain=test.sender.rpartition("@")[2])
    message[probe.PROBE_HEADER] = test.token
    message.set_content(
        "This message tests how receiving servers judge mail from your domain "
        "(SPF, DKIM, DMARC, TLS). It was sent by your mail host's control panel at your "
        "request and is deleted on arrival.\n"
    )
    return message


def selftest_send(test: DeliverabilityTest) -> DeliverabilityTest:
    """Submit the probe message of a queued test as its mailbox, with a single-use login."""
    if test.state != DeliverabilityTestState.QUEUED:
        return test
    password = secrets.token_urlsafe(32)
    test.login_hash = hash_password(password)
    test.login_expires_at = timezone.now() + LOGIN_LIFETIME
    test.save(update_fields=["login_hash", "login_expires_at"])
    sent_at = timezone.now()
    try:
        probe.submit(
            _probe_message(test),
            target=settings.POSTDESK_PROBE_SUBMISSION,
            login=test.sender,
            password=password,
        )
    except (probe.SubmissionRefused, ProvisionerUnavailable) as error:
        test.state = DeliverabilityTestState.FAILED
        test.error = str(error)[:1000]
    else:
        test.state = DeliverabilityTestState.WAITING
        test.submitted_at = sent_at
    finally:
        # Single use: the login is gone whatever happened.
        test.login_hash = ""
        test.login_expires_at = None
        test.save(
            update_fields=[
                "login_hash",
                "login_expires_at",
                "state",
                "error",
                "submitted_at",
            ]
        )
    return test


def selftest_collect(test: DeliverabilityTest) -> bool:
    """Look for the probe message once; judge and store it when it is there, or give up past
    POSTDESK_PROBE_TIMEOUT. True when the test has its final state."""
    if test.state != DeliverabilityTestState.WAITING:
        return True
    address = settings.POSTDESK_PROBE_ADDRESS
    try:
        raw = probe.fetch(address, test.token)
    except ProvisionerUnavailable:
        raw = None  # the mail server is away: as if not arrived yet
    if raw is None:
        deadline = test.submitted_at + timedelta(seconds=settings.POSTDESK_PROBE_TIMEOUT)
        if timezone.now() < deadline:
            return False
        test.state = DeliverabilityTestState.NOT_ARRIVED
        test.save(update_fields=["state"])
        return True
    test.facts = judge(
        raw,
        dns=live_dns(resolver.make_resolver()),
        sending_ips=list(settings.POSTDESK_SENDING_IPS),
        helo=settings.POSTDESK_SENDING_HELO,
        spf_mechanism=settings.POSTDESK_SPF_MECHANISM,
        sent_at=test.submitted_at,
    )
    test.state = DeliverabilityTestState.DONE
    test.received_at = timezone.now()
    test.save(update_fields=["facts", "state", "received_at"])
    # Judged and stored: a copy left behind when the server is away harms nothing.
    with contextlib.suppress(ProvisionerUnavailable):
        probe.remove(address, test.token)
    return True


def selftest_run(test: DeliverabilityTest) -> DeliverabilityTest:
    """Send, then wait for the message here until it arrives or the timeout passes (the
    operator's command; the worker waits between tasks instead)."""
    selftest_send(test)
    while not selftest_collect(test):
        time.sleep(POLL_SECONDS)
    return test
