"""Bearer-token authentication for /api/v1.

Every operation needs a token. The token's scope is checked here: a read-scope token may call
only safe methods (GET, HEAD, OPTIONS) and the few operations declared read-only although they
are POSTs (asking for a DNS check); the role on the client is checked by the services.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja.security import HttpBearer

from postdesk.errors import PermissionDenied
from postdesk.tenancy.access import Actor

from .errors import Unauthenticated
from .models import TokenScope
from .services import token_authenticate

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_ip(request: HttpRequest) -> str | None:
    # The peer address. Behind a reverse proxy, configure it to set REMOTE_ADDR (nginx's
    # real_ip module); a client-supplied X-Forwarded-For is not to be trusted here.
    return request.META.get("REMOTE_ADDR") or None


class TokenAuth(HttpBearer):
    def __init__(self, *, read_scope_allowed: bool = False) -> None:
        super().__init__()
        # True for operations that change nothing of the customer's even though they POST.
        self.read_scope_allowed = read_scope_allowed

    def __call__(self, request: HttpRequest) -> Actor:
        scheme, _space, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated(
                "token_missing",
                _("Send an API token in the Authorization header: “Bearer TOKEN”."),
            )
        return self.authenticate(request, value.strip())

    def authenticate(self, request: HttpRequest, token: str) -> Actor:
        identity = token_authenticate(raw=token, ip=client_ip(request))
        if (
            identity.scope != TokenScope.WRITE
            and request.method not in SAFE_METHODS
            and not self.read_scope_allowed
        ):
            raise PermissionDenied(
                _("This API token can only read. Use a token with the write scope to make changes.")
            )
        return identity.actor


token_auth = TokenAuth()
# For POSTs that only ask for something to be looked at again (a DNS check).
read_token_auth = TokenAuth(read_scope_allowed=True)
