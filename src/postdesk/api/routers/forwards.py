"""Standalone forwards."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Status

from postdesk.mail import selectors, services
from postdesk.mail.models import Forward
from postdesk.mail.selectors import forward_detail_of

from ..schemas import READ_ERRORS, WRITE_ERRORS, ForwardCreateIn, ForwardOut, ForwardUpdateIn

router = Router(tags=["forwards"])


def forward_out(request: HttpRequest, forward: Forward) -> dict:
    """The forward as the address list shows it, with its times."""
    detail = forward_detail_of(actor=request.auth, forward=forward)
    return {
        "address": detail.row.address,
        "destinations": detail.row.destinations,
        "created_at": forward.created_at,
        "updated_at": forward.updated_at,
    }


@router.post("/domains/{domain}/forwards", response={201: ForwardOut, **WRITE_ERRORS})
def forward_create(request: HttpRequest, domain: str, payload: ForwardCreateIn):
    found = selectors.domain_get(actor=request.auth, name=domain)
    forward = services.forward_create(
        actor=request.auth, domain=found, name=payload.name, destinations=payload.destinations
    )
    return Status(201, forward_out(request, forward))


@router.get("/forwards/{address}", response={200: ForwardOut, **READ_ERRORS})
def forward_detail(request: HttpRequest, address: str):
    return forward_out(request, selectors.forward_get(actor=request.auth, address=address))


@router.put("/forwards/{address}", response={200: ForwardOut, **WRITE_ERRORS})
def forward_update(request: HttpRequest, address: str, payload: ForwardUpdateIn):
    """Replace the forward's destinations."""
    forward = selectors.forward_get(actor=request.auth, address=address)
    updated = services.forward_update(
        actor=request.auth, forward=forward, destinations=payload.destinations
    )
    return forward_out(request, updated)


@router.delete("/forwards/{address}", response={204: None, **WRITE_ERRORS})
def forward_delete(request: HttpRequest, address: str):
    forward = selectors.forward_get(actor=request.auth, address=address)
    services.forward_delete(actor=request.auth, forward=forward)
    return Status(204, None)
