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

from . import throttle
from .errors import Unauthenticated
from .models import TokenScope
from .services import TokenIdentity, token_authenticate

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
        ip = client_ip(request)
        # Before the token is looked at: while blocked, even a right guess is refused.
        throttle.check(ip)
        scheme, _space, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated(
                "token_missing",
                _("Send an API token in the Authorization header: “Bearer TOKEN”."),
            )
        try:
            return self.authenticate(request, value.strip())
        except Unauthenticated:
            throttle.record_failure(ip)
            raise

    def authenticate(self, request: HttpRequest, token: str) -> Actor:
        identity = token_authenticate(raw=token, ip=client_ip(request))
        # The personal-token endpoints need the presenting token itself (its expiry).
        request.token_identity = identity
        if (
            identity.scope != TokenScope.WRITE
            and request.method not in SAFE_METHODS
            and not self.read_scope_allowed
        ):
            raise PermissionDenied(
                _("This API token can only read. Use a token with the write scope to make changes.")
            )
        return identity.actor


class OperatorTokenAuth(TokenAuth):
    """Provisioning operations: only the provider's tokens (`postdesk token create
    --operator`). A personal token is refused with 403, whatever its user's role."""

    def authenticate(self, request: HttpRequest, token: str) -> Actor:
        actor = super().authenticate(request, token)
        if not actor.is_operator:
            raise PermissionDenied(
                _("This operation is for the provider's billing system: use a provisioning token.")
            )
        return actor


class PersonalTokenAuth(TokenAuth):
    """A user's own API tokens: any role may manage them, but only with a personal token."""

    def authenticate(self, request: HttpRequest, token: str) -> Actor:
        actor = super().authenticate(request, token)
        if actor.user is None:
            raise PermissionDenied(
                _("Provisioning tokens are managed with the postdesk command, not the API.")
            )
        return actor


def presented_token(request: HttpRequest) -> TokenIdentity:
    return request.token_identity


token_auth = TokenAuth()
# For POSTs that only ask for something to be looked at again (a DNS check).
read_token_auth = TokenAuth(read_scope_allowed=True)
operator_token_auth = OperatorTokenAuth()
personal_token_auth = PersonalTokenAuth()
