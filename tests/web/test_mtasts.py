"""MTA-STS on the web: the policy at /.well-known/mta-sts.txt by the Host header, and the mode
the customer picks on the dashboard, in English and in French."""

from __future__ import annotations

import re

import pytest
from django.test import Client as Browser
from django.urls import reverse

from postdesk.audit.models import AuditEvent
from postdesk.dns.mtasts import policy_id
from postdesk.dns.status import dns_check_domain
from postdesk.mail.models import Domain
from postdesk.workflows.clients import client_suspend, client_terminate

pytestmark = pytest.mark.django_db

MX = ["mx1.host.example", "mx2.host.example"]
PATH = "/.well-known/mta-sts.txt"


@pytest.fixture(autouse=True)
def _production_hosts(settings):
    # As in production: only the panel's own names are allowed (testserver: the test client's),
    # and DEBUG is off.
    settings.ALLOWED_HOSTS = ["panel.host.example", "testserver"]
    settings.DEBUG = False
    settings.POSTDESK_MX_HOSTS = MX
    settings.POSTDESK_MTA_STS_TARGET = "front.host.example"
    settings.POSTDESK_TLS_RPT_ADDRESS = "tls@host.example"


def fetch(host: str, method: str = "get", **extra):
    return getattr(Browser(), method)(PATH, HTTP_HOST=host, **extra)


# --- The policy by Host header -------------------------------------------------------------


def test_a_hosted_domain_gets_its_policy_as_plain_text(domain):
    response = fetch("mta-sts.example.com")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == (
        "version: STSv1\r\nmode: testing\r\nmx: mx1.host.example\r\nmx: mx2.host.example\r\n"
        "max_age: 86400\r\n"
    )
    # The front may pass the port, and names are not case-sensitive.
    assert fetch("MTA-STS.Example.COM:443").content == response.content
    head = fetch("mta-sts.example.com", "head")
    assert head.status_code == 200 and head.content == b""


@pytest.mark.parametrize(
    "host", ["mta-sts.unknown.example", "mta-sts.sub.example.com", "mta-sts.com"]
)
def test_a_domain_not_hosted_here_is_404(domain, host):
    response = fetch(host)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/plain")
    assert b"STSv1" not in response.content


def test_other_hosts_and_paths_keep_the_panels_host_check(domain):
    # Not an mta-sts host: Django's usual refusal of a host outside ALLOWED_HOSTS.
    assert fetch("example.com").status_code == 400
    assert fetch("evil.example").status_code == 400
    # An mta-sts host reaches nothing but the policy.
    other = Browser().get("/login/", HTTP_HOST="mta-sts.example.com")
    assert other.status_code == 400
    # The panel's own name has no policy.
    assert fetch("panel.host.example").status_code == 404


def test_only_get_and_head(domain):
    response = fetch("mta-sts.example.com", "post")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_not_redirected_to_https(domain, settings):
    # The front serves it over HTTPS and may ask the panel over plain HTTP.
    settings.SECURE_SSL_REDIRECT = True
    assert fetch("mta-sts.example.com").status_code == 200
    assert Browser().get("/login/", HTTP_HOST="panel.host.example").status_code == 301


def test_a_suspended_client_keeps_its_policy_a_terminated_one_loses_it(operator, client_a, domain):
    client_suspend(actor=operator, client=client_a)
    assert fetch("mta-sts.example.com").status_code == 200
    client_terminate(actor=operator, client=client_a, confirm=client_a.name)
    assert fetch("mta-sts.example.com").status_code == 404


# --- The mode on the dashboard -------------------------------------------------------------

