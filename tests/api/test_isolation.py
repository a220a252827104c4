"""Tenant isolation over every operation of the API, read from its OpenAPI schema, so a new
route is covered the day it is added: another client's user gets 404 for each of client A's
objects (never 403: existence is not disclosed), a viewer and a read-scope token get 403 on
every write, the provisioning operations refuse every personal token (403), nobody gets in
without a token, and none of these attempts changes anything."""

from __future__ import annotations

import re
from typing import Any

import pytest

from postdesk.api.models import ApiToken, IdempotencyKey
from postdesk.api.tokens import parse
from postdesk.audit.models import AuditEvent
from postdesk.billing.models import ClientPlan
from postdesk.billing.services import client_set_plan, plan_create
from postdesk.dns.services import dkim_enable
from postdesk.mail.models import Address, Destination
from postdesk.tenancy.models import Client

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")


def operations(schema: dict) -> list[dict[str, Any]]:
    found = []
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                found.append(
                    {
                        "id": op["operationId"],
                        "method": method.upper(),
                        "path": path,
                        "params": re.findall(r"{(\w+)}", path),
                        # POSTs that change nothing (a DNS check) declare it; all else is a write.
                        "write": method != "get" and op.get("x-postdesk-scope") != "read",
                        # The provider's billing system only: every personal token gets 403.
                        "operator": bool(op.get("x-postdesk-operator")),
                        # Your own API tokens: any role, but a write-scope token to change them.
                        "personal": op.get("x-postdesk-scope") == "personal",
                        "body": op.get("requestBody"),
                    }
                )
    return found


def example(schema: dict, components: dict) -> Any:
    """The smallest value the schema accepts: required properties only."""
    if "$ref" in schema:
        return example(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return example(options[0], components)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: example(props[k], components) for k in schema.get("required", [])}
    return {"string": "probe", "integer": 1, "boolean": True, "array": []}.get(kind)


def body_for(op: dict, schema: dict) -> Any:
    if not op["body"]:
        return None
    content = op["body"]["content"]["application/json"]["schema"]
    return example(content, schema["components"]["schemas"])


# Client A's real objects, by path parameter. A new kind of parameter must be added here, or
# every test below fails and says which.
def fill(path: str, world: dict[str, Any]) -> str:
    values = {
        "domain": "example.com",
        "alias": "m.dupont",
        "address": (
            "info@example.com" if path.startswith("/api/v1/forwards/") else "marie@example.com"
        ),
        "client_id": str(world["client_id"]),
        "prefix": world["token_prefix"],
    }

    def value(match: re.Match) -> str:
        name = match.group(1)
        assert name in values, f"no value of client A for path parameter {{{name}}} in {path}"
        return values[name]

    return re.sub(r"{(\w+)}", value, path)


@pytest.fixture
def schema(api) -> dict:
    return api.get("openapi.json").body


@pytest.fixture
def client_a_world(operator, client_a, domain, mailbox, forward, owner_token) -> dict[str, Any]:
    """Client A with a mailbox, a forward, DKIM, a plan; its owner has a token."""
    dkim_enable(actor=operator, domain=domain)
    plan = plan_create(
        actor=operator,
        name="Basic",
        currency="CAD",
        storage_gb_price="0.50",
        eas_price="4",
        mapi_price="6",
        eas_mapi_price="8.50",
    )
    client_set_plan(actor=operator, client=client_a, plan=plan)
    return {"client_id": client_a.pk, "token_prefix": parse(owner_token)[0]}


def snapshot() -> tuple:
    return (
        sorted(Address.objects.values_list("local_part", "kind")),
        sorted(Destination.objects.values_list("address__local_part", "email")),
        sorted(Client.objects.values_list("name", "suspended_at")),
        sorted(ApiToken.objects.values_list("prefix", "revoked_at")),
        ClientPlan.objects.count(),
        IdempotencyKey.objects.count(),
        AuditEvent.objects.count(),
    )


def test_the_schema_lists_every_operation(schema):
    ids = {op["id"] for op in operations(schema)}
    assert {
        "domain_list",
        "address_list",
        "mailbox_create",
        "mailbox_update",
        "mailbox_delete",
        "mailbox_set_password",
        "alias_add",
        "alias_remove",
        "forward_create",
        "forward_update",
        "forward_delete",
        "dns_status",
        "dns_check_now",
        "dkim_enable",
        "dkim_disable",
        "dkim_prepare",
        "dkim_rotate",
        "domain_usage",
        "domain_estimate",
        "domain_audit",
        "audit_list",
        "token_list",
        "token_create",
        "token_revoke",
        "client_create",
        "client_detail",
        "client_suspend",
        "client_unsuspend",
        "client_terminate",
        "client_change_plan",
        "client_usage",
    } <= ids
    operator_only = {op["id"] for op in operations(schema) if op["operator"]}
    assert {"client_create", "client_terminate", "client_usage"} <= operator_only


