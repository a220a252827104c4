"""The Content-Security-Policy header (settings.POSTDESK_CSP): scripts and styles only from
this site's own files, never inline, and no page of ours inside a frame.

Django's SecurityMiddleware sends the other headers (nosniff, referrer policy, HSTS over
HTTPS); X-Frame-Options DENY is kept for browsers that predate frame-ancestors.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

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
