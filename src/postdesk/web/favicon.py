"""The site's icon at /favicon.ico, where browsers ask for it whatever the page links to.

Pages link the same SVG from the static files (base.html); this answer is for the browsers,
feed readers and bookmarks that ask the conventional address and would otherwise log a 404.
"""

from __future__ import annotations

from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

ICON = (Path(__file__).resolve().parent / "static" / "web" / "favicon.svg").read_bytes()


@require_GET
@cache_control(max_age=86400, public=True)
def favicon(request: HttpRequest) -> HttpResponse:
    return HttpResponse(ICON, content_type="image/svg+xml")
