"""Forms that respect the user's work (#14, points 10 to 13), end to end in Debian's Chromium,
in English and French: every error in one round, a refused form keeping the password set in
its dialog, tags checked as they are added, and a checklist that is not green before anything
is typed. The view side is tests/web/test_forms_respect.py."""

from __future__ import annotations

import re

import pytest

from postdesk.dataplane.passwords import verify_password
from postdesk.mail.models import Mailbox
from tests.web.test_browser import _log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
expect = pytest.importorskip("playwright.sync_api").expect

CREATE = "/domains/example.com/new/mailbox/"
PASSWORD = "Kept-Passw0rd-2026!"

TEXT = {
    "en": {
        "set": "Set password",
        "use": "Use this password",
        "create": "Create email address",
        "password_set": "Password set: it passes every requirement.",
        "taken": "marie@example.com is already used by a mailbox.",
        "quota": "Enter a whole number of megabytes",
        "created": "Mailbox jean@example.com created.",
        "space": (
            "A space is not allowed: use only letters, numbers, dots, hyphens and underscores."
        ),
        "not_email": "“not-an-email” is not a valid email address.",
        "reserved": "was removed recently and stays reserved",
        "length": "Minimum length met (12 characters)",
        "add_alias": "Add an alias",
    },
    "fr": {
        "set": "Définir le mot de passe",
        "use": "Utiliser ce mot de passe",
        "create": "Créer l\u2019adresse courriel",
        "password_set": "Mot de passe défini\u00a0: il respecte toutes les exigences.",
        "taken": "marie@example.com",
        "quota": "Saisissez un nombre entier de mégaoctets",
        "created": "jean@example.com",
        "space": (
            "Les espaces ne sont pas autorisés\u00a0: utilisez uniquement des lettres, "
            "des chiffres, des points, des traits d\u2019union et des traits de soulignement."
        ),
        "not_email": "«\u00a0not-an-email\u00a0» n\u2019est pas une adresse courriel valide.",
        "reserved": "m.dupont@example.com",
        "length": "Longueur minimale atteinte (12 caractères)",
        "add_alias": "Ajouter un alias",
    },
}


@pytest.fixture(params=["en", "fr"])
def lang(request):
    return request.param


