from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DnsConfig(AppConfig):
    name = "postdesk.dns"
    label = "dns"
    verbose_name = _("DNS health")
