from django.db import models
from django.utils.translation import gettext_lazy as _


class Protocol(models.TextChoices):
    EAS = "eas", _("ActiveSync (EAS)")
    MAPI = "mapi", _("MAPI/Exchange")


# `--cycle NAME` on the CLI: the cycle's length in months.
CYCLE_NAMES = {"monthly": 1, "quarterly": 3, "yearly": 12}
