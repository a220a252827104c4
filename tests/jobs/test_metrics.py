"""GET /metrics: Prometheus's text format for the operator's scraper (its bearer token), the
404 of an unknown page for anyone else. Request latency by URL pattern, gate decisions, DNS
checks by outcome, the task queue and failed tasks, scraped through the panel and parsed with
prometheus_client's own parser. tests/test_serve.py adds up two gunicorn workers' counts."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tasks import task
from django_tasks_db.models import DBTaskResult
from prometheus_client.parser import text_string_to_metric_families

from postdesk.api.models import TokenScope
from postdesk.api.services import token_create
from postdesk.dns.status import dns_check_domain
from postdesk.mail.services import mailbox_create
from postdesk.mail.tasks import mailbox_sessions_kick
from postdesk.tenancy.models import User
from tests.budgets import query_budget
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests-0123456789"
GATE_KEY = "gate-key-for-tests"

Samples = dict[tuple[str, frozenset], float]


@pytest.fixture(autouse=True)
def _token(settings):
    settings.POSTDESK_METRICS_TOKEN = TOKEN


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(browser: Client | None = None, **headers: str) -> Samples:
    answer = (browser or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain; version=")
    return parse(answer.content.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_a_request_is_timed_under_its_url_pattern_never_its_path(owner, domain):
    browser = Client()
    browser.force_login(owner.user)
    count = "postdesk_http_request_duration_seconds_count"
    pattern = {"route": "domains/<str:domain>/", "method": "GET", "status": "2xx"}
    before = scrape()
    assert browser.get(f"/domains/{domain.name}/").status_code == 200
    assert browser.head(f"/domains/{domain.name}/").status_code == 200
    Client().get("/no-such-page/")
    after = scrape()
    assert value(after, count, **pattern) == value(before, count, **pattern) + 1
    head = {**pattern, "method": "HEAD"}
    assert value(after, count, **head) == value(before, count, **head) + 1
    unrouted = {"route": "(unrouted)", "method": "GET", "status": "4xx"}
    assert value(after, count, **unrouted) == value(before, count, **unrouted) + 1
    # The time lands in the histogram's buckets too, and no label holds a real path.
    bucket = "postdesk_http_request_duration_seconds_bucket"
    assert value(after, bucket, **pattern, le="+Inf") == value(after, count, **pattern)
    routes = {dict(labels).get("route") for _name, labels in after}
    assert not any(domain.name in route for route in routes if route)


def gate_ask(protocol: str, user: str, password: str):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return Client().get(
        f"/dataplane/gate/{protocol}",
        HTTP_X_POSTDESK_GATE_KEY=GATE_KEY,
        HTTP_X_REAL_IP="198.51.100.7",
        HTTP_AUTHORIZATION=f"Basic {token}",
    )


def test_gate_decisions_are_counted_by_service(settings, operator, domain):
    settings.POSTDESK_GATE_KEY = GATE_KEY
    settings.POSTDESK_GATE_FAILURE_LIMIT = 1
    cache.clear()
    mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    name = "postdesk_gate_decisions_total"
    before = scrape()
    assert gate_ask("eas", "marie@example.com", GOOD_PASSWORD).status_code == 204
    assert gate_ask("mapi", "marie@example.com", GOOD_PASSWORD).status_code == 403  # off
    assert gate_ask("eas", "marie@example.com", "Wrong-Passw0rd!").status_code == 401
    assert gate_ask("eas", "marie@example.com", "Wrong-Passw0rd!").status_code == 403  # 429
    after = scrape()
    cache.clear()
    moved = {
        (service, decision): value(after, name, service=service, decision=decision)
        - value(before, name, service=service, decision=decision)
        for service in ("eas", "mapi")
        for decision in ("allowed", "refused", "throttled")
    }
    assert moved == {
        ("eas", "allowed"): 1,
        ("eas", "refused"): 1,
        ("eas", "throttled"): 1,
        ("mapi", "allowed"): 0,
        ("mapi", "refused"): 1,
        ("mapi", "throttled"): 0,
    }


def test_each_completed_dns_check_counts_its_states(dns_server, domain):
    name = "postdesk_dns_checks_total"
    before = scrape()
    status, _report = dns_check_domain(domain)
    after = scrape()
    states = {
        "spf": status.spf_state,
        "dkim": status.dkim_state,
        "dmarc": status.dmarc_state,
        "mx": status.mx_state,
    }
    for record, state in states.items():
        assert value(after, name, record=record, state=state) == (
            value(before, name, record=record, state=state) + 1
        ), record


def test_the_queue_is_read_from_the_tasks_table():
    samples = scrape()
    assert value(samples, "postdesk_tasks_queued") == 0
    assert value(samples, "postdesk_tasks_oldest_queued_age_seconds") == 0
    mailbox_sessions_kick.enqueue("marie@example.com")
    mailbox_sessions_kick.enqueue("paul@example.com")
    DBTaskResult.objects.update(enqueued_at=timezone.now() - timedelta(minutes=5))
    # A retry queued for later is not waiting yet.
    mailbox_sessions_kick.using(run_after=timezone.now() + timedelta(hours=1)).enqueue("x@y.z")
    samples = scrape()
    assert value(samples, "postdesk_tasks_queued") == 2
    assert 300 <= value(samples, "postdesk_tasks_oldest_queued_age_seconds") < 360


@task()
def always_fails() -> None:
    raise RuntimeError("this task fails, for the test")


# The worker closes the database connection when done: the test's own transaction cannot hold.
@pytest.mark.django_db(transaction=True)
def test_a_failed_task_is_counted_by_the_worker():
    name = "postdesk_tasks_failed_total"
    path = f"{__name__}.always_fails"
    before = scrape()
    always_fails.enqueue()
    # What `postdesk db_worker` does, once, in this process.
    call_command("db_worker", "--batch", "--no-startup-delay", verbosity=0)
    assert DBTaskResult.objects.failed().count() == 1
    assert value(scrape(), name, task=path) == value(before, name, task=path) + 1


def refused(answer) -> bool:
    """The same 404 as an unknown page, with nothing of the metrics in it."""
    return answer.status_code == 404 and b"postdesk_" not in answer.content


def test_only_the_operators_bearer_token_opens_the_metrics(owner, operator):
    browser = Client()
    assert refused(browser.get("/metrics"))
    assert refused(browser.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token"))
    assert refused(browser.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}"))
    assert refused(browser.post("/metrics"))
    # A client's session, and the provider's staff logged in to the admin: still a 404.
    browser.force_login(owner.user)
    assert refused(browser.get("/metrics"))
    staff = Client()
    staff.force_login(User.objects.create_superuser("staff@example.net", "Unused-passw0rd!"))
    assert refused(staff.get("/metrics"))
    # API tokens, a client's or the provider's own, are not the metrics token.
    for api_token in (
        token_create(actor=operator, user=owner.user, scope=TokenScope.WRITE).plaintext,
        token_create(actor=operator, operator_name="billing", scope=TokenScope.WRITE).plaintext,
    ):
        assert refused(Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {api_token}"))
    # The right token, whoever's session comes with it, is the scraper.
    assert browser.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_without_a_token_set_nobody_gets_the_metrics(settings):
    settings.POSTDESK_METRICS_TOKEN = ""
    assert refused(Client().get("/metrics", HTTP_AUTHORIZATION="Bearer "))
    assert refused(Client().get("/metrics", HTTP_AUTHORIZATION="Bearer"))


@pytest.mark.parametrize("queued", [1, 40])
def test_a_scrape_runs_a_fixed_number_of_queries(queued, django_assert_max_num_queries):
    for number in range(queued):
        mailbox_sessions_kick.enqueue(f"user{number}@example.com")
    # On PostgreSQL, one more: the replicas streaming from it (SQLite has none to ask about).
    budget = query_budget("page:metrics") + (
        query_budget("page:metrics:replicas") if connection.vendor == "postgresql" else 0
    )
    with django_assert_max_num_queries(budget):
        samples = scrape()
    assert value(samples, "postdesk_tasks_queued") == queued


def test_the_database_replicas_are_gauges_on_postgresql_only():
    """Their lag, with a real replica: tests/dataplane/test_replica.py."""
    samples = scrape()
    if connection.vendor == "postgresql":
        # The test database has no standby: the alert on "fewer than one" would fire.
        assert samples[("postdesk_db_replicas_streaming", frozenset())] == 0
        assert not [name for name, _labels in samples if name.startswith("postdesk_db_replica_")]
    else:
        assert not [name for name, _labels in samples if name.startswith("postdesk_db_")]
