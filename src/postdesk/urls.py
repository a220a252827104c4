from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from django_otp.plugins.otp_totp.models import TOTPDevice

# django-otp's own TOTP devices (plain-hex secrets) are no longer used: tenancy.TotpDevice
# holds them encrypted. Its admin page would only invite adding devices the login ignores.
# Unregistered here because admin autodiscovery has run by the time the URLs load.
if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)

urlpatterns = [
    # One login for everyone, with its lockout and two-factor step: the admin's own is not used.
    path("admin/login/", RedirectView.as_view(pattern_name="web:login", query_string=True)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("postdesk.api.urls")),
    path("dataplane/", include("postdesk.dataplane.urls")),
    # The client area (postdesk.web): login, domains, dashboards and forms.
    path("", include("postdesk.web.urls")),
]
