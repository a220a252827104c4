from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _
from django_tasks.signals import task_finished

from postdesk.metrics import count_failed_task


class JobsConfig(AppConfig):
    name = "postdesk.jobs"
    label = "jobs"
    verbose_name = _("Periodic jobs")

    def ready(self) -> None:
        # A count for Prometheus, not a rule of the product (rules never live in signals).
        task_finished.connect(count_failed_task, dispatch_uid="postdesk-tasks-failed")