WORDS = {
    "en": {
        "saved": "The MTA-STS mode is now “Enforce”.",
        "modes": ("Testing", "Enforce"),
        "save": "Save mode",
        "not_checked": "Not checked yet",
    },
    "fr": {
        "saved": "Le mode MTA-STS est désormais « Strict ».",
        "modes": ("Test", "Strict"),
        "save": "Enregistrer le mode",
        "not_checked": "Pas encore vérifié",
    },
}


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_customer_enforces_and_the_record_to_publish_changes(owner_browser, domain, language):
    words = WORDS[language]
    dashboard = reverse("web:dashboard", args=["example.com"])
    page = _text(owner_browser.get(dashboard, HTTP_ACCEPT_LANGUAGE=language))
    card = page.split('id="mta-sts"')[1].split("</article>")[0]
    assert words["not_checked"] in card and words["save"] in card
    testing, enforce = words["modes"]
    assert f'<option value="testing" selected>{testing}</option>' in card
    assert f'<option value="enforce">{enforce}</option>' in card
    assert f"v=STSv1; id={policy_id('testing', MX)}" in page
    assert 'value="front.host.example"' in page  # the mta-sts host's CNAME
    assert 'value="v=TLSRPTv1; rua=mailto:tls@host.example"' in page

    response = owner_browser.post(
        reverse("web:mta_sts_mode", args=["example.com"]),
        {"mode": "enforce"},
        HTTP_ACCEPT_LANGUAGE=language,
        follow=True,
    )
    assert response.redirect_chain[-1][0] == dashboard + "#mta-sts"
    page = _text(response)
    assert words["saved"] in page
    assert f"v=STSv1; id={policy_id('enforce', MX)}" in page
    assert f"v=STSv1; id={policy_id('testing', MX)}" not in page
    assert Domain.objects.get(name="example.com").mta_sts_mode == "enforce"
    assert "mode: enforce" in fetch("mta-sts.example.com").content.decode()


def test_another_client_cannot_change_the_mode(outsider_browser, domain, other_domain):
    response = outsider_browser.post(
        reverse("web:mta_sts_mode", args=["example.com"]), {"mode": "enforce"}
    )
    assert response.status_code == 404
    assert Domain.objects.get(name="example.com").mta_sts_mode == "testing"
    assert not AuditEvent.objects.filter(action="mta_sts.mode").exists()
    # Its own domain's policy is unaffected by trying, and served to nobody else's host.
    assert "mode: testing" in fetch("mta-sts.example.com").content.decode()


def test_a_viewer_sees_the_mode_but_cannot_change_it(viewer_browser, domain):
    page = _text(viewer_browser.get(reverse("web:dashboard", args=["example.com"])))
    card = page.split('id="mta-sts"')[1].split("</article>")[0]
    assert "Mode: Testing" in card and "Save mode" not in card
    response = viewer_browser.post(
        reverse("web:mta_sts_mode", args=["example.com"]), {"mode": "enforce"}
    )
    assert response.status_code == 403
    assert Domain.objects.get(name="example.com").mta_sts_mode == "testing"


def test_an_unknown_mode_is_refused_with_a_message(owner_browser, domain):
    response = owner_browser.post(
        reverse("web:mta_sts_mode", args=["example.com"]), {"mode": "none"}, follow=True
    )
    assert "Choose the testing or the enforce mode." in _text(response)
    assert Domain.objects.get(name="example.com").mta_sts_mode == "testing"


@pytest.mark.parametrize(
    ("language", "message", "pointer"),
    [
        ("en", "MTA-STS is not published", "under “View records”"),
        ("fr", "MTA-STS n\u2019est pas publié", "sous « Voir les enregistrements »"),
    ],
)
def test_the_card_says_once_where_the_records_to_publish_are(
    owner_browser, domain, dns_server, language, message, pointer
):
    dns_check_domain(domain)  # nothing published: MTA-STS is not configured
    page = _text(
        owner_browser.get(
            reverse("web:dashboard", args=["example.com"]), HTTP_ACCEPT_LANGUAGE=language
        )
    )
    card = page.split('id="mta-sts"')[1].split("</article>")[0]
    said = card.split("<details")[0]  # what the card says; the states' key is apart
    assert message in said
    assert said.count(pointer) == 1


def test_a_card_the_dns_could_not_answer_for_sends_nobody_to_the_records(
    owner_browser, domain, dns_server
):
    """A DNS failure says "unknown": publishing anything would not help, so no pointer."""
    dns_server.fail("_mta-sts.example.com")
    dns_server.fail("_smtp._tls.example.com")
    dns_check_domain(domain)
    page = _text(owner_browser.get(reverse("web:dashboard", args=["example.com"])))
    for card_id, pointer in (
        ("mta-sts", "The records to publish are under"),
        ("tls-rpt", "The record to publish is under"),
    ):
        card = page.split(f'id="{card_id}"')[1].split("</article>")[0]
        assert "Unknown" in card.split("<details")[0]
        assert pointer not in card
