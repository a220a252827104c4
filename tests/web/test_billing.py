"""The billing card of the dashboard and the billing page: the estimate of the current period
(accrued and projected apart, line items, the combined rate's discount), the closed periods,
both languages, access, and fixed query counts."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from postdesk.billing.services import client_set_plan, plan_create
from postdesk.mail.services import mailbox_create, mailbox_usage_record
from tests.api.conftest import Api, make_token
from tests.budgets import query_budget
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db
GIB = 1024**3
CARD = {"HX-Request": "true", "HX-Target": "billing-card"}


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture
def plan_start():
    # About three months ago: three closed monthly periods, whatever today's date.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=100)


@pytest.fixture
def billed(operator, client_a, domain, plan_start):
    """A plan since `plan_start`; marie (EAS + MAPI, 2 GB stored) and jean (EAS) since then."""
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
    marie = mailbox_create(
        actor=operator,
        domain=domain,
        username="marie",
        password=GOOD_PASSWORD,
        eas_enabled=True,
        mapi_enabled=True,
        at=plan_start,
    )
    mailbox_create(
        actor=operator,
        domain=domain,
        username="jean",
        password=GOOD_PASSWORD,
        eas_enabled=True,
        at=plan_start,
    )
    mailbox_usage_record(actor=operator, mailbox=marie, used_bytes=2 * GIB, at=plan_start)
    return plan


def test_no_plan_no_billing_card(owner_browser, domain):
    url = reverse("web:dashboard", args=["example.com"])
    page = _text(owner_browser.get(url))
    assert "Billing overview" not in page
    assert 'id="billing-card"' not in page
    # Asked anyway, the card answers nothing to show, and the page says why.
    card = owner_browser.get(reverse("web:billing", args=["example.com"]), headers=CARD)
    assert card.status_code == 200 and card.content.strip() == b""
    billing_page = _text(owner_browser.get(reverse("web:billing", args=["example.com"])))
    assert "No plan applies to this account yet." in billing_page


def test_the_dashboard_loads_the_card_which_shows_the_estimate(owner_browser, billed):
    dashboard = _text(owner_browser.get(reverse("web:dashboard", args=["example.com"])))
    url = reverse("web:billing", args=["example.com"])
    assert f'hx-get="{url}"' in dashboard and 'hx-trigger="load"' in dashboard
    assert f'href="{url}"' in dashboard  # without JavaScript, a link to the same figures
    response = owner_browser.get(url, headers=CARD)
    assert "HX-Target" in response["Vary"]
    card = _text(response)
    assert "<html" not in card
    assert "Billing overview" in card
    assert "Accrued so far" in card and "Projected to the end of the period" in card
    # Line items with their counts and unit prices.
    assert "2.000 GB" in card and "0.50 CAD / GB" in card and "1.00 CAD" in card
    eas = card.split("ActiveSync (EAS)</th>")[1].split("</tr>")[0]
    assert "1 mailbox" in eas and "4.00 CAD / mailbox" in eas and "4.00 CAD" in eas
    mapi = card.split("MAPI/Exchange</th>")[1].split("</tr>")[0]
    assert "0 mailboxes" in mapi and "6.00 CAD / mailbox" in mapi
    both = card.split("EAS + MAPI (combined rate)</th>")[1].split("</tr>")[0]
    assert "1 mailbox" in both and "8.50 CAD / mailbox" in both
    # The discount: 4 + 6 - 8.50 = 1.50 for the one mailbox with both.
    assert "save 1.50 CAD (1.50 CAD each)" in card
    assert "Estimated total" in card and "13.50 CAD" in card
    assert "Details and past periods" in card


@pytest.mark.parametrize("combined", ["10", "12"])
def test_a_combined_price_not_below_the_two_shows_no_saving(
    owner_browser, operator, client_a, domain, plan_start, combined
):
    """A plan may price both protocols at their sum or above it: the lines bill it as it says,
    and the page shows no discount (it once failed on a negative one)."""
    plan = plan_create(
        actor=operator,
        name="Dear",
        currency="CAD",
        storage_gb_price="0.50",
        eas_price="4",
        mapi_price="6",
        eas_mapi_price=combined,
    )
    client_set_plan(actor=operator, client=client_a, plan=plan, at=plan_start)
    mailbox_create(
        actor=operator,
        domain=domain,
        username="marie",
        password=GOOD_PASSWORD,
        eas_enabled=True,
        mapi_enabled=True,
        at=plan_start,
    )
    url = reverse("web:billing", args=["example.com"])
    for headers in (CARD, {}):
        response = owner_browser.get(url, headers=headers)
        assert response.status_code == 200
        page = _text(response)
        both = page.split("EAS + MAPI (combined rate)</th>")[1].split("</tr>")[0]
        assert f"{combined}.00 CAD / mailbox" in both
        assert "combined-rate" not in page  # the note's class
        assert "Combined rate" not in page and " save " not in page


def test_the_web_the_api_and_the_cli_show_the_same_combined_saving(
    owner_browser, operator, owner, domain, billed, plan_start
):
    """The saving is the estimate's (billing/estimate.py): the page, the API and
    `billing estimate` (text and --json) show one figure for the same domain."""
    mailbox_create(
        actor=operator,
        domain=domain,
        username="paul",
        password=GOOD_PASSWORD,
        eas_enabled=True,
        mapi_enabled=True,
        at=plan_start,
    )
    keys = ("combined_saving", "combined_saving_each")
    api = Api().get("domains/example.com/estimate", make_token(operator, owner))
    assert api.status == 200, api.body
    as_json, as_text = StringIO(), StringIO()
    call_command("billing", "estimate", "example.com", "--json", stdout=as_json)
    call_command("billing", "estimate", "example.com", stdout=as_text)
    cli = json.loads(as_json.getvalue())
    card = _text(owner_browser.get(reverse("web:billing", args=["example.com"]), headers=CARD))
    # marie and paul, both protocols: 2 x (4 + 6 - 8.50).
    assert tuple(api.body[k] for k in keys) == tuple(cli[k] for k in keys) == ("3.00", "1.50")
    assert "save 3.00 CAD (1.50 CAD each)" in card
    assert "combined rate saves 3.00 CAD (1.50 each)" in as_text.getvalue()


def test_the_billing_page_lists_the_closed_periods(viewer_browser, billed, plan_start):
    page = _text(viewer_browser.get(reverse("web:billing", args=["example.com"])))
    assert "Estimated cost for the current period" in page
    history = page.split("billing-history")[1]
    rows = history.split("<tbody>")[1].split("</tbody>")[0].count("<tr>")
    assert rows == 3
    # Each closed month: 2 GB (1.00) + EAS (4.00) + combined (8.50).
    assert history.count("<strong>13.50 CAD</strong>") == 3
    assert "(\u00d7 1)" in history


def test_billing_in_french(owner_browser, billed):
    owner_browser.cookies["django_language"] = "fr"
    card = _text(owner_browser.get(reverse("web:billing", args=["example.com"]), headers=CARD))
    assert "Aperçu de la facturation" in card
    assert "8,50 CAD / boîte" in card
    assert "Tarif combiné appliqué" in card


def test_another_clients_billing_is_not_found(outsider_browser, billed):
    url = reverse("web:billing", args=["example.com"])
    assert outsider_browser.get(url).status_code == 404
    assert outsider_browser.get(url, headers=CARD).status_code == 404


def test_query_counts_are_fixed(
    owner_browser, operator, domain, billed, plan_start, django_assert_max_num_queries
):
    from bench.dataset import add_addresses

    dashboard = reverse("web:dashboard", args=["example.com"])
    billing = reverse("web:billing", args=["example.com"])
    counts = []
    for mailboxes in (5, 200):
        add_addresses(domain, mailboxes=mailboxes, aliases=mailboxes // 2, forwards=3)
        sizes = []
        for url, headers, budget in [
            (dashboard, {}, "page:web:dashboard"),
            (billing, CARD, "page:web:billing_card"),
            (billing, {}, "page:web:billing"),
        ]:
            with django_assert_max_num_queries(query_budget(budget)) as captured:
                assert owner_browser.get(url, headers=headers).status_code == 200
            sizes.append(len(captured))
        counts.append(sizes)
    assert counts[0] == counts[1]
    assert query_budget("page:web:dashboard") <= 12  # the limit
