"""One rendering of a mailbox: the API's mailbox routes answer the address list's row for
that mailbox (the same keys, the same values) plus the mailbox's two dates, and nothing
else. Operators' scripts read these keys: the set is pinned here, in its order."""

from __future__ import annotations

import pytest
from django.core.serializers.json import DjangoJSONEncoder

from postdesk.mail.models import Mailbox
from postdesk.mail.services import mailbox_update
from tests.budgets import query_budget
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

MAILBOX_KEYS = [
    "address",
    "aliases",
    "destinations",
    "quota_mb",
    "used_bytes",
    "eas",
    "mapi",
    "delete_after_forwarding",
    "keep_original_sender",
    "password_changed_at",
    "created_at",
]
# What the list row has and a mailbox route does not return.
ROW_ONLY_KEYS = {"type", "growth_7d_bytes"}
DATE_KEYS = {"password_changed_at", "created_at"}


def _list_row(api, token, address: str) -> dict:
    rows = api.get("domains/example.com/addresses?type=mailbox&per_page=500", token).body
    return next(row for row in rows["items"] if row["address"] == address)


def _assert_renders_as_listed(api, token, body: dict) -> None:
    assert list(body) == MAILBOX_KEYS
    row = _list_row(api, token, body["address"])
    assert set(row) - ROW_ONLY_KEYS == set(MAILBOX_KEYS) - DATE_KEYS
    assert {key: body[key] for key in row if key not in ROW_ONLY_KEYS} == {
        key: value for key, value in row.items() if key not in ROW_ONLY_KEYS
    }
    stored = Mailbox.objects.get(address__local_part=body["address"].split("@")[0])
    for key in DATE_KEYS:  # as Django's JSON encoder writes a time (milliseconds, "Z")
        assert body[key] == DjangoJSONEncoder().default(getattr(stored, key))


def test_mailbox_detail_is_its_address_list_row(api, operator, owner_token, mailbox):
    mailbox_update(
        actor=operator,
        mailbox=mailbox,
        aliases=["zz.last", "aa.first", "m.dupont"],
        destinations=["second@elsewhere.example", "first@elsewhere.example"],
        eas_enabled=True,
        keep_original_sender=True,
    )
    Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=12345, growth_7d_bytes=-7)

    body = api.get("mailboxes/marie@example.com", owner_token).body

    _assert_renders_as_listed(api, owner_token, body)
    # The values themselves, as the API has always returned them.
    assert body["aliases"] == [
        "aa.first@example.com",
        "m.dupont@example.com",
        "zz.last@example.com",
    ]
    assert body["destinations"] == ["second@elsewhere.example", "first@elsewhere.example"]
    assert (body["quota_mb"], body["used_bytes"], body["eas"], body["mapi"]) == (
        100,
        12345,
        True,
        False,
    )
    assert (body["delete_after_forwarding"], body["keep_original_sender"]) == (False, True)


def test_every_route_returning_a_mailbox_renders_it_as_listed(api, owner_token, domain):
    created = api.post(
        "domains/example.com/mailboxes",
        owner_token,
        {
            "username": "jean",
            "password": GOOD_PASSWORD,
            "aliases": ["j.t"],
            "destinations": ["jean@elsewhere.example"],
            "quota_mb": 2048,
            "mapi": True,
        },
    )
    assert created.status == 201, created.body
    assert created.body.pop("password") is None
    _assert_renders_as_listed(api, owner_token, created.body)
    assert created.body == api.get("mailboxes/jean@example.com", owner_token).body

    updated = api.patch(
        "mailboxes/jean@example.com",
        owner_token,
        {"aliases": ["jt", "j.t"], "destinations": [], "eas": True, "quota_mb": 10},
    )
    assert updated.status == 200, updated.body
    _assert_renders_as_listed(api, owner_token, updated.body)
    assert updated.body == api.get("mailboxes/jean@example.com", owner_token).body

    added = api.post("mailboxes/jean@example.com/aliases", owner_token, {"name": "jean.t"})
    assert added.status == 201, added.body
    _assert_renders_as_listed(api, owner_token, added.body)
    assert added.body == api.get("mailboxes/jean@example.com", owner_token).body
    assert added.body["aliases"] == ["j.t@example.com", "jean.t@example.com", "jt@example.com"]


def test_mailbox_detail_query_count_is_fixed(
    api, operator, owner_token, mailbox, django_assert_num_queries
):
    api.get("domains", owner_token)  # records the token's last use: later calls skip it
    for aliases, destinations in [(1, 1), (30, 20)]:
        mailbox_update(
            actor=operator,
            mailbox=mailbox,
            aliases=[f"marie{n}" for n in range(aliases)],
            destinations=[f"marie{n}@gmail.com" for n in range(destinations)],
        )
        with django_assert_num_queries(query_budget("api:mailbox_detail")):
            response = api.get("mailboxes/marie@example.com", owner_token)
        assert len(response.body["aliases"]) == aliases
        assert len(response.body["destinations"]) == destinations


def test_a_forward_is_its_address_list_row_too(api, owner_token, forward):
    created = api.post(
        "domains/example.com/forwards",
        owner_token,
        {"name": "sales", "destinations": ["b@partner.example", "a@partner.example"]},
    ).body
    updated = api.put(
        "forwards/sales@example.com", owner_token, {"destinations": ["c@partner.example"]}
    ).body
    fetched = api.get("forwards/sales@example.com", owner_token).body
    rows = api.get("domains/example.com/addresses?type=forward", owner_token).body["items"]
    row = next(r for r in rows if r["address"] == "sales@example.com")
    assert list(fetched) == ["address", "destinations", "created_at", "updated_at"]
    assert created["destinations"] == ["b@partner.example", "a@partner.example"]  # as given
    assert updated["destinations"] == fetched["destinations"] == row["destinations"]
    assert fetched["address"] == row["address"]
