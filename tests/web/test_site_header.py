"""Every page's header is rendered once for what it shows (web.templatetags.web.site_header,
web.fragments): each user sees their own address, the audit link opens the page's domain,
the language switch comes back to the page it was pressed on, and its forms carry the
request's own CSRF token, whoever's request kept the header."""

from __future__ import annotations

import re

import pytest
from django.template import loader
from django.test import Client as Browser
from django.urls import reverse

pytestmark = pytest.mark.django_db

HEADER_TEMPLATE = "web/_site_header.html"
ACCOUNT = "/account/"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def _header(response) -> str:
    assert response.status_code == 200
    return response.content.decode().split("<header")[1].split("</header>")[0]


def test_the_header_is_kept_and_each_user_sees_their_own(
    owner_browser, admin_browser, owner, admin
):
    first = owner_browser.get(ACCOUNT)
    assert HEADER_TEMPLATE in [t.name for t in first.templates]
    again = owner_browser.get(ACCOUNT)
    assert HEADER_TEMPLATE not in [t.name for t in again.templates]
    assert owner.user.email in _header(again)
    other = _header(admin_browser.get(ACCOUNT))
    assert admin.user.email in other and owner.user.email not in other


def test_the_audit_link_and_the_language_switch_follow_the_page(owner_browser, domain):
    dashboard = reverse("web:dashboard", args=["example.com"])
    on_domain = _header(owner_browser.get(dashboard + "?q=marie"))
    assert 'href="/audit/?domain=example.com"' in on_domain
    assert 'name="next" value="/domains/example.com/?q=marie"' in on_domain
    on_list = _header(owner_browser.get(ACCOUNT))
    assert 'href="/audit/"' in on_list
    assert f'name="next" value="{ACCOUNT}"' in on_list


def test_a_kept_headers_forms_carry_the_requests_own_token(admin_browser, owner, domain):
    admin_header = _header(admin_browser.get(ACCOUNT))
    browser = Browser(enforce_csrf_checks=True)
    browser.force_login(owner.user)
    header = _header(browser.get(ACCOUNT))
    token = CSRF.search(header)[1]
    assert token not in admin_header
    response = browser.post(
        reverse("web:set_language"),
        {"language": "fr", "next": ACCOUNT, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert "Se déconnecter" in _header(browser.get(ACCOUNT))


def test_a_page_rendered_without_its_request_still_has_its_header():
    """Django's 500 page is rendered with no request: the header is rendered as is."""
    html = loader.get_template("500.html").render({})
    assert '<header class="site-header">' in html
