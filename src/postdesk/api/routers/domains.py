"""Domains and their address list."""

from __future__ import annotations

from typing import Literal

from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router

from postdesk.mail import selectors
from postdesk.mail.models import Domain

from ..schemas import AddressPageOut, DomainOut, DomainPage, ErrorOut

router = Router(tags=["domains"])

MAX_PER_PAGE = 500
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}


def _domain(domain: Domain) -> dict:
    return {"name": domain.name, "client": domain.client.name, "created_at": domain.created_at}


@router.get("/domains", response={200: DomainPage, **ERRORS})
def domain_list(
    request: HttpRequest,
    page: int = Query(1, ge=1),
    per_page: int = Query(100, ge=1, le=MAX_PER_PAGE),
):
    """The domains of every client you belong to, by name."""
    domains = selectors.domain_list(actor=request.auth)
    start = (page - 1) * per_page
    return {
        "items": [_domain(d) for d in domains[start : start + per_page]],
        "total": domains.count(),
        "page": page,
        "per_page": per_page,
    }


@router.get("/domains/{domain}", response={200: DomainOut, **ERRORS})
def domain_detail(request: HttpRequest, domain: str):
    found = selectors.domain_get(actor=request.auth, name=domain)
    return _domain(found)


@router.get("/domains/{domain}/addresses", response={200: AddressPageOut, **ERRORS})
def address_list(
    request: HttpRequest,
    domain: str,
    search: str = Query(
        "", max_length=254, description="Part of an address, alias or destination."
    ),
    type: Literal["all", "mailbox", "forward"] = Query("all"),
    sort: Literal["address", "storage", "storage_asc"] = Query(
        "address", description="storage: largest first."
    ),
    page: int = Query(1, ge=1, description="Past the last page: the last page."),
    per_page: int | None = Query(None, ge=1, le=MAX_PER_PAGE, description="Default: 50."),
):
    """The domain's mailboxes and forwards, as on the dashboard."""
    found = selectors.domain_get(actor=request.auth, name=domain)
    result = selectors.address_list(
        actor=request.auth,
        domain=found,
        search=search,
        type=type,
        sort=sort,
        page=page,
        per_page=per_page or settings.POSTDESK_PAGE_SIZE,
    )
    return {
        "items": [row.as_dict() for row in result.rows],
        "total": result.total,
        "page": result.page,
        "per_page": result.per_page,
        "num_pages": result.num_pages,
    }
