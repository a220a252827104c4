"""What every client-area page's frame (base.html) shows beyond the page itself."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest

from postdesk.tenancy.access import suspension_seen


def account_state(request: HttpRequest) -> dict:
    """`area_suspended`: the page shows a suspended account's data, read-only (the banner
    says why and whom to contact). Learned from the view's own reads: no query."""
    actor = getattr(request, "postdesk_actor", None)
    return {"area_suspended": actor is not None and suspension_seen(actor)}


def groupware(request: HttpRequest) -> dict:
    """`webmail_url` and `activesync_server` (the webmail's host, which phones reach
    ActiveSync on through the same gate); both empty when no groupware is configured."""
    url = settings.POSTDESK_WEBMAIL_URL
    return {"webmail_url": url, "activesync_server": urlsplit(url).hostname or ""}
