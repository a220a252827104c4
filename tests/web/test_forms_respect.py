"""Forms that respect the user's work (#14, points 10 to 13), through Django's test client: every
error in one round, a refused form keeping what was typed (the password too, never cached),
tags checked as they are added by the server's rules, and a checklist that names its minimum.
The browser side is tests/web/test_browser_forms_respect.py."""

from __future__ import annotations

import logging
import re

import pytest
from django.urls import reverse
from django.utils import translation
from django.views.debug import SafeExceptionReporterFilter

from postdesk.errors import InvalidInput
from postdesk.mail.addresses import normalize_local_part
from postdesk.mail.models import Address, Mailbox
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

CREATE = reverse("web:mailbox_create", args=["example.com"])
CHECK = reverse("web:tag_check", args=["example.com"])


def _text(response) -> str:
    # Only ASCII white space: the French text's non-breaking spaces are part of the message.
    return re.sub(r"[ \t\n\r\f\v]+", " ", response.content.decode()).replace("<wbr>", "")


def _errors(text: str, field: str) -> str:
    """The errors shown beside a field ("" when there are none)."""
    marker = f'id="id_{field}-errors"'
    return text.split(marker)[1][:400] if marker in text else ""


def _mailbox_data(**overrides):
    data = {
        "username": "jean",
        "password": GOOD_PASSWORD,
        "password_confirmation": GOOD_PASSWORD,
        "aliases": ["j.martin"],
        "destinations": ["jean@gmail.com"],
        "quota_mb": "2048",
    }
    data.update(overrides)
    return data


# --- 10. Every error in one round ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "taken", "quota"),
    [
        ("en", "marie@example.com is already used by a mailbox.", "Enter a whole number"),
        ("fr", "marie@example.com", "Saisissez un nombre entier de mégaoctets"),
    ],
)
def test_a_taken_username_and_a_bad_limit_are_reported_on_the_first_submit(
    owner_browser, mailbox, lang, taken, quota
):
    owner_browser.cookies["django_language"] = lang
    response = owner_browser.post(
        CREATE, _mailbox_data(username="marie", aliases=["m.dupont", "new.one"], quota_mb="-3")
    )
    assert response.status_code == 400
    text = _text(response)
    assert taken in _errors(text, "username")
    assert quota in _errors(text, "quota_mb")
    # The alias taken by marie is reported in the same round too.
    assert "m.dupont@example.com" in _errors(text, "aliases")
    assert Mailbox.objects.count() == 1


def test_a_taken_username_with_an_invalid_password_reports_both(owner_browser, mailbox):
    response = owner_browser.post(
        CREATE, _mailbox_data(username="marie", password="short", password_confirmation="short")
    )
    text = _text(response)
    assert "already used by a mailbox" in _errors(text, "username")
    assert "Use at least 12 characters." in text.split("data-password-status")[1][:1000]


def test_an_invalid_username_still_has_its_password_checked(owner_browser, domain):
    response = owner_browser.post(
        CREATE, _mailbox_data(username="jean!", password="short", password_confirmation="short")
    )
    text = _text(response)
    assert "is not allowed" in _errors(text, "username")
    assert "Use at least 12 characters." in text.split("data-password-status")[1][:1000]


@pytest.mark.parametrize(
    ("lang", "taken", "destination"),
    [
        ("en", "info@example.com is already used by a forward.", "is not a valid email address"),
        ("fr", "info@example.com", "n\u2019est pas une adresse courriel valide"),
    ],
)
def test_a_taken_forward_name_and_a_bad_destination_are_reported_together(
    owner_browser, forward, lang, taken, destination
):
    owner_browser.cookies["django_language"] = lang
    response = owner_browser.post(
        reverse("web:forward_create", args=["example.com"]),
        {"name": "info", "destinations": ["not-an-email"]},
    )
    assert response.status_code == 400
    text = _text(response)
    assert taken in _errors(text, "name")
    assert destination in _errors(text, "destinations")


def test_what_succeeds_still_succeeds(owner_browser, domain):
    response = owner_browser.post(CREATE, _mailbox_data(), follow=True)
    assert "Mailbox jean@example.com created." in _text(response)
    assert Address.objects.filter(local_part__in=["jean", "j.martin"]).count() == 2


# --- 11. A refused form keeps everything typed, the password too ---------------------------------


