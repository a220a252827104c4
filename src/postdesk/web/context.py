"""What every client-area page's frame (base.html) shows beyond the page itself."""

from __future__ import annotations

from django.http import HttpRequest

from postdesk.tenancy.access import suspension_seen


def account_state(request: HttpRequest) -> dict:
    """`area_suspended`: the page shows a suspended account's data, read-only (the banner
    says why and whom to contact). Learned from the view's own reads: no query."""
    actor = getattr(request, "postdesk_actor", None)
    return {"area_suspended": actor is not None and suspension_seen(actor)}
