"""A suspended client's area is read-only: its users see everything, with a banner saying why
and whom to contact, and every write is refused with one stable code, whatever the
interface; the provider's operator still changes what it needs."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from postdesk.api.models import TokenScope
from postdesk.api.services import token_create
from postdesk.dns.services import dkim_enable
from postdesk.errors import PermissionDenied
from postdesk.mail.services import mailbox_create, mailbox_update
from postdesk.workflows.clients import client_suspend, client_unsuspend
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

BANNER = {
    "en": "This account is suspended: you can look at everything, but nothing can be changed",
    "fr": "Ce compte est suspendu : vous pouvez tout consulter, mais rien ne peut être modifié",
}


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture
def suspended(operator, client_a, mailbox):
    return client_suspend(actor=operator, client=client_a)


def test_every_write_of_its_users_is_refused_with_one_code(owner, domain, mailbox, suspended):
    attempts = [
        lambda: mailbox_create(
            actor=owner, domain=domain, username="new", password=GOOD_PASSWORD, eas_enabled=True
        ),
        lambda: mailbox_update(actor=owner, mailbox=mailbox, mapi_enabled=True),
        lambda: dkim_enable(actor=owner, domain=domain),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied) as refused:
            attempt()
        assert refused.value.code == "client_suspended"
        assert "Contact your hosting provider" in str(refused.value.message)
    mailbox.refresh_from_db()
    assert not mailbox.mapi_enabled


def test_the_operator_still_may(operator, domain, mailbox, suspended):
    assert mailbox_update(actor=operator, mailbox=mailbox, quota_mb=1).quota_mb == 1


def test_unsuspended_it_is_writable_again(operator, owner, client_a, mailbox, suspended):
    client_unsuspend(actor=operator, client=client_a)
    assert mailbox_update(actor=owner, mailbox=mailbox, quota_mb=7).quota_mb == 7


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_area_is_read_only_with_a_banner(owner_browser, mailbox, suspended, language):
    owner_browser.cookies["django_language"] = language
    for path in (
        reverse("web:dashboard", args=["example.com"]),
        reverse("web:mailbox_edit", args=["example.com", "marie"]),
    ):
        page = _text(owner_browser.get(path))
        assert BANNER[language] in page, path
    dashboard = _text(owner_browser.get(reverse("web:dashboard", args=["example.com"])))
    assert reverse("web:mailbox_create", args=["example.com"]) not in dashboard
    refused = owner_browser.post(
        reverse("web:mailbox_create", args=["example.com"]),
        {"username": "new", "password": GOOD_PASSWORD, "password_confirmation": GOOD_PASSWORD},
    )
    assert refused.status_code == 403
    refusal = {"en": "This account is suspended: nothing", "fr": "Ce compte est suspendu : rien"}
    assert refusal[language] in _text(refused)
    # The role is not the reason: the form does not say so.
    edit = _text(owner_browser.get(reverse("web:mailbox_edit", args=["example.com", "marie"])))
    assert "only allows viewing" not in edit and "permet seulement" not in edit


def test_an_active_account_shows_no_banner(owner_browser, mailbox):
    page = _text(owner_browser.get(reverse("web:dashboard", args=["example.com"])))
    assert BANNER["en"] not in page


def test_the_api_refuses_with_the_same_code(operator, owner, mailbox, suspended):
    token = token_create(actor=operator, user=owner.user, scope=TokenScope.WRITE).plaintext
    answer = Client().patch(
        "/api/v1/mailboxes/marie@example.com",
        data={"mapi": True},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert answer.status_code == 403
    assert answer.json()["code"] == "client_suspended"
