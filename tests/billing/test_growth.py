"""The address list's growth over 7 days (the guide's "growing unusually fast"): each
mailbox's `growth_7d_bytes`, kept from its usage samples by `mailbox_usage_record` as of its latest
measure, which the list shows and sorts by from an index."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from postdesk.billing.models import UsageSample
from postdesk.billing.selectors import GROWTH_WINDOW
from postdesk.errors import NotFound
from postdesk.mail.choices import AddressListSort, AddressListType
from postdesk.mail.models import Mailbox
from postdesk.mail.selectors import address_detail, address_list
from postdesk.mail.services import (
    forward_create,
    mailbox_create,
    mailbox_delete,
    mailbox_growth_refresh,
    mailbox_usage_record,
)
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
    mailbox_usage_record(
        actor=operator, mailbox=mailbox, used_bytes=used_bytes, at=now - timedelta(days=days_ago)
    )


@pytest.fixture
def history(operator, domain):
    """Mailboxes with known growth, measured as the collector does (the latest measure is
    recent); the samples are dated relative to now."""
    grower = make_mailbox(operator, domain, "grower")
    record(operator, grower, 1 * GIB, days_ago=30)
    record(operator, grower, 1 * GIB, days_ago=7.6)  # in force 7 days before the latest
    record(operator, grower, 2 * GIB, days_ago=3)
    record(operator, grower, 3 * GIB, days_ago=0.5)  # the latest: +2 GB

    newcomer = make_mailbox(operator, domain, "newcomer")
    record(operator, newcomer, 500 * MIB, days_ago=6.95)  # no sample before: it grew from 0

    shrinker = make_mailbox(operator, domain, "shrinker")
    record(operator, shrinker, 5 * GIB, days_ago=10)
    record(operator, shrinker, 4 * GIB, days_ago=0.5)  # -1 GB

    steady = make_mailbox(operator, domain, "steady")
    record(operator, steady, 700 * MIB, days_ago=20)
    record(operator, steady, 700 * MIB, days_ago=0.5)  # no change over the window: 0

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
    mailbox_growth_refresh(Mailbox.objects.filter(domain=domain))


def test_query_count_is_fixed_whatever_the_size(owner, operator, domain, django_assert_num_queries):
    """10 or 300 mailboxes (several pages of 50) with samples: the same number of queries."""
    budget = query_budget("selector:address_list:growth")
    counts = []
    for extra in (10, 300):
        _fill(operator, domain, extra)
        owner._roles.clear()
        with django_assert_num_queries(budget) as captured:
            page = address_list(actor=owner, domain=domain, sort=AddressListSort.GROWTH)
        # The mailbox with the most samples' growth leads: i x 2 MB for the last one.
        assert page.rows[0].growth_7d_bytes == (extra - 1) * 2 * MIB
        counts.append(len(captured))
    assert counts[0] == counts[1]


def test_a_late_sample_changes_the_growth_it_falls_under(operator, owner, domain):
    """Samples may arrive out of order (a replayed history): one dated before the latest
    measure's window replaces the usage the growth starts from."""
    late = make_mailbox(operator, domain, "late")
    record(operator, late, 3 * GIB, days_ago=0.5)
    assert dict(growth(owner, domain))["late"] == 3 * GIB  # from nothing
    record(operator, late, 2 * GIB, days_ago=9)
    assert dict(growth(owner, domain))["late"] == 1 * GIB
    record(operator, late, 10 * GIB, days_ago=2)  # inside the window: the ends are unchanged
    assert dict(growth(owner, domain))["late"] == 1 * GIB


def test_a_mailbox_no_longer_measured_keeps_the_growth_of_its_last_measure(operator, owner, domain):
    """Like its storage ("measured at"), the growth is as of the latest measure: the
    collector measures every mailbox on each run, so that is the last 7 days to within a
    run; one it stopped measuring is not shown as having stopped growing."""
    quiet = make_mailbox(operator, domain, "quiet")
    record(operator, quiet, 1 * GIB, days_ago=40)
    record(operator, quiet, 3 * GIB, days_ago=30)
    row = address_detail(actor=owner, address="quiet@example.com", type="mailbox")
    assert (row.used_bytes, row.growth_7d_bytes) == (3 * GIB, 2 * GIB)


