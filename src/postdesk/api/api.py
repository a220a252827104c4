"""The /api/v1 application: routers, authentication, and the one place errors become HTTP.

Every error leaves as `{"code", "message", "field"}` (plus `"errors"`, every violation, so a
client can show them all) in the caller's language: LocaleMiddleware has already activated
the language of Accept-Language (en or fr) for this request.
"""

from __future__ import annotations

from typing import Any

from django.db import OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError

from postdesk.errors import DatabaseBusy, PostdeskError, database_busy

from .auth import token_auth
from .errors import Unauthenticated
from .routers import account, dns, domains, forwards, mailboxes, provisioning
from .throttle import TooManyFailures


class PostdeskAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation: Any) -> str:
        # The handler's name (domain_list, mailbox_create…): stable and readable in clients.
        return operation.view_func.__name__


api = PostdeskAPI(
    title="Postdesk API",
    version="1",
    description=(
        "Manage the mailboxes, aliases, forwards and DNS health of your domains. "
        "Authenticate with `Authorization: Bearer TOKEN`; errors are "
        '`{"code", "message", "field", "errors"}` in the language of Accept-Language.'
    ),
    urls_namespace="api-v1",
    auth=token_auth,
)
for module in (domains, mailboxes, forwards, dns, account, provisioning):
    api.add_router("", module.router)


def _body(error: PostdeskError) -> dict[str, Any]:
    return {**error.as_dict(), "errors": [e.as_dict() for e in error.errors]}


def error_response(request: HttpRequest, error: PostdeskError) -> HttpResponse:
    response = api.create_response(request, _body(error), status=error.status)
    if isinstance(error, Unauthenticated):
        # RFC 6750: tell the client which scheme, and whether its token was the problem.
        detail = "" if error.code == "token_missing" else ', error="invalid_token"'
        response["WWW-Authenticate"] = f'Bearer realm="postdesk"{detail}'
    if isinstance(error, TooManyFailures | DatabaseBusy):
        response["Retry-After"] = str(error.retry_after)
    return response


@api.exception_handler(PostdeskError)
def _postdesk_error(request: HttpRequest, error: PostdeskError) -> HttpResponse:
    return error_response(request, error)


@api.exception_handler(OperationalError)
def _database_error(request: HttpRequest, error: OperationalError) -> HttpResponse:
    """A write that waited its bounded time for a lock: 503 with Retry-After, not a 500."""
    busy = database_busy(error)
    if busy is None:
        raise error
    return error_response(request, busy)


# Pydantic's error types, as messages the customer can act on, in their language.
def _validation_message(kind: str) -> tuple[str, str]:
    if kind == "missing":
        return "required", _("This field is required.")
    if kind == "extra_forbidden":
        return "unknown_field", _("This field is not known.")
    if kind == "json_invalid":
        return "invalid_json", _("The request body is not valid JSON.")
    if kind.startswith("int_"):
        return "invalid_value", _("Enter a whole number.")
    if kind.startswith("bool_"):
        return "invalid_value", _("Enter true or false.")
    if kind.startswith("string_"):
        return "invalid_value", _("Enter a text value.")
    if kind.startswith("list_"):
        return "invalid_value", _("Enter a list.")
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        return "out_of_range", _("This value is out of range.")
    if kind in {"literal_error", "enum"}:
        return "invalid_choice", _("This value is not one of the choices.")
    return "invalid_value", _("Enter a valid value.")


def _field(loc: list[Any]) -> str | None:
    """("body", "payload", "aliases", 0) → "aliases"; ("query", "page") → "page"."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[2:]  # the source and the handler's parameter name
    elif parts and parts[0] in {"query", "path", "header", "cookie", "form"}:
        parts = parts[1:]
    names = [str(p) for p in parts if not isinstance(p, int)]
    return names[0] if names else None


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, error: ValidationError) -> HttpResponse:
    items = []
    for detail in error.errors:
        code, message = _validation_message(str(detail.get("type", "")))
        items.append(
            {"code": code, "message": str(message), "field": _field(detail.get("loc", []))}
        )
    if not items:
        items = [{"code": "invalid_value", "message": _("Enter a valid value."), "field": None}]
    return api.create_response(request, {**items[0], "errors": items}, status=422)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, error: HttpError) -> HttpResponse:
    if isinstance(error, AuthenticationError):
        return error_response(
            request, Unauthenticated("token_missing", _("An API token is required."))
        )
    if error.status_code == 400 and str(error).startswith("Cannot parse request body"):
        code, message = _validation_message("json_invalid")
        item = {"code": code, "message": str(message), "field": None}
        return api.create_response(request, {**item, "errors": [item]}, status=400)
    code = "permission_denied" if isinstance(error, AuthorizationError) else "http_error"
    item = {"code": code, "message": str(error), "field": None}
    return api.create_response(request, {**item, "errors": [item]}, status=error.status_code)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, error: Http404) -> HttpResponse:
    item = {"code": "not_found", "message": _("Not found."), "field": None}
    return api.create_response(request, {**item, "errors": [item]}, status=404)
