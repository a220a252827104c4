"""What a monitor asks of the panel: GET /healthz (no login: it tells nothing about
customers) and GET /metrics (Prometheus, the operator's scraper only)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from postdesk.metrics import exposition, scraper_allowed

from .metrics import ReplicationCollector, TaskQueueCollector
from .selectors import health


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers and no task has waited longer than
    POSTDESK_HEALTH_QUEUE_MAX_WAIT seconds to run (the worker is keeping up); 503 otherwise."""
    found = health()
    return JsonResponse(found.as_dict(), status=200 if found.ok else 503)


# CSRF-exempt so that a POST without the token is the same 404 as any unknown page.
@csrf_exempt
def metrics(request: HttpRequest) -> HttpResponse:
    """The metrics of every process in Prometheus's text format, for a request that carries
    `Authorization: Bearer <POSTDESK_METRICS_TOKEN>`. Any other request, whoever is logged
    in, gets the 404 of an unknown page: the path is not advertised."""
    if not scraper_allowed(request.headers.get("Authorization", "")):
        raise Http404
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    return HttpResponse(
        exposition(TaskQueueCollector(), ReplicationCollector()), content_type=CONTENT_TYPE_LATEST
    )
