"""The provisioning API, as the provider's billing system uses it: create a client with its
owner and domain, suspend, unsuspend, change the plan, report usage, terminate; retries made
safe by Idempotency-Key. Only provisioning (operator) tokens get in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.utils import translation
from django_tasks_db.models import DBTaskResult

from postdesk.api.models import IdempotencyKey
from postdesk.audit.models import AuditEvent
from postdesk.billing.models import ClientPlan
from postdesk.billing.selectors import billing_estimate
from postdesk.billing.services import client_set_plan, plan_create
from postdesk.dns.models import DkimKey
from postdesk.dns.services import dkim_enable
from postdesk.mail.models import Address, Alias, Destination, Domain, Forward, Mailbox
from postdesk.mail.services import domain_add
from postdesk.tenancy.models import Client, Membership, User
from tests.api.conftest import make_token
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

NEW_CLIENT = {
    "name": "Charlie Ltd",
    "owner_email": "Boss@Charlie.example",
    "domain": "charlie.example",
}


@pytest.fixture
def basic_plan(operator):
    return plan_create(
        actor=operator,
        name="Basic",
        currency="CAD",
        storage_gb_price="0.50",
        eas_price="4",
        mapi_price="6",
        eas_mapi_price="8.50",
    )


def dataplane_domains() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT domain FROM dataplane_domains ORDER BY domain")
        return [row[0] for row in cursor.fetchall()]


def dataplane_logins() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT address FROM dataplane_mailboxes ORDER BY address")
        return [row[0] for row in cursor.fetchall()]


def queued(task_name: str) -> list[list]:
    return [
        r.args_kwargs["args"] for r in DBTaskResult.objects.all() if r.task_path.endswith(task_name)
    ]


# --- Who may call ------------------------------------------------------------------------------


def test_only_provisioning_tokens_get_in(api, owner_token, operator_token, client_a):
    assert api.post("provisioning/clients", None, NEW_CLIENT).status == 401
    refused = api.post("provisioning/clients", owner_token, NEW_CLIENT, lang="fr")
    assert (refused.status, refused.body["code"]) == (403, "permission_denied")
    with translation.override("fr"):
        # Its French comes with the catalogue; the language is the caller's either way.
        assert refused.body["message"] == translation.gettext(
            "This operation is for the provider's billing system: use a provisioning token."
        )
    assert api.get(f"provisioning/clients/{client_a.pk}", owner_token).status == 403
    assert not Client.objects.filter(name="Charlie Ltd").exists()
    assert api.get(f"provisioning/clients/{client_a.pk}", operator_token).status == 200
    missing = api.get("provisioning/clients/999999", operator_token)
    assert (missing.status, missing.body["code"]) == (404, "not_found")


def test_a_read_scope_provisioning_token_can_only_read(api, operator, client_a):
    from postdesk.api.services import token_create

    read = token_create(actor=operator, operator_name="reports", scope="read").plaintext
    assert api.get(f"provisioning/clients/{client_a.pk}", read).status == 200
    assert api.post(f"provisioning/clients/{client_a.pk}/suspend", read).status == 403
    assert Client.objects.get(pk=client_a.pk).suspended_at is None


# --- Create ------------------------------------------------------------------------------------


def test_create_a_client_with_its_owner_domain_and_plan(api, operator_token, basic_plan):
    response = api.post("provisioning/clients", operator_token, {**NEW_CLIENT, "plan": "basic"})
    assert response.status == 201, response.body
    body = response.body
    client = Client.objects.get(name="Charlie Ltd")
    assert body["client"] == {
        "id": client.pk,
        "name": "Charlie Ltd",
        "created_at": body["client"]["created_at"],
        "suspended_at": None,
        "domains": ["charlie.example"],
        "plan": "Basic",
    }
    assert (body["owner_email"], body["owner_created"]) == ("boss@charlie.example", True)
    # The generated password is the owner's real login password, returned only here.
    owner = User.objects.get(email="boss@charlie.example")
    assert owner.check_password(body["owner_password"])
    assert Membership.objects.get(user=owner).role == "owner"
    assert Domain.objects.get(name="charlie.example").client == client
    assert ClientPlan.objects.get(client=client).plan == basic_plan
    actions = set(AuditEvent.objects.filter(client=client).values_list("action", flat=True))
    assert {"client.create", "user.create", "domain.add", "client.set_plan"} <= actions
    assert body["owner_password"] not in str(list(AuditEvent.objects.values("changes")))

    # The new owner works at once, through their own token.
    token = make_token_for(owner)
    assert [d["name"] for d in api.get("domains", token).body["items"]] == ["charlie.example"]
    detail = api.get(f"provisioning/clients/{client.pk}", operator_token)
    assert detail.body == body["client"]


def make_token_for(user) -> str:
    from postdesk.api.services import token_create
    from postdesk.tenancy.access import Actor

    return token_create(actor=Actor.operator("t"), user=user, scope="write").plaintext


def test_a_given_owner_password_is_used_and_not_echoed(api, operator_token):
    response = api.post(
        "provisioning/clients", operator_token, {**NEW_CLIENT, "owner_password": GOOD_PASSWORD}
    )
    assert response.status == 201
    assert response.body["owner_password"] is None
    assert User.objects.get(email="boss@charlie.example").check_password(GOOD_PASSWORD)


def test_an_existing_login_becomes_owner_and_keeps_its_password(api, operator_token, outsider):
    response = api.post(
        "provisioning/clients",
        operator_token,
        {**NEW_CLIENT, "owner_email": "OWNER@example.net"},
    )
    assert response.status == 201, response.body
    assert (response.body["owner_created"], response.body["owner_password"]) == (False, None)
    user = outsider.user
    user.refresh_from_db()
    assert user.check_password("Unused-passw0rd!")
    assert sorted(user.memberships.values_list("client__name", flat=True)) == [
        "Bravo",
        "Charlie Ltd",
    ]


def test_a_login_switched_off_by_a_termination_comes_back_with_a_new_password(
    api, operator, operator_token, owner, client_a
):
    from postdesk.workflows.clients import client_terminate

    client_terminate(actor=operator, client=client_a, confirm="Acme")
    owner.user.refresh_from_db()
    assert not owner.user.is_active
    response = api.post(
        "provisioning/clients", operator_token, {**NEW_CLIENT, "owner_email": "owner@example.org"}
    )
    assert response.status == 201, response.body
    assert response.body["owner_created"] is True
    owner.user.refresh_from_db()
    assert owner.user.is_active
    assert owner.user.check_password(response.body["owner_password"])
    assert not owner.user.check_password("Unused-passw0rd!")


def test_every_invalid_field_is_reported_and_nothing_is_written(
    api, operator_token, client_a, domain
):
    before = (Client.objects.count(), User.objects.count(), Domain.objects.count())
    response = api.post(
        "provisioning/clients",
        operator_token,
        {
            "name": " acme ",
            "owner_email": "not an address",
            "domain": "EXAMPLE.com",
            "plan": "Gold",
        },
        lang="fr",
    )
    assert response.status == 400
    codes = {(e["field"], e["code"]) for e in response.body["errors"]}
    assert codes == {
        ("name", "client_exists"),
        ("owner_email", "email_invalid"),
        ("domain", "domain_taken"),
        ("plan", "not_found"),
    }
    weak = api.post(
        "provisioning/clients", operator_token, {**NEW_CLIENT, "owner_password": "short"}
    )
    assert (weak.status, weak.body["field"]) == (400, "owner_password")
    assert (Client.objects.count(), User.objects.count(), Domain.objects.count()) == before


def test_a_failure_half_way_leaves_nothing(api, operator_token, monkeypatch):
    # The domain's insert fails after the client and owner were written (a race with another
    # request taking the name, simulated here): the whole creation is rolled back.
    from postdesk.errors import InvalidInput
    from postdesk.workflows import clients as client_workflows

    def taken(**kwargs):
        raise InvalidInput("domain_taken", "taken", "domain")

    monkeypatch.setattr(client_workflows, "domain_add", taken)
    events = AuditEvent.objects.count()
    response = api.post("provisioning/clients", operator_token, NEW_CLIENT)
    assert (response.status, response.body["code"]) == (400, "domain_taken")
    assert not Client.objects.filter(name="Charlie Ltd").exists()
    assert not User.objects.filter(email="boss@charlie.example").exists()
    assert AuditEvent.objects.count() == events


# --- Idempotency -------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_replays_the_first_answer(api, operator_token):
    first = api.http.post(
        "/api/v1/provisioning/clients",
        data=NEW_CLIENT,
        content_type="application/json",
        headers={"Authorization": f"Bearer {operator_token}", "Idempotency-Key": "order-1001"},
    )
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    # The same body, keys in another order: the same request.
    again = api.http.post(
        "/api/v1/provisioning/clients",
        data=dict(reversed(list(NEW_CLIENT.items()))),
        content_type="application/json",
        headers={"Authorization": f"Bearer {operator_token}", "Idempotency-Key": "order-1001"},
    )
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()  # the generated password included: the first answer
    assert Client.objects.filter(name="Charlie Ltd").count() == 1
    assert User.objects.filter(email="boss@charlie.example").count() == 1
    # The stored answer holds a password: it is encrypted at rest.
    stored = IdempotencyKey.objects.get(key="order-1001")
    assert first.json()["owner_password"] not in stored.response

    other = api.http.post(
        "/api/v1/provisioning/clients",
        data={**NEW_CLIENT, "name": "Delta"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {operator_token}", "Idempotency-Key": "order-1001"},
    )
    assert other.status_code == 409
    assert (other.json()["code"], other.json()["field"]) == (
        "idempotency_key_reused",
        "Idempotency-Key",
    )
    assert not Client.objects.filter(name="Delta").exists()


def post_with_key(api, token: str, path: str, body: dict, key: str):
    response = api.http.post(
        f"/api/v1/{path}",
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )
    return response.status_code, response.json(), response


def test_a_failed_call_stores_nothing_so_its_retry_runs(api, operator_token, basic_plan):
    status, body, _r = post_with_key(
        api, operator_token, "provisioning/clients", {**NEW_CLIENT, "plan": "Gold"}, "k-2"
    )
    assert (status, body["code"]) == (404, "not_found")
    assert not IdempotencyKey.objects.exists()
    status, body, _r = post_with_key(
        api, operator_token, "provisioning/clients", {**NEW_CLIENT, "plan": "Basic"}, "k-2"
    )
    assert status == 201
    assert body["client"]["plan"] == "Basic"


def test_keys_belong_to_their_caller(api, operator, operator_token):
    from postdesk.api.services import token_create

    other = token_create(actor=operator, operator_name="other-billing", scope="write").plaintext
    assert post_with_key(api, operator_token, "provisioning/clients", NEW_CLIENT, "k")[0] == 201
    second = {**NEW_CLIENT, "name": "Echo", "owner_email": "e@echo.example", "domain": "e.example"}
    status, body, _r = post_with_key(api, other, "provisioning/clients", second, "k")
    assert status == 201 and body["client"]["name"] == "Echo"


def test_a_bad_key_is_refused(api, operator_token):
    status, body, _r = post_with_key(api, operator_token, "provisioning/clients", NEW_CLIENT, "é")
    assert (status, body["code"]) == (400, "idempotency_key_invalid")
    assert not Client.objects.exists()


def test_changing_the_plan_twice_with_one_key_adds_one_row(
    api, operator_token, client_a, basic_plan, operator
):
    plan_create(
        actor=operator,
        name="Pro",
        currency="CAD",
        storage_gb_price="0.40",
        eas_price="3",
        mapi_price="5",
        eas_mapi_price="7",
    )
    path = f"provisioning/clients/{client_a.pk}/plan"
    first = post_with_key(api, operator_token, path, {"plan": "Basic"}, "plan-7")
    again = post_with_key(api, operator_token, path, {"plan": "Basic"}, "plan-7")
    assert first[0] == again[0] == 201
    assert first[1] == again[1]
    assert again[2]["Idempotent-Replayed"] == "true"
    assert ClientPlan.objects.filter(client=client_a).count() == 1
    conflict = post_with_key(api, operator_token, path, {"plan": "Pro"}, "plan-7")
    assert conflict[0] == 409
    # Without a key, every call is a change (here, dated, so two distinct starts).
    dated = {"plan": "Pro", "at": "2030-01-01T00:00:00Z"}
    assert api.post(path, operator_token, dated).status == 201
    assert ClientPlan.objects.filter(client=client_a).count() == 2
    naive = api.post(path, operator_token, {"plan": "Pro", "at": "2031-01-01T00:00:00"})
    assert (naive.status, naive.body["code"], naive.body["field"]) == (
        400,
        "time_without_zone",
        "at",
    )


# --- Suspend, unsuspend ------------------------------------------------------------------------


def test_suspend_stops_mail_and_unsuspend_brings_it_back(
    api, operator_token, client_a, domain, mailbox, other_domain
):
    assert dataplane_domains() == ["example.com", "example.net"]
    assert dataplane_logins() == ["marie@example.com"]
    response = api.post(f"provisioning/clients/{client_a.pk}/suspend", operator_token)
    assert response.status == 200
    assert response.body["suspended_at"] is not None
    # The data-plane contract: the domain is gone for Postfix and Dovecot (mail refused,
    # logins refused), the other client's is not; nothing was deleted.
    assert dataplane_domains() == ["example.net"]
    assert dataplane_logins() == []
    assert Mailbox.objects.filter(pk=mailbox.pk).exists()
    assert ["*@example.com"] in queued("mailbox_sessions_kick")
    suspended_at = response.body["suspended_at"]

    again = api.post(f"provisioning/clients/{client_a.pk}/suspend", operator_token)
    assert again.body["suspended_at"] == suspended_at
    assert AuditEvent.objects.filter(action="client.suspend").count() == 1

    back = api.post(f"provisioning/clients/{client_a.pk}/unsuspend", operator_token)
    assert (back.status, back.body["suspended_at"]) == (200, None)
    assert dataplane_logins() == ["marie@example.com"]
    event = AuditEvent.objects.get(action="client.unsuspend")
    assert (event.actor_label, event.source) == ("operator:billing", "api")


# --- Terminate ---------------------------------------------------------------------------------


def test_terminate_needs_the_clients_name(api, operator_token, client_a, domain, mailbox):
    response = api.post(
        f"provisioning/clients/{client_a.pk}/terminate", operator_token, {"confirm": "Bravo"}
    )
    assert (response.status, response.body["code"], response.body["field"]) == (
        400,
        "confirmation_required",
        "confirm",
    )
    assert Client.objects.filter(pk=client_a.pk).exists()
    assert Mailbox.objects.count() == 1


def test_terminate_removes_the_clients_data_and_keeps_the_audit(
    api, operator, operator_token, client_a, domain, mailbox, forward, owner, viewer, other_domain
):
    dkim_enable(actor=operator, domain=domain)
    second = domain_add(actor=operator, client=client_a, name="example.org")
    # The viewer also belongs to another client: they keep their login.
    Membership.objects.create(user=viewer.user, client=other_domain.client, role="viewer")
    owner_token = make_token(operator, owner)
    events_before = AuditEvent.objects.count()

    response = api.post(
        f"provisioning/clients/{client_a.pk}/terminate", operator_token, {"confirm": " acme "}
    )
    assert response.status == 200, response.body
    assert response.body == {
        "name": "Acme",
        "domains": ["example.com", "example.org"],
        "mailboxes": 1,
        "deactivated_users": ["owner@example.org"],
    }
    assert not Client.objects.filter(pk=client_a.pk).exists()
    assert not Domain.objects.filter(pk__in=[domain.pk, second.pk]).exists()
    # Every address, mailbox, alias, forward, destination and DKIM key was client A's.
    for model in (Address, Mailbox, Alias, Forward, Destination, DkimKey):
        assert not model.objects.exists(), model
    assert not Membership.objects.filter(client_id=client_a.pk).exists()
    # Users left with no client are switched off, so their tokens stop at once.
    owner.user.refresh_from_db()
    viewer.user.refresh_from_db()
    assert (owner.user.is_active, viewer.user.is_active) == (False, True)
    refused = api.get("domains", owner_token)
    assert (refused.status, refused.body["code"]) == (401, "account_disabled")
    # The mailbox's messages are removed on the mail servers, in the background.
    assert ["example.com", mailbox.storage_id.hex, mailbox.address.email] in queued(
        "mailbox_storage_remove"
    )
    # The audit log is kept, with the termination itself.
    assert AuditEvent.objects.count() == events_before + 1
    event = AuditEvent.objects.get(action="client.terminate")
    assert event.changes["client_id"] == client_a.pk
    assert event.target == "Acme"
    # The other client is untouched; the terminated one is gone for the API.
    assert Domain.objects.filter(name="example.net").exists()
    assert api.get(f"provisioning/clients/{client_a.pk}", operator_token).status == 404


# --- Usage report ------------------------------------------------------------------------------


def test_usage_report_gives_each_domains_estimate(
    api, operator, operator_token, client_a, domain, mailbox, basic_plan
):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    client_set_plan(actor=operator, client=client_a, plan=basic_plan, at=start)
    domain_add(actor=operator, client=client_a, name="example.org")
    at = "2024-01-20T00:00:00Z"
    response = api.get(f"provisioning/clients/{client_a.pk}/usage?at={at}", operator_token)
    assert response.status == 200, response.body
    assert response.body["client"] == "Acme"
    assert [d["domain"] for d in response.body["domains"]] == ["example.com", "example.org"]
    expected = billing_estimate(
        actor=operator, domain=domain, at=datetime(2024, 1, 20, tzinfo=UTC)
    ).as_dict()
    got = response.body["domains"][0]["estimate"]
    assert got["total"] == expected["total"]
    assert got["lines"] == expected["lines"]
    for key in ("combined_saving", "combined_saving_each"):
        assert got[key] == expected[key]
    assert got["period_start"].startswith("2024-01-01T00:00:00")
    assert [line["item"] for line in got["lines"]] == ["storage", "eas", "mapi", "eas_mapi"]


def test_usage_report_without_a_plan_says_so(api, operator_token, client_a, domain):
    response = api.get(f"provisioning/clients/{client_a.pk}/usage", operator_token)
    assert (response.status, response.body["code"]) == (400, "no_plan")
