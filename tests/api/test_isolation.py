"""Tenant isolation over every operation of the API, read from its OpenAPI schema, so a new
route is covered the day it is added: another client's user gets 404 for each of client A's
objects (never 403: existence is not disclosed), a viewer and a read-scope token get 403 on
every write, nobody gets in without a token, and none of these attempts changes anything."""

from __future__ import annotations

import re
from typing import Any

import pytest

from postdesk.audit.models import AuditEvent
from postdesk.dns.services import dkim_enable
from postdesk.mail.models import Address, Destination

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
def fill(path: str) -> str:
    values = {
        "domain": "example.com",
        "alias": "m.dupont",
        "address": (
            "info@example.com" if path.startswith("/api/v1/forwards/") else "marie@example.com"
        ),
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
def client_a_world(operator, domain, mailbox, forward):
    dkim_enable(actor=operator, domain=domain)


def snapshot() -> tuple:
    return (
        sorted(Address.objects.values_list("local_part", "kind")),
        sorted(Destination.objects.values_list("address__local_part", "email")),
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
    } <= ids


def test_another_clients_user_gets_404_for_everything_of_client_a(
    api, schema, client_a_world, outsider_token, owner_token, other_domain
):
    before = snapshot()
    failures = []
    for op in operations(schema):
        path = fill(op["path"])
        response = api.call(op["method"], path, outsider_token, body=body_for(op, schema))
        if op["params"]:
            if response.status != 404 or response.body.get("code") != "not_found":
                failures.append((op["id"], response.status, response.body))
        else:
            # A list: it answers, but shows nothing of client A.
            if response.status != 200 or b"example.com" in response.headers.content:
                failures.append((op["id"], response.status, response.body))
    assert failures == []
    assert snapshot() == before

    # The control: the same paths are real for client A's own owner.
    for op in operations(schema):
        if op["method"] == "GET":
            response = api.get(fill(op["path"]), owner_token)
            assert response.status == 200, (op["id"], response.body)


def test_a_viewer_and_a_read_token_get_403_on_every_write(
    api, schema, client_a_world, viewer_token, owner_read_token
):
    before = snapshot()
    writes = [op for op in operations(schema) if op["write"]]
    assert len(writes) >= 10
    failures = []
    for token in (viewer_token, owner_read_token):
        for op in writes:
            response = api.call(op["method"], fill(op["path"]), token, body=body_for(op, schema))
            if response.status != 403 or response.body.get("code") != "permission_denied":
                failures.append((op["id"], response.status, response.body))
    assert failures == []
    assert snapshot() == before
    # And both may read, and ask for what changes nothing.
    for token in (viewer_token, owner_read_token):
        for op in operations(schema):
            if not op["write"]:
                response = api.call(
                    op["method"], fill(op["path"]), token, body=body_for(op, schema)
                )
                assert response.status in (200, 202), (op["id"], response.body)


def test_nothing_without_a_valid_token(api, schema, client_a_world):
    before = snapshot()
    for op in operations(schema):
        for token in (None, "pd_00000000_" + "A" * 43):
            response = api.call(op["method"], fill(op["path"]), token, body=body_for(op, schema))
            assert response.status == 401, (op["id"], token, response.body)
            assert response.body["code"] in {"token_missing", "token_invalid"}
    assert snapshot() == before
