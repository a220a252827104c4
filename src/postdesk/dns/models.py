"""DKIM keys and the last DNS answers of each domain.

The pure checks (spf.py, dkim.py, dmarc.py, mx.py) know nothing of these models; the services
feed them answers and store what the DNS said, and the selectors re-read those answers in the
reader's language and with the current settings.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class DkimKeyStatus(models.TextChoices):
    # Generated for a rotation: published in the DNS before it signs, so no mail goes unsigned.
    PREPARED = "prepared", _("Prepared")
    SIGNING = "signing", _("Signing")
    # Kept after "Disable DKIM", so enabling it again needs no DNS change.
    DISABLED = "disabled", _("Disabled")
    # Replaced by a rotation; its record may be removed from the DNS.
    RETIRED = "retired", _("Retired")


class DkimKey(models.Model):
    domain = models.ForeignKey("mail.Domain", on_delete=models.CASCADE, related_name="dkim_keys")
    selector = models.CharField(_("selector"), max_length=63)
    status = models.CharField(_("status"), max_length=16, choices=DkimKeyStatus.choices)
    # The private key's PEM, encrypted with postdesk.crypto; never shown, never logged.
    private_key_encrypted = models.TextField()
    # Base64 DER SubjectPublicKeyInfo: the p= value of the DNS record.
    public_key = models.TextField()
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    status_changed_at = models.DateTimeField(_("status changed"))
    # Where the signer reads the private key, once the worker has written it there (empty
    # before): the data plane signs with a key only from then on (dataplane_dkim).
    key_file = models.CharField(_("key file"), max_length=255, blank=True, default="")

    class Meta:
        verbose_name = _("DKIM key")
        verbose_name_plural = _("DKIM keys")
        constraints = [
            models.UniqueConstraint(fields=["domain", "selector"], name="dns_dkimkey_selector"),
            models.UniqueConstraint(
                fields=["domain"],
                condition=models.Q(status=DkimKeyStatus.SIGNING),
                name="dns_dkimkey_one_signing",
            ),
            models.UniqueConstraint(
                fields=["domain"],
                condition=models.Q(status=DkimKeyStatus.PREPARED),
                name="dns_dkimkey_one_prepared",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=DkimKeyStatus.values), name="dns_dkimkey_status"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.selector}._domainkey.{self.domain_id} ({self.status})"


class DnsStatus(models.Model):
    """What the DNS answered for a domain at its last check, one row per domain."""

    domain = models.OneToOneField(
        "mail.Domain", on_delete=models.CASCADE, related_name="dns_status"
    )
    # {"txt": {name: [records] | null}, "mx": {name: [[preference, host]] | null}};
    # null: the DNS could not answer (a temporary failure, retried).
    answers = models.JSONField(default=dict)
    # The states when checked, for operators' overviews; pages re-evaluate the answers.
    spf_state = models.CharField(max_length=16, blank=True)
    dkim_state = models.CharField(max_length=16, blank=True)
    dmarc_state = models.CharField(max_length=16, blank=True)
    mx_state = models.CharField(max_length=16, blank=True)
    mta_sts_state = models.CharField(max_length=16, blank=True)
    tls_rpt_state = models.CharField(max_length=16, blank=True)
    # The DMARC policy receivers found ("" for none) and since when the checks have seen it:
    # how long a `p=none` has stayed. A check the DNS could not answer changes neither.
    dmarc_policy = models.CharField(max_length=16, blank=True)
    dmarc_policy_since = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(_("checked"))

    class Meta:
        verbose_name = _("DNS status")
        verbose_name_plural = _("DNS statuses")
        indexes = [models.Index(fields=["checked_at"], name="dns_status_checked_idx")]

    def __str__(self) -> str:
        return f"DNS of domain {self.domain_id} at {self.checked_at:%Y-%m-%d %H:%M}"

    @property
    def has_unknown(self) -> bool:
        """Whether the DNS failed to answer one of the checks: the check is retried."""
        states = [
            self.spf_state,
            self.dkim_state,
            self.dmarc_state,
            self.mx_state,
            self.mta_sts_state,
            self.tls_rpt_state,
        ]
        return "unknown" in states


class DeliverabilityTestState(models.TextChoices):
    QUEUED = "queued", _("Queued")
    # Accepted by our submission port; waiting for it at the probe address.
    WAITING = "waiting", _("Waiting for the message")
    DONE = "done", _("Received")
    NOT_ARRIVED = "not_arrived", _("Not arrived")
    # The submission port refused it, or the mail servers could not be reached.
    FAILED = "failed", _("Could not be sent")


class DeliverabilityTest(models.Model):
    """The last deliverability self-test of a domain (one row per domain: the next replaces
    it). `facts` holds what the receiving side saw, as codes (selftest.py); pages put them
    in words in the reader's language."""

    domain = models.OneToOneField(
        "mail.Domain", on_delete=models.CASCADE, related_name="deliverability_test"
    )
    # The mailbox the message leaves from; its address stays in `sender` once it is gone.
    mailbox = models.ForeignKey("mail.Mailbox", on_delete=models.SET_NULL, null=True)
    sender = models.CharField(_("sent from"), max_length=254)
    state = models.CharField(_("state"), max_length=16, choices=DeliverabilityTestState.choices)
    # The probe's id, in its X-Postdesk-Probe header: how the message is found on arrival.
    token = models.CharField(max_length=64, unique=True)
    # The single-use SMTP login the message is submitted with ({ARGON2ID} hash, read by
    # Dovecot through dataplane_probe_logins); erased once used, useless after expiry.
    login_hash = models.CharField(max_length=255, blank=True, default="")
    login_expires_at = models.DateTimeField(null=True)
    requested_at = models.DateTimeField(_("requested"))
    submitted_at = models.DateTimeField(_("sent"), null=True)
    received_at = models.DateTimeField(_("received"), null=True)
    facts = models.JSONField(default=dict)
    # Why it could not be sent: the server's answer, for the operator (not translated).
    error = models.TextField(blank=True, default="")

    class Meta:
        verbose_name = _("deliverability test")
        verbose_name_plural = _("deliverability tests")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=DeliverabilityTestState.values),
                name="dns_deliverabilitytest_state",
            )
        ]

    def __str__(self) -> str:
        return f"deliverability test of domain {self.domain_id} ({self.state})"
