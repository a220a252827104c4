"""GET /healthz: what a monitor asks of the panel (no login: it tells nothing about customers)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from .selectors import health


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers and no task has waited longer than
    POSTDESK_HEALTH_QUEUE_MAX_WAIT seconds to run (the worker is keeping up); 503 otherwise."""
    found = health()
    return JsonResponse(found.as_dict(), status=200 if found.ok else 503)
