"""The customer API's second part: usage and the billing estimate per domain, DKIM key
rotation, the audit log, your own API tokens, and failed-token rate limiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone, translation

from postdesk.api.models import ApiToken
from postdesk.audit.models import AuditEvent
from postdesk.billing.selectors import billing_estimate
from postdesk.billing.services import client_set_plan, plan_create
from postdesk.dns.models import DkimKey, DkimKeyStatus
from postdesk.dns.services import dkim_enable
from postdesk.mail.models import Mailbox
from postdesk.mail.services import mailbox_create
from tests.api.conftest import make_token
from tests.budgets import query_budget
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db


# --- Usage and estimate ------------------------------------------------------------------------


def test_usage_is_the_dashboards(api, operator, owner_token, domain, mailbox, forward):
    mailbox_create(
        actor=operator, domain=domain, username="jean", password=GOOD_PASSWORD, eas_enabled=True
    )
    Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=1000)
    response = api.get("domains/example.com/usage", owner_token)
    assert response.status == 200
    assert response.body == {
        "used_bytes": 1000,
        "mailboxes": 2,
        "aliases": 1,
        "forwards": 1,
        "eas_accounts": 1,
        "mapi_accounts": 0,
    }


def test_estimate_is_the_billing_estimate(api, operator, owner_token, client_a, domain, mailbox):
    no_plan = api.get("domains/example.com/estimate", owner_token)
    assert (no_plan.status, no_plan.body["code"]) == (400, "no_plan")
    plan = plan_create(
        actor=operator,
        name="Basic",
        currency="CAD",
        storage_gb_price="0.50",
        eas_price="4",
        mapi_price="6",
        eas_mapi_price="8.50",
    )
    client_set_plan(actor=operator, client=client_a, plan=plan, at=datetime(2024, 1, 1, tzinfo=UTC))
    response = api.get("domains/example.com/estimate?at=2024-01-15T12:00:00Z", owner_token)
    assert response.status == 200, response.body
    expected = billing_estimate(
        actor=operator, domain=domain, at=datetime(2024, 1, 15, 12, tzinfo=UTC)
    ).as_dict()
    assert (response.body["total"], response.body["currency"]) == (expected["total"], "CAD")
    assert response.body["lines"] == expected["lines"]
    for key in ("combined_saving", "combined_saving_each"):
        assert response.body[key] == expected[key]
    naive = api.get("domains/example.com/estimate?at=2024-01-15T12:00:00", owner_token)
    assert (naive.status, naive.body["code"]) == (400, "time_without_zone")


# --- DKIM rotation -----------------------------------------------------------------------------


def test_dkim_rotation_prepare_then_rotate(api, operator, owner_token, domain, dns_server):
    before = api.post("domains/example.com/dkim/prepare", owner_token)
    assert (before.status, before.body["code"]) == (400, "dkim_disabled")
    dkim_enable(actor=operator, domain=domain)

    prepared = api.post("domains/example.com/dkim/prepare", owner_token)
    assert prepared.status == 200, prepared.body
    assert sorted((r["selector"], r["status"]) for r in prepared.body["records"]) == [
        ("mail", "signing"),
        ("mail2", "prepared"),
    ]
    # Asked again: the same prepared key.
    again = api.post("domains/example.com/dkim/prepare", owner_token)
    assert again.body == prepared.body

    # Not published yet (the test DNS server has no record): refused, nothing changes.
    early = api.post("domains/example.com/dkim/rotate", owner_token, {})
    assert (early.status, early.body["code"]) == (400, "dkim_not_published")
    assert DkimKey.objects.get(selector="mail").status == DkimKeyStatus.SIGNING

    # Published: the switch happens.
    new = next(r for r in prepared.body["records"] if r["status"] == "prepared")
    dns_server.set_txt(new["host"], new["value"])
    rotated = api.post("domains/example.com/dkim/rotate", owner_token, {})
    assert rotated.status == 200, rotated.body
    statuses = {r["selector"]: r["status"] for r in rotated.body["records"]}
    assert statuses["mail2"] == "signing"
    assert DkimKey.objects.get(selector="mail").status == DkimKeyStatus.RETIRED
    assert AuditEvent.objects.filter(action="dkim.rotate").count() == 1


def test_dkim_rotation_can_be_forced(api, operator, owner_token, domain, dns_server):
    dkim_enable(actor=operator, domain=domain)
    api.post("domains/example.com/dkim/prepare", owner_token)
    forced = api.post("domains/example.com/dkim/rotate", owner_token, {"force": True})
    assert forced.status == 200
    assert DkimKey.objects.get(selector="mail2").status == DkimKeyStatus.SIGNING


# --- Audit log ---------------------------------------------------------------------------------


def test_the_audit_log_shows_who_did_what_from_where(
    api, operator, owner, owner_token, viewer_token, domain, other_domain
):
    api.post("domains/example.com/mailboxes", owner_token, {"username": "jean"})
    api.post(
        "domains/example.com/forwards", owner_token, {"name": "info", "destinations": ["a@b.org"]}
    )
    response = api.get("domains/example.com/audit", viewer_token)
    assert response.status == 200
    items = response.body["items"]
    assert [e["action"] for e in items[:3]] == ["forward.create", "mailbox.create", "domain.add"]
    first = items[0]
    assert (first["actor"], first["source"], first["ip"]) == (
        "owner@example.org",
        "api",
        "127.0.0.1",
    )
    assert (first["domain"], first["target"]) == ("example.com", "info@example.com")
    assert "password" not in str(items)
    # Everything of the user's clients, filtered by domain or not; never another client's.
    everything = api.get("audit", owner_token).body
    assert {e["domain"] for e in everything["items"]} <= {"example.com", ""}
    assert everything["total"] >= 3
    assert api.get("audit?domain=example.com", owner_token).body["total"] == response.body["total"]
    hidden = api.get("audit?domain=example.net", owner_token)
    assert (hidden.status, hidden.body["code"]) == (404, "not_found")


def test_the_audit_log_pages(api, operator, owner_token, domain):
    for i in range(7):
        mailbox_create(actor=operator, domain=domain, username=f"u{i}", password=GOOD_PASSWORD)
    page = api.get("domains/example.com/audit?per_page=3&page=2", owner_token).body
    assert (page["total"], page["page"], page["per_page"], page["num_pages"]) == (8, 2, 3, 3)
    assert [e["target"] for e in page["items"]] == [
        "u3@example.com",
        "u2@example.com",
        "u1@example.com",
    ]
    past = api.get("domains/example.com/audit?per_page=3&page=99", owner_token).body
    assert past["page"] == 3 and [e["action"] for e in past["items"]][-1] == "domain.add"


# --- Your own tokens ---------------------------------------------------------------------------


def test_manage_your_own_tokens(api, operator, owner, owner_token, outsider_token):
    created = api.post("tokens", owner_token, {"scope": "read", "expires_days": 30})
    assert created.status == 201, created.body
    token = created.body["token"]
    assert token.startswith("pd_") and created.body["state"] == "active"
    assert created.body["scope"] == "read"
    # Usable at once, and shown once only: the list never holds a token itself.
    assert api.get("domains", token).status == 200
    listed = api.get("tokens", owner_token).body["items"]
    assert created.body["prefix"] in {t["prefix"] for t in listed}
    assert token not in str(listed)
    assert all(set(t) == {*created.body} - {"token"} for t in listed)

    # Another user cannot revoke it (nor learn it exists).
    theirs = api.delete(f"tokens/{created.body['prefix']}", outsider_token)
    assert (theirs.status, theirs.body["code"]) == (404, "not_found")
    assert api.delete(f"tokens/{created.body['prefix']}", owner_token).status == 204
    assert api.get("domains", token).body["code"] == "token_revoked"
    states = {t["prefix"]: t["state"] for t in api.get("tokens", owner_token).body["items"]}
    assert states[created.body["prefix"]] == "revoked"


def test_a_token_made_with_an_expiring_token_expires_no_later(api, operator, owner):
    short = make_token(operator, owner, expires_days=2)
    made = api.post("tokens", short, {"scope": "write"})
    assert made.status == 201
    stored = ApiToken.objects.get(prefix=made.body["prefix"])
    assert stored.expires_at is not None
    assert stored.expires_at <= timezone.now() + timedelta(days=2)
    longer = api.post("tokens", short, {"scope": "write", "expires_days": 300})
    assert ApiToken.objects.get(prefix=longer.body["prefix"]).expires_at == (
        ApiToken.objects.get(prefix=short.split("_")[1]).expires_at
    )


def test_token_input_is_checked(api, owner_token, owner_read_token, operator_token):
    bad = api.post("tokens", owner_token, {"scope": "write", "expires_days": 0})
    assert (bad.status, bad.body["code"], bad.body["field"]) == (400, "expires_invalid", "expires")
    wrong = api.post("tokens", owner_token, {"scope": "admin"})
    assert (wrong.status, wrong.body["code"]) == (422, "invalid_choice")
    read_only = api.post("tokens", owner_read_token, {"scope": "read"})
    assert (read_only.status, read_only.body["code"]) == (403, "permission_denied")
    provider = api.get("tokens", operator_token)
    assert (provider.status, provider.body["code"]) == (403, "permission_denied")


# --- Failed-token rate limiting ----------------------------------------------------------------


def test_repeated_invalid_tokens_from_one_address_get_429(api, settings, owner_token, domain):
    settings.POSTDESK_API_AUTH_FAILURE_LIMIT = 5
    settings.POSTDESK_API_AUTH_FAILURE_WINDOW = 600
    # Requests without a token guess nothing: they are not counted.
    for _ in range(10):
        assert api.get("domains").status == 401
    assert api.get("domains", owner_token).status == 200
    bogus = "pd_00000000_" + "A" * 43
    for _ in range(4):
        assert api.get("domains", bogus).status == 401
    fifth = api.get("domains", bogus)
    assert fifth.status == 401
    # Blocked now: even a valid token is refused, so a right guess would not show.
    blocked = api.get("domains", owner_token, lang="fr")
    assert (blocked.status, blocked.body["code"]) == (429, "too_many_failures")
    assert 0 < int(blocked.headers["Retry-After"]) <= 600
    with translation.override("fr"):
        assert blocked.body["message"] == translation.gettext(
            "Too many requests with an invalid API token came from your address. Try again "
            "in %(minutes)d minute(s)."
        ) % {"minutes": 10}
    # Another address is not affected.
    other = api.http.get(
        "/api/v1/domains",
        headers={"Authorization": f"Bearer {owner_token}"},
        REMOTE_ADDR="192.0.2.7",
    )
    assert other.status_code == 200


def test_the_block_ends_after_the_window(api, settings, owner_token, domain, monkeypatch):
    import time as real_time

    from postdesk import throttle

    settings.POSTDESK_API_AUTH_FAILURE_LIMIT = 2
    settings.POSTDESK_API_AUTH_FAILURE_WINDOW = 60
    for _ in range(2):
        api.get("domains", "pd_00000000_" + "A" * 43)
    assert api.get("domains", owner_token).status == 429
    # The clock moves past the block (the cache entry's own expiry is the backstop).
    later = real_time.time() + 61
    monkeypatch.setattr(throttle.time, "time", lambda: later)
    assert api.get("domains", owner_token).status == 200


# --- The floor: a token check and nothing else ----------------------------------------------------


def test_ping_answers_ok_to_any_valid_token(api, owner_read_token, operator_token):
    for token in (owner_read_token, operator_token):
        response = api.get("ping", token)
        assert (response.status, response.body) == (200, {"ok": True})


def test_ping_needs_a_valid_token(api, owner_token):
    missing = api.get("ping")
    assert (missing.status, missing.body["code"]) == (401, "token_missing")
    wrong = api.get("ping", owner_token[:-4] + "xxxx")
    assert (wrong.status, wrong.body["code"]) == (401, "token_invalid")


def test_ping_reads_nothing_but_the_token(api, owner_token, django_assert_num_queries):
    api.get("ping", owner_token)  # the first use also records last_used_at
    # The token and its user: what every API request pays before its own work.
    with django_assert_num_queries(query_budget("api:ping")):
        assert api.get("ping", owner_token).status == 200
