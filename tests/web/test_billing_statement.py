"""Words and numbers that agree (#14, 15 and 16): storage in one unit system everywhere it shows
and is priced; the billing page names the mailboxes each protocol line charges for, deleted
and switched-off ones included, in a fixed number of queries; the EAS and MAPI switches say
what they cost before they are turned on."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from postdesk.billing.models import ProtocolActivation
from postdesk.billing.services import client_set_plan, plan_create
from postdesk.mail.services import (
    mailbox_create,
    mailbox_delete,
    mailbox_update,
    mailbox_usage_record,
)
from tests.budgets import query_budget
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db
GIB = 1024**3
MIB = 1024**2
FRENCH = {"fr": True, "en": False}


def _text(response) -> str:
    assert response.status_code == 200
    return re.sub(r"\s+", " ", response.content.decode())


def _speak(browser, language: str) -> None:
    if language == "fr":
        browser.cookies["django_language"] = "fr"


def _line(page: str, item: str) -> str:
    """The billing page's list of the mailboxes one protocol line charges for."""
    return page.split(f'id="charged-{item}"')[1].split('class="card charged-line"')[0]


@pytest.fixture
def plan_start():
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=100)


@pytest.fixture
def plan(operator, client_a, domain, plan_start):
    plan = plan_create(
        actor=operator,
        name="Basic",
        currency="CAD",
        storage_gb_price="0.50",
        eas_price="4",
        mapi_price="6",
        eas_mapi_price="8.50",
    )
    client_set_plan(actor=operator, client=client_a, plan=plan, at=plan_start)
    return plan


@pytest.fixture
def marie(operator, domain, plan, plan_start):
    """6.7 GB stored, under a 10 GB limit (10240 MB), with EAS since the plan's start."""
    mailbox = mailbox_create(
        actor=operator,
        domain=domain,
        username="marie",
        password=GOOD_PASSWORD,
        quota_mb=10240,
        eas_enabled=True,
        at=plan_start,
    )
    used = int(6.7 * GIB)
    mailbox_usage_record(actor=operator, mailbox=mailbox, used_bytes=used, at=plan_start)
    return mailbox


# --- 15. One unit system: binary, said once, shown and priced alike ------------------------------


@pytest.mark.parametrize("language", ["en", "fr"])
def test_storage_reads_in_binary_units_everywhere(owner_browser, marie, language):
    _speak(owner_browser, language)
    gib, mib = ("Go", "Mo") if FRENCH[language] else ("GB", "MB")
    comma = "," if FRENCH[language] else "."
    dashboard = _text(owner_browser.get(reverse("web:dashboard", args=["example.com"])))
    # The stat and the address list: used, and the limit (quota_mb is MB: 10240 = 10 GB).
    assert f"6{comma}7 {gib}</dd>" in dashboard
    of = "sur" if FRENCH[language] else "of"
    assert f"6{comma}7 {gib} {of} 10{comma}0 {gib}" in dashboard
    # One system: never the IEC names, nor Django's filesizeformat's "Gio" beside a "Go".
    assert not re.search(r"\d (GiB|MiB|KiB|Gio|Mio|Kio)\b", dashboard)
    form = _text(owner_browser.get(reverse("web:mailbox_edit", args=["example.com", "marie"])))
    assert f"6{comma}7 {gib}" in form
    limit = "Limite d\u2019espace disque" if FRENCH[language] else "Disk space limit"
    assert f'<label for="id_quota_mb">{limit} ({mib})</label>' in form
    # The guide's own hint: "Examples: 10240 for 10 GB".
    example = "10240 pour 10 Go" if FRENCH[language] else "10240 for 10 GB"
    assert example in form
    assert not re.search(r"\d (GiB|MiB|Gio|Mio)\b", form)
    billing = _text(owner_browser.get(reverse("web:billing", args=["example.com"])))
    # Storage quantities and the storage price read in GB, and the page says so once.
    assert f"6{comma}700 {gib}" in billing
    assert f"0{comma}50 CAD / {gib}" in billing
    assert billing.count(f"1 {gib} = 1024 {mib}") == 1
    assert not re.search(r"\d (GiB|Gio)\b|/ (GiB|Gio)\b", billing)


def test_the_size_filter_speaks_binary_units():
    from django.utils import translation

    from postdesk.web.templatetags.web import megabytes, signed_size, size

    translation.activate("en")
    assert size(0) == "0 bytes" and size(1) == "1 byte" and size(1023) == "1023 bytes"
    assert size(1024) == "1.0 KB" and size(int(1.5 * MIB)) == "1.5 MB"
    assert megabytes(5120) == "5.0 GB" and size(3 * 1024**4) == "3.0 TB"
    assert signed_size(-2 * MIB) == "\u22122.0 MB" and signed_size(GIB) == "+1.0 GB"
    with translation.override("fr"):
        assert size(int(6.7 * GIB)) == "6,7 Go" and size(2) == "2 octets"


# --- 16. The protocol lines name the mailboxes they charge for -----------------------------------


