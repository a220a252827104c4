"""Domains: their address list, usage, billing estimate and audit log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router
from ninja.responses import NinjaJSONEncoder

from postdesk.billing import selectors as billing_selectors
from postdesk.mail import selectors
from postdesk.mail.models import Domain
from postdesk.tenancy import selectors as audit_selectors

from ..schemas import (
    CHECKED_ERRORS,
    AddressPageOut,
    AuditPageOut,
    DomainOut,
    DomainPage,
    EstimateOut,
    UsageOut,
)

# The billing cycle to show, by a moment inside it.
AT_QUERY = Query(None, description="ISO 8601 with a zone; default now. The cycle that contains it.")
router = Router(tags=["domains"])

MAX_PER_PAGE = 500


def audit_page_out(result: audit_selectors.AuditPage) -> dict:
    return {
        "items": [
            {
                "at": event.at,
                "actor": event.actor_label,
                "source": event.source,
                "ip": event.ip,
                "action": event.action,
                "domain": event.domain_name,
                "target": event.target,
                "changes": event.changes,
            }
            for event in result.rows
        ],
        "total": result.total,
        "page": result.page,
        "per_page": result.per_page,
        "num_pages": result.num_pages,
    }


def already_valid(payload: dict) -> HttpResponse:
    """`payload` as JSON, the way Ninja renders it, but without Ninja validating it against
    the operation's response schema first: for a page of rows built from typed selector
    rows that already have the schema's shape. Ninja's check walks every field of every row
    (500 attribute reads a page of 50: a fifth of the request); the schema tests
    (tests/api/test_schema_fuzz.py) check the shape instead."""
    return HttpResponse(
        json.dumps(payload, cls=NinjaJSONEncoder), content_type="application/json; charset=utf-8"
    )


def _domain(domain: Domain) -> dict:
    return {"name": domain.name, "client": domain.client.name, "created_at": domain.created_at}


@router.get("/domains", response={200: DomainPage, **CHECKED_ERRORS})
def domain_list(
    request: HttpRequest,
    page: int = Query(1, ge=1, description="Past the last page: the last page."),
    per_page: int = Query(100, ge=1, le=MAX_PER_PAGE),
):
    """The domains of every client you belong to, by name."""
    found = selectors.domain_page(actor=request.auth, page=page, per_page=per_page)
    return {
        "items": [_domain(d) for d in found.rows],
        "total": found.total,
        "page": found.page,
        "per_page": found.per_page,
    }


@router.get("/domains/{domain}", response={200: DomainOut, **CHECKED_ERRORS})
def domain_detail(request: HttpRequest, domain: str):
    found = selectors.domain_get(actor=request.auth, name=domain)
    return _domain(found)


@router.get("/domains/{domain}/addresses", response={200: AddressPageOut, **CHECKED_ERRORS})
def address_list(
    request: HttpRequest,
    domain: str,
    search: str = Query(
        "", max_length=254, description="Part of an address, alias or destination."
    ),
    type: Literal["all", "mailbox", "forward"] = Query("all"),
    sort: Literal["address", "storage", "storage_asc", "growth"] = Query(
        "address",
        description="storage: largest first; growth: the most bytes gained over 7 days first.",
    ),
    page: int = Query(1, ge=1, description="Past the last page: the last page."),
    per_page: int | None = Query(None, ge=1, le=MAX_PER_PAGE, description="Default: 50."),
    cursor: str | None = Query(
        None,
        max_length=1000,
        description=(
            "A page's `next` or `previous`, with the same search, type and sort: that page, "
            "as fast however deep (`page` is then ignored)."
        ),
    ),
):
    """The domain's mailboxes and forwards, as on the dashboard."""
    _domain, result = selectors.domain_with_address_list(
        actor=request.auth,
        name=domain,
        search=search,
        type=type,
        sort=sort,
        page=page,
        per_page=per_page or settings.POSTDESK_PAGE_SIZE,
        cursor=cursor,
    )
    return already_valid(
        {
            "items": [row.as_dict() for row in result.rows],
            "total": result.total,
            "page": result.page,
            "per_page": result.per_page,
            "num_pages": result.num_pages,
            "next": result.next_cursor,
            "previous": result.previous_cursor,
        }
    )


@router.get("/domains/{domain}/usage", response={200: UsageOut, **CHECKED_ERRORS})
def domain_usage(request: HttpRequest, domain: str):
    """The dashboard's statistics: disk used, mailboxes, aliases, forwards, EAS and MAPI."""
    found = selectors.domain_get(actor=request.auth, name=domain)
    return selectors.domain_summary(actor=request.auth, domain=found).__dict__


@router.get("/domains/{domain}/estimate", response={200: EstimateOut, **CHECKED_ERRORS})
def domain_estimate(
    request: HttpRequest,
    domain: str,
    at: datetime | None = AT_QUERY,
):
    """The estimated bill of the billing cycle: accrued so far, projected to its end, lines.
    400 `no_plan` until the provider has put your account on a plan."""
    found = selectors.domain_get(actor=request.auth, name=domain)
    return billing_selectors.billing_estimate(actor=request.auth, domain=found, at=at).as_dict()


@router.get("/domains/{domain}/audit", response={200: AuditPageOut, **CHECKED_ERRORS})
def domain_audit(
    request: HttpRequest,
    domain: str,
    page: int = Query(1, ge=1, description="Past the last page: the last page."),
    per_page: int = Query(50, ge=1, le=MAX_PER_PAGE),
):
    """What changed on the domain, by whom, from where: newest first."""
    found = selectors.domain_get(actor=request.auth, name=domain)
    result = audit_selectors.audit_list(
        actor=request.auth, domain=found, page=page, per_page=per_page
    )
    return audit_page_out(result)
