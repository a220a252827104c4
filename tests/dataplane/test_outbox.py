"""Side effects the database cannot express: queued with the change, applied by the worker,
retried while a mail server is down, never lost."""

from __future__ import annotations

import imaplib
import time
from pathlib import Path

import pytest
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from postdesk.dataplane import stack
from postdesk.dataplane.passwords import verify_password
from postdesk.mail.models import Mailbox
from postdesk.mail.selectors import mailbox_changes_pending
from postdesk.mail.services import mailbox_create, mailbox_delete, mailbox_set_password
from tests.conftest import GOOD_PASSWORD
from tests.dataplane.conftest import run_worker

pytestmark = pytest.mark.mailstack

NEW_PASSWORD = "Other-Secret-42xy"


def make(operator, domain):
    return mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)


def session_is_open(client: imaplib.IMAP4, *, settle: float = 3.0) -> bool:
    """Whether the server still answers on this session. A kick is a signal to the session's
    process, so give it a moment to land before calling the session open."""
    deadline = time.monotonic() + settle
    while True:
        try:
            alive = client.noop()[0] == "OK"
        except (imaplib.IMAP4.abort, OSError):
            return False
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def test_a_password_change_disconnects_every_open_session(mail, operator, domain):
    mailbox = make(operator, domain)
    first = mail.imap("marie@example.com", GOOD_PASSWORD)
    second = mail.imap("marie@example.com", GOOD_PASSWORD)
    assert session_is_open(first, settle=0) and session_is_open(second, settle=0)

    mailbox_set_password(actor=operator, mailbox=mailbox, password=NEW_PASSWORD)
    assert mailbox_changes_pending(mailbox)
    run_worker()
    assert not mailbox_changes_pending(mailbox)
    assert not session_is_open(first)
    assert not session_is_open(second)


def test_with_dovecot_down_the_change_is_saved_pending_and_applied_when_it_returns(
    mail, mail_stack, operator, domain
):
    mailbox = make(operator, domain)
    run_worker()  # the new mailbox's own task (Dovecot's change tracking), while it is up
    open_session = mail.imap("marie@example.com", GOOD_PASSWORD)
    directory = Path(mail_stack["dir"])
    stack.stop_dovecot(directory)
    try:
        mailbox_set_password(actor=operator, mailbox=mailbox, password=NEW_PASSWORD)
        mailbox.refresh_from_db()
        assert verify_password(NEW_PASSWORD, mailbox.password_hash)  # saved at once
        run_worker()  # cannot reach Dovecot: queued again, not lost
        assert mailbox_changes_pending(mailbox)
        retry = DBTaskResult.objects.get(status=TaskResultStatus.READY)
        assert retry.run_after > timezone.now()
        assert retry.args_kwargs["kwargs"] == {"attempt": 1}
    finally:
        stack.start_dovecot(directory)
    # Time passes: the retry comes due (moved to now rather than sleeping in the test).
    DBTaskResult.objects.filter(status=TaskResultStatus.READY).update(run_after=timezone.now())
    run_worker()
    assert not mailbox_changes_pending(mailbox)
    assert not session_is_open(open_session)  # that session died with Dovecot anyway
    mail.imap("marie@example.com", NEW_PASSWORD).logout()


def test_deleting_a_mailbox_removes_its_mail_from_disk(mail, mail_stack, operator, domain):
    mailbox = make(operator, domain)
    mail.send("marie@example.com", subject="Kept until deleted")
    assert mail.subjects("marie@example.com", GOOD_PASSWORD) == ["Kept until deleted"]
    home = Path(mail_stack["vmail"]) / "example.com" / mailbox.storage_id.hex
    assert any(home.rglob("*Kept*")) or any((home / "Maildir").rglob("*"))

    mailbox_delete(actor=operator, mailbox=mailbox)
    assert not Mailbox.objects.exists()
    assert home.exists()  # removal is a background task
    run_worker()
    assert not home.exists()
