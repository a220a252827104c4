from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path
from django.utils.translation import gettext as _

from .api import api


def unknown_route(request: HttpRequest, rest: str = "") -> JsonResponse:
    """A path under /api/v1 that names no operation: JSON like every other API error."""
    item = {"code": "not_found", "message": _("Not found."), "field": None}
    return JsonResponse({**item, "errors": [item]}, status=404)


urlpatterns = [
    path("", api.urls),
    re_path(r"^(?P<rest>.*)$", unknown_route),
]
