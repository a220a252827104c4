"""Periodic jobs: each run is claimed, recorded with its outcome, and a job never runs twice
at once; `jobs run-due` runs what is due and nothing else."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from postdesk.errors import NotFound
from postdesk.jobs.choices import Outcome
from postdesk.jobs.models import JobState
from postdesk.jobs.selectors import job_list
from postdesk.jobs.services import (
    STALE_RUN,
    Job,
    JobSkipped,
    job_get,
    job_run,
    jobs_due,
    jobs_run_due,
)
from postdesk.mail.models import DomainTotalsChange
from postdesk.mail.selectors import domain_summary
from postdesk.mail.services import forward_create, mailbox_create
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db


def _job(run, name: str = "test-job") -> Job:
    return Job(name, timedelta(minutes=10), "a test job", run)


def _skip() -> str:
    raise JobSkipped("nothing to do here")


def _fail() -> str:
    raise RuntimeError("the server said no")


def test_each_run_is_recorded_with_its_outcome():
    done = job_run(_job(lambda: "did 3 things"))
    assert (done.last_outcome, done.last_summary) == (Outcome.OK, "did 3 things")
    assert done.running_since is None and done.last_success_at == done.last_finished_at
    succeeded_at = done.last_success_at

    skipped = job_run(_job(_skip))
    assert (skipped.last_outcome, skipped.last_summary) == (Outcome.SKIPPED, "nothing to do here")
    failed = job_run(_job(_fail))
    assert failed.last_outcome == Outcome.FAILED
    assert failed.last_summary == "RuntimeError: the server said no"
    # Neither a skip nor a failure is a success: the last success stays where it was.
    assert failed.last_success_at == succeeded_at
    assert failed.running_since is None  # a failed run lets the next one start


def test_a_job_held_by_a_running_run_is_not_started_twice():
    calls = []
    job = _job(lambda: calls.append(1) or "ran")
    JobState.objects.create(name=job.name, running_since=timezone.now())
    assert job_run(job) is None
    assert calls == []
    # A run that died holding the job (a killed process) is taken over once stale.
    JobState.objects.filter(name=job.name).update(
        running_since=timezone.now() - STALE_RUN - timedelta(seconds=1)
    )
    assert job_run(job).last_outcome == Outcome.OK
    assert calls == [1]


def test_due_means_never_run_or_last_started_a_period_ago(settings):
    assert {job.name for job in jobs_due()} == {
        "dns-recheck",
        "collect-usage",
        "compact-totals",
        "sweep-moves",
    }
    settings.POSTDESK_DOVEADM_URL = ""
    ran = {job.name: state.last_outcome for job, state in jobs_run_due()}
    assert ran == {
        "dns-recheck": Outcome.OK,
        "collect-usage": Outcome.SKIPPED,
        "compact-totals": Outcome.OK,
        "sweep-moves": Outcome.OK,
    }
    assert jobs_due() == []
    soon = timezone.now() + settings.POSTDESK_JOB_COMPACT_TOTALS + timedelta(seconds=1)
    assert [job.name for job in jobs_due(soon)] == ["compact-totals", "sweep-moves"]
    later = timezone.now() + settings.POSTDESK_JOB_COLLECT_USAGE + timedelta(seconds=1)
    assert [job.name for job in jobs_due(later)] == [
        "collect-usage",
        "compact-totals",
        "sweep-moves",
    ]


def test_usage_collection_waits_for_a_mail_server(settings):
    settings.POSTDESK_DOVEADM_URL = ""
    state = job_run(job_get("collect-usage"))
    assert state.last_outcome == Outcome.SKIPPED
    assert state.last_summary.startswith("no mail servers connected")


def test_the_list_shows_every_job_and_its_next_run(django_assert_max_num_queries):
    job_run(job_get("dns-recheck"))
    with django_assert_max_num_queries(1):
        statuses = {status.job.name: status for status in job_list()}
    assert statuses["collect-usage"].state is None
    assert statuses["collect-usage"].next_due is None  # never ran: due now
    recheck = statuses["dns-recheck"]
    assert recheck.next_due == recheck.state.last_started_at + recheck.job.every


def test_an_unknown_job_is_not_found():
    with pytest.raises(NotFound) as caught:
        job_get("backups")
    assert "dns-recheck, collect-usage, compact-totals, sweep-moves" in str(caught.value.message)


def test_a_new_mailbox_makes_usage_collection_due_at_once(settings, operator, domain):
    # So a new mailbox's page never says "not measured yet" for long: it may fill up, and
    # be refused mail as full, before the collector's next regular run.
    settings.POSTDESK_DOVEADM_URL = "http://127.0.0.1:9/doveadm/v1"  # connected (not called)
    JobState.objects.create(name="dns-recheck", last_started_at=timezone.now())
    JobState.objects.create(name="collect-usage", last_started_at=timezone.now())
    JobState.objects.create(name="compact-totals", last_started_at=timezone.now())
    JobState.objects.create(name="sweep-moves", last_started_at=timezone.now())
    assert jobs_due() == []
    mailbox_create(actor=operator, domain=domain, username="new", password=GOOD_PASSWORD)
    assert [job.name for job in jobs_due()] == ["collect-usage"]
    # Without a mail server there is nothing to measure: no early run (it would only skip).
    settings.POSTDESK_DOVEADM_URL = ""
    assert jobs_due() == []


def test_compacting_folds_each_domains_changes_into_one_row_with_the_same_counts(operator, domain):
    for name in ("marie", "jean"):
        mailbox_create(actor=operator, domain=domain, username=name, password=GOOD_PASSWORD)
    forward_create(actor=operator, domain=domain, name="info", destinations=["a@x.org"])
    changes = DomainTotalsChange.objects.filter(domain=domain)
    before = domain_summary(actor=operator, domain=domain)
    written = changes.count()
    assert written > 1
    state = job_run(job_get("compact-totals"))
    assert state.last_outcome == Outcome.OK
    assert state.last_summary == f"folded {written} change(s) of the domains' totals into 1 row(s)"
    assert changes.count() == 1
    assert domain_summary(actor=operator, domain=domain) == before
    assert (before.mailboxes, before.forwards) == (2, 1)
