"""How a side effect on the mail servers waits for a server that is down.

The outbox tasks (mail.tasks, dns.tasks) call the provisioner; when it cannot reach a server,
the task queues itself again with a growing delay (5 s, 10 s, 20 s… up to 10 minutes), until
it succeeds. It is queued again on its own queue: a host's task waits for that host's worker
(dataplane/queues.py), never for another's.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tasks.base import TaskContext

MAX_DELAY = timedelta(minutes=10)


def retry_later(context: TaskContext, attempt: int, *args: object) -> str:
    """Queue the running task again with `*args`, on its queue, after a delay that doubles
    with each attempt; the result text says so."""
    delay = min(timedelta(seconds=5 * 2**attempt), MAX_DELAY)
    # The task as the worker read it from its row: its queue and backend included.
    again = context.task_result.task.using(run_after=timezone.now() + delay)
    again.enqueue(*args, attempt=attempt + 1)
    return f"mail server unavailable, retry {attempt + 1} queued in {delay}"
