"""Reads of the API area: token owners and lists, and the provisioning views of a client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from postdesk.billing.estimate import Estimate
from postdesk.billing.models import ClientPlan
from postdesk.billing.selectors import billing_estimates
from postdesk.billing.services import resolve_at
from postdesk.errors import NotFound, PermissionDenied
from postdesk.mail.models import Domain
from postdesk.tenancy.access import Actor
from postdesk.tenancy.models import Client, User

from .models import ApiToken


def token_owner_get(*, actor: Actor, email: str) -> User:
    """The user a personal token is for: the operator names anyone, a user only themself."""
    wanted = (email or "").strip()
    user = User.objects.filter(email__iexact=wanted).first()
    if user is None or (not actor.is_operator and actor.user != user):
        raise NotFound(_("No user %(address)s.") % {"address": wanted}, "email")
    return user


def token_list(*, actor: Actor) -> QuerySet[ApiToken]:
    """The operator sees every token; a user, their own. One query."""
    tokens = ApiToken.objects.select_related("user").order_by("-created_at", "prefix")
    if actor.is_operator:
        return tokens
    if actor.user is None:
        raise PermissionDenied(_("Sign in to see your API tokens."))
    return tokens.filter(user=actor.user)


# --- Provisioning ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientOverview:
    client: Client
    domains: list[str]
    plan: str | None


def provisioning_client_get(*, actor: Actor, client_id: int) -> Client:
    """A client by id, for the provider's billing system (operator only)."""
    if not actor.is_operator:
        raise PermissionDenied(_("Only the provider can manage client accounts."))
    client = Client.objects.filter(pk=client_id).first()
    if client is None:
        raise NotFound(_("No client %(id)s.") % {"id": client_id}, "client_id")
    return client


def client_overview(*, actor: Actor, client: Client) -> ClientOverview:
    """The client's domains and the plan in force now: two queries."""
    if not actor.is_operator:
        raise PermissionDenied(_("Only the provider can manage client accounts."))
    domains = list(
        Domain.objects.filter(client=client).order_by("name").values_list("name", flat=True)
    )
    plan = (
        ClientPlan.objects.filter(client=client, starts_at__lte=timezone.now())
        .order_by("-starts_at")
        .values_list("plan__name", flat=True)
        .first()
    )
    return ClientOverview(client=client, domains=domains, plan=plan)


@dataclass(frozen=True)
class DomainEstimate:
    domain: str
    estimate: Estimate


@dataclass(frozen=True)
class UsageReport:
    at: datetime
    lines: list[DomainEstimate]


def client_usage_report(*, actor: Actor, client: Client, at: datetime | None = None) -> UsageReport:
    """The billing estimate of each of the client's domains for the cycle containing `at`
    (default now): one query for the domains, then three for all their estimates, whatever
    the number of domains."""
    if not actor.is_operator:
        raise PermissionDenied(_("Only the provider can see usage reports."))
    at = resolve_at(at)
    domains = list(Domain.objects.filter(client=client).order_by("name"))
    estimates = billing_estimates(actor=actor, client_id=client.pk, domains=domains, at=at)
    return UsageReport(
        at=at,
        lines=[
            DomainEstimate(domain=d.name, estimate=e)
            for d, e in zip(domains, estimates, strict=True)
        ],
    )
