"""Reads of the audit log: what changed, by whom, when and from where.

Shared by the client area's audit page and the API. A user sees only the events of the
clients they belong to (any role: the log changes nothing); the operator sees every event.
Two queries per page (plus one membership check when a client or domain is named),
whatever the size of the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q

from postdesk.tenancy.access import Actor, require_client_access
from postdesk.tenancy.models import Membership

from .models import AuditEvent

if TYPE_CHECKING:
    from postdesk.mail.models import Domain
    from postdesk.tenancy.models import Client

MAX_PER_PAGE = 500


@dataclass(frozen=True)
class AuditPage:
    """One page of events, newest first (the same shape as mail.selectors.AddressPage)."""

    rows: list[AuditEvent]
    total: int
    page: int
    per_page: int

    @property
    def num_pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.num_pages

    @property
    def has_previous(self) -> bool:
        return self.page > 1


def _visible(actor: Actor) -> Q:
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
    per_page = max(1, min(int(per_page or settings.POSTDESK_PAGE_SIZE), MAX_PER_PAGE))
    events = AuditEvent.objects.all()
    if domain is not None:
        require_client_access(actor, domain.client_id, write=False)
        events = events.filter(client_id=domain.client_id, domain_name=domain.name)
    elif client is not None:
        require_client_access(actor, client.pk, write=False)
        events = events.filter(client_id=client.pk)
    else:
        events = events.filter(_visible(actor))
    if client is not None and domain is not None and domain.client_id != client.pk:
        events = events.none()
    total = events.count()
    page = max(1, min(int(page), max(1, -(-total // per_page))))
    start = (page - 1) * per_page
    rows = list(events.order_by("-at", "-pk")[start : start + per_page])
    return AuditPage(rows=rows, total=total, page=page, per_page=per_page)
