"""A test-only URLconf: the real one, its error handlers, and pages that fail."""

from django.core.exceptions import SuspiciousOperation
from django.urls import path

from postdesk.urls import handler400, handler403, handler404, handler500, urlpatterns


def _broken(request):
    raise RuntimeError("a bug in a view")


def _suspicious(request):
    raise SuspiciousOperation("a request no browser of ours sends")


urlpatterns = [path("broken/", _broken), path("suspicious/", _suspicious), *urlpatterns]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
