"""Shared fixtures: a client with its domain and users of each role, and a second client
whose objects the first must never reach."""

from __future__ import annotations

import os

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.test import Client as Browser
from django.utils import translation

from postdesk.mail import selectors as mail_selectors
from postdesk.mail.models import Domain
from postdesk.mail.services import domain_add
from postdesk.tenancy.access import Actor, Source
from postdesk.tenancy.choices import Role
from postdesk.tenancy.models import Client, Membership, User

# A password that passes the seven checks for any mailbox of the test domains.
GOOD_PASSWORD = "Vq7!rTz#Lp2wXk"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    # Argon2's production cost (64 MB) is needless in tests; the format stays the same, and
    # test_passwords checks the production parameters against doveadm separately.
    settings.POSTDESK_ARGON2_MEMORY_KIB = 1024
    settings.POSTDESK_ARGON2_TIME_COST = 1


@pytest.fixture(autouse=True)
def _language_reset():
    # A request in French leaves its thread in French (Django activates the language per
    # request and never resets it): the next test would read French messages.
    yield
    translation.activate(django_settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def _address_rows_forgotten():
    # The rendered rows live in the process's memory (web.address_rows), keyed by what they
    # show: another test's rows could match, and a test of the list must render its own.
    caches["rows"].clear()
    caches["row_pages"].clear()
    # And the domains' ids by name (mail.selectors.domain_with_address_list): a test's
    # example.com is not the last test's (PostgreSQL's sequences are not rolled back).
    mail_selectors._KNOWN_DOMAINS.clear()
    # Likewise the dashboard's parts (web.fragments).
    caches["fragments"].clear()


@pytest.fixture(autouse=True)
def _static_files_unhashed(settings):
    # Production serves collected, hashed static files (`postdesk serve` collects them;
    # tests/test_serve.py checks that); pages rendered here name the files in the apps' folders.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def staff(db) -> Browser:
    """The provider's staff, logged in to the admin site."""
    user = User.objects.create_superuser("staff@provider.example", "Unused-passw0rd!")
    browser = Browser(REMOTE_ADDR="192.0.2.7")
    browser.force_login(user)
    return browser


@pytest.fixture
def operator() -> Actor:
    return Actor.operator("test-operator", source=Source.CLI)


def _member(client: Client, email: str, role: str) -> User:
    user = User.objects.create_user(email, "Unused-passw0rd!")
    Membership.objects.create(user=user, client=client, role=role)
    return user


@pytest.fixture
def client_a(db) -> Client:
    return Client.objects.create(name="Acme")


@pytest.fixture
def client_b(db) -> Client:
    return Client.objects.create(name="Bravo")


@pytest.fixture
def domain(client_a, operator) -> Domain:
    return domain_add(actor=operator, client=client_a, name="example.com")


@pytest.fixture
def other_domain(client_b, operator) -> Domain:
    return domain_add(actor=operator, client=client_b, name="example.net")


@pytest.fixture
def owner(client_a) -> Actor:
    return Actor.for_user(_member(client_a, "owner@example.org", Role.OWNER), Source.WEB)


@pytest.fixture
def admin(client_a) -> Actor:
    return Actor.for_user(_member(client_a, "admin@example.org", Role.ADMIN), Source.WEB)


@pytest.fixture
def viewer(client_a) -> Actor:
    return Actor.for_user(_member(client_a, "viewer@example.org", Role.VIEWER), Source.WEB)


@pytest.fixture
def outsider(client_b) -> Actor:
    """The owner of another client."""
    return Actor.for_user(_member(client_b, "owner@example.net", Role.OWNER), Source.API)


@pytest.fixture(scope="session")
def _dns_server_process():
    # One server for the whole run: starting is instant, but stopping waits for the serving
    # loops, and clear() per test gives each test an empty zone just as well.
    from tests.dns_server import DnsTestServer

    server = DnsTestServer()
    yield server
    server.stop()


@pytest.fixture
def dns_server(_dns_server_process, settings):
    """A real DNS server on 127.0.0.1 with an empty zone, and the DNS settings pointing at it
    (restored after the test). See tests/dns_server.py for shaping its answers."""
    _dns_server_process.clear()
    settings.POSTDESK_DNS_NAMESERVERS = [_dns_server_process.nameserver]
    settings.POSTDESK_DNS_TIMEOUT = 1.0
    yield _dns_server_process
    _dns_server_process.clear()


CHROMIUM = "/usr/bin/chromium"


# Here, not in tests/web: the webmail test (tests/dataplane) drives the same browser, and
# Playwright's sync API allows one instance per thread: a second session fixture would fail
# every browser test after it ("Sync API inside the asyncio loop").
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
