"""The audit log page: what changed, by whom, from where and when, for the user's clients
only, by domain, paginated, with a fixed number of queries."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import translation

from postdesk.audit.choices import Action
from postdesk.audit.models import AuditEvent
from postdesk.mail.services import domain_add, forward_create
from tests.budgets import query_budget

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def _table(response) -> str:
    text = _text(response)
    return text.split("<tbody>")[1].split("</tbody>")[0] if "<tbody>" in text else ""


def test_changes_made_in_the_client_area_are_listed(owner_browser, viewer_browser, mailbox):
    owner_browser.post(
        reverse("web:mailbox_edit", args=["example.com", "marie"]),
        {
            "aliases": ["m.dupont"],
            "destinations": ["marie@gmail.com"],
            "quota_mb": "10240",
            "eas_enabled": "on",
        },
        REMOTE_ADDR="203.0.113.9",
    )
    # Any member may read the log, a viewer included.
    rows = _table(viewer_browser.get(reverse("web:audit")))
    changed, created = rows.split("</tr>")[:2]
    assert "Mailbox changed" in changed and "marie@example.com" in changed
    assert "owner@example.org" in changed
    assert "Client area" in changed and "203.0.113.9" in changed
    assert "Disk space limit (MB)</span>: 5120 → 10240" in changed
    assert "ActiveSync" not in changed  # only what changed
    assert "Mailbox created" in created and "Provider" in created
    assert "ActiveSync (EAS)</span>: on" in created
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT', changed)


def test_only_the_users_clients_and_a_domain_filter(owner_browser, operator, client_a, forward):
    second = domain_add(actor=operator, client=client_a, name="second.example")
    forward_create(actor=operator, domain=second, name="sales", destinations=["boss@example.org"])
    everything = _table(owner_browser.get(reverse("web:audit")))
    assert "sales@second.example" in everything and "info@example.com" in everything
    filtered = owner_browser.get(reverse("web:audit") + "?domain=example.com")
    rows = _table(filtered)
    assert "info@example.com" in rows and "sales@second.example" not in rows
    assert '<option value="example.com" selected>' in _text(filtered)


def test_another_clients_events_are_not_shown(outsider_browser, owner_browser, mailbox):
    assert "marie@example.com" not in _text(outsider_browser.get(reverse("web:audit")))
    response = outsider_browser.get(reverse("web:audit") + "?domain=example.com")
    assert response.status_code == 404
    assert owner_browser.get(reverse("web:audit") + "?domain=nowhere.example").status_code == 404


def test_pages(owner_browser, operator, domain, settings):
    settings.POSTDESK_PAGE_SIZE = 5
    for i in range(12):
        forward_create(actor=operator, domain=domain, name=f"f{i:02d}", destinations=["a@b.org"])
    first = _text(owner_browser.get(reverse("web:audit") + "?domain=example.com"))
    assert "Page 1 of 3" in first and "13 events" in first  # 12 forwards and the domain
    assert "f11@example.com" in first  # newest first
    last = _text(owner_browser.get(reverse("web:audit") + "?domain=example.com&page=3"))
    assert "Page 3 of 3" in last and "Domain added" in last
    odd = owner_browser.get(reverse("web:audit") + "?page=abc")
    assert odd.status_code == 200


def test_query_count_is_fixed(owner_browser, operator, domain, django_assert_max_num_queries):
    counts = []
    for size in (3, 60):
        for i in range(size):
            forward_create(
                actor=operator, domain=domain, name=f"x{size}-{i}", destinations=["a@b.org"]
            )
        for url in [reverse("web:audit"), reverse("web:audit") + "?domain=example.com"]:
            with django_assert_max_num_queries(query_budget("page:web:audit")) as captured:
                assert owner_browser.get(url).status_code == 200
            counts.append(len(captured))
    assert counts[:2] == counts[2:]


def test_every_action_reads_in_the_customers_words(owner_browser, client_a):
    # Written directly: each service's own tests check it records its action; this checks
    # that whatever is recorded, the page names it in words, in English and in French.
    for action in Action:
        AuditEvent.objects.create(
            actor_label="owner@example.org", source="web", client=client_a, action=action
        )
    rows = _table(owner_browser.get(reverse("web:audit")))
    for action in Action:
        assert f"<strong>{action.label}</strong>" in rows
        assert action.value not in rows
    with translation.override("fr"):
        french = _table(owner_browser.get(reverse("web:audit"), HTTP_ACCEPT_LANGUAGE="fr"))
        assert "<strong>Compte résilié</strong>" in french
        assert "<strong>Utilisateur réactivé</strong>" in french


def test_an_action_we_do_not_know_shows_as_recorded(owner_browser, client_a):
    AuditEvent.objects.create(
        actor_label="owner@example.org",
        source="web",
        client=client_a,
        action="mailbox.archive",
        changes={"quota_mb": [5120, 10240]},
    )
    rows = _table(owner_browser.get(reverse("web:audit")))
    assert "<strong>mailbox.archive</strong>" in rows
    # Not an update we know: its changes show as recorded values, not as before → after.
    assert "Disk space limit (MB)</span>: 5120, 10240" in rows
