"""The self-test's facts in words (dns/deliverability.py `explain`), without mail or DNS: the
end-to-end run is tests/dataplane/test_deliverability.py."""

from __future__ import annotations

import pytest
from django.utils import translation

from postdesk.dns.deliverability import explain

# What `judge` stores when the DNS did not answer in time for each DNS check.
FACTS_DNS_TIMEOUT = {
    "from_domain": "example.com",
    "spf": {"result": "temperror", "ip": "192.0.2.1", "domain": "example.com", "advice": ""},
    "dkim": {"result": "temperror", "reason": "dns", "domain": "example.com", "selector": "mail"},
    "dmarc": {"result": "temperror", "policy": "", "disposition": ""},
    "tls": [],
    "seconds": 2,
}

WORDS = {
    "en": (
        "Temporary error: the DNS did not answer in time while checking {check} for {name}.",
        "Nothing to change for now: run the test again in a few minutes.",
    ),
    "fr": (
        "Erreur temporaire\u00a0: le DNS n\u2019a pas répondu à temps pendant la vérification "
        "{check} de {name}.",
        "Rien à changer pour l\u2019instant\u00a0: relancez le test dans quelques minutes.",
    ),
}


@pytest.mark.parametrize("language", ["en", "fr"])
def test_a_dns_timeout_reads_the_same_for_each_check_and_names_what_was_asked(language):
    message, fix = WORDS[language]
    with translation.override(language):
        found = {f.check: f for f in explain(FACTS_DNS_TIMEOUT)}
    asked = {
        "spf": ("SPF", "example.com"),
        "dkim": ("DKIM", "mail._domainkey.example.com"),
        "dmarc": ("DMARC", "_dmarc.example.com"),
    }
    for check, (title, name) in asked.items():
        assert not found[check].ok
        assert found[check].title == title
        assert found[check].message == message.format(check=title, name=name)
        assert found[check].fix == fix


def _spf_fix(result: str) -> str:
    advice = "v=spf1 include:spf.postdesk.example ~all"
    facts = FACTS_DNS_TIMEOUT | {
        "spf": {"result": result, "ip": "192.0.2.1", "domain": "example.com", "advice": advice}
    }
    return next(f for f in explain(facts) if f.check == "spf").fix


def test_the_spf_fix_replaces_a_record_only_when_there_is_one():
    advice = "v=spf1 include:spf.postdesk.example ~all"
    assert _spf_fix("none") == f"Publish this SPF record (TXT) at example.com: {advice}"
    assert _spf_fix("fail") == (
        f"Publish this SPF record (TXT) at example.com, replacing the current one: {advice}"
    )
