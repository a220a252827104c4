"""API tokens: a user's personal tokens and the operator's provisioning tokens.

Only a hash of the secret is stored; the token itself is shown once, when it is created.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class TokenScope(models.TextChoices):
    READ = "read", _("Read")
    WRITE = "write", _("Read and write")


class ApiToken(models.Model):
    # A personal token acts as its user; a provisioning token (no user) acts as the operator.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_tokens",
    )
    operator_name = models.CharField(_("operator"), max_length=100, blank=True)
    # Public: shown in lists and used to revoke; the first part of the token.
    prefix = models.CharField(_("prefix"), max_length=8, unique=True)
    # SHA-256 of the secret part, hex. See tokens.py for why not a slow hash.
    secret_hash = models.CharField(max_length=64)
    scope = models.CharField(_("scope"), max_length=8, choices=TokenScope.choices)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    # Updated at most once a minute per token, so reads do not each cost a write.
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, operator_name="")
                    | (models.Q(user__isnull=True) & ~models.Q(operator_name=""))
                ),
                name="api_token_one_owner",
            ),
            models.CheckConstraint(
                condition=models.Q(scope__in=TokenScope.values), name="api_token_scope_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.prefix

    @property
    def owner_label(self) -> str:
        return self.user.email if self.user_id else f"operator:{self.operator_name}"


class IdempotencyKey(models.Model):
    """A POST made with an `Idempotency-Key` header, and its response, for replaying it.

    Kept for IDEMPOTENCY_TTL (see services.py). Only successful calls are stored: a failed
    one wrote nothing, so it may simply be sent again. The response is encrypted at rest,
    because it may hold a secret shown once (a generated password).
    """

    # Whose key it is (the actor's label): two callers may use the same key.
    owner = models.CharField(max_length=254)
    key = models.CharField(max_length=255)
    # SHA-256 of the method, path and body: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    # Empty only inside the transaction that runs the call: a row is committed with its answer.
    status = models.PositiveSmallIntegerField(null=True)
    response = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="api_idempotency_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.owner} {self.key}"
