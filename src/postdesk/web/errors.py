"""Where the client area turns domain errors into what a browser shows: the one place.

A PostdeskError about a field goes beside that field; one about the whole request goes at the
top of the form. NotFound and PermissionDenied become the 404 and 403 pages, so another
client's objects look exactly like objects that do not exist.

The error pages themselves are here too (postdesk.urls names them as Django's handlers, the
settings name csrf_failure): every one in the client-area layout and the user's language,
never a technical page.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import loader

from postdesk.errors import NotFound, PermissionDenied, PostdeskError, database_busy
from postdesk.tenancy.access import Actor, Source


def actor_for(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user, Source.WEB, ip=request.META.get("REMOTE_ADDR"))


def client_area_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Login required; the view gets the actor; access errors become 404/403 pages."""

    @login_required
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        actor = actor_for(request)
        # For the page's frame (web.context): what the view's reads learned of the account.
        request.postdesk_actor = actor
        try:
            return view(request, actor, *args, **kwargs)
        except NotFound as error:
            raise Http404(str(error.message)) from None
        except PermissionDenied as error:
            raise DjangoPermissionDenied(str(error.message)) from None
        except PostdeskError as error:
            # Anything a page did not catch itself still reaches the user as words, not a 500.
            return render(request, "web/error.html", {"error": error}, status=error.status)

    return wrapper


def show_on_form(form: Form, error: PostdeskError, aliases: dict[str, str] | None = None) -> None:
    """Put each violation beside its field (`aliases` renames service fields to form fields).

    Access errors are not a form's business: they propagate to the 404/403 pages.
    """
    if isinstance(error, NotFound | PermissionDenied) and len(error.errors) == 1:
        raise error
    for inner in error.errors:
        field = (aliases or {}).get(inner.field or "", inner.field)
        form.add_error(field if field in form.fields else None, str(inner.message))


def show_on_messages(request: HttpRequest, error: PostdeskError) -> None:
    """For actions without a form (a button): the violations as messages on the next page."""
    if isinstance(error, NotFound | PermissionDenied) and len(error.errors) == 1:
        raise error
    for inner in error.errors:
        messages.error(request, str(inner.message))


class BusyDatabaseMiddleware:
    """A write that waited its bounded time for a database lock is a 503 page with
    Retry-After, in the user's language: nothing was changed, and trying again will do."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        busy = database_busy(exception)
        if busy is None:
            return None
        response = render(request, "web/error.html", {"error": busy}, status=busy.status)
        response["Retry-After"] = str(busy.retry_after)
        return response


# --- The error pages ------------------------------------------------------------------------


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", status=404)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # The refusal's own words when it has them (a suspended account, the provider's admin).
    reason = str(exception) if exception is not None and str(exception) else ""
    return render(request, "403.html", {"reason": reason}, status=403)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "400.html", status=400)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form sent from a page that has expired (or without the cookie): say what to do."""
    return render(request, "403_csrf.html", status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    """The layout with the user's menu when it can be drawn; without it when the error came
    from what draws it (the database reading the user, say)."""
    try:
        return render(request, "500.html", status=500)
    except Exception:  # the page saying "error" must not fail in turn
        return HttpResponse(loader.get_template("500.html").render(), status=500)
