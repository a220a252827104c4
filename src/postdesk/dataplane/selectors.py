"""What the mail servers have not applied yet, for the pages to show as pending."""

from __future__ import annotations

from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from postdesk.mail.models import Mailbox

from .tasks import mailbox_sessions_kick

_PENDING = [TaskResultStatus.READY, TaskResultStatus.RUNNING]


def mailbox_changes_pending(mailbox: Mailbox) -> bool:
    """True while a disconnection after this mailbox's password change is still queued."""
    return DBTaskResult.objects.filter(
        task_path=mailbox_sessions_kick.module_path,
        status__in=_PENDING,
        args_kwargs__args__0=mailbox.address.email,
    ).exists()