def reference_growth(samples: list[tuple[object, int]]) -> int:
    """The rule, from a mailbox's samples (time, bytes): the latest's bytes minus the bytes of
    the latest sample at or before 7 days earlier (0 without one)."""
    if not samples:
        return 0
    ordered = sorted(samples, key=lambda sample: sample[0])
    latest_at, latest_bytes = ordered[-1]
    before = [b for at, b in ordered if at <= latest_at - GROWTH_WINDOW]
    return latest_bytes - (before[-1] if before else 0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_stored_growth_follows_the_rule_whatever_the_order_of_arrival(operator, domain, seed):
    """Random histories recorded in random order: each mailbox's stored growth is the
    rule's; and the set-wise refresh (what a bulk load of samples runs) gives the same."""
    rng = random.Random(seed)
    now = timezone.now()
    histories = {}
    for n in range(8):
        mailbox = make_mailbox(operator, domain, f"m{n}")
        days = rng.sample(range(0, 40 * 24), rng.randrange(0, 7))  # hours ago, distinct
        histories[mailbox] = [
            (now - timedelta(hours=h), rng.randrange(0, 5) * GIB // 4) for h in days
        ]
        # Exactly 7 days before the latest: that sample is the one in force then.
        if histories[mailbox] and rng.random() < 0.5:
            latest = max(at for at, _ in histories[mailbox])
            histories[mailbox].append((latest - GROWTH_WINDOW, rng.randrange(0, 5) * MIB))
    arrivals = [(mailbox, sample) for mailbox, samples in histories.items() for sample in samples]
    rng.shuffle(arrivals)
    for mailbox, (at, used) in arrivals:
        mailbox_usage_record(actor=operator, mailbox=mailbox, used_bytes=used, at=at)
    expected = {mailbox.pk: reference_growth(samples) for mailbox, samples in histories.items()}
    stored = dict(Mailbox.objects.filter(domain=domain).values_list("pk", "growth_7d_bytes"))
    assert stored == expected
    Mailbox.objects.filter(domain=domain).update(growth_7d_bytes=None)
    assert mailbox_growth_refresh(Mailbox.objects.filter(domain=domain)) == len(histories)
    refreshed = dict(Mailbox.objects.filter(domain=domain).values_list("pk", "growth_7d_bytes"))
    assert refreshed == expected


def test_the_migration_fills_each_mailboxs_name_and_growth(operator, history):
    """mail migration 0005 gave the mailboxes created before it their name and their growth
    from the samples; the service sets both for every new mailbox."""
    import importlib

    from django.apps import apps

    before = dict(Mailbox.objects.values_list("pk", "growth_7d_bytes"))
    assert not Mailbox.objects.filter(local_part__isnull=True).exists()
    assert not Mailbox.objects.filter(growth_7d_bytes__isnull=True).exists()
    Mailbox.objects.update(local_part=None, growth_7d_bytes=None)  # as before the migration
    migration = importlib.import_module("postdesk.mail.migrations.0005_mailbox_local_part_growth")
    migration.fill(apps, None)
    assert dict(Mailbox.objects.values_list("pk", "growth_7d_bytes")) == before
    names = Mailbox.objects.values_list("local_part", "address__local_part")
    assert all(copied == name for copied, name in names) and len(names) == 5


def test_the_growth_order_is_read_off_the_index(owner, history):
    """A page within the mailboxes is cut from `mail_mailbox_growth_idx` in order: no sort of
    the domain's mailboxes (PostgreSQL is told to avoid one, as it would on a large domain)."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from postdesk.mail.selectors import _Listing, _Position

    with CaptureQueriesContext(connection) as captured:
        page = address_list(actor=owner, domain=history, sort=AddressListSort.GROWTH, per_page=2)
    assert [row.local_part for row in page.rows] == ["grower", "newcomer"]
    assert any('FROM "mail_mailbox"' in q["sql"] for q in captured)  # the ids' subquery
    mailboxes = _Listing(history, "", "all", AddressListSort.GROWTH).streams()[0]
    # A cursor's page past a value: the ties by name, then the values beyond, each off it.
    for ids in mailboxes.from_position(_Position(0, 5, "m"), False, 3):
        sql, params = ids.query.sql_with_params()
        assert _plan_reads_the_index(connection, transaction, sql, params)
    sql, params = mailboxes.from_position(None, False, 3)[0].query.sql_with_params()
    assert _plan_reads_the_index(connection, transaction, sql, params)


def _plan_reads_the_index(connection, transaction, sql, params) -> bool:
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "mail_mailbox_growth_idx" in plan and "Sort" not in plan, plan
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            assert "mail_mailbox_growth_idx" in plan and "TEMP B-TREE" not in plan, plan
    return True
