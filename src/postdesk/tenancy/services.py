"""Writes to clients, users and memberships."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from email_validator import EmailNotValidError, validate_email

from postdesk.audit.services import audit_record
from postdesk.errors import InvalidInput, PermissionDenied

from .access import Actor
from .choices import Role
from .models import Client, Membership, User


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
            audit_record(actor=actor, action="client.create", client_id=client.pk, target=clean)
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
                action="user.create",
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
                actor=actor, action="user.reactivate", client_id=client.pk, target=user.email
            )
        Membership.objects.create(user=user, client=client, role=Role.OWNER)
        audit_record(
            actor=actor,
            action="membership.add",
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
                actor=actor, action="client.suspend", client_id=locked.pk, target=locked.name
            )
        else:
            since = locked.suspended_at
            locked.suspended_at = None
            locked.save(update_fields=["suspended_at"])
            audit_record(
                actor=actor,
                action="client.unsuspend",
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
            action="client.terminate",
            client_id=None,
            target=name,
            changes={"client_id": client_id, **changes, "deactivated_users": deactivated},
        )
    return ClosedClient(name=name, deactivated_users=deactivated)
