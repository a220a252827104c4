"""Fixtures of the client-area tests: browsers logged in as each role, and a mailbox and a
forward in the first client's domain."""

from __future__ import annotations

import pytest
from django.test import Client as Browser

from postdesk.mail.services import forward_create, mailbox_create
from tests.conftest import GOOD_PASSWORD


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
