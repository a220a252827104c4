"""Who may act on which client.

Every service takes an Actor. The operator (the hosting provider: the `postdesk` CLI and
provisioning tokens) acts for every client; a user acts only for the clients they belong to,
and only owners and admins may change anything. Another client's objects are reported as
not found, so their existence is not disclosed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import models
from django.utils.translation import gettext as _

from postdesk.errors import NotFound, PermissionDenied

from .choices import WRITE_ROLES, Role
from .models import Membership, User, login_name


class Source(models.TextChoices):
    CLI = "cli", "CLI"
    WEB = "web", "Web"
    API = "api", "API"
    SYSTEM = "system", "System"


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where: for access checks and the audit log."""

    source: str
    user: User | None = None
    ip: str | None = None
    operator_name: str | None = None
    # Per client, as read once for this actor: the role, and whether the client is suspended.
    _roles: dict[int, str] = field(default_factory=dict, compare=False, repr=False)
    _suspended: dict[int, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def operator(cls, name: str, source: str = Source.CLI, ip: str | None = None) -> Actor:
        return cls(source=source, operator_name=name, ip=ip)

    @classmethod
    def for_user(cls, user: User, source: str, ip: str | None = None) -> Actor:
        return cls(source=source, user=user, ip=ip)

    @property
    def is_operator(self) -> bool:
        return self.operator_name is not None

    @property
    def label(self) -> str:
        if self.user is not None:
            return self.user.email
        return f"operator:{self.operator_name}"


def role_for(actor: Actor, client_id: int) -> str | None:
    """The actor's role on a client, or None when they do not belong to it."""
    if actor.is_operator:
        return Role.OWNER
    if actor.user is None or not actor.user.is_active:
        return None
    if client_id not in actor._roles:
        role, suspended_at = (
            Membership.objects.filter(user=actor.user, client_id=client_id)
            .values_list("role", "client__suspended_at")
            .first()
        ) or (None, None)
        remember_role(actor, client_id, role, suspended_at)
    return actor._roles[client_id]


def remember_role(actor: Actor, client_id: int, role: str | None, suspended_at: object) -> None:
    """Keep the actor's role on a client and the client's suspension (its `suspended_at`),
    read along with something else (`with_role_of_user`): role_for then reads no more."""
    actor._roles[client_id] = role
    actor._suspended[client_id] = suspended_at is not None


# The names `with_role_of_user` annotates a read with: the role, the client's suspended_at.
ROLE_READ = ("actor_role", "actor_client_suspended_at")


def with_role_of_user(rows: models.QuerySet, user_id: int, client_field: str) -> models.QuerySet:
    """`rows` (objects of one client each, at `client_field`) with the user's role on their
    client read along (ROLE_READ), for `remember_role`: a page's first read (the domain it
    shows) then needs no second query for its access check."""
    membership = Membership.objects.filter(user_id=user_id, client_id=models.OuterRef(client_field))
    role, suspended_at = ROLE_READ
    return rows.annotate(
        **{
            role: models.Subquery(membership.values("role")[:1]),
            suspended_at: models.Subquery(membership.values("client__suspended_at")[:1]),
        }
    )


def suspended_for(actor: Actor, client_id: int) -> bool:
    """Whether the client's area is read-only for the actor: a suspended client's users may
    look, not change (the provider's operator still may). Read with the role: no query."""
    if actor.is_operator or role_for(actor, client_id) is None:
        return False
    return actor._suspended[client_id]


def suspension_seen(actor: Actor) -> bool:
    """Whether a client the actor has looked at so far is suspended (what was read: no query)."""
    return any(actor._suspended.values())


def may_write(actor: Actor, client_id: int) -> bool:
    """Whether the actor may change the client's objects (what the pages offer)."""
    return role_for(actor, client_id) in WRITE_ROLES and not suspended_for(actor, client_id)


def require_client_access(
    actor: Actor, client_id: int, *, write: bool, not_found_message: str | None = None
) -> str:
    """Raise unless the actor may see (and, with write, change) the client's objects."""
    role = role_for(actor, client_id)
    if role is None:
        raise NotFound(not_found_message or _("Not found."))
    if write and role not in WRITE_ROLES:
        raise PermissionDenied(_("Your role on this account only allows viewing."))
    if write and suspended_for(actor, client_id):
        raise PermissionDenied(
            _(
                "This account is suspended: nothing can be changed until it is reactivated. "
                "Contact your hosting provider."
            ),
            code="client_suspended",
        )
    return role


def visible_clients_filter(actor: Actor, prefix: str = "") -> models.Q:
    """A filter that keeps only the rows of clients the actor may see."""
    if actor.is_operator:
        return models.Q()
    if actor.user is None:
        return models.Q(pk__in=[])
    return models.Q(
        **{f"{prefix}memberships__user": actor.user, f"{prefix}memberships__user__is_active": True}
    )


def lockout_username(request: object, credentials: dict | None) -> str:
    """The login the lockout counts failures against (AXES_USERNAME_CALLABLE): as typed, in
    any case, it is one login, so "Owner@…" and "owner@…" share one count."""
    if credentials:
        return login_name(credentials.get("username"))
    data = getattr(request, "POST", {})
    return login_name(data.get("username"))
