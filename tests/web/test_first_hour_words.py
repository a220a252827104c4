"""Words and numbers that agree (issue 14): where a user lands, the error pages, the favicon,
the audit log's labels and values, and the DNS cards' help, in English and in French."""

from __future__ import annotations

import re

import pytest
from django.test import Client as Browser
from django.urls import reverse

from postdesk.mail.services import domain_add

pytestmark = pytest.mark.django_db

LANGUAGES = [
    ("en", "Page not found", "Not allowed", "This page has expired", "Something went wrong"),
    ("fr", "Page introuvable", "Action non permise", "Cette page a expiré", "Un problème est"),
]


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode()).replace("<wbr>", "")


def _in_client_area(response, language: str) -> str:
    """The page's text, after checking it is the client area's layout in `language`."""
    text = _text(response)
    assert f'<html lang="{language}">' in text
    assert 'class="site-header"' in text and '<main id="main"' in text
    assert "Traceback" not in text and "Django" not in text
    return text


# --- Where a user lands ----------------------------------------------------------------------


def test_a_user_with_one_domain_lands_on_its_dashboard(client, owner, domain):
    owner.user.set_password("A-good-passw0rd!")
    owner.user.save()
    response = client.post(
        reverse("web:login"),
        {"username": "owner@example.org", "password": "A-good-passw0rd!"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("web:dashboard", args=["example.com"])
    assert "<h1>example.com</h1>" in _text(response)
    again = client.get(reverse("web:domains"))
    assert again.status_code == 302
    assert again["Location"] == reverse("web:dashboard", args=["example.com"])


def test_a_user_with_several_domains_lands_on_the_list(client, owner, operator, client_a, domain):
    domain_add(actor=operator, client=client_a, name="second.example")
    client.force_login(owner.user)
    response = client.get(reverse("web:domains"))
    assert response.status_code == 200
    text = _text(response)
    assert "example.com" in text and "second.example" in text


@pytest.mark.parametrize("language,label", [("en", "Audit log"), ("fr", "Journal d\u2019audit")])
def test_the_dashboard_links_its_audit_log_once(owner_browser, domain, language, label):
    response = owner_browser.get(
        reverse("web:dashboard", args=["example.com"]), HTTP_ACCEPT_LANGUAGE=language
    )
    text = _text(response)
    assert text.count(f">{label}</a>") == 1
    # The one link shows this domain's changes.
    assert f'href="{reverse("web:audit")}?domain=example.com">{label}</a>' in text


# --- Error pages and favicon -----------------------------------------------------------------


@pytest.mark.parametrize("language,not_found,forbidden,expired,broken", LANGUAGES)
def test_error_pages_are_in_the_client_area_and_the_users_language(
    owner_browser, viewer, mailbox, settings, language, not_found, forbidden, expired, broken
):
    settings.ROOT_URLCONF = "tests.web.error_urls"
    headers = {"HTTP_ACCEPT_LANGUAGE": language}

    missing = owner_browser.get("/no/such/page/", **headers)
    assert missing.status_code == 404
    assert not_found in _in_client_area(missing, language)
    assert "owner@example.org" in _text(missing)  # the user's menu is there

    viewer_browser = Browser()
    viewer_browser.force_login(viewer.user)
    refused = viewer_browser.post(
        reverse("web:mailbox_delete", args=["example.com", "marie"]), **headers
    )
    assert refused.status_code == 403
    assert forbidden in _in_client_area(refused, language)

    strict = Browser(enforce_csrf_checks=True)
    strict.force_login(viewer.user)
    stale = strict.post(reverse("web:dns_check", args=["example.com"]), **headers)
    assert stale.status_code == 403
    assert expired in _in_client_area(stale, language)

    failing = Browser(raise_request_exception=False)
    failing.force_login(viewer.user)
    crashed = failing.get("/broken/", **headers)
    assert crashed.status_code == 500
    assert broken in _in_client_area(crashed, language)
    assert "RuntimeError" not in _text(crashed)


@pytest.mark.parametrize("language,title", [("en", "Request not understood"), ("fr", "Requête")])
def test_a_bad_request_page_too(settings, language, title):
    settings.ROOT_URLCONF = "tests.web.error_urls"
    response = Browser().get("/suspicious/", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 400
    assert title in _in_client_area(response, language)


def test_a_favicon_is_linked_and_served(client):
    page = _text(client.get(reverse("web:login")))
    assert re.search(r'<link rel="icon" href="[^"]*favicon[^"]*\.svg" type="image/svg\+xml">', page)
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in icon.content
