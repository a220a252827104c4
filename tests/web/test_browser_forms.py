"""End to end in Debian's Chromium, the forms test_browser.py does not walk through: editing a
mailbox (aliases, password dialog), forwards, deleting a mailbox; sorting at phone width and
the announced result count of the address list."""

from __future__ import annotations

import re

import pytest

from tests.web.test_browser import SCREENSHOTS, _log_in, _rows, page  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
PlaywrightTimeout = sync_api.TimeoutError

EDIT = "/domains/example.com/mailboxes/marie/"


def _message(on, text: str):
    return on.locator(".message").filter(has_text=text)


def test_edit_a_mailbox_aliases_and_the_reservation(page, owner, mailbox):  # noqa: F811
    _log_in(page, owner)
    page.goto(EDIT)
    aliases = page.locator("[data-name=aliases] .tag__text")
    expect(aliases).to_have_text(["m.dupont@example.com"])
    alias_input = page.locator("#id_aliases_new")
    alias_input.fill("marie.d")
    alias_input.press("Enter")
    expect(aliases).to_have_text(["m.dupont@example.com", "marie.d@example.com"])
    # Removing an existing alias says at once that it stays reserved.
    note = page.locator("[data-reserved-note]")
    assert not note.is_visible()
    page.get_by_role("button", name="Remove m.dupont@example.com").click()
    expect(note).to_be_visible()
    expect(note).to_contain_text("stay reserved for 15 minutes")
    expect(note).to_contain_text("m.dupont@example.com")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(_message(page, "Changes saved.")).to_be_visible()
    expect(
        _message(page, "m.dupont@example.com stays reserved for 15 minutes: no address can use")
    ).to_be_visible()
    expect(aliases).to_have_text(["marie.d@example.com"])
    # Taking it back before the delay is refused as it is added, what was typed kept.
    alias_input.fill("m.dupont")
    alias_input.press("Enter")
    expect(page.locator("[data-name=aliases] [data-tag-feedback]")).to_contain_text(
        "m.dupont@example.com was removed recently and stays reserved for 15 more minute(s)"
    )
    expect(alias_input).to_have_value("m.dupont")
    expect(aliases).to_have_text(["marie.d@example.com"])


def test_change_a_mailbox_password_through_its_dialog(page, owner, mailbox, settings):  # noqa: F811
    settings.POSTDESK_DOVEADM_URL = "http://127.0.0.1:9/doveadm/v1"  # connected (never called)
    _log_in(page, owner)
    page.goto(EDIT)
    expect(page.locator("section[aria-labelledby=password-title] > .warning")).to_contain_text(
        "will be disconnected as soon as the password is changed"
    )
    page.get_by_role("button", name="Change password").click()
    dialog = page.locator("#password-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".warning")).to_have_text(
        "All active sessions for this mailbox will be disconnected."
    )
    confirm = dialog.get_by_role("button", name="Change password")
    expect(confirm).to_be_disabled()
    dialog.locator("#id_password").fill("Zx9#kLm2!pQrT")
    expect(dialog.locator(".check--passed")).to_have_count(6)  # not yet confirmed
    expect(confirm).to_be_disabled()
    dialog.locator("#id_password_confirmation").fill("Zx9#kLm2!pQrT")
    expect(dialog.locator(".check--passed")).to_have_count(7)
    expect(confirm).to_be_enabled()
    confirm.click()
    expect(_message(page, "The password of marie@example.com has been changed.")).to_be_visible()
    expect(page.locator("#changes-pending")).to_be_visible()


