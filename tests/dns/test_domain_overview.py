"""dns.selectors.domain_overview: the dashboard's DNS state, summary and plan in one query,
each the same as its own selector gives (dns_report, dkim_records, mail's domain_summary,
billing's billing_has_plan)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from postdesk.billing.selectors import billing_has_plan
from postdesk.billing.services import client_set_plan, plan_create
from postdesk.dns.selectors import dkim_records, dns_report, domain_overview
from postdesk.dns.services import dkim_enable, dkim_prepare_rotation
from postdesk.dns.status import dns_check_domain
from postdesk.errors import NotFound
from postdesk.mail.models import Mailbox
from postdesk.mail.selectors import domain_summary
from postdesk.mail.services import forward_create, mailbox_create
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db


def _same_as_each_selector(actor, domain) -> None:
    overview = domain_overview(actor=actor, domain=domain)
    now = timezone.now()
    assert overview.dns.report(now).report == dns_report(actor=actor, domain=domain).report
    assert overview.dns.checked_at == dns_report(actor=actor, domain=domain).checked_at
    assert overview.dns.dkim_records() == dkim_records(actor=actor, domain=domain)
    assert overview.summary == domain_summary(actor=actor, domain=domain)
    assert overview.has_plan == billing_has_plan(actor=actor, domain=domain)


def test_a_new_domain(owner, domain):
    overview = domain_overview(actor=owner, domain=domain)
    assert overview.dns.status is None and overview.dns.keys == (None, None)
    assert overview.summary.mailboxes == 0 and not overview.has_plan
    _same_as_each_selector(owner, domain)


def test_a_checked_domain_in_a_rotation_with_mailboxes_and_a_plan(
    owner, operator, client_a, domain, dns_server
):
    dkim_enable(actor=operator, domain=domain)
    dkim_prepare_rotation(actor=operator, domain=domain)
    dns_server.set_txt("_dmarc.example.com", "v=DMARC1; p=none")
    dns_check_domain(domain)
    mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    forward_create(actor=operator, domain=domain, name="info", destinations=["a@b.example"])
    Mailbox.objects.update(used_bytes=4096, used_measured_at=timezone.now())
    # Whether a plan applies is read, not what it costs: any prices.
    prices = {f"{item}_price": "1" for item in ("storage_gb", "eas", "mapi", "eas_mapi")}
    plan = plan_create(actor=operator, name="Basic", currency="CAD", **prices)
    client_set_plan(
        actor=operator, client=client_a, plan=plan, at=datetime.now(UTC) - timedelta(days=3)
    )
    overview = domain_overview(actor=owner, domain=domain)
    assert all(overview.dns.keys) and overview.dns.status is not None
    assert (overview.summary.mailboxes, overview.summary.forwards) == (1, 1)
    assert overview.summary.used_bytes == 4096 and overview.has_plan
    _same_as_each_selector(owner, domain)


def test_one_query(owner, operator, domain, dns_server, django_assert_num_queries):
    dkim_enable(actor=operator, domain=domain)
    dns_check_domain(domain)
    domain_overview(actor=owner, domain=domain)  # reads and keeps the role
    with django_assert_num_queries(1):
        domain_overview(actor=owner, domain=domain)


def test_another_client_is_refused(outsider, domain):
    with pytest.raises(NotFound):
        domain_overview(actor=outsider, domain=domain)


def test_the_report_inputs_change_with_what_the_report_is_made_of(
    owner, operator, domain, dns_server
):
    def inputs():
        return domain_overview(actor=owner, domain=domain).dns.report_inputs(timezone.now())

    before_check = inputs()
    dns_check_domain(domain)
    checked = inputs()
    assert checked != before_check
    assert inputs() == checked  # nothing changed, nor does the key
    dkim_enable(actor=operator, domain=domain)
    assert inputs() != checked
