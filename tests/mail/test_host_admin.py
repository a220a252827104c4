"""The provider's admin shows the mail hosts with how many mailboxes each is home to, and
each mailbox's home; draining there goes through the service (audited). Nothing is added,
changed or deleted there."""

from __future__ import annotations

import pytest
from django.test import Client as Browser
from django.urls import reverse

from postdesk.audit.models import AuditEvent
from postdesk.dataplane.models import Host
from postdesk.mail.hosts import host_add
from postdesk.mail.services import mailbox_create
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(operator, domain) -> None:
    host_add(actor=operator, name="mail1", address="192.0.2.1", roles=["backend", "mx"])
    host_add(actor=operator, name="mail2", address="192.0.2.2", roles=["backend"])
    for name in ("a", "b", "c"):
        mailbox_create(actor=operator, domain=domain, username=name, password=GOOD_PASSWORD)


def _cells(page: str, name: str) -> str:
    """The table row of one host, as text."""
    return page.split(f">{name}<", 1)[1].split("</tr>", 1)[0]


def test_the_hosts_with_their_mailboxes_and_each_mailboxs_home(staff, fleet):
    hosts = staff.get(reverse("admin:dataplane_host_changelist")).content.decode()
    mailboxes = staff.get(reverse("admin:mail_mailbox_changelist")).content.decode()

    assert 'class="field-mailboxes">2<' in _cells(hosts, "mail1")
    assert "backend, mx" in _cells(hosts, "mail1")
    assert 'class="field-mailboxes">1<' in _cells(hosts, "mail2")
    assert "a@example.com" in mailboxes and "mail2" in mailboxes
    for url in (reverse("admin:dataplane_host_add"), reverse("admin:mail_mailbox_add")):
        assert staff.get(url).status_code == 403


def test_drain_from_the_admin_is_the_service(staff, fleet):
    mail1 = Host.objects.get(name="mail1")

    response = staff.post(
        reverse("admin:dataplane_host_changelist"),
        {"action": "drain", "_selected_action": [mail1.pk]},
    )

    assert response.status_code == 302
    assert Host.objects.get(name="mail1").state == "draining"
    event = AuditEvent.objects.get(action="host.drain")
    assert (event.target, event.actor_label, event.source) == (
        "mail1",
        "operator:staff@provider.example",
        "web",
    )


def test_a_client_user_has_no_access(owner, fleet):
    browser = Browser()
    browser.force_login(owner.user)
    response = browser.get(reverse("admin:dataplane_host_changelist"))
    assert response.status_code == 302  # to the admin's login
