"""What the operator sees of the periodic jobs: each one's last run and next one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
