"""The periodic jobs, and the one way each runs: claimed, run, recorded.

A job is due when it never ran or its last run started `every` ago. The demo's scheduler
(`postdesk jobs run-due --loop`) and, on a real host, one systemd timer per job
(`postdesk jobs run NAME`) both come through `job_run`, so a job never runs twice at once
and its last run is always on record (`postdesk jobs list`, the admin).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from postdesk.dataplane import provisioner
from postdesk.dns.status import dns_recheck_all
from postdesk.errors import NotFound
from postdesk.mail.hosts import mailbox_moves_sweep
from postdesk.mail.selectors import mailbox_created_since
from postdesk.mail.services import domain_totals_compact, host_loads_compact
from postdesk.workflows.usage import collect_usage, collect_usage_on_homes

from .choices import Outcome
from .models import JobState

logger = logging.getLogger(__name__)

# A run that has held its job this long is taken to have died (a killed process); the next
# run takes the job over.
STALE_RUN = timedelta(hours=2)


class JobSkipped(Exception):
    """The job cannot do its work now, and that is not a failure (say why)."""


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    description: str
    run: Callable[[], str]  # does the work; returns a one-line summary
    # Due before `every` has passed when this says so, given the last run's start.
    due_early: Callable[[datetime], bool] | None = None

    def is_due(self, last_started: datetime | None, now: datetime) -> bool:
        if last_started is None or last_started + self.every <= now:
            return True
        return self.due_early is not None and self.due_early(last_started)


def _dns_recheck() -> str:
    every = settings.POSTDESK_JOB_DNS_RECHECK
    # A domain checked since the last run (its owner's "Check now") is fresh enough.
    summary = dns_recheck_all(stale_after_seconds=int(every.total_seconds()) // 2)
    return (
        f"checked {summary.checked} domain(s): {summary.unknown} with a temporary DNS failure, "
        f"{summary.failed} failed"
    )


def _collect_usage() -> str:
    # With mail hosts, each backend's worker measures its own mailboxes.
    on_homes = collect_usage_on_homes()
    if on_homes is not None:
        return on_homes.describe()
    if not provisioner.connected():
        raise JobSkipped(provisioner.NOT_CONNECTED)
    return collect_usage().describe()


def _compact_totals() -> str:
    done = domain_totals_compact()
    summary = f"folded {done.folded} change(s) of the domains' totals into {done.kept} row(s)"
    hosts = host_loads_compact()
    if hosts.folded:
        summary += f"; {hosts.folded} of the hosts' loads into {hosts.kept}"
    return summary


def _sweep_moves() -> str:
    swept = mailbox_moves_sweep()
    return f"ended {len(swept)} dead move(s)" + (f": {', '.join(swept)}" if swept else "")


def _jobs() -> dict[str, Job]:
    jobs = [
        Job(
            "dns-recheck",
            settings.POSTDESK_JOB_DNS_RECHECK,
            "Re-check the SPF, DKIM, DMARC and MX records of every domain.",
            _dns_recheck,
        ),
        Job(
            "collect-usage",
            settings.POSTDESK_JOB_COLLECT_USAGE,
            "Measure every mailbox's disk use on the mail servers (usage and growth).",
            _collect_usage,
            # A new mailbox is measured at the next look for due jobs, not up to `every`
            # later: its page never says "not measured yet" for long (it may fill up first).
            due_early=lambda last_started: (
                provisioner.connected() and mailbox_created_since(last_started)
            ),
        ),
        Job(
            "compact-totals",
            settings.POSTDESK_JOB_COMPACT_TOTALS,
            "Fold each domain's counter changes into one row (the address list's and "
            "dashboard's counts stay one short read), and each mail host's load changes.",
            _compact_totals,
        ),
        Job(
            "sweep-moves",
            settings.POSTDESK_JOB_SWEEP_MOVES,
            "End the mailbox moves whose worker died, unlocking each mailbox on its old home.",
            _sweep_moves,
        ),
    ]
    return {job.name: job for job in jobs}


def job_get(name: str) -> Job:
    jobs = _jobs()
    if name not in jobs:
        raise NotFound(
            _("No job named %(name)s. Jobs: %(jobs)s.") % {"name": name, "jobs": ", ".join(jobs)},
            "job",
        )
    return jobs[name]


def jobs_all() -> list[Job]:
    return list(_jobs().values())


def _claim(name: str, now: datetime) -> bool:
    JobState.objects.get_or_create(name=name)
    free = Q(running_since__isnull=True) | Q(running_since__lt=now - STALE_RUN)
    claimed = JobState.objects.filter(free, name=name).update(
        running_since=now, last_started_at=now
    )
    return claimed == 1


def job_run(job: Job) -> JobState | None:
    """Run the job now and record how it went; None when another run holds it."""
    started = timezone.now()
    if not _claim(job.name, started):
        return None
    try:
        summary, outcome = job.run(), Outcome.OK
    except JobSkipped as skipped:
        summary, outcome = str(skipped), Outcome.SKIPPED
    except Exception as error:  # recorded and logged; the next run tries again
        logger.exception("job %s failed", job.name)
        summary, outcome = f"{type(error).__name__}: {error}", Outcome.FAILED
    finished = timezone.now()
    done = {
        "running_since": None,
        "last_finished_at": finished,
        "last_outcome": outcome,
        "last_summary": summary[:2000],
    }
    if outcome == Outcome.OK:
        done["last_success_at"] = finished
    JobState.objects.filter(name=job.name).update(**done)
    return JobState.objects.get(name=job.name)


def jobs_due(now: datetime | None = None) -> list[Job]:
    """The jobs whose next run is due: never run, last started `every` ago, or due early
    (a job's own reason)."""
    now = now or timezone.now()
    started = dict(JobState.objects.values_list("name", "last_started_at"))
    return [job for job in jobs_all() if job.is_due(started.get(job.name), now)]


def jobs_run_due() -> list[tuple[Job, JobState | None]]:
    """Run every due job, one after the other."""
    return [(job, job_run(job)) for job in jobs_due()]
