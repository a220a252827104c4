import secrets
import time
from base64 import b32encode
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP

from postdesk import crypto

from .choices import Role


def login_name(value: str | None) -> str:
    """A login as typed, as stored: email logins ignore case and surrounding spaces (every
    address is stored lower case)."""
    return (value or "").strip().lower()


class PostdeskUserManager(UserManager):
    def get_by_natural_key(self, username: str | None) -> "User":
        # Django's login looks the user up by this: OWNER@ACME.EXAMPLE is owner@acme.example.
        return self.get(**{self.model.USERNAME_FIELD: login_name(username)})

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


def new_totp_secret() -> str:
    """A fresh TOTP secret (20 random bytes, as RFC 4226 recommends), encrypted."""
    return crypto.encrypt(secrets.token_bytes(20))


class TotpDevice(TimestampMixin, ThrottlingMixin, Device):
    """A user's authenticator app (RFC 6238 TOTP), as django-otp's TOTPDevice but with the
    secret encrypted at rest by postdesk.crypto: a database dump, a backup or a replica does
    not hand out anyone's second factor. The other fields mean what django-otp's do."""

    # Our own accessor: django-otp's TOTPDevice (kept for its migrations) has totpdevice_set.
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="totp_devices")
    # A Fernet token of the raw secret; never shown except while the app is being set up.
    encrypted_key = models.TextField(default=new_totp_secret, editable=False)
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    drift = models.SmallIntegerField(default=0)
    # The time step of the last accepted code: only a later step is accepted (no replay).
    last_t = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        verbose_name = _("TOTP device")
        verbose_name_plural = _("TOTP devices")

    @property
    def bin_key(self) -> bytes:
        """The secret, decrypted (raises crypto.DecryptionFailed if no key fits)."""
        return crypto.decrypt(self.encrypted_key)

    def verify_token(self, token) -> bool:
        # As django-otp's TOTPDevice.verify_token: throttled, no replay, drift kept in sync.
        allowed, _data = self.verify_is_allowed()
        if not allowed:
            return False
        try:
            token = int(token)
        except (TypeError, ValueError):
            verified = False
        else:
            totp = TOTP(self.bin_key, self.step, self.t0, self.digits, self.drift)
            totp.time = time.time()
            verified = totp.verify(token, self.tolerance, self.last_t + 1)
            if verified:
                self.last_t = totp.t()
                if getattr(settings, "OTP_TOTP_SYNC", True):
                    self.drift = totp.drift
                self.throttle_reset(commit=False)
                self.set_last_used_timestamp(commit=False)
                self.save()
        if not verified:
            self.throttle_increment(commit=True)
        return verified

    def get_throttle_factor(self) -> int:
        return getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1)

    @property
    def config_url(self) -> str:
        """The otpauth:// URL an authenticator app scans (Google's Key Uri Format)."""
        label = str(self.user.get_username())
        params = urlencode(
            {
                "secret": b32encode(self.bin_key),
                "algorithm": "SHA1",
                "digits": self.digits,
                "period": self.step,
            }
        )
        issuer = (getattr(settings, "OTP_TOTP_ISSUER", "") or "").replace(":", "")
        if issuer:
            label = f"{issuer}:{label}"
            params += f"&issuer={quote(issuer)}"
        return f"otpauth://totp/{quote(label)}?{params}"
