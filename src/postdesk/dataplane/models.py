"""The mail hosts the data plane runs on: the operator registers them (`postdesk host`).

A mailbox's home (mail.Mailbox.home) is one of the backends; the views give each mailbox its
home's address, so a proxy and an MX know where to forward. With no host registered, the
install is the single host it has always been: mailboxes have no home and live where the
panel's stack runs.
"""

from django.core.validators import validate_ipv46_address
from django.db import models
from django.utils.translation import gettext_lazy as _

from .choices import HostRole, HostState


class Host(models.Model):
    name = models.CharField(_("name"), max_length=63, unique=True)
    # Text, not PostgreSQL's inet: the views hand it to the daemons as the same plain
    # string on both databases (inet cast to text would carry a "/32").
    address = models.CharField(_("address"), max_length=39, validators=[validate_ipv46_address])
    # One column a role: "the active backends" is one indexed filter, and the roles a host
    # may take are exactly these three.
    backend = models.BooleanField(_("backend"), default=False)
    mx = models.BooleanField(_("MX"), default=False)
    proxy = models.BooleanField(_("proxy"), default=False)
    state = models.CharField(
        _("state"), max_length=16, choices=HostState.choices, default=HostState.ACTIVE
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("mail host")
        verbose_name_plural = _("mail hosts")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(backend=True) | models.Q(mx=True) | models.Q(proxy=True),
                name="dataplane_host_has_a_role",
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=HostState.values), name="dataplane_host_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def roles(self) -> list[str]:
        """The host's roles, in the order HostRole lists them."""
        return [role for role in HostRole.values if getattr(self, role)]
