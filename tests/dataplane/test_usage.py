"""The usage collector reads real disk use from Dovecot into usage samples."""

from __future__ import annotations

import pytest

from postdesk.billing.models import UsageSample
from postdesk.mail.models import Mailbox
from postdesk.mail.services import mailbox_create
from postdesk.workflows.usage import collect_usage
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.mailstack


def test_collector_measures_each_mailbox_with_its_time(mail, operator, domain):
    marie = mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    mailbox_create(actor=operator, domain=domain, username="empty", password=GOOD_PASSWORD)
    for subject in ("One", "Two"):
        mail.send("marie@example.com", subject=subject, body="z" * 300_000)
    assert len(mail.subjects("marie@example.com", GOOD_PASSWORD, expect=2)) == 2

    summary = collect_usage()
    assert summary.measured == 2
    marie.refresh_from_db()
    assert 600_000 <= marie.used_bytes <= 700_000  # two 300 kB messages and their headers
    assert marie.used_measured_at is not None
    sample = UsageSample.objects.filter(mailbox=marie).get()
    assert sample.bytes == marie.used_bytes
    assert sample.at == marie.used_measured_at
    assert Mailbox.objects.get(address__local_part="empty").used_bytes == 0
