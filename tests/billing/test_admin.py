"""The provider's admin pages for plans and client plans: adds go through the billing
services (validated, audited), nothing is changed or deleted there, and client users have no
access."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.test import Client as Browser

from postdesk.audit.models import AuditEvent
from postdesk.billing.models import ClientPlan, Plan
from postdesk.billing.services import client_set_plan, plan_create

pytestmark = pytest.mark.django_db

PLAN_FORM = {
    "name": "Pro",
    "cycle_months": "3",
    "currency": "cad",
    "storage_gb_price": "0.0125",
    "eas_price": "4",
    "mapi_price": "6",
    "eas_mapi_price": "8.50",
    "storage_limit_mb": "",
}


@pytest.fixture
def basic(operator) -> Plan:
    return plan_create(
        actor=operator,
        name="Basic",
        currency="CAD",
        storage_gb_price="0.5",
        eas_price="4",
        mapi_price="6",
        eas_mapi_price="8.5",
    )


def test_adding_a_plan_goes_through_the_service_and_is_audited(staff):
    response = staff.post("/admin/billing/plan/add/", PLAN_FORM)
    assert response.status_code == 302, response.content.decode()[:2000]
    plan = Plan.objects.get()
    # The service's cleaning: the currency upper-cased.
    assert (plan.name, plan.currency, plan.cycle_months) == ("Pro", "CAD", 3)
    assert plan.storage_gb_price == Decimal("0.0125")
    assert plan.storage_limit_mb is None
    event = AuditEvent.objects.get(action="plan.create")
    assert (event.actor_label, event.source, event.ip, event.target) == (
        "operator:staff@provider.example",
        "web",
        "192.0.2.7",
        "Pro",
    )
    assert staff.get("/admin/billing/plan/").content.decode().count("Pro") >= 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"currency": "C$D"}, "three-letter ISO 4217 code"),
        ({"eas_price": "-1"}, "Enter a price of 0 or more"),
        ({"cycle_months": "0"}, "whole number of months"),
        ({"name": "basic"}, "A plan named basic already exists."),
    ],
)
def test_the_services_errors_show_in_the_form_and_nothing_is_written(
    staff, basic, changes, message
):
    response = staff.post("/admin/billing/plan/add/", {**PLAN_FORM, **changes})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert list(Plan.objects.values_list("name", flat=True)) == ["Basic"]
    assert not AuditEvent.objects.filter(actor_label__startswith="operator:staff").exists()


def test_plans_are_never_changed_or_deleted_in_the_admin(staff, basic):
    change = f"/admin/billing/plan/{basic.pk}/change/"
    # Shown read-only; a posted change is refused and changes nothing.
    assert staff.get(change).status_code == 200
    assert staff.post(change, {**PLAN_FORM, "name": "Basic", "eas_price": "0"}).status_code == 403
    assert staff.post(f"/admin/billing/plan/{basic.pk}/delete/", {"post": "yes"}).status_code == 403
    basic.refresh_from_db()
    assert basic.eas_price == Decimal("4")


def test_setting_a_client_plan_goes_through_the_service(staff, operator, client_a, basic):
    client_set_plan(
        actor=operator, client=client_a, plan=basic, at=datetime(2024, 1, 1, tzinfo=UTC)
    )
    form = {
        "client": str(client_a.pk),
        "plan": str(basic.pk),
        "starts_at_0": "2024-03-01",
        "starts_at_1": "00:00:00",
    }
    response = staff.post("/admin/billing/clientplan/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    # The history is kept: two rows.
    assert ClientPlan.objects.filter(client=client_a).count() == 2
    event = AuditEvent.objects.get(action="client.set_plan", actor_label__contains="staff")
    assert (event.client_id, event.changes["plan"]) == (client_a.pk, "Basic")
    # The same start again: the service's error, beside the start.
    again = staff.post("/admin/billing/clientplan/add/", form)
    assert again.status_code == 200
    assert "already has a plan starting at" in again.content.decode()
    assert ClientPlan.objects.filter(client=client_a).count() == 2
    row = ClientPlan.objects.latest("starts_at")
    assert staff.post(
        f"/admin/billing/clientplan/{row.pk}/delete/", {"post": "yes"}
    ).status_code == (403)


def test_client_users_have_no_access(owner, basic):
    browser = Browser()
    browser.force_login(owner.user)
    for url in ("/admin/billing/plan/", "/admin/billing/plan/add/", "/admin/billing/clientplan/"):
        response = browser.get(url)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]
    assert browser.post("/admin/billing/plan/add/", PLAN_FORM).status_code == 302
    assert list(Plan.objects.values_list("name", flat=True)) == ["Basic"]
