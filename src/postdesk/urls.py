from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import include, path, reverse
from django.utils.translation import gettext as _
from django_otp.plugins.otp_totp.models import TOTPDevice

from postdesk.jobs.views import healthz, metrics

# django-otp's own TOTP devices (plain-hex secrets) are no longer used: tenancy.TotpDevice
# holds them encrypted. Its admin page would only invite adding devices the login ignores.
# Unregistered here because admin autodiscovery has run by the time the URLs load.
if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)


def admin_login(request: HttpRequest) -> HttpResponse:
    """One login for everyone, with its lockout and two-factor step: the admin's own is not
    used. A client user already logged in is not the provider's staff: a plain 403, not a
    round of redirects between the two logins."""
    if request.user.is_authenticated:
        if request.user.is_staff:
            return redirect("admin:index")
        raise PermissionDenied(_("The administration is for the provider's staff."))
    query = request.META.get("QUERY_STRING", "")
    return redirect(reverse("web:login") + (f"?{query}" if query else ""))


# Every error page in the client-area layout and the user's language (CSRF failures: settings).
handler400 = "postdesk.web.errors.bad_request"
handler403 = "postdesk.web.errors.permission_denied"
handler404 = "postdesk.web.errors.page_not_found"
handler500 = "postdesk.web.errors.server_error"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("api/v1/", include("postdesk.api.urls")),
    path("dataplane/", include("postdesk.dataplane.urls")),
    # The client area (postdesk.web): login, domains, dashboards and forms.
    path("", include("postdesk.web.urls")),
]
