"""How a side effect on the mail servers waits for a server that is down.

The outbox tasks (mail.tasks, dns.tasks) call the provisioner; when it cannot reach a server,
the task queues itself again with a growing delay (5 s, 10 s, 20 s… up to 10 minutes), until
it succeeds.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tasks.base import Task

MAX_DELAY = timedelta(minutes=10)


def retry_later(task_function: Task, attempt: int, *args: object) -> str:
    """Queue `task_function(*args)` again after a delay that doubles with each attempt; the
    result text says so."""
    delay = min(timedelta(seconds=5 * 2**attempt), MAX_DELAY)
    task_function.using(run_after=timezone.now() + delay).enqueue(*args, attempt=attempt + 1)
    return f"mail server unavailable, retry {attempt + 1} queued in {delay}"