@pytest.mark.parametrize("language", ["en", "fr"])
def test_a_mailbox_deleted_minutes_after_creation_is_listed_on_its_line(
    owner_browser, operator, domain, marie, language
):
    """Created with EAS + MAPI, deleted two minutes later: still billed the combined rate
    for the period, and the page says which mailbox that is, and that it is deleted."""
    now = timezone.now()
    temp = mailbox_create(
        actor=operator,
        domain=domain,
        username="temp",
        password=GOOD_PASSWORD,
        eas_enabled=True,
        mapi_enabled=True,
        at=now - timedelta(minutes=5),
    )
    mailbox_delete(actor=operator, mailbox=temp, at=now - timedelta(minutes=3))
    _speak(owner_browser, language)
    page = _text(owner_browser.get(reverse("web:billing", args=["example.com"])))
    title = "EAS + MAPI (tarif combiné)" if FRENCH[language] else "EAS + MAPI (combined rate)"
    both = page.split(f"{title}</th>")[1].split("</tr>")[0]
    assert ("1 boîte" if FRENCH[language] else "1 mailbox") in both
    charged = _line(page, "eas_mapi")
    assert "temp@example.com" in charged
    assert ("supprimée" if FRENCH[language] else "deleted") in charged
    # Its two periods, with their end: the deletion.
    assert charged.count("EAS:") == 1 and charged.count("MAPI:") == 1
    assert ("activé du" if FRENCH[language] else "on from") in charged
    # marie, still there, on the EAS line, and not marked deleted.
    eas = _line(page, "eas")
    assert "marie@example.com" in eas and "deleted" not in eas and "supprimée" not in eas
    assert ("activé depuis le" if FRENCH[language] else "on since") in eas
    assert "temp@example.com" not in eas
    assert "No mailbox this period." in page or "Aucune boîte pendant cette période." in page


@pytest.mark.parametrize("language", ["en", "fr"])
def test_a_mailbox_switched_off_is_listed_with_its_period(owner_browser, operator, marie, language):
    off = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    mailbox_update(actor=operator, mailbox=marie, eas_enabled=False, at=off)
    _speak(owner_browser, language)
    page = _text(owner_browser.get(reverse("web:billing", args=["example.com"])))
    eas = page.split("ActiveSync (EAS)</th>")[1].split("</tr>")[0]
    assert ("1 boîte" if FRENCH[language] else "1 mailbox") in eas
    charged = _line(page, "eas")
    assert "marie@example.com" in charged
    end = off.strftime("%d/%m/%Y %H:%M") if FRENCH[language] else off.strftime("%m/%d/%Y")
    assert end in charged
    assert ("activé du" if FRENCH[language] else "on from") in charged
    assert "deleted" not in charged and "supprimée" not in charged


def _many(domain, first: int, count: int, start: datetime) -> None:
    """`count` mailboxes' EAS periods straight into the ledger (no mailbox rows: the page
    reads the ledger alone)."""
    ProtocolActivation.objects.bulk_create(
        ProtocolActivation(
            mailbox_key=1_000_000 + n,
            address=f"bulk{n:05d}@example.com",
            domain_id=domain.pk,
            client_id=domain.client_id,
            protocol="eas",
            started_at=start,
        )
        for n in range(first, first + count)
    )


def test_the_list_is_bounded_and_the_query_count_fixed(
    owner_browser, domain, marie, plan_start, django_assert_max_num_queries
):
    url = reverse("web:billing", args=["example.com"])
    counts = []
    for first, added in ((0, 5), (5, 395)):
        _many(domain, first, added, plan_start)
        with django_assert_max_num_queries(query_budget("page:web:billing")) as captured:
            page = _text(owner_browser.get(url))
        counts.append(len(captured))
    assert counts[0] == counts[1]
    eas = _line(page, "eas")
    # 401 on the line: the first 20 by address are named, the rest counted.
    assert "401 mailboxes" in page.split("ActiveSync (EAS)</th>")[1].split("</tr>")[0]
    assert eas.count("charged-list__address") == 20
    assert "bulk00000@example.com" in eas and "bulk00019@example.com" in eas
    assert "bulk00020@example.com" not in eas and "marie@example.com" not in eas
    assert "and 381 more mailboxes" in eas


# --- 16. The switches say what they cost before they are turned on --------------------------------


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_protocol_switches_show_their_prices(owner_browser, plan, language):
    _speak(owner_browser, language)
    form = _text(owner_browser.get(reverse("web:mailbox_create", args=["example.com"])))
    eas = form.split('id="id_eas_enabled-price"')[1].split("</p>")[0]
    mapi = form.split('id="id_mapi_enabled-price"')[1].split("</p>")[0]
    both = form.split('id="id_protocols-combined"')[1].split("</p>")[0]
    if FRENCH[language]:
        assert "4,00 CAD par boîte et par mois." in eas
        assert "6,00 CAD par boîte et par mois." in mapi
        assert "tarif combiné de 8,50 CAD par mois, soit 1,50 CAD de moins" in both
    else:
        assert "4.00 CAD per mailbox per month." in eas
        assert "6.00 CAD per mailbox per month." in mapi
        assert "combined rate of 8.50 CAD per month, 1.50 CAD less" in both
    # Screen readers hear the price with the switch.
    assert 'aria-describedby="id_eas_enabled-help id_eas_enabled-price"' in form


def test_the_switches_show_no_price_without_a_plan(owner_browser, domain):
    form = _text(owner_browser.get(reverse("web:mailbox_create", args=["example.com"])))
    assert "protocol-price" not in form and "per mailbox per" not in form


def test_a_quarterly_plan_prices_the_switches_per_quarter(
    owner_browser, operator, client_a, domain, plan_start
):
    quarterly = plan_create(
        actor=operator,
        name="Quarterly",
        currency="EUR",
        storage_gb_price="1",
        eas_price="9",
        mapi_price="12",
        eas_mapi_price="21",
        cycle_months=3,
    )
    client_set_plan(actor=operator, client=client_a, plan=quarterly, at=plan_start)
    form = _text(owner_browser.get(reverse("web:mailbox_create", args=["example.com"])))
    assert "9.00 EUR per mailbox per 3 months." in form
    # No discount to announce: the combined price is the two prices' sum.
    assert "Both on the same mailbox: 21.00 EUR per 3 months." in form
