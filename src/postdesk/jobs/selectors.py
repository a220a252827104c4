"""What the operator sees of the periodic jobs: each one's last run and next one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Min, Q
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max

from .models import JobState
from .services import Job, jobs_all


@dataclass(frozen=True)
class JobStatus:
    job: Job
    state: JobState | None  # None until the job first runs

    @property
    def next_due(self) -> datetime | None:
        """None: due now (never ran)."""
        if self.state is None or self.state.last_started_at is None:
            return None
        return self.state.last_started_at + self.job.every


def job_list() -> list[JobStatus]:
    """Every job, in a fixed order, with its state (one query)."""
    states = {state.name: state for state in JobState.objects.all()}
    return [JobStatus(job, states.get(job.name)) for job in jobs_all()]


@dataclass(frozen=True)
class Health:
    """What a monitor asks: can the panel reach its database, and is the task queue moving."""

    database: bool
    ready_tasks: int
    oldest_wait_seconds: int  # how long the longest-waiting task has been ready to run
    jobs: list[JobStatus]

    @property
    def queue_moving(self) -> bool:
        return self.oldest_wait_seconds <= settings.POSTDESK_HEALTH_QUEUE_MAX_WAIT

    @property
    def ok(self) -> bool:
        return self.database and self.queue_moving

    def as_dict(self) -> dict:
        return {
            "status": "ok" if self.ok else "failing",
            "database": {"ok": self.database},
            "queue": {
                "ok": self.queue_moving,
                "ready": self.ready_tasks,
                "oldest_wait_seconds": self.oldest_wait_seconds,
            },
            "jobs": {
                status.job.name: {
                    "last_outcome": status.state.last_outcome if status.state else "",
                    "last_started_at": (
                        status.state.last_started_at.isoformat()
                        if status.state and status.state.last_started_at
                        else None
                    ),
                }
                for status in self.jobs
            },
        }


@dataclass(frozen=True)
class ReadyTasks:
    """The tasks ready to run now, and how long the longest-waiting one has been ready."""

    count: int
    oldest_wait_seconds: int


def ready_tasks() -> ReadyTasks:
    """One query, whatever the number of tasks. Raises DatabaseError."""
    # A task queued to run at once waits since it was queued; one queued for later (a retry)
    # since its time came.
    waiting = DBTaskResult.objects.ready().aggregate(
        count=Count("pk"),
        queued=Min("enqueued_at", filter=Q(run_after=get_date_max())),
        due=Min("run_after", filter=~Q(run_after=get_date_max())),
    )
    since = [moment for moment in (waiting["queued"], waiting["due"]) if moment is not None]
    oldest = (timezone.now() - min(since)).total_seconds() if since else 0
    return ReadyTasks(count=waiting["count"], oldest_wait_seconds=max(0, int(oldest)))


def health() -> Health:
    """Three queries: the database answers, the ready tasks (how many, since when), the jobs."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        ready = ready_tasks()
        jobs = job_list()
    except DatabaseError:
        return Health(database=False, ready_tasks=0, oldest_wait_seconds=0, jobs=[])
    return Health(
        database=True,
        ready_tasks=ready.count,
        oldest_wait_seconds=ready.oldest_wait_seconds,
        jobs=jobs,
    )
