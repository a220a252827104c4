"""Layout that fits the screen, measured in Debian's Chromium: no client-area page scrolls
sideways at phone width (390 px), and the address list shows every column at 1366 x 768,
in English and in French; long addresses break at "@" or ".", not mid-word."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.test import Client as DjangoClient

from postdesk.billing.services import client_set_plan, plan_create
from postdesk.mail.services import forward_create, mailbox_create, mailbox_usage_record
from tests.conftest import GOOD_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
expect = pytest.importorskip("playwright.sync_api").expect

GIB = 1024**3
LONG_DOMAIN = "comptabilite-et-facturation.example.org"
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"
# What sticks out on the right, to say why a page scrolls sideways.
STICKING_OUT = """() => Array.from(document.querySelectorAll("body *"))
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
    .slice(0, 8)
    .map(e => `${e.tagName}.${e.className} ${(e.textContent || "").trim().slice(0, 40)}`)"""


@pytest.fixture
def busy_domain(operator, client_a, domain):
    """What makes a page wide: long aliases and destinations, several of each, a plan with
    closed periods (the billing history), an almost full mailbox and a forward."""
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= timedelta(days=70)
    plan = plan_create(
        actor=operator,
        name="Basic",
        currency="CAD",
        storage_gb_price="0.50",
        eas_price="4",
        mapi_price="6",
        eas_mapi_price="8.50",
        storage_limit_mb=10240,
    )
    client_set_plan(actor=operator, client=client_a, plan=plan, at=start)
    marie = mailbox_create(
        actor=operator,
        domain=domain,
        username="marie.dupont-lefebvre",
        password=GOOD_PASSWORD,
        aliases=["direction.administrative.generale", "m.dupont", "secretariat.general"],
        destinations=[
            f"marie.dupont-lefebvre.personnel@{LONG_DOMAIN}",
            f"assistante.direction@{LONG_DOMAIN}",
        ],
        quota_mb=5120,
        eas_enabled=True,
        mapi_enabled=True,
        at=start,
    )
    mailbox_usage_record(actor=operator, mailbox=marie, used_bytes=int(4.8 * GIB), at=start)
    for n in range(3):
        mailbox_create(
            actor=operator,
            domain=domain,
            username=f"collaborateur.service-commercial-{n}",
            password=GOOD_PASSWORD,
            eas_enabled=n % 2 == 0,
            at=start,
        )
    forward_create(
        actor=operator,
        domain=domain,
        name="factures.fournisseurs",
        destinations=[f"service.comptabilite.fournisseurs@{LONG_DOMAIN}"],
    )
    return domain


def _context(chromium, live_server, actor, *, width: int, height: int, locale: str):
    """A browser context logged in as `actor` (its session cookie, whatever the language)."""
    context = chromium.new_context(
        base_url=live_server.url, viewport={"width": width, "height": height}, locale=locale
    )
    context.set_default_timeout(10_000)
    django_client = DjangoClient()
    django_client.force_login(actor.user)
    cookie = django_client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )
    return context


PHONE_PAGES = [
    "/domains/example.com/",
    "/domains/example.com/new/mailbox/",
    "/domains/example.com/mailboxes/marie.dupont-lefebvre/",
    "/domains/example.com/new/forward/",
    "/domains/example.com/forwards/factures.fournisseurs/",
    "/domains/example.com/billing/",
    "/audit/",
    "/account/",
]


@pytest.mark.parametrize("locale", ["en-US", "fr-FR"])
def test_no_page_scrolls_sideways_at_phone_width(chromium, live_server, owner, busy_domain, locale):
    context = _context(chromium, live_server, owner, width=390, height=844, locale=locale)
    page = context.new_page()
    try:
        for path in PHONE_PAGES:
            page.goto(path)
            page.wait_for_load_state("networkidle")  # the billing card loads on its own
            assert page.evaluate(OVERFLOW) <= 0, (path, page.evaluate(STICKING_OUT))
        # The billing tables stack: each amount shows its column's name beside it.
        page.goto("/domains/example.com/billing/")
        lines = page.locator("table.billing-lines")
        expect(lines.locator("thead")).to_have_css("position", "absolute")
        label = "Amount" if locale == "en-US" else "Montant"
        cell = lines.locator(f'td[data-label="{label}"]').first
        expect(cell).to_be_visible()
        assert cell.evaluate("c => getComputedStyle(c, '::before').content").strip('"') == label
    finally:
        context.close()


def _line_starts(page, selector: str) -> list[str]:
    """The text each rendered line of the element starts with (through its text nodes)."""
    return page.locator(selector).first.evaluate(
        """element => {
            const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
            const text = [];
            const tops = [];
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                for (let i = 0; i < node.length; i++) {
                    const range = document.createRange();
                    range.setStart(node, i);
                    range.setEnd(node, i + 1);
                    const rect = range.getClientRects()[0];
                    if (!rect) continue;
                    text.push(node.data[i]);
                    tops.push(Math.round(rect.top));
                }
            }
            const starts = [];
            for (let i = 0; i < text.length; i++) {
                if (i === 0 || tops[i] > tops[i - 1] + 2) starts.push(i);
            }
            return starts.map((s, n) => text.slice(s, starts[n + 1]).join(""));
        }"""
    )


def test_addresses_break_at_at_sign_or_dot_at_phone_width(
    chromium, live_server, owner, busy_domain
):
    context = _context(chromium, live_server, owner, width=390, height=844, locale="en-US")
    page = context.new_page()
    try:
        page.goto("/domains/example.com/")
        lines = _line_starts(page, "#address-list .chip >> text=assistante.direction@")
        assert len(lines) > 1, lines  # too long for one line at this width...
        # ...so it wraps after the "@", before a dot or after a hyphen, never inside a word.
        for before, line in itertools.pairwise(lines):
            assert line.startswith(".") or before.endswith(("@", "-")), lines
        assert "".join(lines) == f"assistante.direction@{LONG_DOMAIN}"
    finally:
        context.close()


def test_a_long_unbroken_destination_wraps_in_its_error(chromium, live_server, owner, busy_domain):
    context = _context(chromium, live_server, owner, width=390, height=844, locale="fr-FR")
    page = context.new_page()
    try:
        page.goto("/domains/example.com/forwards/factures.fournisseurs/")
        field = page.locator("#id_destinations_new")
        field.fill("x" * 300)
        field.press("Enter")
        page.locator("#forward-form button[type=submit]").click()
        page.wait_for_load_state()
        errors = page.locator(".field-errors, .form-alert")
        expect(errors.first).to_be_visible()
        assert page.evaluate(OVERFLOW) <= 0
        for index in range(errors.count()):
            box = errors.nth(index).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    finally:
        context.close()


@pytest.mark.parametrize(
    ("locale", "headers"),
    [
        ("en-US", ["Address", "Type", "Aliases", "Destinations", "Storage", "EAS", "MAPI"]),
        ("fr-FR", ["Adresse", "Type", "Alias", "Destinations", "Stockage", "EAS", "MAPI"]),
    ],
)
def test_every_column_of_the_address_list_shows_at_1366(
    chromium, live_server, owner, busy_domain, locale, headers
):
    context = _context(chromium, live_server, owner, width=1366, height=768, locale=locale)
    page = context.new_page()
    try:
        page.goto("/domains/example.com/")
        table = page.locator("#address-list table")
        expect(table).to_be_visible()
        wrap = page.locator("#address-list .table-wrap")
        page.locator("#addresses").screenshot(
            path=str(_screenshots() / f"address-list-1366-{locale[:2]}.png")
        )
        # Nothing to scroll sideways, neither the list nor the page.
        assert wrap.evaluate("w => w.scrollWidth - w.clientWidth") <= 0
        assert page.evaluate(OVERFLOW) <= 0
        right = wrap.evaluate("w => w.getBoundingClientRect().right")
        for name in headers:
            header = table.locator("thead th", has_text=re.compile(rf"^\s*{name}"))
            expect(header.first).to_be_visible()
            assert header.first.evaluate("h => h.getBoundingClientRect().right") <= right
        # The row actions are in view too.
        last = table.locator("tbody tr").first.locator("td").last
        assert last.evaluate("c => c.getBoundingClientRect().right") <= right
    finally:
        context.close()


def _screenshots():
    from tests.web.test_browser import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def test_row_actions_open_the_mailbox_dialogs(chromium, live_server, owner, busy_domain):
    context = _context(chromium, live_server, owner, width=1366, height=768, locale="en-US")
    page = context.new_page()
    try:
        page.goto("/domains/example.com/")
        address = "marie.dupont-lefebvre@example.com"
        page.get_by_role("link", name=f"Delete {address}").click()
        dialog = page.locator("#delete-dialog")
        expect(dialog).to_be_visible()  # the confirmation, as on the mailbox page
        expect(dialog).to_contain_text(f"Delete {address}?")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        page.goto("/domains/example.com/")
        page.get_by_role("link", name=f"Change password {address}").click()
        expect(page.locator("#password-dialog")).to_be_visible()
    finally:
        context.close()
