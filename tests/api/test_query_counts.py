"""The API's lists run a fixed number of SQL queries whatever the number of rows: measured at
two sizes against the budgets in tests/query_budgets.json (token, membership and page
queries included)."""

from __future__ import annotations

import pytest

from postdesk.mail.models import Alias, Destination, Mailbox
from postdesk.mail.services import domain_add, forward_create, mailbox_create
from tests.budgets import query_budget
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db


def grow(operator, client, domain, start: int, count: int) -> None:
    for i in range(start, start + count):
        mailbox = mailbox_create(
            actor=operator,
            domain=domain,
            username=f"user{i}",
            password=GOOD_PASSWORD,
            aliases=[f"alias{i}"],
            destinations=[f"copy{i}@elsewhere.example"],
        )
        Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=i)
        forward_create(
            actor=operator, domain=domain, name=f"fwd{i}", destinations=[f"to{i}@x.example"]
        )
        domain_add(actor=operator, client=client, name=f"extra{i}.example")


@pytest.mark.parametrize(
    ("budget", "path"),
    [
        ("api:domain_list", "domains"),
        ("api:address_list", "domains/example.com/addresses"),
        ("api:address_list", "domains/example.com/addresses?sort=storage&type=mailbox"),
        ("api:address_list:search", "domains/example.com/addresses?search=alias1"),
    ],
)
def test_list_query_count_is_fixed(
    api, operator, client_a, domain, owner_token, django_assert_num_queries, budget, path
):
    api.get("domains", owner_token)  # records the token's last use: later calls skip it
    for start, count in [(0, 3), (3, 30)]:
        grow(operator, client_a, domain, start, count)
        with django_assert_num_queries(query_budget(budget)):
            response = api.get(path, owner_token)
        assert response.status == 200
        assert response.body["total"] >= (1 if "search" in path else count)
    assert Alias.objects.count() == 33 and Destination.objects.count() == 66


@pytest.mark.parametrize(
    ("budget", "path"),
    [
        ("api:audit_list", "audit"),
        ("api:audit_list:domain", "domains/example.com/audit"),
        ("api:audit_list:domain", "domains/example.com/audit?page=2&per_page=10"),
        ("api:token_list", "tokens"),
    ],
)
def test_audit_and_token_lists_query_count_is_fixed(
    api, operator, owner, client_a, domain, owner_token, django_assert_num_queries, budget, path
):
    from postdesk.api.services import token_create

    api.get("domains", owner_token)  # records the token's last use: later calls skip it
    for start, count in [(0, 3), (3, 30)]:
        grow(operator, client_a, domain, start, count)  # 3 audit events per row
        for _ in range(count):
            token_create(actor=operator, user=owner.user, scope="read")
        with django_assert_num_queries(query_budget(budget)):
            response = api.get(path, owner_token)
        assert response.status == 200
    assert len(response.body["items"]) >= 10


def test_audit_selector_query_count_is_fixed(
    operator, owner, client_a, domain, django_assert_num_queries
):
    from postdesk.tenancy.selectors import audit_list

    for start, count in [(0, 3), (3, 30)]:
        grow(operator, client_a, domain, start, count)
        for budget, kwargs in (
            ("selector:audit_list:visible", {}),
            ("selector:audit_list", {"client": client_a}),
            ("selector:audit_list", {"domain": domain}),
        ):
            owner._roles.clear()  # the membership check is part of the cost
            with django_assert_num_queries(query_budget(budget)):
                page = audit_list(actor=owner, **kwargs)
            assert page.total >= count


def test_usage_report_runs_a_fixed_number_of_queries_whatever_the_domains(
    api, operator, client_a, domain, django_assert_num_queries
):
    """The provisioning usage report estimates every domain of the client together (plan
    history, protocol periods, storage aggregate grouped by domain): the same number of
    queries for 1 and for 6 domains, and each domain's figures those of its own estimate."""
    from datetime import UTC, datetime

    from postdesk.api.models import TokenScope
    from postdesk.api.services import token_create
    from postdesk.billing.selectors import billing_estimate
    from postdesk.billing.services import client_set_plan, plan_create
    from postdesk.mail.models import Domain
    from postdesk.mail.services import mailbox_update, mailbox_usage_record

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
    token = token_create(actor=operator, operator_name="billing", scope=TokenScope.READ).plaintext
    at = datetime(2024, 1, 20, tzinfo=UTC)
    path = f"provisioning/clients/{client_a.pk}/usage?at=2024-01-20T00:00:00Z"
    api.get(path, token)  # records the token's last use: later calls skip it
    for start, count in [(0, 1), (1, 4)]:
        grow(operator, client_a, domain, start, count)  # adds `count` domains, and rows
        for i, mailbox in enumerate(Mailbox.objects.filter(address__domain=domain)[start:]):
            mailbox_usage_record(
                actor=operator,
                mailbox=mailbox,
                used_bytes=1000 * (i + 1) * 1024**3,
                at=datetime(2024, 1, 10, tzinfo=UTC),
            )
            mailbox_update(
                actor=operator,
                mailbox=mailbox,
                eas_enabled=True,
                mapi_enabled=i % 2 == 0,
                at=datetime(2024, 1, 12, tzinfo=UTC),
            )
        domains = list(Domain.objects.filter(client=client_a).order_by("name"))
        with django_assert_num_queries(query_budget("api:provisioning_usage")):
            response = api.get(path, token)
        assert response.status == 200, response.body
        assert [line["domain"] for line in response.body["domains"]] == [d.name for d in domains]
        expected = [
            {"domain": d.name, "estimate": billing_estimate(actor=operator, domain=d, at=at)}
            for d in domains
        ]
        got = api.get(path, token).body["domains"]
        for line, want in zip(got, expected, strict=True):
            assert line["estimate"]["total"] == str(want["estimate"].total)
            assert line["estimate"]["lines"] == want["estimate"].as_dict()["lines"]
    assert len(domains) == 6
    assert any(line["estimate"]["total"] != "0.00" for line in got)
