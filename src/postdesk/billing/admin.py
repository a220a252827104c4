"""The provider's admin for plans and client plans: every write goes through the billing
services, so it is validated, audited and written in one transaction like the CLI's.

Plans and client plans are added, never changed or deleted here: an estimate of a past cycle
must stay what it was, so a new price is a new plan, and a plan change is a new client plan
(the history is kept). The add form only parses; the service runs when the form validates, so
its errors show beside their fields and nothing is written unless it succeeds.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from postdesk.errors import PostdeskError
from postdesk.tenancy.access import Actor, Source

from . import services
from .models import ClientPlan, Plan


def _actor(request: HttpRequest) -> Actor:
    # The admin site is the provider's staff: they act as the operator, from the web.
    return Actor.operator(
        request.user.get_username(), source=Source.WEB, ip=request.META.get("REMOTE_ADDR")
    )


class _ServiceAdmin(admin.ModelAdmin):
    """Adds through `create(request, data)`, a service call; read-only afterwards."""

    # Service field names that differ from the form's.
    field_names: dict[str, str] = {}

    def create(self, request: HttpRequest, data: dict[str, Any]):
        raise NotImplementedError

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None:
            return form
        model_admin = self

        class ServiceForm(form):
            created = None

            def _post_clean(self) -> None:
                # Instead of the model's full_clean: the service validates and writes.
                if self.errors:
                    return
                try:
                    self.created = model_admin.create(request, self.cleaned_data)
                except PostdeskError as error:
                    for each in error.errors:
                        field = model_admin.field_names.get(each.field, each.field)
                        self.add_error(field if field in self.fields else None, str(each.message))

        return ServiceForm

    def save_form(self, request: HttpRequest, form, change: bool):
        return form.created

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        """Written by the service already."""

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        """Nothing related to save."""


@admin.register(Plan)
class PlanAdmin(_ServiceAdmin):
    list_display = (
        "name",
        "cycle_months",
        "currency",
        "storage_gb_price",
        "eas_price",
        "mapi_price",
        "eas_mapi_price",
        "storage_limit_mb",
    )
    search_fields = ("name",)
    fields = (
        "name",
        "cycle_months",
        "currency",
        "storage_gb_price",
        "eas_price",
        "mapi_price",
        "eas_mapi_price",
        "storage_limit_mb",
    )

    def create(self, request: HttpRequest, data: dict[str, Any]) -> Plan:
        return services.plan_create(actor=_actor(request), **data)


@admin.register(ClientPlan)
class ClientPlanAdmin(_ServiceAdmin):
    list_display = ("client", "plan", "starts_at", "created_at")
    list_filter = ("plan",)
    search_fields = ("client__name", "plan__name")
    list_select_related = ("client", "plan")
    date_hierarchy = "starts_at"
    fields = ("client", "plan", "starts_at")
    field_names = {"at": "starts_at"}

    def create(self, request: HttpRequest, data: dict[str, Any]) -> ClientPlan:
        return services.client_set_plan(
            actor=_actor(request), client=data["client"], plan=data["plan"], at=data["starts_at"]
        )
