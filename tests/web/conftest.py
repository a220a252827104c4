"""Fixtures of the client-area tests: browsers logged in as each role, and a mailbox and a
forward in the first client's domain."""

from __future__ import annotations

import os

import pytest
from django.test import Client as Browser

from postdesk.mail.services import forward_create, mailbox_create
from tests.conftest import GOOD_PASSWORD

CHROMIUM = "/usr/bin/chromium"


def _browser(actor) -> Browser:
    browser = Browser()
    browser.force_login(actor.user)
    return browser


@pytest.fixture
def owner_browser(owner) -> Browser:
    return _browser(owner)


@pytest.fixture
def admin_browser(admin) -> Browser:
    return _browser(admin)


@pytest.fixture
def viewer_browser(viewer) -> Browser:
    return _browser(viewer)


@pytest.fixture
def outsider_browser(outsider) -> Browser:
    return _browser(outsider)


@pytest.fixture
def mailbox(operator, domain):
    return mailbox_create(
        actor=operator,
        domain=domain,
        username="marie",
        password=GOOD_PASSWORD,
        aliases=["m.dupont"],
        destinations=["marie@gmail.com"],
        quota_mb=5120,
        eas_enabled=True,
    )


@pytest.fixture
def forward(operator, domain):
    return forward_create(
        actor=operator, domain=domain, name="info", destinations=["boss@example.org"]
    )


@pytest.fixture(scope="session")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (./run test installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API keeps an asyncio loop running in this thread; Django then refuses
    # database calls here. They are plain sync calls from the test, so that guard is moot.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield from _launch(sync_api)
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _launch(sync_api):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-quic",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()
