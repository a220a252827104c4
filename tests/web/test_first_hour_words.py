"""Words and numbers that agree (issue 14): where a user lands, the error pages, the favicon,
the audit log's labels and values, and the DNS cards' help, in English and in French."""

from __future__ import annotations

import re

import pytest
from django.test import Client as Browser
from django.urls import reverse

from postdesk.mail.services import domain_add

pytestmark = pytest.mark.django_db

LANGUAGES = [
    ("en", "Page not found", "Not allowed", "This page has expired", "Something went wrong"),
    ("fr", "Page introuvable", "Action non permise", "Cette page a expiré", "Un problème est"),
]


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode()).replace("<wbr>", "")


def _in_client_area(response, language: str) -> str:
    """The page's text, after checking it is the client area's layout in `language`."""
    text = _text(response)
    assert f'<html lang="{language}">' in text
    assert 'class="site-header"' in text and '<main id="main"' in text
    assert "Traceback" not in text and "Django" not in text
    return text


# --- Where a user lands ----------------------------------------------------------------------


def test_a_user_with_one_domain_lands_on_its_dashboard(client, owner, domain):
    owner.user.set_password("A-good-passw0rd!")
    owner.user.save()
    response = client.post(
        reverse("web:login"),
        {"username": "owner@example.org", "password": "A-good-passw0rd!"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("web:dashboard", args=["example.com"])
    assert "<h1>example.com</h1>" in _text(response)
    again = client.get(reverse("web:domains"))
    assert again.status_code == 302
    assert again["Location"] == reverse("web:dashboard", args=["example.com"])


def test_a_user_with_several_domains_lands_on_the_list(client, owner, operator, client_a, domain):
    domain_add(actor=operator, client=client_a, name="second.example")
    client.force_login(owner.user)
    response = client.get(reverse("web:domains"))
    assert response.status_code == 200
    text = _text(response)
    assert "example.com" in text and "second.example" in text


@pytest.mark.parametrize("language,label", [("en", "Audit log"), ("fr", "Journal d\u2019audit")])
def test_the_dashboard_links_its_audit_log_once(owner_browser, domain, language, label):
    response = owner_browser.get(
        reverse("web:dashboard", args=["example.com"]), HTTP_ACCEPT_LANGUAGE=language
    )
    text = _text(response)
    assert text.count(f">{label}</a>") == 1
    # The one link shows this domain's changes.
    assert f'href="{reverse("web:audit")}?domain=example.com">{label}</a>' in text


# --- Error pages and favicon -----------------------------------------------------------------


@pytest.mark.parametrize("language,not_found,forbidden,expired,broken", LANGUAGES)
def test_error_pages_are_in_the_client_area_and_the_users_language(
    owner_browser, viewer, mailbox, settings, language, not_found, forbidden, expired, broken
):
    settings.ROOT_URLCONF = "tests.web.error_urls"
    headers = {"HTTP_ACCEPT_LANGUAGE": language}

    missing = owner_browser.get("/no/such/page/", **headers)
    assert missing.status_code == 404
    assert not_found in _in_client_area(missing, language)
    assert "owner@example.org" in _text(missing)  # the user's menu is there

    viewer_browser = Browser()
    viewer_browser.force_login(viewer.user)
    refused = viewer_browser.post(
        reverse("web:mailbox_delete", args=["example.com", "marie"]), **headers
    )
    assert refused.status_code == 403
    assert forbidden in _in_client_area(refused, language)

    strict = Browser(enforce_csrf_checks=True)
    strict.force_login(viewer.user)
    stale = strict.post(reverse("web:dns_check", args=["example.com"]), **headers)
    assert stale.status_code == 403
    assert expired in _in_client_area(stale, language)

    failing = Browser(raise_request_exception=False)
    failing.force_login(viewer.user)
    crashed = failing.get("/broken/", **headers)
    assert crashed.status_code == 500
    assert broken in _in_client_area(crashed, language)
    assert "RuntimeError" not in _text(crashed)


@pytest.mark.parametrize("language,title", [("en", "Request not understood"), ("fr", "Requête")])
def test_a_bad_request_page_too(settings, language, title):
    settings.ROOT_URLCONF = "tests.web.error_urls"
    response = Browser().get("/suspicious/", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 400
    assert title in _in_client_area(response, language)


def test_a_favicon_is_linked_and_served(client):
    page = _text(client.get(reverse("web:login")))
    assert re.search(r'<link rel="icon" href="[^"]*favicon[^"]*\.svg" type="image/svg\+xml">', page)
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in icon.content


# --- The audit log in words ------------------------------------------------------------------


def _every_service_that_records_changes(operator, owner, client_a, client_b, domain, mailbox):
    """Run each service that records `changes`, with every optional field it may record."""
    from postdesk.api.models import TokenScope
    from postdesk.api.services import token_create, token_revoke
    from postdesk.billing.services import client_set_plan, plan_create
    from postdesk.dns.services import mta_sts_mode_set
    from postdesk.mail.hosts import host_add, host_drain
    from postdesk.mail.services import (
        domain_dav_set,
        forward_create,
        forward_delete,
        forward_update,
        mailbox_delete,
        mailbox_update,
    )
    from postdesk.tenancy.services import client_owner_add, user_create
    from postdesk.workflows.clients import client_suspend, client_terminate, client_unsuspend
    from tests.conftest import GOOD_PASSWORD

    mailbox_update(
        actor=operator,
        mailbox=mailbox,
        quota_mb=10240,
        add_aliases=["sales"],
        remove_aliases=["m.dupont"],
        destinations=["other@example.org"],
        delete_after_forwarding=True,
        keep_original_sender=True,
        eas_enabled=False,
        mapi_enabled=True,
    )
    forward = forward_create(actor=operator, domain=domain, name="info", destinations=["a@b.org"])
    forward_update(actor=operator, forward=forward, destinations=["c@d.org"])
    forward_delete(actor=operator, forward=forward)
    mailbox_delete(actor=operator, mailbox=mailbox)
    mta_sts_mode_set(actor=operator, domain=domain, mode="enforce")
    domain_dav_set(actor=operator, domain=domain, enabled=False)
    plan = plan_create(
        actor=operator,
        name="Basic",
        currency="EUR",
        storage_gb_price="0.50",
        eas_price="4",
        mapi_price="6",
        eas_mapi_price="8.50",
        cycle_months=1,
        storage_limit_mb=51200,
    )
    client_set_plan(actor=operator, client=client_a, plan=plan)
    user = user_create(
        actor=operator,
        email="new@example.org",
        password=GOOD_PASSWORD,
        client=client_a,
        role="admin",
    )
    client_owner_add(actor=operator, client=client_b, user=user, password=None)
    client_suspend(actor=operator, client=client_a)
    client_unsuspend(actor=operator, client=client_a)
    created = token_create(actor=operator, user=owner.user, scope=TokenScope.WRITE, expires_days=30)
    token_revoke(actor=operator, prefix=created.token.prefix)
    client_terminate(actor=operator, client=client_b, confirm=client_b.name)
    host_add(actor=operator, name="mail1", address="192.0.2.1", roles=["backend", "mx"])
    host_drain(actor=operator, name="mail1")


def test_every_field_a_service_records_has_a_label(
    operator, owner, client_a, client_b, domain, mailbox
):
    from postdesk.audit.choices import FIELD_LABELS
    from postdesk.audit.models import AuditEvent

    _every_service_that_records_changes(operator, owner, client_a, client_b, domain, mailbox)
    recorded = {key for event in AuditEvent.objects.all() for key in event.changes or {}}
    assert recorded >= {
        "aliases_added",
        "aliases_removed",
        "plan",
        "starts_at",
        "role",
        "scope",
        "mta_sts_mode",
        "roles",
        "dav_enabled",
    }
    assert recorded - set(FIELD_LABELS) == set()


def test_the_value_words_agree_with_the_choices():
    from postdesk.api.models import TokenScope
    from postdesk.audit.choices import VALUE_LABELS
    from postdesk.mail.choices import MtaStsMode
    from postdesk.tenancy.choices import Role

    assert {k: str(v) for k, v in VALUE_LABELS["role"].items()} == {
        r.value: str(r.label) for r in Role
    }
    assert {k: str(v) for k, v in VALUE_LABELS["scope"].items()} == {
        s.value: str(s.label) for s in TokenScope
    }
    assert {k: str(v) for k, v in VALUE_LABELS["mta_sts_mode"].items()} == {
        m.value: str(m.label) for m in MtaStsMode
    }


AUDIT_WORDS = {
    "en": [
        "Aliases added</span>: sales",
        "Aliases removed</span>: m.dupont",
        "Plan</span>: Basic",
        "Role</span>: Administrator",
        "Access</span>: Read and write",
        "Disk space price (per GB)</span>: 0.50",
        '<time datetime="2026-12-01T00:00:00+00:00">12/01/2026 midnight</time>',
    ],
    "fr": [
        "Alias ajoutés</span> : sales",
        "Alias retirés</span> : m.dupont",
        "Forfait</span> : Basic",
        "Rôle</span> : Administrateur",
        "Accès</span> : Lecture et écriture",
        "Prix de l\u2019espace disque (par Go)</span> : 0,50",
        '<time datetime="2026-12-01T00:00:00+00:00">01/12/2026 00:00</time>',
    ],
}


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_audit_log_shows_words_and_formatted_values(owner_browser, client_a, language):
    from postdesk.audit.choices import FIELD_LABELS
    from postdesk.audit.models import AuditEvent

    common = {"actor_label": "operator:x", "source": "cli", "client": client_a}
    AuditEvent.objects.create(
        **common,
        action="mailbox.update",
        target="marie@example.com",
        changes={"aliases_added": ["sales"], "aliases_removed": ["m.dupont"]},
    )
    AuditEvent.objects.create(
        **common,
        action="client.set_plan",
        target="Acme",
        changes={"plan": "Basic", "starts_at": "2026-12-01T00:00:00+00:00"},
    )
    AuditEvent.objects.create(
        **common, action="user.create", target="new@example.org", changes={"role": "admin"}
    )
    AuditEvent.objects.create(
        **common,
        action="token.create",
        target="pd_abc",
        changes={"owner": "owner@example.org", "scope": "write", "expires_at": None},
    )
    AuditEvent.objects.create(
        **common, action="plan.create", target="Basic", changes={"storage_gb_price": "0.50"}
    )
    response = owner_browser.get(reverse("web:audit"), HTTP_ACCEPT_LANGUAGE=language)
    table = _text(response).split("<tbody>")[1].split("</tbody>")[0]
    for words in AUDIT_WORDS[language]:
        assert words in table, words
    if language == "fr":  # a label's colon, after a non-breaking space
        assert "Forfait</span>\u00a0: Basic" in response.content.decode()
    # No internal key and no ISO string where a person reads.
    for key in ["aliases_added", "aliases_removed", "starts_at", "admin", "write"]:
        assert f">{key}<" not in table and f"{key}</span>" not in table
    assert ">2026-12-01T00:00:00+00:00<" not in table
    for key in FIELD_LABELS:
        assert f'changes__field">{key}<' not in table


# --- DNS cards: help that matches the screen -------------------------------------------------

DNS_WORDS = {
    "en": {
        "view_record": "View record",
        "view_dns_record": "View DNS record",
        "spf_states": [
            "Not checked yet",
            "Configured",
            "Not configured",
            "Needs update",
            "Invalid",
            "Unknown",
        ],
        "dkim_states": ["Not checked yet", "Pending", "Active", "Mismatch", "Disabled", "Unknown"],
        "dmarc_states": ["Not checked yet", "Configured", "Not configured", "Invalid", "Unknown"],
        "mx_states": ["Not checked yet", "Configured", "Not configured", "Needs update", "Unknown"],
        "mta-sts_states": [
            "Not checked yet",
            "Configured",
            "Not configured",
            "Needs update",
            "Invalid",
            "Unknown",
        ],
        "view_records": "View records",
        "dkim_points_at_dialog": "The host and the value to publish are under “View DNS record”.",
        "dkim_unchecked": "Click “View DNS record” and publish that TXT record",
    },
    "fr": {
        "view_record": "Voir l\u2019enregistrement",
        "view_dns_record": "Voir l\u2019enregistrement DNS",
        "spf_states": [
            "Pas encore vérifié",
            "Configuré",
            "Non configuré",
            "À mettre à jour",
            "Invalide",
            "Inconnu",
        ],
        "dkim_states": [
            "Pas encore vérifié",
            "En attente",
            "Active",
            "Non concordante",
            "Désactivée",
            "Inconnu",
        ],
        "dmarc_states": ["Pas encore vérifié", "Configuré", "Non configuré", "Invalide", "Inconnu"],
        "mx_states": [
            "Pas encore vérifié",
            "Configuré",
            "Non configuré",
            "À mettre à jour",
            "Inconnu",
        ],
        "mta-sts_states": [
            "Pas encore vérifié",
            "Configuré",
            "Non configuré",
            "À mettre à jour",
            "Invalide",
            "Inconnu",
        ],
        "view_records": "Voir les enregistrements",
        "dkim_points_at_dialog": (
            "L\u2019hôte et la valeur à publier se trouvent sous "
            "« Voir l\u2019enregistrement DNS »."
        ),
        "dkim_unchecked": "Cliquez sur « Voir l\u2019enregistrement DNS » et publiez",
    },
}


def _card(text: str, card_id: str) -> str:
    return text.split(f'id="{card_id}"')[1].split("</article>")[0]


def _dashboard(browser, language: str) -> str:
    url = reverse("web:dashboard", args=["example.com"])
    return _text(browser.get(url, HTTP_ACCEPT_LANGUAGE=language))


@pytest.mark.parametrize("language", ["en", "fr"])
def test_spf_record_to_publish_before_the_first_check(owner_browser, domain, language):
    words = DNS_WORDS[language]
    text = _dashboard(owner_browser, language)
    spf = _card(text, "spf")
    assert f'data-dialog-open="spf-record-dialog">{words["view_record"]}</button>' in spf
    dialog = text.split('<dialog id="spf-record-dialog"')[1].split("</dialog>")[0]
    assert 'value="v=spf1 include:spf.postdesk.example ~all"' in dialog
    assert 'value="include:spf.postdesk.example"' in dialog  # for a domain that has SPF
    # DMARC and MX likewise: what to publish is known before any check.
    assert f'data-dialog-open="dmarc-record-dialog">{words["view_record"]}<' in text
    dmarc = text.split('<dialog id="dmarc-record-dialog"')[1].split("</dialog>")[0]
    assert "_dmarc.example.com" in dmarc
    assert 'value="v=DMARC1; p=none; rua=mailto:postmaster@example.com"' in dmarc
    assert f'data-dialog-open="mx-record-dialog">{words["view_records"]}<' in text
    mx = text.split('<dialog id="mx-record-dialog"')[1].split("</dialog>")[0]
    assert re.search(r"<td>10</td><td[^>]*>[a-z0-9.-]+</td>", mx)


@pytest.mark.parametrize("language", ["en", "fr"])
def test_every_state_a_card_can_show_is_explained(owner_browser, domain, language):
    words = DNS_WORDS[language]
    text = _dashboard(owner_browser, language)
    words["tls-rpt_states"] = words["mta-sts_states"]
    for card in ["spf", "dkim", "dmarc", "mx", "mta-sts", "tls-rpt"]:
        states = words[f"{card}_states"]
        explained = _card(text, card).split("<details")[1]
        for state in states:
            assert f"<dt>{state}</dt>" in explained, (card, state)


@pytest.mark.parametrize("language", ["en", "fr"])
def test_dkim_text_points_at_the_dialog_with_the_record(
    owner_browser, operator, domain, dns_server, language
):
    from postdesk.dns.services import dkim_enable
    from postdesk.dns.status import dns_check_domain

    words = DNS_WORDS[language]
    dkim_enable(actor=operator, domain=domain)
    unchecked = _card(_dashboard(owner_browser, language), "dkim")
    assert words["dkim_unchecked"] in unchecked
    assert f'data-dialog-open="dkim-record-dialog">{words["view_dns_record"]}<' in unchecked

    dns_check_domain(domain)  # no DKIM record published: pending
    text = _dashboard(owner_browser, language)
    pending = _card(text, "dkim")
    assert words["dkim_points_at_dialog"] in pending
    assert "below" not in pending and "ci-dessous" not in pending
    assert f'data-dialog-open="dkim-record-dialog">{words["view_dns_record"]}<' in pending
    dialog = text.split('<dialog id="dkim-record-dialog"')[1].split("</dialog>")[0]
    assert 'value="mail._domainkey.example.com"' in dialog
