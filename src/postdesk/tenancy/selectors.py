"""Reads of clients, users and their accounts' history.

The audit log's page is here rather than in audit: who may read which events is an access
rule (a member of the client, any role; the operator, all), and audit sits below tenancy,
since every app's services record their events (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db.models import Q
from django.utils.translation import gettext as _

from postdesk.audit.models import AuditEvent
from postdesk.errors import NotFound
from postdesk.paging import Page, page_of

from .access import Actor, require_client_access, visible_clients_filter
from .models import Client, Membership, TotpDevice, User


class Domain(Protocol):
    """What the audit log needs of a domain (mail's Domain is one): its client and name."""

    @property
    def client_id(self) -> int: ...

    @property
    def name(self) -> str: ...


def client_get_by_name(*, actor: Actor, name: str) -> Client:
    """A client the actor may see, by name (case-insensitive; spaces collapsed)."""
    client = (
        Client.objects.filter(visible_clients_filter(actor))
        .filter(name__iexact=" ".join((name or "").split()))
        .first()
    )
    if client is None:
        raise NotFound(_("No client named %(name)s.") % {"name": name}, "client")
    return client


def user_get_by_email(email: str) -> User | None:
    """The login with this address (case-insensitive), active or not; None without one."""
    return User.objects.filter(email__iexact=email).first()


# --- Account security ---------------------------------------------------------------------------


def totp_enabled(user: User) -> bool:
    """Whether the user must give a TOTP code at login (one query)."""
    return TotpDevice.objects.filter(user=user, confirmed=True).exists()


def totp_pending_device(user: User) -> TotpDevice | None:
    """The device being set up (scanned, not yet confirmed with a code), if any."""
    return TotpDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()


def login_user(pk: int) -> User | None:
    """The user who passed the password step, for the code step (active users only)."""
    return User.objects.filter(pk=pk, is_active=True).first()


# --- The audit log -------------------------------------------------------------------------------
#
# Shared by the client area's audit page and the API. A user sees only the events of the
# clients they belong to (any role: the log changes nothing); the operator sees every event.
# Two queries per page (plus one membership check when a client or domain is named),
# whatever the size of the log.

AUDIT_MAX_PER_PAGE = 500


@dataclass(frozen=True)
class AuditPage(Page):
    """One page of events, newest first."""

    rows: list[AuditEvent]


def _visible_events(actor: Actor) -> Q:
    """The events the actor may read when no client or domain is named."""
    if actor.is_operator:
        return Q()
    if actor.user is None or not actor.user.is_active:
        return Q(pk__in=[])
    # A subquery, not a join: the page stays one query and the count another.
    return Q(
        client_id__in=Membership.objects.filter(user=actor.user, user__is_active=True).values(
            "client_id"
        )
    )


def audit_list(
    *,
    actor: Actor,
    client: Client | None = None,
    domain: Domain | None = None,
    page: int = 1,
    per_page: int | None = None,
) -> AuditPage:
    """A page of the audit log, newest first.

    With `domain`: that domain's events (kept by name, so they outlive objects deleted since).
    With `client`: that client's events, account-wide ones included (plan, users, suspension).
    With neither: every event of every client the actor may see (all of them for the
    operator). Another client's client or domain raises NotFound, as everywhere else. A page
    past the last one gives the last page.
    """
    per_page = max(1, min(int(per_page or settings.POSTDESK_PAGE_SIZE), AUDIT_MAX_PER_PAGE))
    events = AuditEvent.objects.all()
    if domain is not None:
        require_client_access(actor, domain.client_id, write=False)
        events = events.filter(client_id=domain.client_id, domain_name=domain.name)
    elif client is not None:
        require_client_access(actor, client.pk, write=False)
        events = events.filter(client_id=client.pk)
    else:
        events = events.filter(_visible_events(actor))
    if client is not None and domain is not None and domain.client_id != client.pk:
        events = events.none()
    found = page_of(events.order_by("-at", "-pk"), page=page, per_page=per_page)
    return AuditPage(rows=found.rows, total=found.total, page=found.page, per_page=found.per_page)
