from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.i18n import set_language

from . import account_views, favicon, views

app_name = "web"

_DOMAIN = "domains/<str:domain>/"
_MAILBOX = _DOMAIN + "mailboxes/<str:local_part>/"
_FORWARD = _DOMAIN + "forwards/<str:local_part>/"

urlpatterns = [
    path("", views.domains, name="domains"),
    path("login/", account_views.login, name="login"),
    path("login/code/", account_views.login_code, name="login_code"),
    path("account/", account_views.account_home, name="account"),
    path("account/two-factor/", account_views.two_factor, name="two_factor"),
    path("account/password/", account_views.password_change, name="password_change"),
    path("account/sessions/end/", account_views.sessions_end, name="sessions_end"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("language/", set_language, name="set_language"),
    path("favicon.ico", favicon.favicon, name="favicon"),
    path("audit/", views.audit, name="audit"),
    path("ping/", views.ping, name="ping"),
    path(_DOMAIN, views.dashboard, name="dashboard"),
    path(_DOMAIN + "billing/", views.billing, name="billing"),
    path(_DOMAIN + "dns/check/", views.dns_check, name="dns_check"),
    path(_DOMAIN + "dkim/enable/", views.dkim_enable, name="dkim_enable"),
    path(_DOMAIN + "dkim/disable/", views.dkim_disable, name="dkim_disable"),
    path(_DOMAIN + "mta-sts/mode/", views.mta_sts_mode, name="mta_sts_mode"),
    path(_DOMAIN + "dav/", views.domain_dav, name="domain_dav"),
    path(_DOMAIN + "deliverability/", views.deliverability, name="deliverability"),
    path(_DOMAIN + "deliverability/test/", views.deliverability_test, name="deliverability_test"),
    path(_DOMAIN + "password/generate/", views.password_generate, name="password_generate"),
    path(_DOMAIN + "tags/check/", views.tag_check, name="tag_check"),
    path(_DOMAIN + "new/mailbox/", views.mailbox_create, name="mailbox_create"),
    path(_MAILBOX, views.mailbox_edit, name="mailbox_edit"),
    path(_MAILBOX + "password/", views.mailbox_password, name="mailbox_password"),
    path(_MAILBOX + "delete/", views.mailbox_delete, name="mailbox_delete"),
    path(_DOMAIN + "new/forward/", views.forward_create, name="forward_create"),
    path(_FORWARD, views.forward_edit, name="forward_edit"),
    path(_FORWARD + "delete/", views.forward_delete, name="forward_delete"),
]
