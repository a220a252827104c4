"""An axe-core scan of every client-area page in Debian's Chromium: no serious or critical
violation. axe-core is vendored under tests/web/vendor/ (see its LICENSE there)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from postdesk.mail.services import domain_add
from tests.web.test_browser import LOGIN_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
BLOCKING = {"serious", "critical"}


def _violations(page) -> list[dict]:
    # The pages' Content-Security-Policy forbids injected scripts: the context bypasses it.
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]


@pytest.fixture
def axe_page(chromium, live_server):
    context = chromium.new_context(
        base_url=live_server.url,
        viewport={"width": 1280, "height": 900},
        locale="en-US",
        bypass_csp=True,
    )
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def plan(operator, domain):
    from postdesk.billing.services import client_set_plan, plan_create

    created = plan_create(
        actor=operator,
        name="Basic",
        currency="CAD",
        storage_gb_price="0.50",
        eas_price="4",
        mapi_price="6",
        eas_mapi_price="8.50",
    )
    client_set_plan(actor=operator, client=domain.client, plan=created)
    return created


def _scan(page, label: str, found: dict) -> None:
    violations = _violations(page)
    if violations:
        found[label] = violations


@pytest.mark.parametrize("language", ["en", "fr"])
def test_no_page_has_a_serious_or_critical_violation(
    axe_page, language, owner, operator, domain, mailbox, forward, plan
):
    # A second domain: with one, the domains list is its dashboard.
    domain_add(actor=operator, client=domain.client, name="second.example")
    page = axe_page
    found: dict[str, list] = {}
    page.goto("/login/")
    _scan(page, "login", found)

    owner.user.set_password(LOGIN_PASSWORD)
    owner.user.save()
    page.get_by_label("Email address").fill(owner.user.email)
    page.get_by_label("Password").fill(LOGIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))
    if language == "fr":
        page.get_by_role("button", name="Français").click()
        page.locator("html[lang='fr']").wait_for(state="attached")

    pages = {
        "domains": "/",
        "dashboard": "/domains/example.com/",
        "mailbox form (new)": "/domains/example.com/new/mailbox/",
        "mailbox form (edit)": "/domains/example.com/mailboxes/marie/",
        "forward form (new)": "/domains/example.com/new/forward/",
        "forward form (edit)": "/domains/example.com/forwards/info/",
        "account": "/account/",
        "audit": "/audit/",
        "billing": "/domains/example.com/billing/",
        "page not found": "/no/such/page/",
    }
    for label, path in pages.items():
        page.goto(path)
        if label == "dashboard":
            # The billing card arrives after the page (htmx): scan it too.
            page.locator("#billing-card .billing-lines").wait_for()
        _scan(page, label, found)

    # The password dialog, open.
    page.goto("/domains/example.com/mailboxes/marie/")
    page.locator("#password-dialog").evaluate("d => d.showModal()")
    _scan(page, "password dialog", found)

    print(json.dumps(found, indent=2, ensure_ascii=False))
    assert not found, json.dumps(found, indent=2, ensure_ascii=False)


def test_the_scan_reports_what_it_should(axe_page):
    """The harness itself: an unlabelled field and an image without text are caught."""
    axe_page.set_content(
        '<!doctype html><html lang="en"><head><title>t</title></head><body><main>'
        '<input type="text"><img src="x.png"></main></body></html>'
    )
    assert {v["id"] for v in _violations(axe_page)} >= {"label", "image-alt"}
