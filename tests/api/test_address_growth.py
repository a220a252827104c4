"""The address list over the API sorted by growth, and each row's `growth_7d_bytes`: the bytes a
mailbox gained over the last 7 days from its usage samples (null for a forward)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from postdesk.mail.services import forward_create, mailbox_create, mailbox_usage_record
from tests.budgets import query_budget
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

BASE = "domains/example.com/addresses"


def mailbox_growing(operator, domain, name: str, before: int, now: int):
    mailbox = mailbox_create(actor=operator, domain=domain, username=name, password=GOOD_PASSWORD)
    moment = timezone.now()
    mailbox_usage_record(
        actor=operator, mailbox=mailbox, used_bytes=before, at=moment - timedelta(days=8)
    )
    mailbox_usage_record(
        actor=operator, mailbox=mailbox, used_bytes=now, at=moment - timedelta(hours=1)
    )
    return mailbox


def test_sort_by_growth_puts_the_fastest_growing_first(api, operator, domain, owner_token):
    mailbox_growing(operator, domain, "steady", 5_000, 5_000)
    mailbox_growing(operator, domain, "fast", 1_000, 901_000)
    mailbox_growing(operator, domain, "shrinking", 9_000, 1_000)
    mailbox_growing(operator, domain, "slow", 0, 2_000)
    forward_create(actor=operator, domain=domain, name="info", destinations=["a@b.example"])

    response = api.get(f"{BASE}?sort=growth", owner_token)

    assert response.status == 200
    rows = [(r["address"].split("@")[0], r["growth_7d_bytes"]) for r in response.body["items"]]
    # Largest gain first; a shrinking mailbox is negative; a forward has no growth (last).
    assert rows == [
        ("fast", 900_000),
        ("slow", 2_000),
        ("steady", 0),
        ("shrinking", -8_000),
        ("info", None),
    ]


def test_every_row_has_its_growth_whatever_the_sort(api, operator, domain, owner_token):
    mailbox_growing(operator, domain, "anna", 100, 350)
    forward_create(actor=operator, domain=domain, name="info", destinations=["a@b.example"])

    rows = api.get(BASE, owner_token).body["items"]

    assert {r["address"]: r["growth_7d_bytes"] for r in rows} == {
        "anna@example.com": 250,
        "info@example.com": None,
    }
    schema = api.get("/api/v1/openapi.json").body
    row = schema["components"]["schemas"]["AddressRowOut"]
    assert "growth_7d_bytes" in row["properties"]
    sort = next(
        p
        for p in schema["paths"]["/api/v1/domains/{domain}/addresses"]["get"]["parameters"]
        if p["name"] == "sort"
    )
    assert "growth" in str(sort["schema"])


def test_a_mailbox_without_samples_grew_zero(api, operator, domain, owner_token):
    mailbox_create(actor=operator, domain=domain, username="new", password=GOOD_PASSWORD)

    rows = api.get(f"{BASE}?sort=growth", owner_token).body["items"]

    assert [(r["address"], r["growth_7d_bytes"]) for r in rows] == [("new@example.com", 0)]


def test_another_clients_user_gets_404_and_a_viewer_reads(
    api, operator, domain, outsider_token, viewer_token
):
    mailbox_growing(operator, domain, "anna", 100, 350)

    hidden = api.get(f"{BASE}?sort=growth", outsider_token)
    seen = api.get(f"{BASE}?sort=growth", viewer_token)

    assert hidden.status == 404
    assert "anna" not in str(hidden.body)
    assert seen.status == 200 and seen.body["items"][0]["growth_7d_bytes"] == 250


def test_growth_sort_runs_a_fixed_number_of_queries(
    api, operator, domain, owner_token, django_assert_num_queries
):
    api.get("domains", owner_token)  # records the token's last use: later calls skip it
    for start, count in [(0, 2), (2, 12)]:
        for i in range(start, start + count):
            mailbox_growing(operator, domain, f"user{i}", i, i * 10)
            forward_create(
                actor=operator, domain=domain, name=f"fwd{i}", destinations=["a@b.example"]
            )
        with django_assert_num_queries(query_budget("api:address_list:growth")):
            response = api.get(f"{BASE}?sort=growth", owner_token)
        assert response.body["total"] == 2 * (start + count)
