from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _

from .choices import Role


class PostdeskUserManager(UserManager):
    def create_user(self, email, password=None, **extra_fields):
        email = self.normalize_email(email).lower()
        return super().create_user(email, email=email, password=password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        email = self.normalize_email(email).lower()
        return super().create_superuser(email, email=email, password=password, **extra_fields)


class User(AbstractUser):
    """A person who logs in; the email address is the login."""

    email = models.EmailField(_("email address"), unique=True)
    # Raised to end every other session of the user at once (two-factor turned on or off,
    # "log out other sessions"): each session carries a hash of it, as of the password.
    session_generation = models.PositiveIntegerField(default=0, editable=False)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = PostdeskUserManager()

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.email

    def _get_session_auth_hash(self, secret: str | None = None) -> str:
        # Django's hash covers the password only (a password change ends the other sessions);
        # ours covers the generation too. Generation 0 keeps Django's value, so sessions
        # opened before this field existed stay valid.
        if not self.session_generation:
            return super()._get_session_auth_hash(secret=secret)
        return salted_hmac(
            "postdesk.tenancy.User.session_auth_hash",
            f"{self.password}:{self.session_generation}",
            secret=secret,
            algorithm="sha256",
        ).hexdigest()


class Client(models.Model):
    """The customer account that owns domains. A user acts for a client."""

    name = models.CharField(_("name"), max_length=200)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    suspended_at = models.DateTimeField(_("suspended"), null=True, blank=True)

    class Meta:
        verbose_name = _("client")
        verbose_name_plural = _("clients")
        constraints = [
            models.UniqueConstraint(Lower("name"), name="tenancy_client_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "client"], name="tenancy_membership_unique"),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="tenancy_membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.client} ({self.role})"
