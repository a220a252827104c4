"""The dashboard's parts kept rendered (web.fragments: the DNS cards, the usage figures, the
groupware card): whatever changes what they show is on the next dashboard at once, a part
kept for one user never shows another what is not theirs (a viewer the owner's forms, a
language the other's words, a token another user's), and what is said relative to now stays
right while the part is kept."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client as Browser
from django.urls import reverse
from django.utils import timezone

from postdesk.dns.models import DkimKey, DkimKeyStatus, DnsStatus
from postdesk.dns.services import (
    dkim_disable,
    dkim_enable,
    dkim_prepare_rotation,
    dkim_rotate,
    mta_sts_mode_set,
)
from postdesk.dns.status import dns_check_domain
from postdesk.mail.models import Domain, Mailbox
from postdesk.mail.services import domain_dav_set, mailbox_create
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

DASHBOARD = "/domains/example.com/"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(autouse=True)
def _groupware(settings):
    settings.POSTDESK_WEBMAIL_URL = "https://mail.postdesk.example/SOGo/"


def _text(response) -> str:
    assert response.status_code == 200
    return re.sub(r"\s+", " ", response.content.decode())


def _card(page: str, card_id: str) -> str:
    return page.split(f'id="{card_id}"')[1].split("</article>")[0]


def _badge(page: str, card_id: str) -> str:
    return re.search(r'<span class="badge[^"]*">([^<]+)</span>', _card(page, card_id))[1]


def _domain() -> Domain:
    return Domain.objects.get(name="example.com")


def test_the_dashboard_url_is_the_one_these_tests_read():
    assert reverse("web:dashboard", args=["example.com"]) == DASHBOARD


def test_a_dns_check_shows_at_once(owner_browser, domain, dns_server):
    assert _badge(_text(owner_browser.get(DASHBOARD)), "spf") == "Not checked yet"
    dns_check_domain(domain)  # an empty zone
    assert _badge(_text(owner_browser.get(DASHBOARD)), "spf") == "Not configured"
    dns_server.set_txt("example.com", "v=spf1 include:spf.postdesk.example ~all")
    dns_server.set_txt("spf.postdesk.example", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_check_domain(domain)
    page = _text(owner_browser.get(DASHBOARD))
    assert _badge(page, "spf") == "Configured"
    assert 'value="v=spf1 include:spf.postdesk.example ~all"' in page


def test_dkim_keys_show_at_once(owner_browser, operator, domain):
    assert _badge(_text(owner_browser.get(DASHBOARD)), "dkim") == "Disabled"
    dkim_enable(actor=operator, domain=domain)
    page = _text(owner_browser.get(DASHBOARD))
    assert _badge(page, "dkim") == "Not checked yet"
    first = DkimKey.objects.get(domain=domain, status=DkimKeyStatus.SIGNING)
    assert f'value="{first.selector}._domainkey.example.com"' in page

    dkim_prepare_rotation(actor=operator, domain=domain)
    dkim_rotate(actor=operator, domain=domain, force=True)
    second = DkimKey.objects.get(domain=domain, status=DkimKeyStatus.SIGNING)
    assert second.selector != first.selector
    page = _text(owner_browser.get(DASHBOARD))
    assert f'value="{second.selector}._domainkey.example.com"' in page
    assert f'value="{first.selector}._domainkey.example.com"' not in page

    dkim_disable(actor=operator, domain=domain, confirmed=True)
    assert _badge(_text(owner_browser.get(DASHBOARD)), "dkim") == "Disabled"


def test_the_mta_sts_mode_shows_at_once(owner_browser, operator, domain):
    assert '<option value="testing" selected>' in _text(owner_browser.get(DASHBOARD))
    mta_sts_mode_set(actor=operator, domain=domain, mode="enforce")
    page = _text(owner_browser.get(DASHBOARD))
    assert '<option value="enforce" selected>' in _card(page, "mta-sts")
    assert '<option value="testing" selected>' not in page


def test_the_calendar_switch_shows_at_once(owner_browser, operator, domain):
    assert 'name="dav" checked' in _text(owner_browser.get(DASHBOARD))
    domain_dav_set(actor=operator, domain=domain, enabled=False)
    page = _text(owner_browser.get(DASHBOARD))
    assert 'id="domain-dav" name="dav" aria-describedby' in page


def test_a_new_mailbox_shows_in_the_usage_at_once(owner_browser, operator, domain):
    def mailboxes(page: str) -> str:
        return re.search(r"<dt>Active mailboxes</dt><dd>(\d+)</dd>", page)[1]

    assert mailboxes(_text(owner_browser.get(DASHBOARD))) == "0"
    mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    assert mailboxes(_text(owner_browser.get(DASHBOARD))) == "1"


def test_a_viewer_never_gets_the_owners_forms(owner_browser, viewer_browser, domain):
    owner_page = _text(owner_browser.get(DASHBOARD))
    assert "Save mode" in owner_page and "Enable DKIM" in owner_page
    assert 'id="domain-dav"' in owner_page
    viewer_page = _text(viewer_browser.get(DASHBOARD))
    assert "Save mode" not in viewer_page and "Enable DKIM" not in viewer_page
    assert 'id="domain-dav"' not in viewer_page
    assert "Mode: Testing" in viewer_page
    # And the other way round: the viewer's parts kept first give the owner none of theirs.
    assert "Save mode" in _text(owner_browser.get(DASHBOARD))


def test_french_and_english_never_swap(owner_browser, domain):
    english = _text(owner_browser.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="en"))
    french = _text(owner_browser.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="fr"))
    again = _text(owner_browser.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="en"))
    assert _badge(english, "spf") == _badge(again, "spf") == "Not checked yet"
    assert _badge(french, "spf") == "Pas encore vérifié"
    assert "Active mailboxes" in english and "Active mailboxes" not in french
    assert "Save mode" in english and "Save mode" not in french


def test_a_form_of_a_kept_part_carries_the_requests_own_token(admin_browser, owner, domain):
    # Another user's request renders the parts and keeps them.
    admin_page = admin_browser.get(DASHBOARD).content.decode()
    assert "Save mode" in admin_page
    browser = Browser(enforce_csrf_checks=True)
    browser.force_login(owner.user)
    page = browser.get(DASHBOARD).content.decode()
    card = page.split('id="mta-sts"')[1].split("</article>")[0]
    token = CSRF.search(card)[1]
    assert token not in admin_page
    response = browser.post(
        reverse("web:mta_sts_mode", args=["example.com"]),
        {"mode": "enforce", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert _domain().mta_sts_mode == "enforce"
    # The groupware card's form, kept as well, passes too.
    page = browser.get(DASHBOARD).content.decode()
    form = page.split('id="groupware"')[1].split("</form>")[0]
    response = browser.post(
        reverse("web:domain_dav", args=["example.com"]),
        {"csrfmiddlewaretoken": CSRF.search(form)[1]},
    )
    assert response.status_code == 302
    assert _domain().dav_enabled is False


def test_the_checks_age_stays_right_while_the_cards_are_kept(owner_browser, domain, dns_server):
    dns_check_domain(domain)
    assert "Your DNS was last checked 0 minutes ago." in _text(owner_browser.get(DASHBOARD))
    DnsStatus.objects.filter(domain=domain).update(checked_at=timezone.now() - timedelta(hours=3))
    assert "Your DNS was last checked 3 hours ago." in _text(owner_browser.get(DASHBOARD))


def test_the_measures_age_stays_right_while_the_figures_are_kept(owner_browser, operator, domain):
    mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    Mailbox.objects.update(used_measured_at=timezone.now() - timedelta(minutes=20))
    assert "Disk space measured 20 minutes ago." in _text(owner_browser.get(DASHBOARD))
    Mailbox.objects.update(used_measured_at=timezone.now() - timedelta(hours=2))
    assert "Disk space measured 2 hours ago." in _text(owner_browser.get(DASHBOARD))


def test_the_weeks_of_p_none_count_while_the_cards_are_kept(
    owner_browser, domain, dns_server, monkeypatch
):
    dns_server.set_txt("_dmarc.example.com", "v=DMARC1; p=none")
    dns_check_domain(domain)
    seen_since = timezone.now() - timedelta(weeks=4) + timedelta(hours=1)
    DnsStatus.objects.filter(domain=domain).update(dmarc_policy_since=seen_since)
    assert "weeks" not in _card(_text(owner_browser.get(DASHBOARD)), "dmarc")
    # Two hours later, nothing stored has changed: only time, past the four weeks. (The
    # clock is moved for the whole request: no library to do it is among our dependencies.)
    later = timezone.now() + timedelta(hours=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert "“p=none” for 4 weeks" in _card(_text(owner_browser.get(DASHBOARD)), "dmarc")
