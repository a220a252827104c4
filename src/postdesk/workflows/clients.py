"""A client's life, as the provider's billing system drives it: provisioning, suspension,
termination. Each step is the owning app's service, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext as _

from postdesk.billing.selectors import plan_get
from postdesk.billing.services import client_set_plan
from postdesk.dns.tasks import dkim_keys_deploy_to_signers
from postdesk.errors import ErrorCollector, PermissionDenied
from postdesk.mail.models import Domain
from postdesk.mail.passwords import generate_password
from postdesk.mail.services import (
    client_domains_remove,
    client_sessions_kick,
    domain_add,
    domain_name_clean,
)
from postdesk.tenancy.access import Actor
from postdesk.tenancy.choices import Role
from postdesk.tenancy.models import Client, User
from postdesk.tenancy.selectors import user_get_by_email
from postdesk.tenancy.services import (
    client_close,
    client_create,
    client_lock,
    client_name_clean,
    client_owner_add,
    client_suspension_set,
    client_termination_check,
    user_create,
    user_email_clean,
    user_password_check,
)


def _require_operator(actor: Actor) -> None:
    if not actor.is_operator:
        raise PermissionDenied(_("Only the provider can manage client accounts."))


@dataclass(frozen=True)
class ProvisionedClient:
    client: Client
    owner: User
    domain: Domain
    # The owner's password when it was generated here: shown once, never stored in clear.
    owner_password: str | None
    # False when the owner already had an active login (for another client): it is kept
    # unchanged. True for a new login, or one switched off by a termination and now back.
    owner_created: bool


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
    _require_operator(actor)
    errors = ErrorCollector()
    clean_name = errors.check(client_name_clean, name)
    email = errors.check(user_email_clean, owner_email, "owner_email")
    existing = user_get_by_email(email) if email else None
    # A login switched off when its last client was terminated comes back with a new password:
    # its old one belongs to an account that ended.
    fresh = existing is None or not existing.is_active
    domain_name = errors.check(domain_name_clean, domain)
    chosen_plan = None
    if plan is not None:
        chosen_plan = errors.check(plan_get, actor=actor, name=plan)
    if email and fresh and owner_password is not None:
        candidate = existing or User(email=email, username=email)
        errors.check(user_password_check, owner_password, candidate, "owner_password")
    errors.raise_if_any()

    generated = None
    if fresh and owner_password is None:
        local, _at, host = email.partition("@")
        generated = generate_password(username=local, domain=host)
    password = owner_password if owner_password is not None else generated
    with transaction.atomic():
        client = client_create(actor=actor, name=clean_name)
        if existing is None:
            owner = user_create(
                actor=actor, email=email, password=password, client=client, role=Role.OWNER
            )
        else:
            owner = client_owner_add(
                actor=actor, client=client, user=existing, password=password if fresh else None
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


def client_suspend(*, actor: Actor, client: Client) -> Client:
    """Stop the client's mail service, deleting nothing: from the commit on, the data-plane
    views leave out the client's domains, so their mail is refused and mailbox logins fail;
    open sessions are disconnected and its domains are no longer signed. Suspending a
    suspended client changes nothing."""
    with transaction.atomic():
        client, changed = client_suspension_set(actor=actor, client=client, suspended=True)
        if changed:
            client_sessions_kick(client_id=client.pk)
            dkim_keys_deploy_to_signers()
    return client


def client_unsuspend(*, actor: Actor, client: Client) -> Client:
    """Serve the client's mail again, as it was (DKIM signing included). Unsuspending an
    active client changes nothing."""
    with transaction.atomic():
        client, changed = client_suspension_set(actor=actor, client=client, suspended=False)
        if changed:
            dkim_keys_deploy_to_signers()
    return client


@dataclass(frozen=True)
class TerminatedClient:
    name: str
    domains: list[str]
    mailboxes: int
    deactivated_users: list[str]


def client_terminate(*, actor: Actor, client: Client, confirm: str) -> TerminatedClient:
    """Remove the client for good: its domains with every mailbox, alias, forward, DKIM key
    and DNS status (each mailbox as its deletion would: EAS/MAPI periods end and storage
    drops to 0 now, so billing keeps a complete history of the final cycle; sessions are
    disconnected and storage removed on the mail servers in the background), its
    memberships, its plan history, and the client itself. Users left without any membership
    are deactivated. The audit log is kept.

    `confirm` must repeat the client's name (case-insensitive), so a wrong id cannot
    terminate another customer.
    """
    client_termination_check(actor=actor, client=client, confirm=confirm)
    with transaction.atomic():
        locked = client_lock(client)
        removed = client_domains_remove(actor=actor, client=locked)
        # Its keys are gone: the signer must stop signing its domains.
        dkim_keys_deploy_to_signers()
        closed = client_close(
            actor=actor,
            client=locked,
            changes={"domains": removed.domains, "mailboxes": removed.mailboxes},
        )
    return TerminatedClient(
        name=closed.name,
        domains=removed.domains,
        mailboxes=removed.mailboxes,
        deactivated_users=closed.deactivated_users,
    )
