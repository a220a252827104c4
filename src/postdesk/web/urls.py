from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.i18n import set_language

from . import views

app_name = "web"

_DOMAIN = "domains/<str:domain>/"
_MAILBOX = _DOMAIN + "mailboxes/<str:local_part>/"
_FORWARD = _DOMAIN + "forwards/<str:local_part>/"

urlpatterns = [
    path("", views.domains, name="domains"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="web/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("language/", set_language, name="set_language"),
    path(_DOMAIN, views.dashboard, name="dashboard"),
    path(_DOMAIN + "dns/check/", views.dns_check, name="dns_check"),
    path(_DOMAIN + "dkim/enable/", views.dkim_enable, name="dkim_enable"),
    path(_DOMAIN + "dkim/disable/", views.dkim_disable, name="dkim_disable"),
    path(_DOMAIN + "password/generate/", views.password_generate, name="password_generate"),
    path(_DOMAIN + "new/mailbox/", views.mailbox_create, name="mailbox_create"),
    path(_MAILBOX, views.mailbox_edit, name="mailbox_edit"),
    path(_MAILBOX + "password/", views.mailbox_password, name="mailbox_password"),
    path(_MAILBOX + "delete/", views.mailbox_delete, name="mailbox_delete"),
    path(_DOMAIN + "new/forward/", views.forward_create, name="forward_create"),
    path(_FORWARD, views.forward_edit, name="forward_edit"),
    path(_FORWARD + "delete/", views.forward_delete, name="forward_delete"),
]
