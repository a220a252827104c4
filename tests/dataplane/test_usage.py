"""The usage collector reads real disk use from Dovecot into usage samples."""

from __future__ import annotations

import pytest
from django.utils import timezone

from postdesk.billing.models import UsageSample
from postdesk.jobs.choices import Outcome
from postdesk.jobs.models import JobState
from postdesk.jobs.services import jobs_run_due
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


def test_the_scheduler_measures_a_new_mailbox_without_waiting_for_its_period(
    mail, operator, domain
):
    # The demo's scheduler (`jobs run-due`): a run just happened, then a mailbox is created
    # and fills up; the next look for due jobs measures it from Dovecot.
    JobState.objects.create(name="dns-recheck", last_started_at=timezone.now())
    JobState.objects.create(name="collect-usage", last_started_at=timezone.now())
    JobState.objects.create(name="compact-totals", last_started_at=timezone.now())
    JobState.objects.create(name="sweep-moves", last_started_at=timezone.now())
    marie = mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    mail.send("marie@example.com", subject="Big", body="z" * 300_000)
    assert mail.subjects("marie@example.com", GOOD_PASSWORD, expect=1) == ["Big"]

    ran = {job.name: state for job, state in jobs_run_due()}
    assert list(ran) == ["collect-usage"]
    assert ran["collect-usage"].last_outcome == Outcome.OK
    marie.refresh_from_db()
    assert marie.used_measured_at is not None and marie.used_bytes >= 300_000
