"""One tenant's largest change stays small for everyone: a mailbox has at most
POSTDESK_MAX_ALIASES aliases and POSTDESK_MAX_DESTINATIONS destinations, a bigger list is
refused before it is read, and the largest allowed change leaves another tenant's mailbox
creation waiting well under 2 s (real threads, SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from postdesk.api.models import TokenScope
from postdesk.api.services import token_create
from postdesk.errors import InvalidInput
from postdesk.mail.models import Alias, Mailbox
from postdesk.mail.services import mailbox_create, mailbox_update
from tests.conftest import GOOD_PASSWORD
from tests.mail.test_concurrency import race


def _names(count: int, prefix: str = "a") -> list[str]:
    return [f"{prefix}{n}" for n in range(count)]


@pytest.mark.django_db
def test_a_mailbox_has_at_most_the_alias_limit(owner, domain):
    limit = settings.POSTDESK_MAX_ALIASES
    with pytest.raises(InvalidInput) as refused:
        mailbox_create(
            actor=owner,
            domain=domain,
            username="big",
            password=GOOD_PASSWORD,
            aliases=_names(limit + 1),
        )
    assert refused.value.code == "alias_limit"
    mailbox = mailbox_create(
        actor=owner,
        domain=domain,
        username="full",
        password=GOOD_PASSWORD,
        aliases=_names(limit),
    )
    assert mailbox.aliases.count() == limit
    with pytest.raises(InvalidInput) as refused:
        mailbox_update(actor=owner, mailbox=mailbox, add_aliases=["one.more"])
    assert refused.value.code == "alias_limit"
    # Swapping one for another stays within the limit.
    mailbox_update(actor=owner, mailbox=mailbox, add_aliases=["swap"], remove_aliases=["a0"])
    assert mailbox.aliases.count() == limit


@pytest.mark.django_db
def test_ten_thousand_aliases_are_refused_at_once_and_change_nothing(operator, owner, domain):
    mailbox = mailbox_create(
        actor=owner, domain=domain, username="marie", password=GOOD_PASSWORD, quota_mb=5
    )
    token = token_create(actor=operator, user=owner.user, scope=TokenScope.WRITE).plaintext
    started = time.perf_counter()
    answer = Client().patch(
        "/api/v1/mailboxes/marie@example.com",
        data=json.dumps({"aliases": _names(10_000), "quota_mb": 9}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert time.perf_counter() - started < 5  # it held the write lock 45 to 70 s
    assert answer.status_code == 400
    assert "alias_limit" in json.dumps(answer.json())
    mailbox.refresh_from_db()
    assert mailbox.quota_mb == 5 and not Alias.objects.exists()
    with pytest.raises(InvalidInput) as refused:
        mailbox_update(
            actor=owner, mailbox=mailbox, destinations=[f"d{n}@x.example" for n in range(10_000)]
        )
    assert refused.value.code == "destination_too_many"


@pytest.mark.django_db
def test_a_mailbox_at_the_limits_keeps_its_pages_small(owner, domain):
    browser = Client()
    browser.force_login(owner.user)
    mailbox_create(
        actor=owner,
        domain=domain,
        username="full",
        password=GOOD_PASSWORD,
        aliases=_names(settings.POSTDESK_MAX_ALIASES, "alias.number."),
        destinations=[
            f"dest{n}@elsewhere.example" for n in range(settings.POSTDESK_MAX_DESTINATIONS)
        ],
    )
    for url in (
        reverse("web:dashboard", args=["example.com"]),
        reverse("web:mailbox_edit", args=["example.com", "full"]),
    ):
        page = browser.get(url)
        assert page.status_code == 200
        # (A 10,000-alias mailbox made the dashboard 988 KB.)
        assert len(page.content) < 200 * 1024, (url, len(page.content))


@pytest.mark.django_db(transaction=True)
def test_the_largest_change_does_not_hold_up_another_tenant(operator, owner, domain, other_domain):
    mine = mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)

    def largest_change():
        return mailbox_update(
            actor=operator,
            mailbox=mine,
            aliases=_names(settings.POSTDESK_MAX_ALIASES, "alias.number."),
            destinations=[
                f"dest{n}@elsewhere.example" for n in range(settings.POSTDESK_MAX_DESTINATIONS)
            ],
        )

    def other_tenant_creates():
        started = time.perf_counter()
        mailbox_create(actor=operator, domain=other_domain, username="jean", password=GOOD_PASSWORD)
        return time.perf_counter() - started

    results = race(largest_change, other_tenant_creates)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert results[1] < 2.0, f"the other tenant waited {results[1]:.2f} s"
    assert Mailbox.objects.get(pk=mine.pk).aliases.count() == settings.POSTDESK_MAX_ALIASES
