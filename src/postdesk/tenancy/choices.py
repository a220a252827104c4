from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Administrator")
    VIEWER = "viewer", _("Viewer")


# Roles that may change things; a viewer can only look.
WRITE_ROLES = frozenset({Role.OWNER, Role.ADMIN})