def test_another_clients_user_gets_404_for_everything_of_client_a(
    api, schema, client_a_world, outsider_token, owner_token, operator_token, other_domain
):
    before = snapshot()
    failures = []
    for op in operations(schema):
        if op["personal"] and op["method"] == "POST" and not op["params"]:
            continue  # creates the outsider's own token: checked below, it changes state
        path = fill(op["path"], client_a_world)
        response = api.call(op["method"], path, outsider_token, body=body_for(op, schema))
        if op["operator"]:
            # Not a client's user's business at all, whatever the client.
            if response.status != 403 or response.body.get("code") != "permission_denied":
                failures.append((op["id"], response.status, response.body))
        elif op["params"]:
            if response.status != 404 or response.body.get("code") != "not_found":
                failures.append((op["id"], response.status, response.body))
        else:
            # A list: it answers, but shows nothing of client A.
            content = response.headers.content
            if (
                response.status != 200
                or b"example.com" in content
                or client_a_world["token_prefix"].encode() in content
            ):
                failures.append((op["id"], response.status, response.body))
    assert failures == []
    assert snapshot() == before

    # The outsider's own token: theirs only, invisible to client A's owner.
    created = api.post("tokens", outsider_token, {"scope": "read"})
    assert created.status == 201
    owner_tokens = api.get("tokens", owner_token).body["items"]
    assert created.body["prefix"] not in {t["prefix"] for t in owner_tokens}

    # The control: the same paths are real for client A's own owner, and the provisioning
    # ones for the provider.
    for op in operations(schema):
        if op["method"] == "GET":
            token = operator_token if op["operator"] else owner_token
            response = api.get(fill(op["path"], client_a_world), token)
            assert response.status == 200, (op["id"], response.body)


def test_a_viewer_and_a_read_token_get_403_on_every_write(
    api, schema, client_a_world, viewer_token, owner_read_token
):
    before = snapshot()
    writes = [op for op in operations(schema) if op["write"]]
    assert len(writes) >= 20
    failures = []
    for token in (viewer_token, owner_read_token):
        for op in writes:
            if op["personal"] and token == viewer_token:
                continue  # a viewer's own tokens are theirs to manage: below
            response = api.call(
                op["method"], fill(op["path"], client_a_world), token, body=body_for(op, schema)
            )
            if response.status != 403 or response.body.get("code") != "permission_denied":
                failures.append((op["id"], response.status, response.body))
    assert failures == []
    assert snapshot() == before
    # And both may read, and ask for what changes nothing, but not the provider's operations.
    for token in (viewer_token, owner_read_token):
        for op in operations(schema):
            if not op["write"]:
                response = api.call(
                    op["method"],
                    fill(op["path"], client_a_world),
                    token,
                    body=body_for(op, schema),
                )
                expected = (403,) if op["operator"] else (200, 202)
                assert response.status in expected, (op["id"], response.body)
    # A viewer manages their own tokens (their role is about the client's objects), but not
    # the owner's.
    mine = api.post("tokens", viewer_token, {"scope": "read"})
    assert mine.status == 201
    assert api.delete(f"tokens/{mine.body['prefix']}", viewer_token).status == 204
    others = api.delete(f"tokens/{client_a_world['token_prefix']}", viewer_token)
    assert (others.status, others.body["code"]) == (404, "not_found")


def test_nothing_without_a_valid_token(api, schema, client_a_world, settings):
    # Many invalid tokens from one address would be throttled (429): not the point here.
    settings.POSTDESK_API_AUTH_FAILURE_LIMIT = 10_000
    before = snapshot()
    for op in operations(schema):
        for token in (None, "pd_00000000_" + "A" * 43):
            response = api.call(
                op["method"], fill(op["path"], client_a_world), token, body=body_for(op, schema)
            )
            assert response.status == 401, (op["id"], token, response.body)
            assert response.body["code"] in {"token_missing", "token_invalid"}
    assert snapshot() == before
