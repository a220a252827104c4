import json
from typing import Any

from django.utils import timezone

from postdesk.cli.base import OperatorCommand, add_subcommands
from postdesk.mail.hosts import tasks_pending


class Command(OperatorCommand):
    help = "The side effects not applied yet, and which host's worker each waits for."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        pending = actions.add_parser(
            "pending",
            help="List the tasks not done yet, oldest first: task, mailbox, host (none: the "
            "panel's default queue), age.",
        )
        pending.add_argument("--json", action="store_true", help="a JSON array of objects")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        now = timezone.now()
        tasks = [
            {
                "task": row.task,
                "mailbox": row.mailbox,
                "host": row.host,
                "status": row.status,
                "queued_at": row.queued_at.isoformat(),
                "age_seconds": max(0, int((now - row.queued_at).total_seconds())),
                "attempt": row.attempt,
                "next_try_at": row.next_try_at.isoformat() if row.next_try_at else None,
            }
            for row in tasks_pending(actor=self.actor)
        ]
        if options["json"]:
            self.stdout.write(json.dumps(tasks, indent=2))
            return
        for task in tasks:
            self.stdout.write(
                f"{task['task']}\t{task['mailbox'] or '-'}\t{task['host'] or '(default)'}\t"
                f"{task['age_seconds']}s\t{task['status']}"
            )
