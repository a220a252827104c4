from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("postdesk.api.urls")),
    path("dataplane/", include("postdesk.dataplane.urls")),
    # The client area (postdesk.web): login, domains, dashboards and forms.
    path("", include("postdesk.web.urls")),
]
