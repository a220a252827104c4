"""Domains and their addresses.

Every local part of a domain is one row of Address: that table, with its unique constraint on
(domain, local_part), is the single namespace shared by mailboxes, aliases, forwards and
removed aliases still in their reuse delay. Two concurrent creations of the same address
therefore collide in the database, whatever process or interface they come from.
"""

import uuid

from django.db import models
from django.db.models.functions import Length, Lower
from django.db.models.lookups import GreaterThanOrEqual, LessThanOrEqual
from django.utils.translation import gettext_lazy as _

from .choices import AddressKind, MoveState, MtaStsMode


class Domain(models.Model):
    """An email hosting service for one DNS domain."""

    client = models.ForeignKey("tenancy.Client", on_delete=models.PROTECT, related_name="domains")
    name = models.CharField(_("domain name"), max_length=253, unique=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # Testing until the customer opts in to enforce: a testing policy never stops a message,
    # whatever the state of the records (dns/mtasts.py).
    mta_sts_mode = models.CharField(
        _("MTA-STS mode"), max_length=16, choices=MtaStsMode.choices, default=MtaStsMode.TESTING
    )
    # Calendar and contact apps (CalDAV/CardDAV at the groupware's /SOGo/dav/) for every
    # mailbox of the domain; the webmail and ActiveSync do not depend on it (the gate
    # enforces it, docs/dataplane.md).
    dav_enabled = models.BooleanField(_("calendar and contact apps (CalDAV/CardDAV)"), default=True)

    class Meta:
        verbose_name = _("domain")
        verbose_name_plural = _("domains")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(name=Lower("name")), name="mail_domain_name_lowercase"
            ),
            models.CheckConstraint(
                condition=models.Q(mta_sts_mode__in=MtaStsMode.values),
                name="mail_domain_mta_sts_mode_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Address(models.Model):
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="addresses")
    local_part = models.CharField(_("name"), max_length=64)
    kind = models.CharField(_("type"), max_length=16, choices=AddressKind.choices)
    # Only for removed aliases: when the name may be taken again.
    available_at = models.DateTimeField(_("available again at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("address")
        verbose_name_plural = _("addresses")
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_part"], name="mail_address_unique"),
            models.CheckConstraint(
                condition=models.Q(local_part=Lower("local_part")),
                name="mail_address_local_part_lowercase",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    GreaterThanOrEqual(Length("local_part"), 1),
                    LessThanOrEqual(Length("local_part"), 64),
                ),
                name="mail_address_local_part_length",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=AddressKind.values), name="mail_address_kind_valid"
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(kind=AddressKind.RELEASED, available_at__isnull=False)
                    | (~models.Q(kind=AddressKind.RELEASED) & models.Q(available_at__isnull=True))
                ),
                name="mail_address_released_has_available_at",
            ),
        ]
        indexes = [
            # The address list: one domain, mailboxes and forwards, by name.
            models.Index(fields=["domain", "kind", "local_part"], name="mail_address_list_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.local_part}@{self.domain.name}"

    @property
    def email(self) -> str:
        return f"{self.local_part}@{self.domain.name}"


class Mailbox(models.Model):
    """An address with an inbox, a password, a quota, aliases and its own forwarding."""

    address = models.OneToOneField(Address, on_delete=models.CASCADE, related_name="mailbox")
    # The address's domain, copied when the mailbox is created (an address never changes
    # domain): it lets one index order a domain's mailboxes by storage (the list's storage
    # sort reads its first pages from the index instead of sorting every mailbox). Always set
    # by mail.services; nullable only because SQLite cannot make it NOT NULL without
    # rebuilding the table under the dataplane views (migration 0004).
    domain = models.ForeignKey(
        Domain, on_delete=models.CASCADE, null=True, related_name="+", editable=False
    )
    # The address's name, copied likewise (a mailbox is never renamed): the list's ties are
    # by name, so the storage and growth indexes end with it and a page of the domain's
    # mailboxes is read off an index whatever the ties (a new domain's mailboxes all use 0
    # bytes and grew 0). Always set by mail.services; nullable for the same reason
    # (migration 0005).
    local_part = models.CharField(max_length=64, null=True, editable=False)  # noqa: DJ001
    # Where the mail is stored. Never reused, so a mailbox re-created under the same name
    # never sees the messages of the one deleted before it.
    storage_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The backend host that stores it, chosen when it is created (mail.hosts.home_choose);
    # the operator's, never shown to the customer. None: the single host of an install with
    # no backend registered (dataplane.models).
    home = models.ForeignKey(
        "dataplane.Host",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("home host"),
    )
    password_hash = models.CharField(max_length=255)
    password_changed_at = models.DateTimeField(_("password changed"))
    quota_mb = models.PositiveIntegerField(_("disk space limit (MB)"), default=0)
    delete_after_forwarding = models.BooleanField(_("delete after forwarding"), default=False)
    keep_original_sender = models.BooleanField(
        _("keep original sender and recipients"), default=False
    )
    eas_enabled = models.BooleanField(_("ActiveSync (EAS)"), default=False)
    mapi_enabled = models.BooleanField(_("MAPI/Exchange"), default=False)
    # Last measured disk use, written by the usage collector.
    used_bytes = models.BigIntegerField(_("storage used"), default=0)
    used_measured_at = models.DateTimeField(null=True, blank=True)
    # Bytes gained over the 7 days up to that measure (negative when it shrank), kept by
    # mailbox_usage_record from the samples (docs/billing.md, "Growth over 7 days"). Always
    # set (0 until measured) by mail.services; nullable, without a default, for the same
    # reason as `domain` (SQLite rebuilds a table to add a column with either).
    growth_7d_bytes = models.BigIntegerField(_("growth over 7 days"), null=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("mailbox")
        verbose_name_plural = _("mailboxes")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(used_bytes__gte=0), name="mail_mailbox_used_bytes_positive"
            ),
        ]
        indexes = [
            models.Index(fields=["used_bytes"], name="mail_mailbox_used_idx"),
            # The dashboard's usage aggregate and the list's storage sort read these columns
            # of every mailbox of a domain: one index seek each, no row fetch (a mailbox row
            # carries its password hash and timestamps, several times wider).
            models.Index(
                fields=[
                    "address",
                    "used_bytes",
                    "eas_enabled",
                    "mapi_enabled",
                    "used_measured_at",
                ],
                name="mail_mailbox_usage_idx",
            ),
            # A domain's mailboxes in the list's storage and growth orders (ties by name).
            models.Index(
                fields=["domain", "-used_bytes", "local_part"], name="mail_mailbox_storage_idx"
            ),
            models.Index(
                fields=["domain", "-growth_7d_bytes", "local_part"], name="mail_mailbox_growth_idx"
            ),
            # Smallest first, ties by name: the storage index read backwards would give the
            # ties in reverse, so keyset pages of `storage_asc` need their own.
            models.Index(
                fields=["domain", "used_bytes", "local_part"], name="mail_mailbox_storage_asc_idx"
            ),
            # The domain's latest usage measure, for the dashboard: one seek.
            models.Index(fields=["domain", "used_measured_at"], name="mail_mailbox_measured_idx"),
        ]

    def __str__(self) -> str:
        return str(self.address)


class DomainTotalsChange(models.Model):
    """A change to a domain's counts and disk use, as the dashboard shows them and the address
    list counts its rows: a domain's totals are the sum of its rows. Appended by database
    triggers (mail migration 0009) in the transaction of every write to the addresses and
    mailboxes, whatever writes them; folded into one row per domain by the `compact-totals`
    job (`services.domain_totals_compact`). Never written otherwise.

    Appended, never updated: a writer waits for no other writer here. A single row per domain
    updated in every write's transaction was a lock every writer of the domain took after the
    rows it had already written, in whatever order, and concurrent writes deadlocked on
    PostgreSQL (one waiting for the totals, the other for a name or a mailbox the first had
    taken). Each change commits with its write, so the sum is exact at every moment.
    """

    # No foreign key: a domain's deletion writes its rows' changes after (and beside) the
    # domain's own, and its rows, summing to zero, go at the next compaction.
    domain = models.ForeignKey(
        Domain, on_delete=models.DO_NOTHING, db_constraint=False, related_name="totals_changes"
    )
    mailboxes = models.BigIntegerField(db_default=0)
    aliases = models.BigIntegerField(db_default=0)
    forwards = models.BigIntegerField(db_default=0)
    eas_accounts = models.BigIntegerField(db_default=0)
    mapi_accounts = models.BigIntegerField(db_default=0)
    used_bytes = models.BigIntegerField(db_default=0)

    # The sums a domain's totals are made of, in this order everywhere (triggers, compaction).
    SUMMED = ("mailboxes", "aliases", "forwards", "eas_accounts", "mapi_accounts", "used_bytes")

    class Meta:
        verbose_name = _("domain totals change")
        verbose_name_plural = _("domain totals changes")

    def __str__(self) -> str:
        return f"{self.domain_id}: {self.mailboxes:+} mailboxes"


class HostLoadChange(models.Model):
    """A change to how many mailboxes call a host home: a host's load is the sum of its rows,
    as a new mailbox's home is chosen by it (hosts.home_choose) and `host list` shows it.
    Appended by database triggers (mail migration 0014) when a mailbox is created or deleted
    with a home, or its home changes (a move); folded into one row per host by the
    `compact-totals` job. Never written otherwise.

    Appended, not counted: counting a host's mailboxes off the index on Mailbox.home took
    51 ms at 1.1 million mailboxes, at every creation; and appended, not updated: a row per
    host updated by every creation would make all of a fleet's creations wait for each
    other (DomainTotalsChange says why).
    """

    # No foreign key: a host is removed only once it has no mailbox (its rows sum to zero).
    host = models.ForeignKey(
        "dataplane.Host",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="load_changes",
    )
    mailboxes = models.BigIntegerField(db_default=0)

    SUMMED = ("mailboxes",)

    class Meta:
        verbose_name = _("host load change")
        verbose_name_plural = _("host load changes")

    def __str__(self) -> str:
        return f"{self.host_id}: {self.mailboxes:+} mailboxes"


class Alias(models.Model):
    """A second name of one mailbox: no storage, no password; deleted with its mailbox."""

    address = models.OneToOneField(Address, on_delete=models.CASCADE, related_name="alias")
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="aliases")
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("alias")
        verbose_name_plural = _("aliases")

    def __str__(self) -> str:
        return str(self.address)


