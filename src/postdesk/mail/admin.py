from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from postdesk.dataplane.choices import HostState
from postdesk.dataplane.models import Host
from postdesk.dataplane.queues import with_pending
from postdesk.errors import PostdeskError
from postdesk.tenancy.access import Actor, Source

from .hosts import host_drain, hosts_with_load, mailbox_move
from .models import Address, Domain, Mailbox, MailboxMove


def _operator(request: HttpRequest) -> Actor:
    return Actor.operator(
        request.user.get_username(), source=Source.WEB, ip=request.META.get("REMOTE_ADDR")
    )


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

    def get_actions(self, request: HttpRequest) -> dict:
        """Besides Django's own, one "Move to HOST" per active backend (docs/scale.md)."""
        actions = super().get_actions(request)
        backends = Host.objects.filter(backend=True, state=HostState.ACTIVE).order_by("name")
        for name in backends.values_list("name", flat=True):
            description = gettext("Move to %(name)s") % {"name": name}
            actions[f"move_to_{name}"] = (self._move_to(name), f"move_to_{name}", description)
        return actions

    @staticmethod
    def _move_to(host: str) -> Callable[[admin.ModelAdmin, HttpRequest, QuerySet], None]:
        def move(model_admin: admin.ModelAdmin, request: HttpRequest, mailboxes: QuerySet) -> None:
            actor = _operator(request)
            queued = 0
            for mailbox in mailboxes.select_related("address__domain"):
                try:
                    mailbox_move(actor=actor, address=mailbox.address.email, to=host)
                except PostdeskError as error:
                    text = " ".join(str(e.message) for e in error.errors)
                    model_admin.message_user(request, text, messages.ERROR)
                else:
                    queued += 1
            if queued:
                model_admin.message_user(
                    request,
                    ngettext(
                        "%(count)d move to %(host)s queued.",
                        "%(count)d moves to %(host)s queued.",
                        queued,
                    )
                    % {"count": queued, "host": host},
                    messages.SUCCESS,
                )

        return move


@admin.register(MailboxMove)
class MailboxMoveAdmin(_ReadOnlyAdmin):
    """Mailboxes moved between backends: queued, copying, switching, then done or failed."""

    list_display = ("mailbox", "source", "target", "state", "created_at", "finished_at")
    list_filter = ("state",)
    search_fields = ("mailbox__local_part", "mailbox__domain__name")
    list_select_related = ("mailbox__address__domain", "source", "target")
    readonly_fields = ("last_error",)


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
        actor = _operator(request)
        names = [host.name for host in hosts]
        for name in names:
            host_drain(actor=actor, name=name)
        self.message_user(
            request,
            ngettext("%(count)d host drained.", "%(count)d hosts drained.", len(names))
            % {"count": len(names)},
            messages.SUCCESS,
        )
