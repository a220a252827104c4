"""The address list's rows are rendered once for what they show, then read from the rows'
cache (web.templatetags.web.address_rows): never an old row, another user's or another
language's."""

import re

import pytest
from django.core.cache import caches
from django.urls import reverse

from postdesk.mail.services import forward_create, mailbox_update

pytestmark = pytest.mark.django_db

ROWS_TEMPLATE = "web/_address_rows.html"
LIST = {"HX-Request": "true", "HX-Target": "address-list"}


def _list(browser, **headers):
    response = browser.get(reverse("web:dashboard", args=["example.com"]), headers=LIST | headers)
    assert response.status_code == 200
    return response


def test_rows_seen_before_are_not_rendered_again(owner_browser, mailbox, forward):
    first = _list(owner_browser)
    assert ROWS_TEMPLATE in [t.name for t in first.templates]
    again = _list(owner_browser)
    assert ROWS_TEMPLATE not in [t.name for t in again.templates]
    assert again.content == first.content
    assert b"marie@<wbr>example<wbr>.com" in again.content


def test_a_changed_row_shows_its_change_at_once(owner_browser, operator, mailbox, forward):
    before = _list(owner_browser).content.decode()
    assert "5.0 GB" in before
    mailbox_update(actor=operator, mailbox=mailbox, quota_mb=2048, mapi_enabled=True)
    after = _list(owner_browser)
    html = after.content.decode()
    assert "2.0 GB" in html and "5.0 GB" not in html
    # Only the changed row was rendered: the forward's came from the cache.
    assert ROWS_TEMPLATE in [t.name for t in after.templates]
    assert html.count("info@<wbr>example<wbr>.com") == before.count("info@<wbr>example<wbr>.com")


def test_a_viewer_never_gets_the_owners_action_links(owner_browser, viewer_browser, mailbox):
    assert "?open=delete" in _list(owner_browser).content.decode()
    seen = _list(viewer_browser)
    assert ROWS_TEMPLATE in [t.name for t in seen.templates]
    assert "?open=delete" not in seen.content.decode()


def test_each_language_has_its_own_rows(owner_browser, mailbox):
    assert "Mailbox" in _list(owner_browser).content.decode()
    french = _list(owner_browser, **{"Accept-Language": "fr"}).content.decode()
    assert "Boîte" in french and ">Mailbox<" not in french


def test_a_page_read_again_is_kept_whole(owner_browser, operator, mailbox, forward):
    """The same rows in the same order come from the page kept whole, without a row read
    (the rows' own cache emptied here); one changed row makes it another page."""
    first = _list(owner_browser).content
    caches["rows"].clear()
    again = _list(owner_browser)
    assert ROWS_TEMPLATE not in [t.name for t in again.templates]
    assert again.content == first
    mailbox_update(actor=operator, mailbox=mailbox, quota_mb=2048)
    changed = _list(owner_browser)
    assert ROWS_TEMPLATE in [t.name for t in changed.templates]
    assert "2.0 GB" in changed.content.decode()


TABLE_TEMPLATE = "web/_address_table.html"


def test_the_table_is_kept_whole_and_its_page_links_stay_live(
    owner_browser, operator, domain, mailbox, forward, settings
):
    """The count, sort control and table come back whole on the next visit; the page links
    (signed cursors) are made at each request and lead to the next page; a row added
    after the first page changes the count at once."""
    settings.POSTDESK_PAGE_SIZE = 1
    first = _list(owner_browser)
    assert TABLE_TEMPLATE in [t.name for t in first.templates]
    again = _list(owner_browser)
    assert TABLE_TEMPLATE not in [t.name for t in again.templates]
    html = again.content.decode()
    assert "info@<wbr>example<wbr>.com" in html and "2 addresses" in html
    next_url = re.search(r'rel="next" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    second = owner_browser.get(next_url, headers=LIST).content.decode()
    assert "marie@<wbr>example<wbr>.com" in second
    forward_create(actor=operator, domain=domain, name="zoe", destinations=["z@example.org"])
    counted = _list(owner_browser)
    assert TABLE_TEMPLATE in [t.name for t in counted.templates]
    assert "3 addresses" in counted.content.decode()


def test_the_dashboards_filters_are_kept_for_what_they_show(owner_browser, mailbox, forward):
    dashboard = reverse("web:dashboard", args=["example.com"])
    first = owner_browser.get(dashboard)
    assert "web/_address_filters.html" in [t.name for t in first.templates]
    again = owner_browser.get(dashboard)
    assert "web/_address_filters.html" not in [t.name for t in again.templates]
    assert "2 addresses" in again.content.decode()
    searched = owner_browser.get(dashboard + "?q=marie&sort=storage").content.decode()
    assert 'name="q" value="marie"' in searched
    assert '<option value="storage" selected>' in searched
    assert "1 address" in searched
