"""HTTP rules every page and API answer keeps, whatever view made it.

- Content-Security-Policy (settings.POSTDESK_CSP): scripts and styles only from this site's
  own files, never inline, and no page of ours inside a frame. Django's SecurityMiddleware
  sends the other headers (nosniff, referrer policy, HSTS over HTTPS); X-Frame-Options DENY
  is kept for browsers that predate frame-ancestors.
- No cache keeps what we answer: pages and API answers hold a customer's data (or a CSRF
  token), so neither a shared cache nor the browser's back-forward cache may store them
  after logout. Static files are served before this (WhiteNoise), with long cache headers.
- HEAD is answered as GET without the body, as HTTP says (uptime monitors use it), by every
  view that answers GET.
- Every request has an id (the proxy's X-Request-ID, or a new one), on each log line it
  causes and in the answer's X-Request-ID header.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers

from postdesk import request_id

HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = getattr(settings, "POSTDESK_CSP", "")
        # A view that needs another policy sets its own; this one is the default.
        if policy and HEADER not in response:
            response[HEADER] = policy
        return response


class NoStoreMiddleware:
    """Cache-Control: no-store (and private, no-cache) on every answer that did not set one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Cache-Control" not in response:
            add_never_cache_headers(response)
        return response


class HeadAsGetMiddleware:
    """A HEAD request is run as GET, and its answer sent without the body (its length kept)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "HEAD":
            return self.get_response(request)
        request.method = "GET"
        try:
            response = self.get_response(request)
        finally:
            request.method = "HEAD"
        if not response.streaming:
            response["Content-Length"] = str(len(response.content))
            response.content = b""
        return response


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        value = request_id.request_id_for(request.headers.get("X-Request-ID"))
        # Kept until the request is finished, not reset on the way out: Django logs a 4xx or
        # 5xx answer after the middleware has returned it.
        request_id.current.set(value)
        response = self.get_response(request)
        response["X-Request-ID"] = value
        return response


def _request_done(**_kwargs: object) -> None:
    request_id.current.set("")


request_finished.connect(_request_done, dispatch_uid="postdesk.request_id")