def test_a_refused_form_keeps_the_password_set_and_is_not_cached(owner_browser, mailbox, caplog):
    password = "Kept-Passw0rd-2026!"
    with caplog.at_level(logging.DEBUG):
        response = owner_browser.post(
            CREATE,
            _mailbox_data(
                username="marie",
                password=password,
                password_confirmation=password,
                quota_mb="lots",
                eas_enabled="on",
                keep_original_sender="on",
            ),
        )
    assert response.status_code == 400
    text = _text(response)
    dialog = text.split('id="password-dialog"')[1]
    assert 'id="id_password" name="password"' in dialog
    assert dialog.count(f'value="{password}"') == 2  # the password and its confirmation
    assert "no-store" in response["Cache-Control"]
    # Everything else typed is kept as well.
    assert 'value="marie"' in text and 'value="lots"' in text
    assert 'value="j.martin"' in text and 'value="jean@gmail.com"' in text
    assert re.search(r'id="id_eas_enabled" name="eas_enabled" checked', text)
    assert re.search(r'id="id_keep_original_sender" name="keep_original_sender" checked', text)
    # Never on the server: not in the session, not in the logs.
    session = owner_browser.session
    assert all(password not in str(value) for value in session.values())
    assert password not in caplog.text


def test_without_a_password_the_refused_page_carries_none(owner_browser, mailbox):
    # (Like every page, it is never stored: tests/web/test_http_rules.py.)
    response = owner_browser.post(
        CREATE, _mailbox_data(username="marie", password="", password_confirmation="")
    )
    assert response.status_code == 400
    assert 'value=""' not in _text(response).split('id="password-dialog"')[1][:2000]


def test_a_refused_password_change_does_not_echo_it(owner_browser, mailbox):
    """The edit page's own password dialog posts alone: what it refuses is not sent back."""
    url = reverse("web:mailbox_password", args=["example.com", "marie"])
    response = owner_browser.post(url, {"password": "weak-one", "password_confirmation": "x"})
    assert response.status_code == 400
    assert "weak-one" not in response.content.decode()


@pytest.mark.parametrize(
    ("url", "data"),
    [
        (CREATE, _mailbox_data(password="Secret-Passw0rd!", quota_mb="x")),
        (
            reverse("web:mailbox_password", args=["example.com", "marie"]),
            {"password": "Secret-Passw0rd!", "password_confirmation": "Secret-Passw0rd!?"},
        ),
    ],
)
def test_an_error_report_would_hide_the_passwords(owner_browser, mailbox, url, data):
    """Should a request ever fail with a 500, Django's error report shows no password."""
    request = owner_browser.post(url, data).wsgi_request
    params = SafeExceptionReporterFilter().get_post_parameters(request)
    assert params["password"] != "Secret-Passw0rd!"
    assert params["password_confirmation"] not in {"Secret-Passw0rd!", "Secret-Passw0rd!?"}


# --- 12. Tags checked as they are added ---------------------------------------------------------


def _check(browser, **params):
    response = browser.get(CHECK, params)
    assert response.status_code == 200, response.content
    assert "no-cache" in response["Cache-Control"]
    return response.json()


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("en", "A space is not allowed: use only letters"),
        ("fr", "Les espaces ne sont pas autorisés\u00a0: utilisez uniquement"),
    ],
)
def test_a_bad_alias_is_refused_with_the_message_of_the_save(owner_browser, domain, lang, message):
    owner_browser.cookies["django_language"] = lang
    refused = _check(owner_browser, list="aliases", value="bad alias")
    assert refused["ok"] is False and message in refused["message"]
    # The very message the save gives beside the field.
    saved = owner_browser.post(CREATE, _mailbox_data(aliases=["bad alias"]))
    assert refused["message"] in _errors(_text(saved), "aliases")


def test_an_alias_is_checked_against_the_list_the_name_and_the_domain(
    owner_browser, mailbox, forward
):
    ok = _check(owner_browser, list="aliases", value="J.Martin", own="jean")
    assert ok == {"ok": True, "value": "j.martin"}
    cases = [
        ({"value": "jean", "own": "jean"}, "An alias cannot be the mailbox's own name."),
        ({"value": "jm", "listed": ["JM"]}, "jm@example.com is already in the list."),
        ({"value": "m.dupont"}, "m.dupont@example.com is already used as an alias."),
        ({"value": "info"}, "info@example.com is already used by a forward."),
        ({"value": "a..b"}, "A name cannot contain two dots in a row."),
    ]
    for params, message in cases:
        assert _check(owner_browser, list="aliases", **params) == {"ok": False, "message": message}


def test_on_the_edit_page_the_mailbox_own_aliases_are_not_taken(owner_browser, mailbox):
    # m.dupont, removed and added back before saving, is marie's own: not "taken".
    again = _check(owner_browser, list="aliases", value="m.dupont", mailbox="marie")
    assert again == {"ok": True, "value": "m.dupont"}
    own = _check(owner_browser, list="aliases", value="marie", mailbox="marie")
    assert own["message"] == "An alias cannot be the mailbox's own name."


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("en", "“not-an-email” is not a valid email address."),
        ("fr", "«\u00a0not-an-email\u00a0» n\u2019est pas une adresse courriel valide."),
    ],
)
def test_a_bad_destination_is_refused_with_the_message_of_the_save(
    owner_browser, domain, lang, message
):
    owner_browser.cookies["django_language"] = lang
    refused = _check(owner_browser, list="destinations", value="not-an-email")
    assert refused == {"ok": False, "message": message}
    saved = owner_browser.post(CREATE, _mailbox_data(destinations=["not-an-email"]))
    assert message in _errors(_text(saved), "destinations")


