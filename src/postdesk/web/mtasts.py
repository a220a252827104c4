"""GET /.well-known/mta-sts.txt for Host mta-sts.DOMAIN: each hosted domain's MTA-STS policy.

The web front that holds the certificate of mta-sts.DOMAIN forwards the request with its Host
header. Those hosts are as many as the domains, and cannot all be in ALLOWED_HOSTS (which
knows no "mta-sts.*" pattern), so this middleware answers that one path for hosts named
`mta-sts.` + a domain name, before anything asks Django to validate the host
(CommonMiddleware, CSRF, redirects to HTTPS). It is safe to answer them without that check:
the answer is public, built only from a domain name looked up in the database, and never
contains the Host header otherwise; no session, cookie or redirect is involved, which is what
host validation protects. Any other host or path goes on to the panel and its usual checks.

The path is also exempt from POSTDESK_SSL_REDIRECT (settings.SECURE_REDIRECT_EXEMPT): the
front serves it over HTTPS and may reach the panel over plain HTTP.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port

from postdesk.dns.mtasts import POLICY_PATH
from postdesk.dns.selectors import mta_sts_policy

CONTENT_TYPE = "text/plain; charset=utf-8"  # RFC 8461 §3.2: the policy is text/plain


class MtaStsPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info != POLICY_PATH:
            return self.get_response(request)
        # The raw header: get_host() would refuse a host outside ALLOWED_HOSTS. split_domain_port
        # returns "" for anything that is not a well-formed host name (and drops the port).
        host, _port = split_domain_port(request.META.get("HTTP_HOST", ""))
        if not host.startswith("mta-sts."):
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = HttpResponse(status=405, content_type=CONTENT_TYPE)
            response["Allow"] = "GET, HEAD"
            return response
        policy = mta_sts_policy(host)
        if policy is None:
            return HttpResponse("Not found\r\n", status=404, content_type=CONTENT_TYPE)
        return HttpResponse(policy, content_type=CONTENT_TYPE)
