from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DataplaneConfig(AppConfig):
    name = "postdesk.dataplane"
    label = "dataplane"
    verbose_name = _("Mail servers")
