"""A mailbox's home host is the operator's: the customer's pages and API never show it,
neither its name nor its address."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from postdesk.mail.hosts import host_add, mailbox_move, mailbox_moves, tasks_pending
from postdesk.mail.models import Mailbox
from postdesk.mail.services import mailbox_set_password
from tests.api.conftest import Api, make_token
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

HOST_NAME = "backend-zq7"
HOST_ADDRESS = "198.51.100.77"


@pytest.fixture
def homed(operator, mailbox) -> Mailbox:
    host_add(actor=operator, name=HOST_NAME, address=HOST_ADDRESS, roles=["backend"])
    mailbox.refresh_from_db()
    assert mailbox.home.name == HOST_NAME  # the first backend took it in
    return mailbox


def test_the_client_area_never_names_the_home(owner_browser, homed):
    for url in (
        reverse("web:dashboard", args=["example.com"]),
        reverse("web:mailbox_edit", args=["example.com", "marie"]),
    ):
        page = owner_browser.get(url).content.decode()
        assert "marie@example.com" in page, url
        assert HOST_NAME not in page and HOST_ADDRESS not in page, url


def test_the_api_never_names_the_home(operator, owner, homed):
    api, token = Api(), make_token(operator, owner)
    for path in ("mailboxes/marie@example.com", "domains/example.com/addresses"):
        response = api.get(path, token)
        text = json.dumps(response.body)
        assert response.status == 200, path
        assert "marie@example.com" in text, path
        assert HOST_NAME not in text and HOST_ADDRESS not in text, path


def test_a_change_waiting_for_its_host_is_pending_without_the_hosts_name(
    owner_browser, operator, homed, settings
):
    """The operator sees which host a change waits for (`tasks pending`); the customer sees
    the change pending, never the host."""
    settings.POSTDESK_DOVEADM_URL = "http://127.0.0.1:9"  # a mail server is connected
    mailbox_set_password(actor=operator, mailbox=homed, password=GOOD_PASSWORD)
    assert any(
        task.host == HOST_NAME and task.mailbox == "marie@example.com"
        for task in tasks_pending(actor=operator)
    )
    page = owner_browser.get(reverse("web:mailbox_edit", args=["example.com", "marie"]))
    text = page.content.decode()
    assert 'id="changes-pending"' in text
    assert HOST_NAME not in text and HOST_ADDRESS not in text


def test_a_move_is_the_operators_alone(owner_browser, operator, owner, homed):
    """A mailbox being moved between backends: the operator sees the move (`mailbox moves`);
    the customer's page and API name neither host nor move."""
    host_add(actor=operator, name="backend-new9", address="198.51.100.78", roles=["backend"])
    mailbox_move(actor=operator, address="marie@example.com", to="backend-new9")
    assert [row.state for row in mailbox_moves(actor=operator)] == ["queued"]
    page = owner_browser.get(reverse("web:mailbox_edit", args=["example.com", "marie"]))
    body = Api().get("mailboxes/marie@example.com", make_token(operator, owner)).body
    for text in (page.content.decode(), json.dumps(body)):
        assert "marie@example.com" in text
        for hidden in (HOST_NAME, HOST_ADDRESS, "backend-new9", "198.51.100.78", "queued"):
            assert hidden not in text
