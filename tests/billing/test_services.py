"""Billing writes: plans, client plans, usage samples, and the protocol periods that the
mail services record in the same transaction as the mailbox change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from postdesk.audit.models import AuditEvent
from postdesk.billing.models import ClientPlan, Plan, ProtocolActivation, UsageSample
from postdesk.billing.services import client_set_plan, plan_create
from postdesk.errors import InvalidInput, PermissionDenied, PostdeskError
from postdesk.mail.models import Mailbox
from postdesk.mail.services import (
    mailbox_create,
    mailbox_delete,
    mailbox_update,
    mailbox_usage_record,
    mailbox_usage_set,
)
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


PRICES = {"storage_gb_price": "0.50", "eas_price": "4", "mapi_price": "6", "eas_mapi_price": "8.5"}


def make_plan(operator, name="Basic", **overrides) -> Plan:
    return plan_create(actor=operator, name=name, **{"currency": "CAD", **PRICES, **overrides})


def make_mailbox(operator, domain, username="marie", **options) -> Mailbox:
    return mailbox_create(
        actor=operator, domain=domain, username=username, password=GOOD_PASSWORD, **options
    )


def periods(mailbox_key: int) -> list[tuple]:
    return list(
        ProtocolActivation.objects.filter(mailbox_key=mailbox_key)
        .order_by("started_at", "protocol")
        .values_list("protocol", "started_at", "ended_at")
    )


# --- Plans -----------------------------------------------------------------------------------


def test_plan_create_stores_decimal_prices_and_audits(operator):
    plan = make_plan(operator, cycle_months=3, storage_limit_mb=51200, currency="cad")
    plan.refresh_from_db()
    assert plan.currency == "CAD"
    assert plan.cycle_months == 3
    assert (plan.storage_gb_price, plan.eas_mapi_price) == (Decimal("0.5"), Decimal("8.5"))
    assert isinstance(plan.eas_price, Decimal)
    assert plan.storage_limit_mb == 51200
    event = AuditEvent.objects.get(action="plan.create")
    assert event.target == "Basic"
    assert event.changes["eas_mapi_price"] == "8.5"


def test_plan_create_reports_every_invalid_field(operator):
    with pytest.raises(PostdeskError) as caught:
        plan_create(
            actor=operator,
            name=" ",
            currency="CA",
            cycle_months=0,
            storage_gb_price="-1",
            eas_price="1.23456",
            mapi_price="abc",
            eas_mapi_price="NaN",
            storage_limit_mb=0,
        )
    fields = sorted(e.field for e in caught.value.errors)
    assert fields == sorted(
        [
            "name",
            "currency",
            "cycle_months",
            "storage_gb_price",
            "eas_price",
            "mapi_price",
            "eas_mapi_price",
            "storage_limit_mb",
        ]
    )
    assert not Plan.objects.exists()


def test_zero_prices_are_a_valid_plan(operator):
    plan = make_plan(operator, storage_gb_price="0", eas_price="0.0000")
    assert plan.storage_gb_price == 0


def test_plan_names_are_unique(operator):
    make_plan(operator)
    # Whatever the case: the CLI finds a plan by its name in any case.
    for name in ("Basic", "BASIC", " basic "):
        with pytest.raises(InvalidInput) as caught:
            make_plan(operator, name=name)
        assert caught.value.code == "plan_exists"
    assert Plan.objects.count() == 1


def test_only_the_provider_manages_plans(owner, operator, client_a):
    with pytest.raises(PermissionDenied):
        plan_create(actor=owner, name="Mine", currency="CAD", **PRICES)
    plan = make_plan(operator)
    with pytest.raises(PermissionDenied):
        client_set_plan(actor=owner, client=client_a, plan=plan)
    assert not ClientPlan.objects.exists()


# --- Client plans ----------------------------------------------------------------------------


def test_client_plan_history_is_kept(operator, client_a):
    basic = make_plan(operator)
    pro = make_plan(operator, name="Pro")
    client_set_plan(actor=operator, client=client_a, plan=basic, at=t("2024-01-01"))
    client_set_plan(actor=operator, client=client_a, plan=pro, at=t("2024-06-01"))
    history = list(
        ClientPlan.objects.filter(client=client_a)
        .order_by("starts_at")
        .values_list("plan__name", "starts_at")
    )
    assert history == [("Basic", t("2024-01-01")), ("Pro", t("2024-06-01"))]
    with pytest.raises(InvalidInput) as caught:
        client_set_plan(actor=operator, client=client_a, plan=pro, at=t("2024-06-01"))
    assert caught.value.code == "plan_start_taken"
    assert AuditEvent.objects.filter(action="client.set_plan").count() == 2


def test_times_without_a_zone_are_refused(operator, client_a, domain):
    plan = make_plan(operator)
    with pytest.raises(InvalidInput) as caught:
        client_set_plan(actor=operator, client=client_a, plan=plan, at=datetime(2024, 1, 1))
    assert (caught.value.code, caught.value.field) == ("time_without_zone", "at")
    with pytest.raises(InvalidInput):
        make_mailbox(operator, domain, eas_enabled=True, at=datetime(2024, 1, 1))
    assert not Mailbox.objects.exists()


def test_changes_dated_in_the_future_are_refused_beyond_the_clock_skew(operator, client_a, domain):
    from postdesk.billing.selectors import billing_estimate
    from postdesk.clock import CLOCK_SKEW

    now = timezone.now()
    too_late = now + CLOCK_SKEW + timedelta(seconds=5)
    with pytest.raises(InvalidInput) as caught:
        make_mailbox(operator, domain, eas_enabled=True, at=too_late)
    assert (caught.value.code, caught.value.field) == ("time_in_future", "at")
    assert not Mailbox.objects.exists()
    # A clock a little ahead of ours is not an error.
    mailbox = make_mailbox(operator, domain, at=now + timedelta(minutes=1))
    for change in (
        lambda: mailbox_usage_record(actor=operator, mailbox=mailbox, used_bytes=1, at=too_late),
        lambda: mailbox_update(actor=operator, mailbox=mailbox, eas_enabled=True, at=too_late),
        lambda: mailbox_delete(actor=operator, mailbox=mailbox, at=too_late),
    ):
        with pytest.raises(InvalidInput) as caught:
            change()
        assert caught.value.code == "time_in_future"
    assert not UsageSample.objects.exists()
    assert not ProtocolActivation.objects.exists()
    mailbox.refresh_from_db()
    assert (mailbox.used_bytes, mailbox.used_measured_at) == (0, None)
    # A plan may be scheduled ahead, and an estimate asked as of a later time.
    client_set_plan(actor=operator, client=client_a, plan=make_plan(operator), at=now)
    client_set_plan(
        actor=operator,
        client=client_a,
        plan=make_plan(operator, "Next"),
        at=now + timedelta(days=40),
    )
    estimate = billing_estimate(actor=operator, domain=domain, at=now + timedelta(days=3))
    assert estimate.period_start == now


# --- Usage -----------------------------------------------------------------------------------


def test_usage_record_writes_a_sample_and_the_current_usage(operator, domain):
    mailbox = make_mailbox(operator, domain)
    mailbox_usage_record(actor=operator, mailbox=mailbox, used_bytes=5000, at=t("2024-02-02"))
    mailbox.refresh_from_db()
    assert (mailbox.used_bytes, mailbox.used_measured_at) == (5000, t("2024-02-02"))
    # A late sample is kept for billing but leaves the newer current usage alone.
    mailbox_usage_record(actor=operator, mailbox=mailbox, used_bytes=10, at=t("2024-02-01"))
    mailbox.refresh_from_db()
    assert mailbox.used_bytes == 5000
    samples = UsageSample.objects.filter(mailbox=mailbox).order_by("at")
    assert [(s.at, s.bytes, s.domain_id) for s in samples] == [
        (t("2024-02-01"), 10, domain.pk),
        (t("2024-02-02"), 5000, domain.pk),
    ]


def test_usage_record_refuses_bad_values_and_duplicates(operator, domain):
    mailbox = make_mailbox(operator, domain)
    for value in (-1, 1.5, True, 2**63):
        with pytest.raises(InvalidInput) as caught:
            mailbox_usage_record(
                actor=operator, mailbox=mailbox, used_bytes=value, at=t("2024-02-02")
            )
        assert caught.value.code == "usage_invalid"
    mailbox_usage_record(actor=operator, mailbox=mailbox, used_bytes=1, at=t("2024-02-02"))
    with pytest.raises(InvalidInput) as caught:
        mailbox_usage_record(actor=operator, mailbox=mailbox, used_bytes=2, at=t("2024-02-02"))
    assert caught.value.code == "usage_sample_exists"
    mailbox.refresh_from_db()
    assert mailbox.used_bytes == 1
    assert UsageSample.objects.count() == 1


def test_only_the_provider_records_usage(owner, operator, domain):
    mailbox = make_mailbox(operator, domain)
    with pytest.raises(PermissionDenied):
        mailbox_usage_record(actor=owner, mailbox=mailbox, used_bytes=1)
    assert not UsageSample.objects.exists()


def test_mailbox_usage_set_only_moves_forward(operator, domain):
    mailbox = make_mailbox(operator, domain)
    assert mailbox_usage_set(mailbox=mailbox, used_bytes=7, at=t("2024-03-01"))
    assert not mailbox_usage_set(mailbox=mailbox, used_bytes=8, at=t("2024-03-01"))
    assert not mailbox_usage_set(mailbox=mailbox, used_bytes=9, at=t("2024-02-01"))
    mailbox.refresh_from_db()
    assert (mailbox.used_bytes, mailbox.used_measured_at) == (7, t("2024-03-01"))


# --- Protocol periods, recorded by the mail services -----------------------------------------


def test_mailbox_create_opens_the_periods_of_its_protocols(operator, domain):
    both = make_mailbox(operator, domain, eas_enabled=True, mapi_enabled=True, at=t("2024-02-03"))
    none = make_mailbox(operator, domain, username="jean")
    assert periods(both.pk) == [("eas", t("2024-02-03"), None), ("mapi", t("2024-02-03"), None)]
    assert periods(none.pk) == []
    row = ProtocolActivation.objects.filter(mailbox=both).first()
    assert (row.address, row.domain_id, row.client_id) == (
        "marie@example.com",
        domain.pk,
        domain.client_id,
    )


def test_toggling_opens_and_closes_periods(operator, domain):
    mailbox = make_mailbox(operator, domain, eas_enabled=True, at=t("2024-02-01"))
    mailbox_update(actor=operator, mailbox=mailbox, eas_enabled=False, at=t("2024-02-02"))
    mailbox_update(actor=operator, mailbox=mailbox, eas_enabled=True, at=t("2024-02-03"))
    mailbox_update(
        actor=operator, mailbox=mailbox, eas_enabled=False, mapi_enabled=True, at=t("2024-02-04")
    )
    # Settings that do not touch the protocols record nothing.
    mailbox_update(actor=operator, mailbox=mailbox, quota_mb=100, at=t("2024-02-05"))
    mailbox_update(actor=operator, mailbox=mailbox, mapi_enabled=True, at=t("2024-02-06"))
    assert periods(mailbox.pk) == [
        ("eas", t("2024-02-01"), t("2024-02-02")),
        ("eas", t("2024-02-03"), t("2024-02-04")),
        ("mapi", t("2024-02-04"), None),
    ]


def test_a_change_dated_before_the_protocol_came_on_is_refused_and_changes_nothing(
    operator, domain
):
    mailbox = make_mailbox(operator, domain, eas_enabled=True, at=t("2024-02-10"))
    with pytest.raises(InvalidInput) as caught:
        mailbox_update(
            actor=operator, mailbox=mailbox, eas_enabled=False, quota_mb=5, at=t("2024-02-09")
        )
    assert caught.value.code == "time_before_activation"
    mailbox.refresh_from_db()
    assert (mailbox.eas_enabled, mailbox.quota_mb) == (True, 0)
    assert periods(mailbox.pk) == [("eas", t("2024-02-10"), None)]


def test_deleting_a_mailbox_keeps_its_billing_history(operator, domain):
    mailbox = make_mailbox(operator, domain, eas_enabled=True, at=t("2024-02-01"))
    key = mailbox.pk
    mailbox_usage_record(actor=operator, mailbox=mailbox, used_bytes=4096, at=t("2024-02-02"))
    mailbox_delete(actor=operator, mailbox=mailbox, at=t("2024-02-10"))
    assert periods(key) == [("eas", t("2024-02-01"), t("2024-02-10"))]
    row = ProtocolActivation.objects.get(mailbox_key=key)
    assert (row.mailbox_id, row.address) == (None, "marie@example.com")
    samples = list(
        UsageSample.objects.filter(mailbox_key=key).order_by("at").values_list("at", "bytes")
    )
    # Its storage ends with the deletion.
    assert samples == [(t("2024-02-02"), 4096), (t("2024-02-10"), 0)]
    assert not UsageSample.objects.filter(mailbox_key=key, mailbox__isnull=False).exists()
