"""The address list's growth over the last 7 days (the guide's "growing unusually fast"),
computed from the usage samples in the list's own query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from postdesk.billing.services import usage_record
from postdesk.errors import NotFound
from postdesk.mail.choices import AddressListSort, AddressListType
from postdesk.mail.selectors import address_detail, address_list
from postdesk.mail.services import forward_create, mailbox_create, mailbox_delete
from tests.budgets import query_budget
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db
GIB = 1024**3
MIB = 1024**2


def make_mailbox(operator, domain, username, **options):
    return mailbox_create(
        actor=operator, domain=domain, username=username, password=GOOD_PASSWORD, **options
    )


def record(operator, mailbox, used_bytes, days_ago: float):
    now = timezone.now()
    usage_record(
        actor=operator, mailbox=mailbox, used_bytes=used_bytes, at=now - timedelta(days=days_ago)
    )


@pytest.fixture
def history(operator, domain):
    """Mailboxes with known growth; the samples are dated relative to now."""
    grower = make_mailbox(operator, domain, "grower")
    record(operator, grower, 1 * GIB, days_ago=30)
    record(operator, grower, 1 * GIB, days_ago=7.05)  # the usage 7 days ago
    record(operator, grower, 2 * GIB, days_ago=3)
    record(operator, grower, 3 * GIB, days_ago=0.5)  # the usage now: +2 GiB

    newcomer = make_mailbox(operator, domain, "newcomer")
    record(operator, newcomer, 500 * MIB, days_ago=6.95)  # no sample before: it grew from 0

    shrinker = make_mailbox(operator, domain, "shrinker")
    record(operator, shrinker, 5 * GIB, days_ago=8)
    record(operator, shrinker, 4 * GIB, days_ago=2)  # -1 GiB

    steady = make_mailbox(operator, domain, "steady")
    record(operator, steady, 700 * MIB, days_ago=20)  # no sample in the window: 0

    make_mailbox(operator, domain, "unmeasured")  # no sample at all: 0
    forward_create(actor=operator, domain=domain, name="info", destinations=["grower@example.com"])
    return domain


def growth(actor, domain, **options) -> list[tuple[str, int | None]]:
    page = address_list(actor=actor, domain=domain, **options)
    return [(row.local_part, row.growth_7d_bytes) for row in page.rows]


def test_every_row_carries_its_growth_from_the_samples(owner, history):
    assert growth(owner, history) == [
        ("grower", 2 * GIB),
        ("info", None),  # a forward stores nothing
        ("newcomer", 500 * MIB),
        ("shrinker", -1 * GIB),
        ("steady", 0),
        ("unmeasured", 0),
    ]
    detail = address_detail(actor=owner, address="grower@example.com", type="mailbox")
    assert detail.growth_7d_bytes == 2 * GIB
    assert detail.as_dict()["growth_7d_bytes"] == 2 * GIB


def test_sort_by_growth_puts_the_fastest_growing_first(owner, history):
    assert growth(owner, history, sort=AddressListSort.GROWTH) == [
        ("grower", 2 * GIB),
        ("newcomer", 500 * MIB),
        ("steady", 0),  # ties by address
        ("unmeasured", 0),
        ("shrinker", -1 * GIB),
        ("info", None),  # forwards last
    ]
    # With a filter and across pages.
    first = address_list(
        actor=owner, domain=history, sort=AddressListSort.GROWTH, per_page=2, page=1
    )
    second = address_list(
        actor=owner, domain=history, sort=AddressListSort.GROWTH, per_page=2, page=2
    )
    assert [r.local_part for r in first.rows + second.rows] == [
        "grower",
        "newcomer",
        "steady",
        "unmeasured",
    ]
    mailboxes = growth(owner, history, sort=AddressListSort.GROWTH, type=AddressListType.MAILBOX)
    assert [name for name, _ in mailboxes][-1] == "shrinker"


def test_a_deleted_mailbox_is_gone_and_a_new_one_under_its_name_starts_from_zero(
    operator, owner, history
):
    from postdesk.mail.selectors import mailbox_get

    grower = mailbox_get(actor=operator, address="grower@example.com")
    mailbox_delete(actor=operator, mailbox=grower)
    again = make_mailbox(operator, history, "grower")
    record(operator, again, 10 * MIB, days_ago=0.1)
    assert dict(growth(owner, history))["grower"] == 10 * MIB


def test_another_client_sees_nothing_and_a_viewer_reads(outsider, viewer, history):
    with pytest.raises(NotFound):
        address_list(actor=outsider, domain=history, sort=AddressListSort.GROWTH)
    assert growth(viewer, history, sort=AddressListSort.GROWTH)[0] == ("grower", 2 * GIB)


def _fill(operator, domain, mailboxes: int) -> None:
    """`mailboxes` more mailboxes, each with samples inside and before the window."""
    from bench.dataset import add_addresses

    from postdesk.billing.models import UsageSample
    from postdesk.mail.models import Mailbox

    add_addresses(domain, mailboxes=mailboxes, aliases=mailboxes, forwards=mailboxes // 5)
    now = timezone.now()
    samples = [
        UsageSample(
            mailbox_id=pk, mailbox_key=pk, domain_id=domain.pk, at=now - timedelta(days=d), bytes=b
        )
        for i, pk in enumerate(
            Mailbox.objects.filter(address__domain=domain, usage_samples__isnull=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        for d, b in ((9, i * MIB), (1, i * 3 * MIB))
    ]
    UsageSample.objects.bulk_create(samples)


def test_query_count_is_fixed_whatever_the_size(owner, operator, domain, django_assert_num_queries):
    """10 or 300 mailboxes (several pages of 50) with samples: the same number of queries."""
    budget = query_budget("selector:address_list:growth")
    counts = []
    for extra in (10, 300):
        _fill(operator, domain, extra)
        owner._roles.clear()
        with django_assert_num_queries(budget) as captured:
            page = address_list(actor=owner, domain=domain, sort=AddressListSort.GROWTH)
        # The mailbox with the most samples' growth leads: i x 2 MiB for the last one.
        assert page.rows[0].growth_7d_bytes == (extra - 1) * 2 * MIB
        counts.append(len(captured))
    assert counts[0] == counts[1]
