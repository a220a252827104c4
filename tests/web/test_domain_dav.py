"""The domain's switch for calendar and contact apps (CalDAV/CardDAV) on the dashboard: on by
default, changed by the customer, recorded, and read by the gate at its next request
(tests/dataplane/test_groupware.py proves it with a real CalDAV client)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from postdesk.audit.models import AuditEvent
from postdesk.mail.models import Domain

pytestmark = pytest.mark.django_db

WEBMAIL = "https://mail.postdesk.example/SOGo/"

WORDS = {
    "en": {
        "title": "Calendar and contact apps",
        "off": "Calendar and contact apps can no longer connect to the mailboxes of this domain. "
        "Webmail and ActiveSync are not affected.",
        "on": "Calendar and contact apps can now connect to the mailboxes of this domain.",
    },
    "fr": {
        "title": "Applications d\u2019agenda et de contacts",
        "off": "Les applications d\u2019agenda et de contacts ne peuvent plus se connecter aux "
        "boîtes courriel de ce domaine. Le webmail et ActiveSync ne changent pas.",
        "on": "Les applications d\u2019agenda et de contacts peuvent désormais se connecter aux "
        "boîtes courriel de ce domaine.",
    },
}


@pytest.fixture(autouse=True)
def _groupware(settings):
    settings.POSTDESK_WEBMAIL_URL = WEBMAIL


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def _switch(page: str) -> str:
    return page.split('id="groupware"')[1].split("</section>")[0]


def dav_enabled() -> bool:
    return Domain.objects.get(name="example.com").dav_enabled


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_customer_turns_calendar_and_contact_apps_off_and_on(owner_browser, domain, language):
    words = WORDS[language]
    dashboard = reverse("web:dashboard", args=["example.com"])
    switch = _switch(_text(owner_browser.get(dashboard, HTTP_ACCEPT_LANGUAGE=language)))
    assert words["title"] in switch
    assert 'name="dav" checked' in switch  # on by default

    url = reverse("web:domain_dav", args=["example.com"])
    off = owner_browser.post(url, {}, HTTP_ACCEPT_LANGUAGE=language, follow=True)
    assert off.redirect_chain[-1][0] == dashboard + "#groupware"
    assert words["off"] in _text(off)
    assert 'name="dav" checked' not in _switch(_text(off))
    assert dav_enabled() is False

    on = owner_browser.post(url, {"dav": "on"}, HTTP_ACCEPT_LANGUAGE=language, follow=True)
    assert words["on"] in _text(on)
    assert dav_enabled() is True
    changes = [e.changes for e in AuditEvent.objects.filter(action="domain.dav").order_by("id")]
    assert changes == [{"dav_enabled": [True, False]}, {"dav_enabled": [False, True]}]


def test_saving_the_same_value_records_nothing(owner_browser, domain):
    owner_browser.post(reverse("web:domain_dav", args=["example.com"]), {"dav": "on"})
    assert dav_enabled() is True
    assert not AuditEvent.objects.filter(action="domain.dav").exists()


def test_another_client_cannot_reach_the_switch(outsider_browser, domain, other_domain):
    response = outsider_browser.post(reverse("web:domain_dav", args=["example.com"]), {})
    assert response.status_code == 404
    assert dav_enabled() is True
    assert not AuditEvent.objects.filter(action="domain.dav").exists()


def test_a_viewer_sees_the_setting_but_cannot_change_it(viewer_browser, domain):
    page = _text(viewer_browser.get(reverse("web:dashboard", args=["example.com"])))
    switch = _switch(page)
    assert "may connect to this domain\u2019s mailboxes" in switch and "<form" not in switch
    response = viewer_browser.post(reverse("web:domain_dav", args=["example.com"]), {})
    assert response.status_code == 403
    assert dav_enabled() is True


def test_without_the_groupware_the_dashboard_has_no_switch(owner_browser, domain, settings):
    settings.POSTDESK_WEBMAIL_URL = ""
    page = _text(owner_browser.get(reverse("web:dashboard", args=["example.com"])))
    assert 'id="groupware"' not in page