@pytest.fixture
def page(chromium, live_server, lang):
    context = chromium.new_context(
        base_url=live_server.url, viewport={"width": 1366, "height": 900}, locale="en-US"
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    blocked = []
    page.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield page
    context.close()
    assert not blocked, blocked


def _open(page, owner, lang: str, path: str = CREATE) -> dict:
    _log_in(page, owner)
    if lang == "fr":
        page.context.add_cookies([{"name": "django_language", "value": "fr", "url": page.url}])
    page.goto(path)
    expect(page.locator("html")).to_have_attribute("lang", lang)
    return TEXT[lang]


def _set_password(page, words: dict) -> None:
    page.get_by_role("button", name=words["set"]).click()
    dialog = page.locator("#password-dialog")
    dialog.locator("#id_password").fill(PASSWORD)
    dialog.locator("#id_password_confirmation").fill(PASSWORD)
    dialog.get_by_role("button", name=words["use"]).click()
    expect(page.locator("[data-password-status]")).to_have_text(words["password_set"])


def test_every_error_in_one_round_and_the_password_is_kept(page, owner, mailbox, lang):
    words = _open(page, owner, lang)
    page.locator("#id_username").fill("marie")
    _set_password(page, words)
    page.locator("#id_aliases_new").fill("j.martin")
    page.locator("#id_aliases_new").press("Enter")
    expect(page.locator("[data-name=aliases] .tag__text")).to_have_text(["j.martin@example.com"])
    page.locator("#id_quota_mb").fill("-3")
    page.get_by_label(re.compile("ActiveSync")).check()
    page.get_by_role("button", name=words["create"]).click()

    # 10: the taken username and the bad limit, together, on the first submit.
    expect(page.locator("#id_username-errors")).to_contain_text(words["taken"])
    expect(page.locator("#id_quota_mb-errors")).to_contain_text(words["quota"])
    # 11: everything typed is kept, the password set in the dialog too.
    expect(page.locator("#id_username")).to_have_value("marie")
    expect(page.locator("#id_quota_mb")).to_have_value("-3")
    expect(page.locator("[data-name=aliases] .tag__text")).to_have_text(["j.martin@example.com"])
    expect(page.get_by_label(re.compile("ActiveSync"))).to_be_checked()
    expect(page.locator("[data-password-status]")).to_have_text(words["password_set"])
    dialog = page.locator("#password-dialog")
    assert dialog.locator("#id_password").input_value() == PASSWORD
    assert dialog.locator("#id_password_confirmation").input_value() == PASSWORD

    # Fixing the two fields is enough: the password is not typed again.
    page.locator("#id_username").fill("jean")
    page.locator("#id_quota_mb").fill("1024")
    page.get_by_role("button", name=words["create"]).click()
    expect(page.locator(".message").filter(has_text=words["created"])).to_be_visible()
    created = Mailbox.objects.get(address__local_part="jean")
    assert verify_password(PASSWORD, created.password_hash)
    assert created.quota_mb == 1024 and created.eas_enabled


def test_tags_are_checked_as_they_are_added(page, owner, mailbox, lang):
    words = _open(page, owner, lang)
    page.locator("#id_username").fill("jean")
    aliases = page.locator("[data-name=aliases]")
    alias_input = page.locator("#id_aliases_new")
    alias_input.fill("bad alias")
    alias_input.press("Enter")
    # Refused at once, with the server's message; what was typed stays to be corrected.
    expect(aliases.locator("[data-tag-feedback]")).to_have_text(words["space"])
    expect(alias_input).to_have_attribute("aria-invalid", "true")
    expect(alias_input).to_have_value("bad alias")
    expect(aliases.locator(".tag")).to_have_count(0)
    alias_input.fill("m.dupont")  # marie's alias
    page.get_by_role("button", name=words["add_alias"]).click()
    expect(aliases.locator("[data-tag-feedback]")).to_contain_text("m.dupont@example.com")
    expect(aliases.locator(".tag")).to_have_count(0)
    alias_input.fill("Bad.Alias")
    expect(aliases.locator("[data-tag-feedback]")).to_be_hidden()  # typing again clears it
    alias_input.press("Enter")
    expect(aliases.locator(".tag__text")).to_have_text(["bad.alias@example.com"])
    expect(alias_input).to_have_value("")

    destinations = page.locator("[data-name=destinations]")
    destination = page.locator("#id_destinations_new")
    destination.fill("not-an-email")
    destination.press("Enter")
    expect(destinations.locator("[data-tag-feedback]")).to_have_text(words["not_email"])
    expect(destinations.locator(".tag")).to_have_count(0)
    destination.fill("bad.alias@example.com")  # the new mailbox's own alias: a loop
    destination.press("Enter")
    expect(destinations.locator("[data-tag-feedback]")).to_contain_text("bad.alias@example.com")
    expect(destinations.locator(".tag")).to_have_count(0)
    destination.fill("Jean@Gmail.com")
    destination.press("Enter")
    expect(destinations.locator(".tag__text")).to_have_text(["jean@gmail.com"])


def test_a_forward_destination_is_checked_as_it_is_added(page, owner, domain, lang):
    words = _open(page, owner, lang, "/domains/example.com/new/forward/")
    page.locator("#id_name").fill("sales")
    destination = page.locator("#id_destinations_new")
    tags = page.locator("[data-name=destinations]")
    destination.fill("not-an-email")
    destination.press("Enter")
    expect(tags.locator("[data-tag-feedback]")).to_have_text(words["not_email"])
    destination.fill("sales@example.com")
    destination.press("Enter")
    expect(tags.locator("[data-tag-feedback]")).to_contain_text("sales@example.com")
    # Two typed quickly, one after the other: both added, in order.
    destination.fill("anne@partner.example")
    destination.press("Enter")
    destination.fill("paul@partner.example")
    destination.press("Enter")
    expect(tags.locator(".tag__text")).to_have_text(
        ["anne@partner.example", "paul@partner.example"]
    )
    expect(destination).to_have_value("")


def test_a_removed_alias_taken_back_is_refused_on_the_edit_page(page, owner, mailbox, lang):
    from postdesk.mail.services import mailbox_update

    mailbox_update(actor=owner, mailbox=mailbox, aliases=[])
    words = _open(page, owner, lang, "/domains/example.com/mailboxes/marie/")
    alias_input = page.locator("#id_aliases_new")
    alias_input.fill("m.dupont")
    alias_input.press("Enter")
    feedback = page.locator("[data-name=aliases] [data-tag-feedback]")
    expect(feedback).to_contain_text(words["reserved"])
    expect(page.locator("[data-name=aliases] .tag")).to_have_count(0)


@pytest.mark.parametrize("width", [1366, 390])
def test_the_checklist_names_the_minimum_and_is_not_green_before_typing(
    page, owner, domain, lang, width
):
    page.set_viewport_size({"width": width, "height": 900})
    words = _open(page, owner, lang)
    page.locator("#id_username").fill("jean martin")
    # 13: a refused space is called a space, live as on the server.
    expect(page.locator("[data-local-part-feedback]")).to_have_text(words["space"])
    page.locator("#id_username").fill("jean")
    page.get_by_role("button", name=words["set"]).click()
    dialog = page.locator("#password-dialog")
    expect(dialog.locator("[data-check=length]")).to_contain_text(words["length"])
    expect(dialog.locator("[data-check]")).to_have_count(7)
    expect(dialog.locator(".check--passed")).to_have_count(0)
    dialog.locator("#id_password").fill("x")
    # Typed: what holds is shown (no username, no domain), the rest is not.
    expect(dialog.locator(".check--passed")).to_have_count(2)
    dialog.locator("#id_password").fill("")
    expect(dialog.locator(".check--passed")).to_have_count(0)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
