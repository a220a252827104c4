"""The EAS/MAPI gate: nginx's auth_request asks here before letting a client through.

A request passes when its Basic credentials are a mailbox's address and current password,
the mailbox's option for that protocol is on, and its client is not suspended. The same
rules as the dataplane views: this reads `dataplane_mailboxes`, the contract.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from .passwords import verify_password

PROTOCOL_COLUMNS = {"eas": "eas_enabled", "mapi": "mapi_enabled"}


def _credentials(request: HttpRequest) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user.strip().lower(), password) if sep else None


def _unauthorized() -> HttpResponse:
    response = HttpResponse(status=401)
    response["WWW-Authenticate"] = 'Basic realm="mail"'
    return response


@require_GET
def gate(request: HttpRequest, protocol: str) -> HttpResponse:
    expected = settings.POSTDESK_GATE_KEY
    given = request.headers.get("X-Postdesk-Gate-Key", "")
    if not expected or not hmac.compare_digest(given, expected):
        return HttpResponse(status=403)  # only our nginx may ask
    column = PROTOCOL_COLUMNS.get(protocol)
    if column is None:
        return HttpResponse(status=404)
    credentials = _credentials(request)
    if credentials is None:
        return _unauthorized()
    address, password = credentials
    local_part, _, domain = address.rpartition("@")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT password, {column} FROM dataplane_mailboxes "  # noqa: S608 - fixed column
            "WHERE local_part = %s AND domain = %s",
            [local_part, domain],
        )
        row = cursor.fetchone()
    if row is None or not verify_password(password, row[0]):
        return _unauthorized()
    if not row[1]:
        return HttpResponse(status=403)  # right password, protocol not enabled
    return HttpResponse(status=204)
