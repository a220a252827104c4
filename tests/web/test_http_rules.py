"""HTTP rules every answer keeps (postdesk.web.security): HEAD is GET without the body; no
cache stores a page or an API answer; /admin/ never sends a client user round in circles."""

from __future__ import annotations

import pytest
from django.test import Client as Browser
from django.urls import reverse

from postdesk.api.models import TokenScope
from postdesk.api.services import token_create
from postdesk.mail.services import domain_add
from postdesk.tenancy.models import User

pytestmark = pytest.mark.django_db

NEVER_CACHED = {"no-store", "no-cache", "private", "max-age=0", "must-revalidate"}


@pytest.fixture
def second_domain(operator, domain):
    # With one domain, the domains list is a redirect to its dashboard: two make it a page.
    return domain_add(actor=operator, client=domain.client, name="second.example")


def _pages(mailbox) -> list[str]:
    return [
        reverse("web:domains"),
        reverse("web:dashboard", args=["example.com"]),
        reverse("web:mailbox_edit", args=["example.com", "marie"]),
        reverse("web:billing", args=["example.com"]),
        reverse("web:audit"),
        reverse("web:account"),
    ]


def test_head_is_answered_as_get_without_a_body(owner_browser, mailbox, second_domain):
    anonymous = Browser()
    for path in ("/", reverse("web:login")):
        got, head = anonymous.get(path), anonymous.head(path)
        assert head.status_code == got.status_code != 405
        assert head.content == b""
    for path in _pages(mailbox):
        got, head = owner_browser.get(path), owner_browser.head(path)
        assert (head.status_code, got.status_code) == (200, 200), path
        assert head.content == b"" and int(head["Content-Length"]) == len(got.content)


def test_no_page_with_customer_data_may_be_stored(owner_browser, mailbox, second_domain):
    for path in [*_pages(mailbox), reverse("web:login")]:
        directives = {d.strip() for d in owner_browser.get(path)["Cache-Control"].split(",")}
        assert {"no-store", "private"} <= directives, path


def test_nor_an_api_answer(operator, owner):
    token = token_create(actor=operator, user=owner.user, scope=TokenScope.READ).plaintext
    answer = Browser().get("/api/v1/domains", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 200
    assert "no-store" in answer["Cache-Control"]


def test_a_client_user_opening_the_admin_gets_one_plain_refusal(owner_browser):
    answer = owner_browser.get("/admin/", follow=True)
    assert answer.status_code == 403
    assert "The administration is for the provider" in answer.content.decode()
    assert len(answer.redirect_chain) <= 2  # /admin/ → /admin/login/ → 403, no loop


def test_anyone_else_opening_the_admin_is_sent_to_the_one_login():
    answer = Browser().get("/admin/", follow=True)
    assert answer.status_code == 200
    assert answer.redirect_chain[-1][0].startswith(reverse("web:login"))


def test_the_provider_staff_reach_the_admin(operator, client_a):
    staff = User.objects.create_superuser("staff@provider.example", password="Staff-Passw0rd!x")
    browser = Browser()
    browser.force_login(staff)
    assert browser.get("/admin/").status_code == 200
    assert browser.get("/admin/login/", follow=True).redirect_chain[-1][0] == "/admin/"


@pytest.mark.parametrize("path", ["/login/", "/language/"])
def test_a_form_in_an_unknown_charset_is_a_plain_400(path, client_a, domain):
    # Django refuses the body (a BadRequest raised while the CSRF check reads it); the 400
    # page must not read it again, or the answer becomes a 500.
    answer = Browser(raise_request_exception=False).post(
        path,
        data="username=a&password=b",
        content_type="application/x-www-form-urlencoded; charset=latin-1",
    )
    assert answer.status_code == 400
    assert 'class="site-nav' in answer.content.decode() or "<main" in answer.content.decode()
