"""audit_list, the selector the API and the client area's audit page share: who sees which
events, newest first, paged."""

from __future__ import annotations

import pytest

from postdesk.errors import NotFound
from postdesk.mail.services import domain_add, mailbox_create
from postdesk.tenancy.selectors import audit_list
from postdesk.workflows.clients import client_suspend
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(operator, client_a, domain, other_domain):
    mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    mailbox_create(actor=operator, domain=other_domain, username="bob", password=GOOD_PASSWORD)
    second = domain_add(actor=operator, client=client_a, name="example.org")
    client_suspend(actor=operator, client=client_a)
    return second


def actions(page) -> list[tuple[str, str]]:
    return [(e.action, e.target) for e in page.rows]


def test_a_user_sees_their_clients_events_only(owner, viewer, outsider, history):
    for actor in (owner, viewer):  # any role: the log changes nothing
        page = audit_list(actor=actor)
        assert actions(page) == [
            ("client.suspend", "Acme"),
            ("domain.add", "example.org"),
            ("mailbox.create", "marie@example.com"),
            ("domain.add", "example.com"),
        ]
    assert actions(audit_list(actor=outsider)) == [
        ("mailbox.create", "bob@example.net"),
        ("domain.add", "example.net"),
    ]


def test_by_domain_or_client(owner, client_a, domain, history):
    assert actions(audit_list(actor=owner, domain=domain)) == [
        ("mailbox.create", "marie@example.com"),
        ("domain.add", "example.com"),
    ]
    # The client's view includes account-wide events (no domain).
    assert ("client.suspend", "Acme") in actions(audit_list(actor=owner, client=client_a))


def test_another_clients_domain_or_client_is_not_found(outsider, client_a, domain, history):
    with pytest.raises(NotFound):
        audit_list(actor=outsider, domain=domain)
    with pytest.raises(NotFound):
        audit_list(actor=outsider, client=client_a)


def test_the_operator_sees_everything(operator, history):
    assert audit_list(actor=operator).total == 6


def test_a_disabled_user_sees_nothing(owner, history):
    owner.user.is_active = False
    owner.user.save()
    assert audit_list(actor=owner).total == 0


def test_paging(owner, history):
    page = audit_list(actor=owner, page=2, per_page=3)
    assert (page.total, page.page, page.num_pages, page.has_previous, page.has_next) == (
        4,
        2,
        2,
        True,
        False,
    )
    assert actions(page) == [("domain.add", "example.com")]
    assert audit_list(actor=owner, page=50, per_page=3).page == 2
