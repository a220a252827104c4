from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .choices import Action


class AuditEvent(models.Model):
    """One change: who made it, what it was, when, and from where.

    The client and domain are kept by name as well as by key, so the log still reads
    correctly after the objects it mentions are gone.
    """

    at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_label = models.CharField(_("who"), max_length=254)
    source = models.CharField(_("from"), max_length=16)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    client = models.ForeignKey(
        "tenancy.Client", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    domain_name = models.CharField(_("domain"), max_length=253, blank=True)
    action = models.CharField(_("action"), max_length=64, choices=Action.choices)
    target = models.CharField(_("object"), max_length=320, blank=True)
    changes = models.JSONField(_("changes"), default=dict, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [models.Index(fields=["client", "-at"], name="audit_client_at_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.target}"
