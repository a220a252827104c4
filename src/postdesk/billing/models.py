"""Plans and the usage they bill: protocol activation periods and storage samples.

Billing history must outlive what it bills: activation periods and usage samples keep a
snapshot of the mailbox (its id, address, domain and client ids), so a mailbox deleted in the
middle of a cycle is still billed for that cycle. Their link to the mailbox is set to NULL when
it goes; the domain and client ids are plain columns (no foreign key constraint) for the same
reason.
"""

from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from .choices import Protocol


class Plan(models.Model):
    """Prices and a billing cycle. Every price is per cycle."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    cycle_months = models.PositiveSmallIntegerField(_("billing cycle (months)"), default=1)
    currency = models.CharField(_("currency"), max_length=3)
    storage_gb_price = models.DecimalField(
        _("price per GB stored"), max_digits=12, decimal_places=4
    )
    eas_price = models.DecimalField(
        _("ActiveSync price per mailbox"), max_digits=12, decimal_places=4
    )
    mapi_price = models.DecimalField(_("MAPI price per mailbox"), max_digits=12, decimal_places=4)
    eas_mapi_price = models.DecimalField(
        _("ActiveSync + MAPI price per mailbox"), max_digits=12, decimal_places=4
    )
    # The "plan's overall limit" that a mailbox quota of 0 falls back to; None: unlimited.
    storage_limit_mb = models.PositiveBigIntegerField(
        _("storage limit (MB)"), null=True, blank=True
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("plan")
        verbose_name_plural = _("plans")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cycle_months__gte=1), name="billing_plan_cycle_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    storage_gb_price__gte=0, eas_price__gte=0, mapi_price__gte=0,
                    eas_mapi_price__gte=0,
                ),
                name="billing_plan_prices_positive",
            ),
            # Plans are named case-insensitively (`client set-plan ACME basic`).
            models.UniqueConstraint(Lower("name"), name="billing_plan_name_unique_ci"),
        ]  # fmt: skip

    def __str__(self) -> str:
        return self.name


class ClientPlan(models.Model):
    """A client's plan from `starts_at` on; the plan in force at T has the latest start ≤ T."""

    client = models.ForeignKey("tenancy.Client", on_delete=models.CASCADE, related_name="plans")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="client_plans")
    starts_at = models.DateTimeField(_("starts"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("client plan")
        verbose_name_plural = _("client plans")
        constraints = [
            models.UniqueConstraint(
                fields=["client", "starts_at"], name="billing_clientplan_unique_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client_id}: {self.plan_id} from {self.starts_at.isoformat()}"


class ProtocolActivation(models.Model):
    """A protocol usable on a mailbox from `started_at` until `ended_at` (NULL while on)."""

    mailbox = models.ForeignKey(
        "mail.Mailbox", on_delete=models.SET_NULL, null=True, related_name="protocol_activations"
    )
    # Snapshot, kept after the mailbox is deleted.
    mailbox_key = models.BigIntegerField()
    address = models.CharField(_("address"), max_length=320)
    domain = models.ForeignKey(
        "mail.Domain", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    client = models.ForeignKey(
        "tenancy.Client", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    protocol = models.CharField(_("protocol"), max_length=8, choices=Protocol.choices)
    started_at = models.DateTimeField(_("enabled"))
    ended_at = models.DateTimeField(_("disabled"), null=True, blank=True)

    class Meta:
        verbose_name = _("protocol activation")
        verbose_name_plural = _("protocol activations")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(protocol__in=Protocol.values),
                name="billing_activation_protocol_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(ended_at__isnull=True)
                | models.Q(ended_at__gte=models.F("started_at")),
                name="billing_activation_ends_after_start",
            ),
            # At most one open period per mailbox and protocol.
            models.UniqueConstraint(
                fields=["mailbox_key", "protocol"],
                condition=models.Q(ended_at__isnull=True),
                name="billing_activation_one_open",
            ),
        ]
        indexes = [
            # "Active during [start, end)": started_at < end, filtered by ended_at > start.
            models.Index(fields=["domain", "started_at"], name="billing_act_domain_idx"),
            models.Index(fields=["client", "started_at"], name="billing_act_client_idx"),
            models.Index(fields=["mailbox_key", "protocol"], name="billing_act_mailbox_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.address} {self.protocol} {self.started_at.isoformat()}"


class UsageSample(models.Model):
    """A measure of a mailbox's disk use; it holds until the mailbox's next sample.

    `until` is that next sample's time (NULL for the latest), kept by the billing services
    as samples arrive, in any order. It lets the estimate sum a cycle's usage in one range
    scan, without pairing each sample with the next at read time.
    """

    mailbox = models.ForeignKey(
        "mail.Mailbox", on_delete=models.SET_NULL, null=True, related_name="usage_samples"
    )
    # Snapshot, kept after the mailbox is deleted.
    mailbox_key = models.BigIntegerField()
    domain = models.ForeignKey(
        "mail.Domain", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    at = models.DateTimeField(_("measured"))
    until = models.DateTimeField(null=True, blank=True)
    bytes = models.BigIntegerField(_("storage used"))
    messages = models.BigIntegerField(_("messages"), null=True, blank=True)

    class Meta:
        verbose_name = _("usage sample")
        verbose_name_plural = _("usage samples")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(bytes__gte=0), name="billing_usage_bytes_positive"
            ),
            models.UniqueConstraint(fields=["mailbox_key", "at"], name="billing_usage_unique"),
            models.CheckConstraint(
                condition=models.Q(until__isnull=True) | models.Q(until__gt=models.F("at")),
                name="billing_usage_until_after_at",
            ),
        ]
        indexes = [
            # A mailbox's usage at T (its latest sample by T): one backward seek, covered, so
            # the address list's growth reads no table row.
            models.Index(fields=["mailbox", "at", "bytes"], name="billing_usage_mailbox_at_idx"),
            models.Index(fields=["domain", "at"], name="billing_usage_domain_idx"),
            # The samples that hold during [start, …): until > start, or the latest ones. It
            # covers the estimate's query, which then never reads the table itself.
            models.Index(fields=["domain", "until", "at", "bytes"], name="billing_usage_until_idx"),
            # Each mailbox's latest sample (one row per mailbox ever): the one a newer sample
            # closes, found without reading the mailbox's history.
            models.Index(
                fields=["mailbox_key"],
                condition=models.Q(until__isnull=True),
                name="billing_usage_latest_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_key} {self.at.isoformat()} {self.bytes}"
