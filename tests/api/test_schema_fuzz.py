"""schemathesis over /api/v1/openapi.json against the running app (a live server): whatever
schemathesis sends, valid or not, no answer is a 5xx, and every answer is one the schema
declares (status code, content type, body shape).

Deterministic (derandomized: the same examples on every run) and kept short (a few examples
per operation). Path parameters are client A's real objects, so the operations reach their
services instead of stopping at 404; query parameters and bodies are schemathesis's own. The
provisioning operations are called with a provisioning token, every other one with client
A's owner's token.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from postdesk.api.services import token_create
from postdesk.api.tokens import parse
from postdesk.billing.services import client_set_plan, plan_create
from postdesk.dns.services import dkim_enable
from postdesk.mail.services import forward_create, mailbox_create
from tests.api.conftest import make_token
from tests.conftest import GOOD_PASSWORD

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db(transaction=True)]

EXAMPLES_PER_OPERATION = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def live_api(live_server, settings, operator, owner, client_a, domain, dns_server):
    """The live app, with client A's world, and the schema it serves."""
    settings.POSTDESK_API_AUTH_FAILURE_LIMIT = 1_000_000  # only valid tokens are sent anyway
    mailbox_create(
        actor=operator,
        domain=domain,
        username="marie",
        password=GOOD_PASSWORD,
        aliases=["m.dupont"],
    )
    forward_create(actor=operator, domain=domain, name="info", destinations=["a@b.example"])
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
    owner_token = make_token(operator, owner)
    live_server.tokens = {
        "owner": owner_token,
        "operator": token_create(actor=operator, operator_name="billing", scope="write").plaintext,
    }
    live_server.path_values = {
        "domain": "example.com",
        "alias": "m.dupont",
        "client_id": client_a.pk,
        "prefix": parse(make_token(operator, owner))[0],
    }
    return live_server


def served_schema() -> dict:
    """The schema exactly as /api/v1/openapi.json serves it (checked below). Loaded when the
    module is collected, because schemathesis makes one test per operation: its loader from a
    pytest fixture (one test for all) does not run under pytest 9 (schemathesis 4.32)."""
    from postdesk.api.api import api

    return api.get_openapi_schema(path_prefix="/api/v1/")


schema = schemathesis.openapi.from_dict(served_schema())


def test_the_fuzzed_schema_is_the_served_one(live_api):
    import json
    import urllib.request

    with urllib.request.urlopen(f"{live_api.url}/api/v1/openapi.json") as response:  # noqa: S310
        assert json.loads(response.read()) == json.loads(json.dumps(served_schema()))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error_and_every_answer_in_the_schema(case, live_api):
    path = case.operation.path
    values = dict(live_api.path_values)
    values["address"] = (
        "info@example.com" if path.startswith("/api/v1/forwards/") else ("marie@example.com")
    )
    if case.path_parameters:
        case.path_parameters = {
            name: values.get(name, value) for name, value in case.path_parameters.items()
        }
    who = "operator" if path.startswith("/api/v1/provisioning/") else "owner"
    case.call_and_validate(
        base_url=live_api.url,
        headers={"Authorization": f"Bearer {live_api.tokens[who]}"},
        checks=CHECKS,
    )
