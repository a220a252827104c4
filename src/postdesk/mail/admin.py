from django.contrib import admin

from .models import Address, Domain


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ("name", "client", "created_at")
    search_fields = ("name", "client__name")
    list_select_related = ("client",)


@admin.register(Address)
class AddressAdmin(admin.ModelAdmin):
    """Read-only: every change goes through the services (the client area, API or CLI)."""

    list_display = ("local_part", "domain", "kind", "available_at")
    list_filter = ("kind",)
    search_fields = ("local_part", "domain__name")
    list_select_related = ("domain",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
