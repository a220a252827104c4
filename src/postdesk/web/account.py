"""The account security of the client area's users: TOTP two-factor and the panel password.

Services in the house style (keyword-only, an actor, validation, one transaction, an audit
event) and the reads the login needs. They live with the client area because only its login
uses them; the devices are tenancy.TotpDevice, django-otp devices whose secret is encrypted
at rest (RFC 6238: 6 digits, 30 s steps, the device's own throttling after failures).
"""

from __future__ import annotations

import math
from base64 import b32encode

import qrcode
import qrcode.image.svg
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from postdesk.audit.services import audit_record
from postdesk.errors import ErrorCollector, InvalidInput, PermissionDenied
from postdesk.tenancy.access import Actor
from postdesk.tenancy.models import TotpDevice, User

TOTP_DEVICE_NAME = "Authenticator app"


def _require_self(actor: Actor, user: User) -> None:
    # Only the user changes their own login: not an operator, not another member.
    if actor.user is None or actor.user.pk != user.pk:
        raise PermissionDenied(_("Only the account's owner can change its login."))


def _normalize_code(token: str) -> str:
    # Apps show the code as "123 456"; people paste it with spaces or dashes.
    return "".join(ch for ch in (token or "") if ch.isdigit())


# --- Reads --------------------------------------------------------------------------------------


def totp_enabled(user: User) -> bool:
    """Whether the user must give a TOTP code at login (one query)."""
    return TotpDevice.objects.filter(user=user, confirmed=True).exists()


def totp_pending_device(user: User) -> TotpDevice | None:
    """The device being set up (scanned, not yet confirmed with a code), if any."""
    return TotpDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()


def login_user(pk: int) -> User | None:
    """The user who passed the password step, for the code step (active users only)."""
    return User.objects.filter(pk=pk, is_active=True).first()


def totp_qr_svg(device: TotpDevice) -> str:
    """The device's otpauth:// URL as an SVG QR code, drawn here (no external service)."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return image.to_string(encoding="unicode")


def totp_secret_text(device: TotpDevice) -> str:
    """The secret in base32, in groups of four, for typing into an app by hand."""
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


# --- TOTP ---------------------------------------------------------------------------------------


def _code_error(device: TotpDevice, token: str) -> InvalidInput | None:
    """None if the device accepts the code, else the error to show. Either way the device's
    counters are written (failures and throttling, or the last used step): the caller raises
    the error only after its transaction commits, so a wrong code is never rolled back."""
    allowed, refusal = device.verify_is_allowed()
    if not allowed:
        # django-otp doubles the wait after each wrong code in a row (1 s after the first):
        # say how long, rather than "too many" after a single typo.
        locked_until = (refusal or {}).get("locked_until") or timezone.now()
        seconds = max(1, math.ceil((locked_until - timezone.now()).total_seconds()))
        return InvalidInput(
            "totp_throttled",
            ngettext(
                "Wait %(seconds)d second, then enter the newest code: each wrong code in a "
                "row doubles the wait.",
                "Wait %(seconds)d seconds, then enter the newest code: each wrong code in a "
                "row doubles the wait.",
                seconds,
            )
            % {"seconds": seconds},
            "token",
        )
    if not device.verify_token(_normalize_code(token)):
        return InvalidInput(
            "totp_invalid",
            _("This code is not valid. Enter the 6-digit code your app shows now."),
            "token",
        )
    return None


def totp_setup_start(*, actor: Actor, user: User) -> TotpDevice:
    """A new secret to scan. Replaces a previous unconfirmed one; refused once enabled."""
    _require_self(actor, user)
    with transaction.atomic():
        if TotpDevice.objects.select_for_update().filter(user=user, confirmed=True).exists():
            raise InvalidInput(
                "totp_enabled", _("Two-factor authentication is already on."), "token"
            )
        TotpDevice.objects.filter(user=user, confirmed=False).delete()
        return TotpDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)


def totp_setup_confirm(*, actor: Actor, user: User, token: str) -> TotpDevice:
    """Turn two-factor on, once the app proves it holds the secret by a valid code."""
    _require_self(actor, user)
    with transaction.atomic():
        device = (
            TotpDevice.objects.select_for_update()
            .filter(user=user, confirmed=False)
            .order_by("-pk")
            .first()
        )
        if device is None:
            raise InvalidInput(
                "totp_not_started", _("Start the set-up again: no secret is waiting."), "token"
            )
        error = _code_error(device, token)
        if error is None:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            # A session opened with the password alone must not outlive the switch.
            _end_sessions(user)
            audit_record(
                actor=actor, action="account.totp_enable", client_id=None, target=user.email
            )
    if error is not None:
        raise error
    return device


def totp_disable(*, actor: Actor, user: User, token: str) -> None:
    """Turn two-factor off: a current code is required, so a stolen session cannot."""
    _require_self(actor, user)
    with transaction.atomic():
        device = TotpDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
        if device is None:
            raise InvalidInput("totp_disabled", _("Two-factor authentication is off."), "token")
        error = _code_error(device, token)
        if error is None:
            TotpDevice.objects.filter(user=user).delete()
            _end_sessions(user)
            audit_record(
                actor=actor, action="account.totp_disable", client_id=None, target=user.email
            )
    if error is not None:
        raise error


def totp_login_check(*, user: User, token: str) -> TotpDevice:
    """The login's second step: the device that accepts the code, or an error."""
    device = TotpDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        raise InvalidInput("totp_disabled", _("Two-factor authentication is off."), "token")
    with transaction.atomic():
        # The device's throttling counters and last used step are written with its lock.
        device = TotpDevice.objects.select_for_update().get(pk=device.pk)
        error = _code_error(device, token)
    if error is not None:
        raise error
    return device


# --- Sessions -----------------------------------------------------------------------------------


def _end_sessions(user: User) -> None:
    """Every session of the user stops being valid; the caller keeps its own by
    update_session_auth_hash with the user as updated here."""
    User.objects.filter(pk=user.pk).update(session_generation=F("session_generation") + 1)
    user.refresh_from_db(fields=["session_generation"])


def account_end_other_sessions(*, actor: Actor, user: User) -> None:
    """Log the user out everywhere but here (a lost phone, a shared computer)."""
    _require_self(actor, user)
    with transaction.atomic():
        _end_sessions(user)
        audit_record(actor=actor, action="account.sessions_end", client_id=None, target=user.email)


# --- Password -----------------------------------------------------------------------------------


def account_password_change(
    *,
    actor: Actor,
    user: User,
    old_password: str,
    new_password: str,
    new_password_confirmation: str,
) -> None:
    """Change the user's login password. The caller keeps its own session
    (update_session_auth_hash); every other session of the user stops being valid, since
    Django checks each session against the password hash."""
    _require_self(actor, user)
    errors = ErrorCollector()
    if not user.check_password(old_password or ""):
        errors.add(
            InvalidInput(
                "password_wrong", _("Your current password is not correct."), "old_password"
            )
        )
    if not new_password:
        errors.add(InvalidInput("password_missing", _("Enter a new password."), "new_password"))
    else:
        try:
            password_validation.validate_password(new_password, user)
        except ValidationError as error:
            for message in error.messages:
                errors.add(InvalidInput("password_weak", message, "new_password"))
        if new_password != new_password_confirmation:
            errors.add(
                InvalidInput(
                    "password_mismatch",
                    _("The two passwords do not match."),
                    "new_password_confirmation",
                )
            )
    errors.raise_if_any()
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        audit_record(
            actor=actor, action="account.password_change", client_id=None, target=user.email
        )
