"""Your own account: your personal API tokens, and the audit log of your clients."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router, Status

from postdesk.api import selectors, services
from postdesk.api.models import ApiToken
from postdesk.mail.selectors import domain_get
from postdesk.tenancy import selectors as audit_selectors

from ..auth import personal_token_auth, presented_token
from ..schemas import (
    CHECKED_ERRORS,
    AuditPageOut,
    PingOut,
    TokenCreatedOut,
    TokenCreateIn,
    TokenListOut,
)
from .domains import MAX_PER_PAGE, audit_page_out

router = Router(tags=["account"])

# Managing your own tokens changes nothing of a client's: any role may, with a write token.
PERSONAL = {"x-postdesk-scope": "personal"}


def token_out(token: ApiToken) -> dict:
    if token.revoked_at:
        state = "revoked"
    elif token.expires_at and token.expires_at <= timezone.now():
        state = "expired"
    else:
        state = "active"
    return {
        "prefix": token.prefix,
        "scope": token.scope,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
        "state": state,
    }


@router.get("/ping", response={200: PingOut, **CHECKED_ERRORS})
def ping(request: HttpRequest):
    """`{"ok": true}` for any valid token, reading nothing else: whether a token works, and
    the floor `bench/floor.py` measures every other request against (the same middleware,
    the same token check, no work of its own)."""
    return {"ok": True}


@router.get(
    "/tokens",
    response={200: TokenListOut, **CHECKED_ERRORS},
    auth=personal_token_auth,
    openapi_extra=PERSONAL,
)
def token_list(request: HttpRequest):
    """Your personal API tokens, newest first (never the tokens themselves)."""
    return {"items": [token_out(t) for t in selectors.token_list(actor=request.auth)]}


@router.post(
    "/tokens",
    response={201: TokenCreatedOut, **CHECKED_ERRORS},
    auth=personal_token_auth,
    openapi_extra=PERSONAL,
)
def token_create(request: HttpRequest, payload: TokenCreateIn):
    """A new personal token, shown in `token` only now. It expires no later than the token
    used to ask for it."""
    created = services.token_create(
        actor=request.auth,
        user=request.auth.user,
        scope=payload.scope,
        expires_days=payload.expires_days,
        not_after=presented_token(request).expires_at,
    )
    return Status(201, {**token_out(created.token), "token": created.plaintext})


@router.delete(
    "/tokens/{prefix}",
    response={204: None, **CHECKED_ERRORS},
    auth=personal_token_auth,
    openapi_extra=PERSONAL,
)
def token_revoke(request: HttpRequest, prefix: str):
    """Refuse one of your tokens from now on (the one making this call too, if named)."""
    services.token_revoke(actor=request.auth, prefix=prefix)
    return Status(204, None)


@router.get("/audit", response={200: AuditPageOut, **CHECKED_ERRORS})
def audit_list(
    request: HttpRequest,
    domain: str | None = Query(None, description="Only this domain's events."),
    page: int = Query(1, ge=1, description="Past the last page: the last page."),
    per_page: int = Query(50, ge=1, le=MAX_PER_PAGE),
):
    """What changed in the clients you belong to, by whom, from where: newest first."""
    found = domain_get(actor=request.auth, name=domain) if domain else None
    result = audit_selectors.audit_list(
        actor=request.auth, domain=found, page=page, per_page=per_page
    )
    return audit_page_out(result)
