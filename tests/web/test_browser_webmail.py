"""The webmail link and the ActiveSync set-up facts at phone width (390 px), in Debian's
Chromium: the dashboard's head and a long mailbox's page still do not scroll sideways."""

from __future__ import annotations

import pytest

from tests.web.test_browser_layout import OVERFLOW, STICKING_OUT, _context, busy_domain

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
expect = pytest.importorskip("playwright.sync_api").expect

__all__ = ["busy_domain"]  # the fixture, used by name


@pytest.mark.parametrize("locale", ["en-US", "fr-FR"])
def test_webmail_and_activesync_set_up_fit_a_phone(
    settings, chromium, live_server, owner, busy_domain, locale
):
    settings.POSTDESK_WEBMAIL_URL = "https://mail.postdesk.example/SOGo/"
    context = _context(chromium, live_server, owner, width=390, height=844, locale=locale)
    page = context.new_page()
    try:
        page.goto("/domains/example.com/")
        expect(page.locator("#webmail-link")).to_be_visible()
        assert page.evaluate(OVERFLOW) <= 0, page.evaluate(STICKING_OUT)
        page.goto("/domains/example.com/mailboxes/marie.dupont-lefebvre/")
        facts = page.locator("#mailbox-access")
        expect(facts.locator("code").first).to_have_text("mail.postdesk.example")
        expect(facts.locator("code").nth(1)).to_be_visible()
        assert page.evaluate(OVERFLOW) <= 0, page.evaluate(STICKING_OUT)
    finally:
        context.close()
