"""The domain's estimate, read from the database: access, the storage aggregate in SQL
against the pure reference, and a fixed number of queries."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from postdesk.billing import estimate as rules
from postdesk.billing.models import UsageSample
from postdesk.billing.selectors import billing_estimate, domain_storage_use, plan_get
from postdesk.billing.services import client_set_plan, plan_create
from postdesk.errors import InvalidInput, NotFound
from postdesk.mail.models import Mailbox
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


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def plan(operator, client_a):
    plan = plan_create(
        actor=operator,
        name="Basic",
        currency="CAD",
        storage_gb_price="0.50",
        eas_price="4",
        mapi_price="6",
        eas_mapi_price="8.5",
    )
    client_set_plan(actor=operator, client=client_a, plan=plan, at=t("2024-01-31"))
    return plan


def make_mailbox(operator, domain, username, **options) -> Mailbox:
    return mailbox_create(
        actor=operator, domain=domain, username=username, password=GOOD_PASSWORD, **options
    )


def amounts(result) -> dict[str, tuple[str, str]]:
    return {line.item: (str(line.quantity), str(line.amount)) for line in result.lines}


def test_the_estimate_of_a_replayed_month(operator, owner, domain, other_domain, plan):
    # Cycles anchored Jan 31: Jan 31 → Feb 29 (2024 is a leap year) → Mar 31.
    marie = make_mailbox(operator, domain, "marie", eas_enabled=True, at=t("2024-02-01"))
    jean = make_mailbox(operator, domain, "jean", mapi_enabled=True, at=t("2024-02-01"))
    paul = make_mailbox(operator, domain, "paul", eas_enabled=True, at=t("2024-02-01"))
    # EAS early, MAPI late: one combined charge.
    mailbox_update(actor=operator, mailbox=marie, eas_enabled=False, at=t("2024-02-03"))
    mailbox_update(actor=operator, mailbox=marie, mapi_enabled=True, at=t("2024-02-20"))
    # Deleted mid-cycle: still billed for EAS this cycle; its storage stops.
    mailbox_usage_record(actor=operator, mailbox=paul, used_bytes=29 * GIB, at=t("2024-01-20"))
    mailbox_delete(actor=operator, mailbox=paul, at=t("2024-02-09"))  # 9 days from Jan 31
    mailbox_usage_record(actor=operator, mailbox=jean, used_bytes=29 * GIB, at=t("2024-02-19"))
    # Another client's domain: nothing of it here.
    other = make_mailbox(operator, other_domain, "olivier", eas_enabled=True, at=t("2024-02-01"))
    mailbox_usage_record(actor=operator, mailbox=other, used_bytes=100 * GIB, at=t("2024-02-01"))

    result = billing_estimate(actor=owner, domain=domain, at=t("2024-02-24"))
    assert (result.period_start, result.period_end) == (t("2024-01-31"), t("2024-02-29"))
    # Storage: paul 29 GB x 9 days + jean 29 GB x 5 days so far = 14 GB-cycles (of 29
    # days) accrued; jean's 29 GB for the 5 days left: 5 more.
    assert amounts(result) == {
        "storage": ("19.000", "9.50"),
        "eas": ("1", "4.00"),  # paul
        "mapi": ("1", "6.00"),  # jean
        "eas_mapi": ("1", "8.50"),  # marie
    }
    assert (result.accrued, result.projected, result.total) == (
        Decimal("25.50"),
        Decimal("2.50"),
        Decimal("28.00"),
    )
    # The next cycle: marie and jean only (paul is gone, marie has MAPI only now).
    result = billing_estimate(actor=owner, domain=domain, at=t("2024-03-01"))
    assert (result.period_start, result.period_end) == (t("2024-02-29"), t("2024-03-31"))
    assert amounts(result)["mapi"] == ("2", "12.00")
    assert amounts(result)["eas"] == ("0", "0.00")
    assert amounts(result)["storage"] == ("29.000", "14.50")  # jean's 29 GB all month


def test_the_estimate_follows_a_plan_change(operator, client_a, domain, plan):
    pro = plan_create(
        actor=operator,
        name="Pro",
        currency="EUR",
        cycle_months=12,
        storage_gb_price="0",
        eas_price="40",
        mapi_price="60",
        eas_mapi_price="80",
    )
    client_set_plan(actor=operator, client=client_a, plan=pro, at=t("2024-03-10"))
    make_mailbox(operator, domain, "marie", eas_enabled=True, at=t("2024-02-01"))
    before = billing_estimate(actor=operator, domain=domain, at=t("2024-03-05"))
    assert (before.currency, before.period_end) == ("CAD", t("2024-03-10"))  # cut short
    after = billing_estimate(actor=operator, domain=domain, at=t("2024-03-10"))
    assert (after.currency, after.period_start, after.period_end) == (
        "EUR",
        t("2024-03-10"),
        t("2025-03-10"),
    )
    assert after.total == Decimal("40.00")


def test_without_a_plan_there_is_no_estimate(operator, domain, plan):
    with pytest.raises(InvalidInput) as caught:
        billing_estimate(actor=operator, domain=domain, at=t("2024-01-30"))
    assert caught.value.code == "no_plan"


def test_another_clients_user_sees_nothing_and_a_viewer_may_read(outsider, viewer, domain, plan):
    with pytest.raises(NotFound):
        billing_estimate(actor=outsider, domain=domain, at=t("2024-02-10"))
    assert billing_estimate(actor=viewer, domain=domain, at=t("2024-02-10")).total == 0
    with pytest.raises(NotFound):
        plan_get(actor=viewer, name="Basic")


def test_the_estimate_refuses_a_time_without_a_zone(operator, domain, plan):
    with pytest.raises(InvalidInput) as caught:
        billing_estimate(actor=operator, domain=domain, at=datetime(2024, 2, 10))
    assert caught.value.code == "time_without_zone"


def _random_history(rng: random.Random, operator, domain) -> list[rules.UsageSample]:
    """Samples at random instants (microseconds included), recorded in random order, around
    three months; some mailboxes deleted at a random time. Returns them as plain data."""
    base = t("2024-01-01")
    samples = []
    for i in range(8):
        mailbox = make_mailbox(operator, domain, f"user{i}")
        moments = sorted(
            {
                base
                + timedelta(seconds=rng.randrange(0, 90 * 86400), microseconds=rng.randrange(10**6))
                for _ in range(rng.randrange(0, 12))
            }
        )
        deleted_at = None
        if moments and rng.random() < 0.4:
            deleted_at = moments.pop()
        values = [(m, rng.choice([0, rng.randrange(1, 10**12)])) for m in moments]
        for moment, size in rng.sample(values, len(values)):  # out of order, as replays may be
            mailbox_usage_record(actor=operator, mailbox=mailbox, used_bytes=size, at=moment)
        samples += [rules.UsageSample(mailbox.pk, m, size) for m, size in values]
        if deleted_at is not None:
            mailbox_delete(actor=operator, mailbox=mailbox, at=deleted_at)
            samples.append(rules.UsageSample(mailbox.pk, deleted_at, 0))
    return samples


@pytest.mark.parametrize("seed", range(6))
def test_the_sql_aggregate_matches_the_pure_reference(operator, domain, seed):
    rng = random.Random(seed)
    samples = _random_history(rng, operator, domain)
    for start, at in [
        (t("2024-02-01"), t("2024-02-17T05:06:07.891")),
        (t("2024-01-15"), t("2024-01-15")),
        (t("2024-03-01"), t("2024-03-31T23:59:59")),
        (t("2023-12-01"), t("2023-12-20")),
    ]:
        expected = rules.storage_use(samples, start, at)
        got = domain_storage_use(domain.pk, start, at)
        assert got.current_bytes == expected.current_bytes
        # SQLite integrates in double precision: equal to 1e-9 relative, far below 0.001 GB.
        tolerance = expected.byte_seconds * Decimal("1e-9") + Decimal("0.001")
        assert abs(got.byte_seconds - expected.byte_seconds) <= tolerance


def test_samples_arriving_out_of_order_keep_their_chain(operator, domain):
    mailbox = make_mailbox(operator, domain, "marie")
    for day in (5, 1, 9, 3):
        mailbox_usage_record(
            actor=operator, mailbox=mailbox, used_bytes=day, at=t(f"2024-02-0{day}")
        )
    # A deletion dated before a measure of the mailbox contradicts it: refused, nothing changes.
    with pytest.raises(InvalidInput) as caught:
        mailbox_delete(actor=operator, mailbox=mailbox, at=t("2024-02-07"))
    assert caught.value.code == "time_before_usage"
    assert Mailbox.objects.filter(pk=mailbox.pk).exists()
    # A measure that arrives after the deletion, dated before it, still joins the chain.
    mailbox_delete(actor=operator, mailbox=mailbox, at=t("2024-02-10"))
    mailbox_usage_record(actor=operator, mailbox=mailbox, used_bytes=7, at=t("2024-02-07"))
    chain = list(UsageSample.objects.order_by("at").values_list("at", "until", "bytes"))
    assert chain == [
        (t("2024-02-01"), t("2024-02-03"), 1),
        (t("2024-02-03"), t("2024-02-05"), 3),
        (t("2024-02-05"), t("2024-02-07"), 5),
        (t("2024-02-07"), t("2024-02-09"), 7),
        (t("2024-02-09"), t("2024-02-10"), 9),
        (t("2024-02-10"), None, 0),
    ]
    assert not UsageSample.objects.filter(mailbox__isnull=False).exists()
    # One dated at or after the deletion is refused: the mailbox stores nothing from then on.
    for moment in (t("2024-02-10"), t("2024-02-11")):
        with pytest.raises(InvalidInput) as caught:
            mailbox_usage_record(actor=operator, mailbox=mailbox, used_bytes=7, at=moment)
        assert caught.value.code == "usage_after_deletion"
    assert UsageSample.objects.count() == 6


def test_query_count_is_fixed_whatever_the_size(
    operator, owner, domain, plan, django_assert_num_queries
):
    budget = query_budget("selector:billing_estimate")
    for size in (2, 40):
        for i in range(size):
            mailbox = make_mailbox(
                operator, domain, f"s{size}u{i}", eas_enabled=i % 2 == 0, at=t("2024-02-01")
            )
            mailbox_update(actor=operator, mailbox=mailbox, mapi_enabled=True, at=t("2024-02-02"))
            for day in range(1, 4):
                mailbox_usage_record(
                    actor=operator, mailbox=mailbox, used_bytes=day, at=t(f"2024-02-0{day}")
                )
        with django_assert_num_queries(budget):
            result = billing_estimate(actor=owner, domain=domain, at=t("2024-02-10"))
        owner._roles.clear()  # the membership is cached per actor: count it every time
        assert result.line("eas_mapi").quantity + result.line("mapi").quantity > 0


def test_plan_list_is_the_providers_and_counts_the_clients_on_each_plan_now(
    operator, owner, client_a, client_b, plan, django_assert_num_queries
):
    from postdesk.billing.selectors import plan_list
    from postdesk.errors import PermissionDenied

    gold = plan_create(
        actor=operator,
        name="Gold",
        currency="CAD",
        storage_gb_price="1",
        eas_price="1",
        mapi_price="1",
        eas_mapi_price="1",
    )
    # client_a: Basic since Jan 31, then Gold; client_b: Gold, then Basic.
    client_set_plan(actor=operator, client=client_a, plan=gold, at=t("2024-03-01"))
    client_set_plan(actor=operator, client=client_b, plan=gold, at=t("2024-02-01"))
    client_set_plan(actor=operator, client=client_b, plan=plan, at=t("2024-04-01"))

    def counts(at):
        with django_assert_num_queries(1):
            return {p.name: p.clients for p in plan_list(actor=operator, at=at)}

    assert counts(t("2024-01-15")) == {"Basic": 0, "Gold": 0}
    assert counts(t("2024-02-15")) == {"Basic": 1, "Gold": 1}
    assert counts(t("2024-03-15")) == {"Basic": 0, "Gold": 2}
    assert counts(t("2024-05-01")) == {"Basic": 1, "Gold": 1}
    with pytest.raises(PermissionDenied):
        plan_list(actor=owner)


# --- Several domains at once (the provisioning usage report) ------------------------------------


def test_the_batch_estimates_equal_one_estimate_per_domain(
    operator, owner, client_a, domain, plan, django_assert_num_queries
):
    from postdesk.billing.selectors import billing_estimates
    from postdesk.mail.services import domain_add

    rng = random.Random(7)
    busy = domain_add(actor=operator, client=client_a, name="busy.example")
    empty = domain_add(actor=operator, client=client_a, name="empty.example")
    for target in (domain, busy):
        _random_history(rng, operator, target)
        for i in range(3):
            mailbox = make_mailbox(
                operator, target, f"sync{i}", eas_enabled=i != 1, at=t("2024-02-01T10:00")
            )
            mailbox_update(actor=operator, mailbox=mailbox, mapi_enabled=True, at=t("2024-02-20"))
            if i == 2:
                mailbox_update(
                    actor=operator, mailbox=mailbox, eas_enabled=False, at=t("2024-03-05")
                )
    domains = [busy, domain, empty]
    for at in (t("2024-02-17T05:06:07.891"), t("2024-03-01"), t("2024-03-30T23:59:59")):
        expected = [billing_estimate(actor=owner, domain=d, at=at) for d in domains]
        owner._roles.clear()  # the membership is cached per actor: count it every time
        with django_assert_num_queries(query_budget("selector:billing_estimates")):
            got = billing_estimates(actor=owner, client_id=client_a.pk, domains=domains, at=at)
        assert got == expected
        assert got[2].total == 0  # the empty domain is billed nothing, not left out
    assert any(e.total > 0 for e in expected)


def test_the_batch_estimates_keep_the_access_rules(
    operator, outsider, viewer, client_a, domain, other_domain, plan
):
    from postdesk.billing.selectors import billing_estimates

    at = t("2024-02-10")
    with pytest.raises(NotFound):
        billing_estimates(actor=outsider, client_id=client_a.pk, domains=[domain], at=at)
    assert len(billing_estimates(actor=viewer, client_id=client_a.pk, domains=[domain], at=at))
    # Another client's domain cannot ride along in a client's batch.
    with pytest.raises(ValueError):
        billing_estimates(
            actor=operator, client_id=client_a.pk, domains=[domain, other_domain], at=at
        )
    assert billing_estimates(actor=operator, client_id=client_a.pk, domains=[], at=at) == []
    # Without a plan, the same refusal as the single estimate.
    with pytest.raises(InvalidInput) as caught:
        billing_estimates(
            actor=operator, client_id=client_a.pk, domains=[domain], at=t("2024-01-01")
        )
    assert caught.value.code == "no_plan"
