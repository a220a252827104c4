from django.db import models
from django.utils.translation import gettext_lazy as _


class AddressKind(models.TextChoices):
    """What a local part of a domain belongs to. Each local part has exactly one."""

    MAILBOX = "mailbox", _("Mailbox")
    ALIAS = "alias", _("Alias")
    FORWARD = "forward", _("Forward")
    # A removed alias, kept out of reach until its reuse delay has passed.
    RELEASED = "released", _("Removed alias (reserved)")


class AddressListType(models.TextChoices):
    """The address list's type filter."""

    ALL = "all", _("All")
    MAILBOX = "mailbox", _("Mailboxes")
    FORWARD = "forward", _("Forwards")


class AddressListSort(models.TextChoices):
    ADDRESS = "address", _("Address")
    STORAGE = "storage", _("Storage, largest first")
    STORAGE_ASC = "storage_asc", _("Storage, smallest first")
    # From the usage samples: the mailboxes "growing unusually fast" first.
    GROWTH = "growth", _("Growth over 7 days, largest first")


class MtaStsMode(models.TextChoices):
    """What the domain's MTA-STS policy asks of senders (RFC 8461 §5): `testing` only asks
    them to report a failed TLS check, `enforce` to refuse delivery over a failed one."""

    TESTING = "testing", _("Testing")
    ENFORCE = "enforce", _("Enforce")


class MoveState(models.TextChoices):
    """Where a mailbox's move between backends is (mail.moves). Only `switching` locks the
    mailbox: its mail waits at the MX, its logins are refused for a moment."""

    QUEUED = "queued", _("Queued")
    COPYING = "copying", _("Copying")
    SWITCHING = "switching", _("Switching")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")
