from django.db import models
from django.utils.translation import gettext_lazy as _


class HostRole(models.TextChoices):
    """What a mail host does in the fleet (docs/dataplane.md, "Hosts and homes")."""

    # Stores mailboxes: their home. IMAP/POP3 and LMTP end here.
    BACKEND = "backend", _("Backend")
    # Receives mail from the internet (port 25) and hands it to each mailbox's home.
    MX = "mx", _("MX")
    # Takes the customers' IMAP/POP3 logins and forwards each to the mailbox's home.
    PROXY = "proxy", _("Proxy")


class HostState(models.TextChoices):
    ACTIVE = "active", _("Active")
    # Takes no new homes; the mailboxes already there stay until they are moved.
    DRAINING = "draining", _("Draining")
