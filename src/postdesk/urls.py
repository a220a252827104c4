from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    # The client area lands with the web issue; until then the operator's admin is the UI.
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
