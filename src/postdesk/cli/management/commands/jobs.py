"""`postdesk jobs`: the periodic jobs (DNS re-checks, usage collection), their last runs, and
running them: by hand, from a systemd timer (`jobs run NAME`), or as the demo's scheduler
(`jobs run-due --loop SECONDS`)."""

import json
import time
from typing import Any

from django.core.management.base import CommandError
from django.db import connections
from django.utils import timezone

from postdesk.cli.base import OperatorCommand, add_subcommands
from postdesk.dataplane import provisioner
from postdesk.jobs.choices import Outcome
from postdesk.jobs.models import JobState
from postdesk.jobs.selectors import job_list
from postdesk.jobs.services import Job, job_get, job_run, jobs_run_due


def _when(moment) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


class Command(OperatorCommand):
    help = "Periodic jobs: list them with their last run, run one, or run those due."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        listing = actions.add_parser("list", help="Each job: how often, last run, outcome.")
        listing.add_argument("--json", action="store_true", help="a JSON array of objects")
        run = actions.add_parser("run", help="Run one job now (for a systemd timer).")
        run.add_argument("name", metavar="NAME")
        due = actions.add_parser("run-due", help="Run every job that is due.")
        due.add_argument(
            "--loop",
            type=int,
            default=0,
            metavar="SECONDS",
            help="keep running, looking for due jobs every SECONDS (the demo's scheduler)",
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "list":
            self._list(as_json=options["json"])
        elif action == "run":
            job = job_get(options["name"])
            state = job_run(job)
            self._report(job, state)
            if state is not None and state.last_outcome == Outcome.FAILED:
                raise CommandError(f"{job.name} failed: {state.last_summary}")
        elif options["loop"] > 0:
            while True:
                self._run_due()
                connections.close_all()  # a long-lived process: no connection held idle
                time.sleep(options["loop"])
        else:
            self._run_due()

    def _run_due(self) -> None:
        for job, state in jobs_run_due():
            self._report(job, state)

    def _report(self, job: Job, state: JobState | None) -> None:
        if state is None:
            self.stdout.write(f"{job.name}: already running elsewhere, not started")
        else:
            self.stdout.write(f"{job.name}: {state.last_outcome}: {state.last_summary}")
        self.stdout.flush()

    def _list(self, *, as_json: bool) -> None:
        rows = [
            {
                "name": status.job.name,
                "description": status.job.description,
                "every_seconds": int(status.job.every.total_seconds()),
                "running": bool(status.state and status.state.running_since),
                "last_started_at": _when(status.state and status.state.last_started_at),
                "last_finished_at": _when(status.state and status.state.last_finished_at),
                "last_outcome": (status.state and status.state.last_outcome) or "",
                "last_summary": (status.state and status.state.last_summary) or "",
                "last_success_at": _when(status.state and status.state.last_success_at),
                "next_due_at": _when(status.next_due or timezone.now()),
            }
            for status in job_list()
        ]
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not provisioner.connected():
            self.stdout.write(f"note: {provisioner.NOT_CONNECTED}")
        for row in rows:
            minutes = row["every_seconds"] // 60
            last = (
                f"last run {row['last_started_at']}: {row['last_outcome']}: {row['last_summary']}"
                if row["last_started_at"]
                else "never run"
            )
            if row["running"]:
                last = f"running since {row['last_started_at']}"
            self.stdout.write(
                f"{row['name']}\tevery {minutes} min\t{last}\tnext {row['next_due_at']}"
            )