def test_a_destination_is_checked_against_the_list_and_the_own_addresses(
    owner_browser, domain, settings
):
    ok = _check(owner_browser, list="destinations", value="Anne@Partner.Example")
    assert ok == {"ok": True, "value": "anne@partner.example"}
    same = _check(owner_browser, list="destinations", value="jm@example.com", own=["jean", "jm"])
    assert same["message"] == "jm@example.com cannot forward to itself."
    twice = _check(
        owner_browser, list="destinations", value="A@b.org", listed=["x@y.org", "a@b.org"]
    )
    assert twice["message"] == "a@b.org is already in the list."
    settings.POSTDESK_MAX_DESTINATIONS = 2
    full = _check(
        owner_browser, list="destinations", value="c@b.org", listed=["a@b.org", "b@b.org"]
    )
    assert full["message"] == "At most 2 destination addresses are allowed."


def test_the_tag_check_is_walled_per_client(
    outsider_browser, viewer_browser, mailbox, forward, other_domain
):
    """Another client cannot ask about your domain (not even whether a name is taken), nor
    about your mailbox; a viewer may not change anything, so may not check either."""
    for params in [
        {"list": "aliases", "value": "m.dupont"},
        {"list": "destinations", "value": "a@b.org"},
    ]:
        response = outsider_browser.get(CHECK, params)
        assert response.status_code == 404
        assert b"already used" not in response.content
    other = reverse("web:tag_check", args=["example.net"])
    assert outsider_browser.get(other, {"list": "aliases", "value": "x"}).status_code == 200
    mailbox_elsewhere = outsider_browser.get(
        other, {"list": "aliases", "value": "x", "mailbox": "marie"}
    )
    assert mailbox_elsewhere.status_code == 404
    assert viewer_browser.get(CHECK, {"list": "aliases", "value": "x"}).status_code == 403


def test_the_tag_check_needs_a_login_and_a_known_list(client, owner_browser, domain):
    response = client.get(CHECK, {"list": "aliases", "value": "x"})
    assert response.status_code == 302
    assert owner_browser.get(CHECK, {"list": "other", "value": "x"}).status_code == 400


def test_the_forms_carry_what_the_tag_check_needs(owner_browser, mailbox, forward):
    create = _text(owner_browser.get(CREATE))
    assert f'data-check-url="{CHECK}"' in create
    assert "data-own-name" in create.split('id="id_username"')[1][:400]
    edit = _text(owner_browser.get(reverse("web:mailbox_edit", args=["example.com", "marie"])))
    assert 'data-mailbox="marie" data-own-name="marie"' in edit
    forward_page = reverse("web:forward_edit", args=["example.com", "info"])
    assert 'data-own-name="info"' in _text(owner_browser.get(forward_page))


# --- 13. The checklist names the minimum; a space is called a space ------------------------------


@pytest.mark.parametrize(
    ("lang", "label"),
    [
        ("en", "Minimum length met (12 characters)"),
        ("fr", "Longueur minimale atteinte (12 caractères)"),
    ],
)
def test_the_checklist_names_the_minimum_and_nothing_is_met_yet(owner_browser, domain, lang, label):
    owner_browser.cookies["django_language"] = lang
    text = _text(owner_browser.get(CREATE))
    checks = text.split("data-password-checks")[1].split("</ul>")[0]
    assert label in checks
    assert checks.count('class="check"') == 7
    assert "check--passed" not in checks


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("en", "A space is not allowed: use only letters, numbers, dots, hyphens and underscores."),
        ("fr", "Les espaces ne sont pas autorisés\u00a0: utilisez uniquement des lettres"),
    ],
)
def test_a_space_in_the_username_is_called_a_space(owner_browser, domain, lang, message):
    owner_browser.cookies["django_language"] = lang
    response = owner_browser.post(CREATE, _mailbox_data(username="jean martin"))
    text = _text(response)
    assert message in _errors(text, "username")
    assert "“ ”" not in text and "«\u00a0 \u00a0»" not in text and "«  »" not in text
    # The live check says the same before the form is sent.
    assert f'data-space="{message}' in text


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("jean martin", "A space is not allowed"),
        ("jean\tmartin", "A space is not allowed"),
        ("jean\u00a0martin", "A space is not allowed"),
        ("jean!", "“!” is not allowed"),
    ],
)
def test_the_rule_names_a_space_and_quotes_other_characters(name, message):
    with translation.override("en"), pytest.raises(InvalidInput) as caught:
        normalize_local_part(name)
    assert str(caught.value.message).startswith(message)
