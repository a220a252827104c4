"""The groupware in the client area: a "Webmail" link on the dashboard and on each mailbox's
page, and the facts a user types into a phone to set up ActiveSync; none of it when no
groupware is configured (POSTDESK_WEBMAIL_URL empty)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

WEBMAIL = "https://mail.postdesk.example/SOGo/"


def _text(response) -> str:
    # <wbr> lets long addresses wrap at their "@"; the text a person reads has none.
    return re.sub(r"\s+", " ", response.content.decode()).replace("<wbr>", "")


@pytest.fixture
def groupware(settings):
    settings.POSTDESK_WEBMAIL_URL = WEBMAIL


def test_the_dashboard_links_to_the_webmail(groupware, viewer_browser, domain):
    text = _text(viewer_browser.get(reverse("web:dashboard", args=["example.com"])))
    assert f'id="webmail-link" href="{WEBMAIL}"' in text


def test_a_mailbox_page_gives_its_webmail_link_and_activesync_set_up(
    groupware, owner_browser, mailbox
):
    text = _text(owner_browser.get(reverse("web:mailbox_edit", args=["example.com", "marie"])))
    access = text[text.index('id="mailbox-access"') :]
    assert f'href="{WEBMAIL}"' in access
    assert "<dt>Server</dt><dd><code>mail.postdesk.example</code></dd>" in access
    assert "<dt>User name</dt><dd><code>marie@example.com</code></dd>" in access
    assert "Use your mailbox password." in access
    assert "ActiveSync is off" not in access  # on for this mailbox


def test_the_set_up_says_to_turn_activesync_on_first(groupware, owner_browser, mailbox):
    mailbox.eas_enabled = False
    mailbox.save(update_fields=["eas_enabled"])
    text = _text(owner_browser.get(reverse("web:mailbox_edit", args=["example.com", "marie"])))
    assert "ActiveSync is off for this mailbox: turn it on above first." in text


def test_in_french(groupware, owner_browser, mailbox):
    owner_browser.cookies["django_language"] = "fr"
    text = _text(owner_browser.get(reverse("web:mailbox_edit", args=["example.com", "marie"])))
    assert "Webmail et téléphones" in text
    assert "<dt>Serveur</dt>" in text
    assert "<dt>Nom d\u2019utilisateur</dt>" in text
    assert "Utilisez le mot de passe de votre boîte courriel." in text


def test_nothing_without_a_groupware(settings, owner_browser, mailbox):
    settings.POSTDESK_WEBMAIL_URL = ""
    dashboard = _text(owner_browser.get(reverse("web:dashboard", args=["example.com"])))
    page = _text(owner_browser.get(reverse("web:mailbox_edit", args=["example.com", "marie"])))
    assert "webmail-link" not in dashboard
    assert "mailbox-access" not in page


def test_another_clients_mailbox_page_stays_out_of_reach(groupware, outsider_browser, mailbox):
    response = outsider_browser.get(reverse("web:mailbox_edit", args=["example.com", "marie"]))
    assert response.status_code == 404
    assert WEBMAIL not in response.content.decode()
