"""The address list's storage bar and warnings, its row actions, and the DMARC and MX cards of
the dashboard, in English and French."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from postdesk.billing.services import client_set_plan, plan_create
from postdesk.dns.services import dkim_enable
from postdesk.dns.status import dns_check_domain
from postdesk.mail.models import Mailbox
from postdesk.mail.selectors import address_list
from postdesk.mail.services import mailbox_create
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db
MIB = 1024**2
DASHBOARD = reverse("web:dashboard", args=["example.com"])


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def _row_html(response, address: str) -> str:
    """The table row of one address."""
    for row in re.findall(r"<tr>.*?</tr>", response.content.decode(), flags=re.S):
        if f">{address.split('@')[0]}" in row.replace("<wbr>", ""):
            return re.sub(r"\s+", " ", row.replace("<wbr>", ""))
    raise AssertionError(f"no row for {address}")


def _mailbox(operator, domain, name: str, *, quota_mb: int, used_mb: int):
    mailbox = mailbox_create(
        actor=operator, domain=domain, username=name, password=GOOD_PASSWORD, quota_mb=quota_mb
    )
    Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=used_mb * MIB)
    return mailbox


@pytest.fixture
def plan_10g(operator, client_a):
    plan = plan_create(
        actor=operator,
        name="Basic",
        currency="EUR",
        storage_gb_price="0.50",
        eas_price="4",
        mapi_price="6",
        eas_mapi_price="8.50",
        storage_limit_mb=10240,
    )
    client_set_plan(actor=operator, client=client_a, plan=plan)
    return plan


# --- The storage bar ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("used_mb", "level", "english", "french"),
    [
        (899, "ok", "87% used", "87 % utilisés"),
        (922, "near", "Almost full (90%)", "Presque plein (90 %)"),
        (1000, "near", "Almost full (97%)", "Presque plein (97 %)"),
        (1024, "full", "Full (100%): new messages are refused", "Plein (100 %) : les nouveaux"),
        (1300, "full", "Full (126%): new messages are refused", "Plein (126 %) : les nouveaux"),
    ],
)
def test_storage_bar_and_warning_by_threshold(
    owner, owner_browser, operator, domain, used_mb, level, english, french
):
    _mailbox(operator, domain, "marie", quota_mb=1024, used_mb=used_mb)
    row = address_list(actor=owner, domain=domain).rows[0]
    assert (row.limit_mb, row.usage_level) == (1024, level)

    html = _row_html(owner_browser.get(DASHBOARD), "marie@example.com")
    assert "of 1.0 GB" in html
    assert english in html  # in words, not only a colour
    assert re.search(r'<meter class="usage__bar"[^>]* low="90" high="100"', html)
    if level == "ok":
        assert "usage__warning" not in html
    french_html = _row_html(owner_browser.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="fr"), "marie@")
    assert french in french_html
    assert "sur 1,0" in french_html


def test_a_mailbox_without_quota_is_measured_against_its_plan(
    owner, owner_browser, operator, domain, plan_10g
):
    _mailbox(operator, domain, "marie", quota_mb=0, used_mb=9500)
    _mailbox(operator, domain, "jean", quota_mb=2048, used_mb=100)
    rows = {r.local_part: r for r in address_list(actor=owner, domain=domain).rows}
    # The plan's limit when the mailbox has none; its own quota otherwise.
    assert (rows["marie"].limit_mb, rows["marie"].usage_level) == (10240, "near")
    assert (rows["jean"].limit_mb, rows["jean"].usage_level) == (2048, "ok")
    response = owner_browser.get(DASHBOARD)
    assert "of 10.0 GB" in _row_html(response, "marie@example.com")
    assert "Almost full (92%)" in _row_html(response, "marie@example.com")
    assert "of 2.0 GB" in _row_html(response, "jean@example.com")


def test_no_quota_and_no_plan_limit_says_no_limit(owner, owner_browser, operator, domain):
    _mailbox(operator, domain, "marie", quota_mb=0, used_mb=500)
    row = address_list(actor=owner, domain=domain).rows[0]
    assert (row.limit_mb, row.usage_percent, row.usage_level) == (None, None, None)
    html = _row_html(owner_browser.get(DASHBOARD), "marie@example.com")
    assert "500.0 MB" in html and "No limit" in html
    assert "<meter" not in html
    french = _row_html(owner_browser.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="fr"), "marie@")
    assert "Sans limite" in french


# --- Row actions --------------------------------------------------------------------------------


def test_row_actions_for_those_who_may_change(owner_browser, admin_browser, mailbox, forward):
    edit = reverse("web:mailbox_edit", args=["example.com", "marie"])
    forward_edit = reverse("web:forward_edit", args=["example.com", "info"])
    for browser in (owner_browser, admin_browser):
        response = browser.get(DASHBOARD)
        marie = _row_html(response, "marie@example.com")
        assert f'href="{edit}">Edit' in marie
        assert f'href="{edit}?open=password">Change password' in marie
        assert f'href="{edit}?open=delete" class="row-actions__danger">Delete' in marie
        info = _row_html(response, "info@example.com")
        assert f'href="{forward_edit}">Edit' in info
        assert f'href="{forward_edit}?open=delete"' in info
        assert "open=password" not in info  # a forward has no password
    french = _row_html(owner_browser.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="fr"), "marie@")
    assert ">Modifier<" in french and ">Changer le mot de passe<" in french
    assert ">Supprimer<" in french


def test_no_row_actions_for_a_viewer(viewer_browser, mailbox, forward):
    response = viewer_browser.get(DASHBOARD)
    text = response.content.decode()
    assert "row-actions" not in text
    assert "?open=" not in text
    # The list still links each address to its (read-only) page.
    assert reverse("web:mailbox_edit", args=["example.com", "marie"]) in text


def test_row_actions_open_their_dialog_on_the_mailbox_page(owner_browser, mailbox, forward):
    edit = reverse("web:mailbox_edit", args=["example.com", "marie"])
    password = owner_browser.get(edit + "?open=password").content.decode()
    assert re.search(r'<dialog id="password-dialog"[^>]*data-open-on-load', password)
    assert not re.search(r'<dialog id="delete-dialog"[^>]*data-open-on-load', password)
    delete = owner_browser.get(edit + "?open=delete").content.decode()
    # Delete still goes through its confirmation: the dialog opens, nothing is deleted.
    assert re.search(r'<dialog id="delete-dialog"[^>]*data-open-on-load', delete)
    assert Mailbox.objects.filter(pk=mailbox.pk).exists()
    plain = owner_browser.get(edit).content.decode()
    assert "data-open-on-load" not in plain
    forward_edit = reverse("web:forward_edit", args=["example.com", "info"])
    forward_page = owner_browser.get(forward_edit + "?open=delete").content.decode()
    assert re.search(r'<dialog id="delete-dialog"[^>]*data-open-on-load', forward_page)


def test_a_viewer_gets_no_dialog_from_a_row_action_link(viewer_browser, mailbox):
    edit = reverse("web:mailbox_edit", args=["example.com", "marie"])
    for action in ("password", "delete"):
        page = viewer_browser.get(f"{edit}?open={action}")
        assert page.status_code == 200
        assert "data-open-on-load" not in page.content.decode()


# --- DMARC and MX on the dashboard ---------------------------------------------------------------


def test_dmarc_and_mx_before_any_check(owner_browser, domain):
    text = _text(owner_browser.get(DASHBOARD))
    assert 'id="dmarc-title">DMARC</h3>' in text
    assert 'id="mx-title">MX</h3>' in text
    assert "We have not checked your DMARC policy yet." in text
    assert "We have not checked where your domain\u2019s mail is delivered yet." in text
    french = _text(owner_browser.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="fr"))
    assert "Nous n\u2019avons pas encore vérifié votre politique DMARC." in french
    assert "Nous n\u2019avons pas encore vérifié où est distribué le courriel" in french


def test_dmarc_and_mx_not_configured_show_what_to_publish(owner_browser, domain, dns_server):
    dns_check_domain(domain)
    text = _text(owner_browser.get(DASHBOARD))
    dmarc = text[text.index('id="dmarc"') : text.index('id="mx"')]
    assert "Not configured" in dmarc
    assert "No DMARC policy is published." in dmarc
    assert "Type: TXT. Host: _dmarc.example.com." in text
    assert 'value="v=DMARC1; p=none; rua=mailto:postmaster@example.com"' in text
    mx = text[text.index('id="mx"') :]
    assert "Not configured" in mx
    assert "No MX record: mail sent to your domain cannot be delivered." in mx
    assert "mx1.postdesk.example" in text and "mx2.postdesk.example" in text
    french = _text(owner_browser.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="fr"))
    assert "Non configuré" in french[french.index('id="dmarc"') : french.index('id="mx"')]
    assert "Type : TXT. Hôte : _dmarc.example.com." in french
    assert "Type : MX. Hôte : example.com" in french


def test_dmarc_and_mx_configured(owner_browser, domain, dns_server):
    dns_server.set_txt("_dmarc.example.com", "v=DMARC1; p=quarantine")
    dns_server.set_mx("example.com", [(10, "mx1.postdesk.example"), (20, "mx2.postdesk.example")])
    dns_check_domain(domain)
    text = _text(owner_browser.get(DASHBOARD))
    dmarc = text[text.index('id="dmarc"') : text.index('id="mx"')]
    assert "badge--green" in dmarc and "Configured" in dmarc
    assert "A DMARC policy is published (p=quarantine)." in dmarc
    mx = text[text.index('id="mx"') :]
    assert "badge--green" in mx and "mail is delivered to our servers." in mx
    french = _text(owner_browser.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="fr"))
    assert "Configuré" in french[french.index('id="dmarc"') : french.index('id="mx"')]


def test_receivers_verdicts_on_the_cards_in_both_languages(
    owner_browser, owner, domain, dns_server
):
    key = dkim_enable(actor=owner, domain=domain)
    dns_server.set_txt("mail._domainkey.example.com", f"v=DKIM1; t=y; p={key.public_key}")
    dns_server.set_txt("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:d@elsewhere.example")
    dns_server.set_mx("example.com", [(0, ".")])
    dns_check_domain(domain)
    text = _text(owner_browser.get(DASHBOARD))
    dkim = text[text.index('id="dkim"') : text.index('id="dmarc"')]
    assert "Test mode" in dkim and "marked as a test" in dkim
    dmarc = text[text.index('id="dmarc"') : text.index('id="mx"')]
    # Neither DKIM (a test record) nor SPF (none published) passes: rejected.
    assert "Your messages fail DMARC" in dmarc and "p=reject" in dmarc
    assert "example.com._report._dmarc.elsewhere.example" in dmarc
    mx = text[text.index('id="mx"') :]
    assert "No mail accepted" in mx and "no message can be received" in mx
    assert "<code>0 .</code>" in mx
    # Our sending servers' reverse DNS and listings are the operator's, never the customer's.
    assert "blocklist" not in text.lower() and "PTR" not in text
    french = _text(owner_browser.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="fr"))
    assert "Mode test" in french
    assert "Vos messages échouent à DMARC" in french
    assert "Aucun courriel accepté" in french
