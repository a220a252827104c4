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
from postdesk.errors import ErrorCollector, InvalidInput, PermissionDenied

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


# --- Provisioning (the provider's billing system) ----------------------------------------------


def _require_operator(actor: Actor) -> None:
    if not actor.is_operator:
        raise PermissionDenied(_("Only the provider can manage client accounts."))


@dataclass(frozen=True)
class ProvisionedClient:
    client: Client
    owner: User
    domain: Any  # postdesk.mail.models.Domain
    # The owner's password when it was generated here: shown once, never stored in clear.
    owner_password: str | None
    # False when the owner already had an active login (for another client): it is kept
    # unchanged. True for a new login, or one switched off by a termination and now back.
    owner_created: bool


def _owner_email(value: str, errors: ErrorCollector) -> str | None:
    try:
        return validate_email(value or "", check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        errors.add(
            InvalidInput(
                "email_invalid",
                _("“%(address)s” is not a valid email address.") % {"address": value},
                "owner_email",
            )
        )
        return None


def client_provision(
    *,
    actor: Actor,
    name: str,
    owner_email: str,
    domain: str,
    owner_password: str | None = None,
    plan: str | None = None,
) -> ProvisionedClient:
    """A new client with its first owner, its first domain and, optionally, its plan (from
    now), in one transaction: all of it or nothing.

    The owner is a new login, or an existing active one (a customer buying a second service),
    who then keeps their password. A new owner, or a login switched off by an earlier
    termination (reactivated), gets `owner_password`, or a generated one (returned once in
    the result). Every invalid field is reported at once.
    """
    # Imported here: mail and billing import tenancy, not the other way round at load time.
    from postdesk.billing.selectors import plan_get
    from postdesk.billing.services import client_set_plan
    from postdesk.mail.addresses import normalize_domain_name
    from postdesk.mail.models import Domain
    from postdesk.mail.passwords import generate_password
    from postdesk.mail.services import domain_add

    _require_operator(actor)
    errors = ErrorCollector()
    clean_name = " ".join((name or "").split())
    if not clean_name:
        errors.add(InvalidInput("client_name_required", _("Enter a client name."), "name"))
    elif len(clean_name) > 200:
        errors.add(InvalidInput("client_name_too_long", _("Use at most 200 characters."), "name"))
    elif Client.objects.filter(name__iexact=clean_name).exists():
        errors.add(
            InvalidInput(
                "client_exists",
                _("A client named %(name)s already exists.") % {"name": clean_name},
                "name",
            )
        )
    email = _owner_email(owner_email, errors)
    existing = User.objects.filter(email__iexact=email).first() if email else None
    # A login switched off when its last client was terminated comes back with a new password:
    # its old one belongs to an account that ended.
    fresh = existing is None or not existing.is_active
    domain_name = errors.check(normalize_domain_name, domain, field="domain")
    if domain_name and Domain.objects.filter(name=domain_name).exists():
        errors.add(
            InvalidInput(
                "domain_taken",
                _("%(domain)s is already hosted here.") % {"domain": domain_name},
                "domain",
            )
        )
    chosen_plan = None
    if plan is not None:
        chosen_plan = errors.check(plan_get, actor=actor, name=plan)
    if email and fresh and owner_password is not None:
        candidate = existing or User(email=email, username=email)
        try:
            password_validation.validate_password(owner_password, candidate)
        except ValidationError as error:
            errors.add(InvalidInput("password_weak", " ".join(error.messages), "owner_password"))
    errors.raise_if_any()

    generated = None
    if fresh and owner_password is None:
        local, _at, host = email.partition("@")
        generated = generate_password(username=local, domain=host)
    with transaction.atomic():
        client = client_create(actor=actor, name=clean_name)
        if existing is None:
            owner = user_create(
                actor=actor,
                email=email,
                password=owner_password if owner_password is not None else generated,
                client=client,
                role=Role.OWNER,
            )
        else:
            owner = existing
            if fresh:
                owner.set_password(owner_password if owner_password is not None else generated)
                owner.is_active = True
                owner.save(update_fields=["password", "is_active"])
                audit_record(
                    actor=actor, action="user.reactivate", client_id=client.pk, target=owner.email
                )
            Membership.objects.create(user=owner, client=client, role=Role.OWNER)
            audit_record(
                actor=actor,
                action="membership.add",
                client_id=client.pk,
                target=owner.email,
                changes={"role": Role.OWNER},
            )
        new_domain = domain_add(actor=actor, client=client, name=domain_name)
        if chosen_plan is not None:
            client_set_plan(actor=actor, client=client, plan=chosen_plan)
    return ProvisionedClient(
        client=client,
        owner=owner,
        domain=new_domain,
        owner_password=generated,
        owner_created=fresh,
    )


def _kick_client_sessions(client_id: int) -> None:
    """Disconnect the open IMAP/POP sessions of every mailbox of the client's domains (a
    task per domain, queued in the caller's transaction; `*@domain` is a doveadm mask)."""
    from postdesk.dataplane.tasks import mailbox_sessions_kick
    from postdesk.mail.models import Domain

    for name in Domain.objects.filter(client_id=client_id).values_list("name", flat=True):
        mailbox_sessions_kick.enqueue(f"*@{name}")


def client_suspend(*, actor: Actor, client: Client) -> Client:
    """Stop the client's mail service, deleting nothing: from the commit on, the data-plane
    views leave out the client's domains, so their mail is refused and mailbox logins fail;
    open sessions are disconnected. Suspending a suspended client changes nothing."""
    _require_operator(actor)
    with transaction.atomic():
        locked = Client.objects.select_for_update().get(pk=client.pk)
        if locked.suspended_at is None:
            locked.suspended_at = timezone.now()
            locked.save(update_fields=["suspended_at"])
            _kick_client_sessions(locked.pk)
            audit_record(
                actor=actor, action="client.suspend", client_id=locked.pk, target=locked.name
            )
    return locked


def client_unsuspend(*, actor: Actor, client: Client) -> Client:
    """Serve the client's mail again, as it was. Unsuspending an active client changes nothing."""
    _require_operator(actor)
    with transaction.atomic():
        locked = Client.objects.select_for_update().get(pk=client.pk)
        if locked.suspended_at is not None:
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
    return locked


@dataclass(frozen=True)
class TerminatedClient:
    name: str
    domains: list[str]
    mailboxes: int
    deactivated_users: list[str]


def client_terminate(*, actor: Actor, client: Client, confirm: str) -> TerminatedClient:
    """Remove the client for good: its domains with every mailbox, alias, forward, DKIM key
    and DNS status, its memberships, its plan history, and the client itself. Users left
    without any membership are deactivated (their logins and API tokens stop working);
    mailbox storage is removed on the mail servers in the background. The audit log is kept.

    `confirm` must repeat the client's name (case-insensitive), so a wrong id cannot
    terminate another customer.
    """
    from postdesk.dataplane.tasks import mailbox_storage_remove
    from postdesk.mail.models import Domain, Mailbox

    _require_operator(actor)
    if " ".join((confirm or "").split()).casefold() != client.name.casefold():
        raise InvalidInput(
            "confirmation_required",
            _("To terminate this client, confirm with its name: %(name)s.") % {"name": client.name},
            "confirm",
        )
    with transaction.atomic():
        locked = Client.objects.select_for_update().get(pk=client.pk)
        domains = list(Domain.objects.filter(client=locked).order_by("name"))
        storages = list(
            Mailbox.objects.filter(address__domain__client=locked).values_list(
                "address__domain__name", "storage_id"
            )
        )
        _kick_client_sessions(locked.pk)
        for domain_name, storage_id in storages:
            mailbox_storage_remove.enqueue(domain_name, storage_id.hex)
        member_ids = list(
            Membership.objects.filter(client=locked).values_list("user_id", flat=True)
        )
        Domain.objects.filter(client=locked).delete()
        Membership.objects.filter(client=locked).delete()
        # The provider's own staff accounts are never switched off by a customer leaving.
        orphans = User.objects.filter(
            pk__in=member_ids, is_active=True, is_staff=False, is_superuser=False
        ).exclude(memberships__isnull=False)
        deactivated = sorted(orphans.values_list("email", flat=True))
        User.objects.filter(email__in=deactivated).update(is_active=False)
        result = TerminatedClient(
            name=locked.name,
            domains=[d.name for d in domains],
            mailboxes=len(storages),
            deactivated_users=deactivated,
        )
        client_id = locked.pk
        locked.delete()
        # After the delete (which clears the client link of its events), so this event names
        # the client's id in `changes`: the operator can still find its history.
        audit_record(
            actor=actor,
            action="client.terminate",
            client_id=None,
            target=result.name,
            changes={
                "client_id": client_id,
                "domains": result.domains,
                "mailboxes": result.mailboxes,
                "deactivated_users": deactivated,
            },
        )
    return result
