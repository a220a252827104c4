from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from postdesk.dataplane.models import Host
from postdesk.dataplane.queues import with_pending
from postdesk.tenancy.access import Actor, Source

from .hosts import host_drain, hosts_with_load
from .models import Address, Domain, Mailbox


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Read-only: every change goes through the services (the client area, API or CLI)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ("name", "client", "created_at")
    search_fields = ("name", "client__name")
    list_select_related = ("client",)


@admin.register(Address)
class AddressAdmin(_ReadOnlyAdmin):
    list_display = ("local_part", "domain", "kind", "available_at")
    list_filter = ("kind",)
    search_fields = ("local_part", "domain__name")
    list_select_related = ("domain",)


@admin.register(Mailbox)
class MailboxAdmin(_ReadOnlyAdmin):
    """Where each mailbox lives (its home host): the operator's, never the customer's."""

    list_display = ("address", "home", "quota_mb", "used_bytes", "created_at")
    list_filter = ("home",)
    search_fields = ("local_part", "domain__name")
    list_select_related = ("address__domain", "home")
    # A million mailboxes: no count of the whole table under the filter.
    show_full_result_count = False


@admin.register(Host)
class HostAdmin(_ReadOnlyAdmin):
    """The mail hosts, with how many mailboxes each is home to. Added with `postdesk host
    add`; drained here or with `postdesk host drain`."""

    list_display = ("name", "address", "roles_text", "state", "mailboxes", "pending")
    actions = ("drain",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Host]:
        return with_pending(hosts_with_load(super().get_queryset(request)))

    @admin.display(description=_("roles"))
    def roles_text(self, host: Host) -> str:
        return ", ".join(host.roles)

    @admin.display(description=_("mailboxes"), ordering="mailboxes")
    def mailboxes(self, host: Host) -> int:
        return host.mailboxes

    @admin.display(description=_("pending tasks"), ordering="pending")
    def pending(self, host: Host) -> int:
        return host.pending

    @admin.action(description=_("Drain: no new mailboxes on the selected hosts"))
    def drain(self, request: HttpRequest, hosts: QuerySet[Host]) -> None:
        actor = Actor.operator(
            request.user.get_username(), source=Source.WEB, ip=request.META.get("REMOTE_ADDR")
        )
        names = [host.name for host in hosts]
        for name in names:
            host_drain(actor=actor, name=name)
        self.message_user(
            request,
            ngettext("%(count)d host drained.", "%(count)d hosts drained.", len(names))
            % {"count": len(names)},
            messages.SUCCESS,
        )
