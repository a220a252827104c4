"""Writes to clients, users and memberships, and the account security of a user's login.

Account security is TOTP two-factor and the panel password: the devices are
tenancy.TotpDevice, django-otp devices whose secret is encrypted at rest (RFC 6238: 6 digits,
30 s steps, the device's own throttling after failures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from email_validator import EmailNotValidError, validate_email

from postdesk.audit.choices import Action
from postdesk.audit.services import audit_record
from postdesk.errors import ErrorCollector, InvalidInput, PermissionDenied

from .access import Actor
from .choices import Role
from .models import Client, Membership, TotpDevice, User


def _client_name(name: str) -> str:
    clean = " ".join((name or "").split())
    if not clean:
        raise InvalidInput("client_name_required", _("Enter a client name."), "name")
    if len(clean) > 200:
        raise InvalidInput("client_name_too_long", _("Use at most 200 characters."), "name")
    return clean


def _client_exists(name: str) -> InvalidInput:
    return InvalidInput(
        "client_exists", _("A client named %(name)s already exists.") % {"name": name}, "name"
    )


def client_create(*, actor: Actor, name: str) -> Client:
    if not actor.is_operator:
        raise PermissionDenied(_("Only the provider can create client accounts."))
    clean = _client_name(name)
    try:
        with transaction.atomic():
            client = Client.objects.create(name=clean)
            audit_record(
                actor=actor, action=Action.CLIENT_CREATE, client_id=client.pk, target=clean
            )
    except IntegrityError:
        raise _client_exists(clean) from None
    return client


def user_create(*, actor: Actor, email: str, password: str, client: Client, role: str) -> User:
    """Create a login for a person and make them a member of the client with a role."""
    if not actor.is_operator:
        raise PermissionDenied(_("Only the provider can create users this way."))
    if role not in Role.values:
        raise InvalidInput(
            "role_invalid",
            _("Choose a role among: %(roles)s.") % {"roles": ", ".join(Role.values)},
            "role",
        )
    normalized = user_email_clean(email)
    user_password_check(password, User(email=normalized, username=normalized))
    try:
        with transaction.atomic():
            user = User.objects.create_user(normalized, password)
            Membership.objects.create(user=user, client=client, role=role)
            audit_record(
                actor=actor,
                action=Action.USER_CREATE,
                client_id=client.pk,
                target=normalized,
                changes={"role": role},
            )
    except IntegrityError:
        raise InvalidInput(
            "user_exists",
            _("A user with the address %(address)s already exists.") % {"address": normalized},
            "email",
        ) from None
    return user


# --- A client's life: the provider's provisioning -------------------------------------------
#
# The workflows that also touch mail and billing (provisioning a client with its first domain,
# suspension, termination) are in postdesk.workflows.clients; these are tenancy's own writes.


def _require_operator(actor: Actor) -> None:
    if not actor.is_operator:
        raise PermissionDenied(_("Only the provider can manage client accounts."))


def client_name_clean(name: str) -> str:
    """The name a new client would get (spaces collapsed), or the error that it cannot."""
    clean = _client_name(name)
    if Client.objects.filter(name__iexact=clean).exists():
        raise _client_exists(clean)
    return clean


def user_email_clean(value: str, field: str = "email") -> str:
    """A login's address, normalized (lower case), or the error that it is not one."""
    try:
        return validate_email(value or "", check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise InvalidInput(
            "email_invalid",
            _("“%(address)s” is not a valid email address.") % {"address": value},
            field,
        ) from None


def user_password_check(password: str, user: User, field: str = "password") -> None:
    """Refuse a password Django's validators refuse for this user (settings.py lists them)."""
    try:
        password_validation.validate_password(password, user)
    except ValidationError as error:
        raise InvalidInput("password_weak", " ".join(error.messages), field) from None


def client_owner_add(*, actor: Actor, client: Client, user: User, password: str | None) -> User:
    """Make an existing login an owner of the client. A login switched off when its last
    client was terminated comes back with `password` (its old one belongs to an account that
    ended); an active one keeps its password (`password` is then None)."""
    _require_operator(actor)
    with transaction.atomic():
        if not user.is_active:
            user.set_password(password)
            user.is_active = True
            user.save(update_fields=["password", "is_active"])
            audit_record(
                actor=actor, action=Action.USER_REACTIVATE, client_id=client.pk, target=user.email
            )
        Membership.objects.create(user=user, client=client, role=Role.OWNER)
        audit_record(
            actor=actor,
            action=Action.MEMBERSHIP_ADD,
            client_id=client.pk,
            target=user.email,
            changes={"role": Role.OWNER},
        )
    return user


def client_lock(client: Client) -> Client:
    """The client re-read under lock, inside the caller's transaction: suspensions and
    terminations of one client apply one after the other."""
    return Client.objects.select_for_update().get(pk=client.pk)


def client_suspension_set(*, actor: Actor, client: Client, suspended: bool) -> tuple[Client, bool]:
    """Mark the client suspended (from now) or active again; the data-plane views leave out a
    suspended client's domains from the commit on. Returns the client and whether it changed
    (suspending a suspended client changes nothing)."""
    _require_operator(actor)
    with transaction.atomic():
        locked = client_lock(client)
        if (locked.suspended_at is not None) == suspended:
            return locked, False
        if suspended:
            locked.suspended_at = timezone.now()
            locked.save(update_fields=["suspended_at"])
            audit_record(
                actor=actor, action=Action.CLIENT_SUSPEND, client_id=locked.pk, target=locked.name
            )
        else:
            since = locked.suspended_at
            locked.suspended_at = None
            locked.save(update_fields=["suspended_at"])
            audit_record(
                actor=actor,
                action=Action.CLIENT_UNSUSPEND,
                client_id=locked.pk,
                target=locked.name,
                changes={"suspended_at": since.isoformat()},
            )
    return locked, True


def client_termination_check(*, actor: Actor, client: Client, confirm: str) -> None:
    """Refuse a termination unless the provider asks for it and `confirm` repeats the
    client's name (case-insensitive), so a wrong id cannot terminate another customer."""
    _require_operator(actor)
    if " ".join((confirm or "").split()).casefold() != client.name.casefold():
        raise InvalidInput(
            "confirmation_required",
            _("To terminate this client, confirm with its name: %(name)s.") % {"name": client.name},
            "confirm",
        )


@dataclass(frozen=True)
class ClosedClient:
    name: str
    deactivated_users: list[str]


def client_close(*, actor: Actor, client: Client, changes: dict[str, Any]) -> ClosedClient:
    """Delete the client, its memberships and its plan history; users left without any
    membership are deactivated (their logins and API tokens stop working). Call once its
    domains are gone (workflows.clients.client_terminate). The audit log is kept, and the
    event `client.terminate` names the client's id with `changes`.
    """
    _require_operator(actor)
    with transaction.atomic():
        locked = client_lock(client)
        member_ids = list(
            Membership.objects.filter(client=locked).values_list("user_id", flat=True)
        )
        Membership.objects.filter(client=locked).delete()
        # The provider's own staff accounts are never switched off by a customer leaving.
        orphans = User.objects.filter(
            pk__in=member_ids, is_active=True, is_staff=False, is_superuser=False
        ).exclude(memberships__isnull=False)
        deactivated = sorted(orphans.values_list("email", flat=True))
        User.objects.filter(email__in=deactivated).update(is_active=False)
        client_id, name = locked.pk, locked.name
        locked.delete()
        # After the delete (which clears the client link of its events), so this event names
        # the client's id in `changes`: the operator can still find its history.
        audit_record(
            actor=actor,
            action=Action.CLIENT_TERMINATE,
            client_id=None,
            target=name,
            changes={"client_id": client_id, **changes, "deactivated_users": deactivated},
        )
    return ClosedClient(name=name, deactivated_users=deactivated)


# --- Account security: a user's own login ------------------------------------------------------

TOTP_DEVICE_NAME = "Authenticator app"


def _require_self(actor: Actor, user: User) -> None:
    # Only the user changes their own login: not an operator, not another member.
    if actor.user is None or actor.user.pk != user.pk:
        raise PermissionDenied(_("Only the account's owner can change its login."))


def _normalize_code(token: str) -> str:
    # Apps show the code as "123 456"; people paste it with spaces or dashes.
    return "".join(ch for ch in (token or "") if ch.isdigit())


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
                actor=actor, action=Action.ACCOUNT_TOTP_ENABLE, client_id=None, target=user.email
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
                actor=actor, action=Action.ACCOUNT_TOTP_DISABLE, client_id=None, target=user.email
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
        audit_record(
            actor=actor, action=Action.ACCOUNT_SESSIONS_END, client_id=None, target=user.email
        )


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
            actor=actor, action=Action.ACCOUNT_PASSWORD_CHANGE, client_id=None, target=user.email
        )
