"""The state of each periodic job: when it last ran, how it went, whether it runs now."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from .choices import Outcome


class JobState(models.Model):
    """One row per job (by name), written by each run: a schedule's runs and a hand-started
    run (`postdesk jobs run NAME`) share it, so two never run the job at once."""

    name = models.CharField(_("job"), max_length=64, primary_key=True)
    # Set while a run holds the job; a run that died holding it is taken over when stale.
    running_since = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(_("last started"), null=True, blank=True)
    last_finished_at = models.DateTimeField(_("last finished"), null=True, blank=True)
    last_outcome = models.CharField(
        _("outcome"), max_length=16, choices=Outcome.choices, blank=True
    )
    last_summary = models.TextField(_("summary"), blank=True)
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True)

    class Meta:
        verbose_name = _("periodic job")
        verbose_name_plural = _("periodic jobs")

    def __str__(self) -> str:
        return self.name