def test_create_edit_and_delete_a_forward(page, owner, domain):  # noqa: F811
    _log_in(page, owner)
    page.goto("/domains/example.com/")
    page.get_by_role("link", name="New forward").click()
    page.get_by_label("Name").fill("sales")
    destination = page.locator("#id_destinations_new")
    destination.fill("anne@partner.example")
    page.get_by_role("button", name="Add a destination address").click()
    destination.fill("paul@partner.example")
    destination.press("Enter")
    tags = page.locator("[data-name=destinations] .tag__text")
    expect(tags).to_have_text(["anne@partner.example", "paul@partner.example"])
    page.get_by_role("button", name="Create forward").click()

    expect(_message(page, "Forward sales@example.com created.")).to_be_visible()
    row = page.locator("#address-list tbody tr").filter(has_text="sales@example.com")
    expect(row.locator(".chip")).to_have_text(["anne@partner.example", "paul@partner.example"])

    row.get_by_role("link", name="sales@example.com", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("sales@example.com")
    page.get_by_role("button", name="Remove anne@partner.example").click()
    destination.fill("carole@partner.example")
    destination.press("Enter")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(_message(page, "Changes saved.")).to_be_visible()
    expect(tags).to_have_text(["paul@partner.example", "carole@partner.example"])

    page.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_contain_text("Delete sales@example.com?")
    dialog.get_by_role("button", name="Delete permanently").click()
    expect(_message(page, "Forward sales@example.com deleted.")).to_be_visible()
    assert "sales@example.com" not in _rows(page)


def test_delete_a_mailbox_from_the_bottom_of_its_page(page, owner, mailbox, forward):  # noqa: F811
    _log_in(page, owner)
    page.goto(EDIT)
    danger = page.locator("section.panel--danger")
    expect(danger).to_contain_text("Deletion is irreversible.")
    expect(danger).to_contain_text("Its aliases are deleted too.")
    danger.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete marie@example.com?")
    expect(dialog).to_contain_text("This cannot be undone.")
    # Cancel (the keyboard's Escape) leaves it alone.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    danger.get_by_role("button", name="Delete", exact=True).click()
    dialog.get_by_role("button", name="Delete permanently").click()

    page.wait_for_url(re.compile(r"/domains/example\.com/$"))
    expect(_message(page, "Mailbox marie@example.com deleted.")).to_be_visible()
    assert _rows(page) == ["info@example.com"]
    expect(page.locator("#address-list")).not_to_contain_text("m.dupont")
    # Its alias is gone too: searching for it finds nothing.
    page.get_by_label("Search").fill("m.dupont")
    page.wait_for_url(re.compile(r"q=m\.dupont"))
    expect(page.locator("#address-list")).to_contain_text("No address matches your search.")
    expect(page.locator("#address-count")).to_have_text("0 addresses")


def test_sort_by_storage_at_phone_width(chromium, live_server, owner, domain):
    from bench.dataset import add_addresses

    from postdesk.mail.models import Mailbox

    add_addresses(domain, mailboxes=6, aliases=0, forwards=1)
    context = chromium.new_context(
        base_url=live_server.url, viewport={"width": 375, "height": 740}, locale="en-US"
    )
    context.set_default_timeout(10_000)
    page = context.new_page()  # noqa: F811
    try:
        _log_in(page, owner)
        page.goto("/domains/example.com/")
        # The table reflows into cards at this width: its sortable headers are only there for
        # screen readers (clipped to a pixel), no one can tap them...
        header = page.get_by_role("link", name=re.compile("Storage"))
        with pytest.raises(PlaywrightTimeout):
            header.click(trial=True, timeout=1_000)
        # ...so the "Sort by" control is how a phone sorts.
        sort = page.get_by_label("Sort by")
        expect(sort).to_be_visible()
        sort.select_option(label="Storage, largest first")
        page.wait_for_url(re.compile(r"sort=storage(&|$)"))
        ordered = Mailbox.objects.order_by("-used_bytes", "address__local_part")
        largest = [m.address.email for m in ordered]
        expect(page.locator("#address-list tbody .address-link").first).to_have_text(largest[0])
        assert _rows(page)[:6] == largest
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "address-list-phone.png"), full_page=True)
        # Bookmarkable: the same URL loaded afresh (no htmx) keeps the order and the control.
        page.reload()
        assert _rows(page)[0] == largest[0]
        assert sort.input_value() == "storage"
        # Smallest first, then back to the address order.
        sort.select_option("storage_asc")
        page.wait_for_url(re.compile(r"sort=storage_asc"))
        expect(page.locator("#address-list tbody .address-link").first).to_have_text(largest[-1])
    finally:
        context.close()


def test_the_result_count_is_announced_when_the_list_changes(
    page,  # noqa: F811
    owner,
    domain,
    mailbox,
    forward,
):
    from bench.dataset import add_addresses

    add_addresses(domain, mailboxes=10, aliases=0, forwards=0)
    _log_in(page, owner)
    page.goto("/domains/example.com/")
    region = page.locator("#address-count")
    expect(region).to_have_attribute("aria-live", "polite")
    expect(region).to_have_text("12 addresses")
    # Screen readers announce a change of a live region that stays in the page: mark the
    # element, and check after each swap that it is still the same one with a new text.
    region.evaluate("e => { e.dataset.marked = 'yes'; }")

    page.get_by_label("Search").fill("dupont")
    page.wait_for_url(re.compile(r"q=dupont"))
    expect(region).to_have_text("1 address")
    page.get_by_label("Search").fill("")
    expect(region).to_have_text("12 addresses")
    page.get_by_label("Type").select_option("forward")
    expect(region).to_have_text("1 address")
    assert region.evaluate("e => e.dataset.marked") == "yes"
    # Sorting from the table's header (wide screen) keeps the "Sort by" control in step.
    page.get_by_label("Type").select_option("all")
    expect(region).to_have_text("12 addresses")
    page.get_by_role("link", name=re.compile("Storage")).click()
    page.wait_for_url(re.compile(r"sort=storage"))
    expect(page.get_by_label("Sort by")).to_have_value("storage")
    page.get_by_label("Search").fill("user")
    page.wait_for_url(re.compile(r"q=user"))
    assert "sort=storage" in page.url  # the search keeps the order
    expect(region).to_have_text("10 addresses")
    assert region.evaluate("e => e.dataset.marked") == "yes"