class Forward(models.Model):
    """A standalone address with no inbox, routing to one or more destinations."""

    address = models.OneToOneField(Address, on_delete=models.CASCADE, related_name="forward")
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("forward")
        verbose_name_plural = _("forwards")

    def __str__(self) -> str:
        return str(self.address)


class Destination(models.Model):
    """Where mail to an address is forwarded: a mailbox's forwarding list or a forward's."""

    address = models.ForeignKey(Address, on_delete=models.CASCADE, related_name="destinations")
    email = models.CharField(_("destination address"), max_length=254)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name = _("destination")
        verbose_name_plural = _("destinations")
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["address", "email"], name="mail_destination_unique"),
            models.CheckConstraint(
                condition=models.Q(email=Lower("email")), name="mail_destination_lowercase"
            ),
        ]

    def __str__(self) -> str:
        return self.email


# The states of a move still under way: one at most per mailbox.
MOVE_UNDER_WAY = (MoveState.QUEUED, MoveState.COPYING, MoveState.SWITCHING)


class MailboxMove(models.Model):
    """A mailbox's move from one backend to another (mail.moves, docs/scale.md): the
    operator's, never shown to the customer."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="moves")
    source = models.ForeignKey(
        "dataplane.Host", on_delete=models.PROTECT, related_name="+", verbose_name=_("from")
    )
    target = models.ForeignKey(
        "dataplane.Host", on_delete=models.PROTECT, related_name="+", verbose_name=_("to")
    )
    state = models.CharField(
        _("state"), max_length=16, choices=MoveState.choices, default=MoveState.QUEUED
    )
    created_at = models.DateTimeField(_("queued"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    # When the lock began (`switching`): its length, to `finished_at`, is what the customer
    # waits, and the sweeper (hosts.mailbox_moves_sweep) measures a dead lock from it.
    locked_at = models.DateTimeField(_("locked"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox"],
                condition=models.Q(state__in=MOVE_UNDER_WAY),
                name="mail_one_move_under_way",
            )
        ]
        # The views ask, at each lookup, whether the mailbox is being switched.
        indexes = [models.Index(fields=["mailbox", "state"], name="mail_move_mailbox_state")]

    def __str__(self) -> str:
        return f"{self.mailbox_id}: {self.source_id} → {self.target_id} ({self.state})"


class MailboxMoveAck(models.Model):
    """An MX host's word that it no longer routes a locked mailbox's mail to its old home
    (tasks.mailbox_move_routes_drop): the move's last copy waits for one from every MX."""

    move = models.ForeignKey(MailboxMove, on_delete=models.CASCADE, related_name="acks")
    host = models.ForeignKey(
        "dataplane.Host", on_delete=models.CASCADE, related_name="+", verbose_name=_("host")
    )
    acknowledged_at = models.DateTimeField(_("acknowledged"), auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["move", "host"], name="mail_move_ack_unique")
        ]

    def __str__(self) -> str:
        return f"{self.move_id}: {self.host_id}"
