"""The dashboard's deliverability self-test card: the button owners and admins press, what the
worker is asked to do, the last result in plain words (both languages), who may reach it, and
a fixed number of queries. The mail itself: tests/dataplane/test_deliverability.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from postdesk.dns.models import DeliverabilityTest, DeliverabilityTestState
from postdesk.mail.services import mailbox_create
from tests.budgets import query_budget
from tests.conftest import GOOD_PASSWORD

# The worker's task for a test (the probe mailbox's creation queues its own).
SEND_TASK = "postdesk.dns.tasks.deliverability_test_send"

pytestmark = pytest.mark.django_db
CARD = {"HX-Request": "true", "HX-Target": "deliverability"}

# What the worker stores for a domain whose DKIM is off (dns/deliverability.py `judge`).
FACTS_DKIM_OFF = {
    "from_domain": "example.com",
    "spf": {"result": "pass", "ip": "192.0.2.1", "domain": "example.com", "advice": ""},
    "dkim": {"result": "none", "reason": "no_signature", "domain": "", "selector": ""},
    "dmarc": {
        "result": "pass",
        "policy": "quarantine",
        "spf_aligned": True,
        "dkim_aligned": False,
        "disposition": "deliver",
    },
    "tls": [
        {"hop": "submission", "from": "a", "by": "b", "protocol": "TLSv1.3", "cipher": "X"},
        {"hop": "delivery", "from": "b", "by": "c", "protocol": "TLSv1.3", "cipher": "X"},
    ],
    "seconds": 2,
}


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture
def probe(settings, operator, domain):
    settings.POSTDESK_PROBE_ADDRESS = "probe@probe.postdesk.test"
    return mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)


def _stored(domain, mailbox, **fields) -> DeliverabilityTest:
    values = {
        "mailbox": mailbox,
        "sender": "marie@example.com",
        "state": DeliverabilityTestState.DONE,
        "token": "t" * 32,
        "requested_at": datetime.now(UTC),
        "facts": FACTS_DKIM_OFF,
    }
    return DeliverabilityTest.objects.create(domain=domain, **(values | fields))


def test_the_dashboard_loads_the_card_in_its_own_request(owner_browser, domain, probe):
    page = owner_browser.get(reverse("web:dashboard", args=["example.com"]))
    assert f'hx-get="{reverse("web:deliverability", args=["example.com"])}"' in _text(page)


def test_owner_starts_a_test_for_the_worker(owner_browser, domain, probe):
    url = reverse("web:deliverability_test", args=["example.com"])
    response = owner_browser.post(url, follow=True)
    assert response.redirect_chain[-1][0].endswith("#deliverability")
    assert "A test message is on its way" in _text(response)
    test = DeliverabilityTest.objects.get(domain=domain)
    assert test.state == DeliverabilityTestState.QUEUED and test.sender == "marie@example.com"
    assert DBTaskResult.objects.filter(task_path=SEND_TASK, args_kwargs__args=[test.pk]).exists()
    # While it runs, the card shows it and asks for itself again; no second test meanwhile.
    card = _text(
        owner_browser.get(reverse("web:deliverability", args=["example.com"]), headers=CARD)
    )
    assert "In progress" in card and 'hx-trigger="every 3s"' in card
    again = owner_browser.post(url, follow=True)
    assert "already under way" in _text(again)
    assert DBTaskResult.objects.filter(task_path=SEND_TASK).count() == 1


def test_the_last_result_in_plain_words_with_its_fix(owner_browser, domain, probe):
    _stored(domain, probe)
    url = reverse("web:deliverability", args=["example.com"])
    card = _text(owner_browser.get(url, headers=CARD))
    assert "Problems found" in card
    assert "DKIM is disabled for your domain" in card
    assert "Enable DKIM on the DKIM card above" in card
    assert "authorizes our server 192.0.2.1" in card
    assert "every 3s" not in card  # finished: no more asking
    owner_browser.post(reverse("web:set_language"), {"language": "fr"})
    card = _text(owner_browser.get(url, headers=CARD))
    assert "Activez DKIM sur la carte DKIM" in card and "Problèmes détectés" in card


def test_a_viewer_sees_the_result_but_cannot_start_a_test(viewer_browser, domain, probe):
    _stored(domain, probe)
    card = _text(
        viewer_browser.get(reverse("web:deliverability", args=["example.com"]), headers=CARD)
    )
    assert "DKIM is disabled" in card and "Send a test message</button>" not in card
    viewer_browser.post(reverse("web:deliverability_test", args=["example.com"]))
    assert DeliverabilityTest.objects.get(domain=domain).state == DeliverabilityTestState.DONE


def test_another_client_cannot_start_or_read_a_test(outsider_browser, domain, probe):
    _stored(domain, probe)
    read = reverse("web:deliverability", args=["example.com"])
    assert outsider_browser.get(read).status_code == 404
    assert outsider_browser.get(read, headers=CARD).status_code == 404
    start = reverse("web:deliverability_test", args=["example.com"])
    assert outsider_browser.post(start).status_code == 404
    assert DeliverabilityTest.objects.get(domain=domain).state == DeliverabilityTestState.DONE
    assert not DBTaskResult.objects.filter(task_path=SEND_TASK).exists()


def test_not_offered_without_a_probe_address(owner_browser, domain, settings):
    settings.POSTDESK_PROBE_ADDRESS = ""
    card = _text(
        owner_browser.get(reverse("web:deliverability", args=["example.com"]), headers=CARD)
    )
    assert "not available on this service" in card and "Send a test message</button>" not in card


def test_query_counts_are_fixed(owner_browser, domain, probe, django_assert_max_num_queries):
    from bench.dataset import add_addresses

    _stored(domain, probe)
    url = reverse("web:deliverability", args=["example.com"])
    counts = []
    for mailboxes in (5, 200):
        add_addresses(domain, mailboxes=mailboxes, aliases=mailboxes // 2, forwards=3)
        with django_assert_max_num_queries(
            query_budget("page:web:deliverability_card")
        ) as captured:
            assert owner_browser.get(url, headers=CARD).status_code == 200
        counts.append(len(captured))
    assert counts[0] == counts[1]
