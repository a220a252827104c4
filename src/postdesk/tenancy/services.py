"""Writes to clients, users and memberships."""

from __future__ import annotations

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from email_validator import EmailNotValidError, validate_email

from postdesk.audit.services import audit_record
from postdesk.errors import InvalidInput, PermissionDenied

from .access import Actor
from .choices import Role
from .models import Client, Membership, User


def client_create(*, actor: Actor, name: str) -> Client:
    if not actor.is_operator:
        raise PermissionDenied(_("Only the provider can create client accounts."))
    clean = " ".join((name or "").split())
    if not clean:
        raise InvalidInput("client_name_required", _("Enter a client name."), "name")
    if len(clean) > 200:
        raise InvalidInput("client_name_too_long", _("Use at most 200 characters."), "name")
    try:
        with transaction.atomic():
            client = Client.objects.create(name=clean)
            audit_record(actor=actor, action="client.create", client_id=client.pk, target=clean)
    except IntegrityError:
        raise InvalidInput(
            "client_exists", _("A client named %(name)s already exists.") % {"name": clean}, "name"
        ) from None
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
    try:
        normalized = validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise InvalidInput(
            "email_invalid",
            _("“%(address)s” is not a valid email address.") % {"address": email},
            "email",
        ) from None
    candidate = User(email=normalized, username=normalized)
    try:
        password_validation.validate_password(password, candidate)
    except ValidationError as error:
        raise InvalidInput("password_weak", " ".join(error.messages), "password") from None
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
