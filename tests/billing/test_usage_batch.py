"""A collector's run recorded in batches (`mailbox_usage_record_batch`, `workflows.usage.
record_usage`): the same samples, usage and growth as `mailbox_usage_record` one measure at a time,
in a fixed number of queries per batch."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from postdesk.billing.models import UsageSample
from postdesk.errors import PermissionDenied, PostdeskError
from postdesk.mail.models import Mailbox
from postdesk.mail.services import (
    Measure,
    domain_add,
    mailbox_create,
    mailbox_delete,
    mailbox_usage_record,
    mailbox_usage_record_batch,
)
from postdesk.workflows.usage import CollectSummary, record_usage
from tests.budgets import query_budget
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db
MIB = 1024**2


def state(domain) -> dict[str, tuple]:
    """Per mailbox name: its usage, growth and every sample (deleted mailboxes' included)."""
    names = dict(
        UsageSample.objects.filter(domain=domain)
        .values_list("mailbox_key", "mailbox__address__local_part")
        .distinct()
    )
    samples: dict[str, list] = {}
    for key, at, until, used, messages in (
        UsageSample.objects.filter(domain=domain)
        .order_by("mailbox_key", "at")
        .values_list("mailbox_key", "at", "until", "bytes", "messages")
    ):
        samples.setdefault(names[key] or f"deleted-{at:%s}", []).append((at, until, used, messages))
    mailboxes = {
        m.local_part: (m.used_bytes, m.used_measured_at, m.growth_7d_bytes)
        for m in Mailbox.objects.filter(domain=domain)
    }
    return {"samples": samples, "mailboxes": mailboxes}


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_batch_writes_what_usage_record_writes_one_by_one(operator, client_a, seed):
    """Two identical domains, the same history and the same run: one recorded by the batch,
    the other one measure at a time. Among the measures: mailboxes with samples after the
    run's time (a replayed history), one already measured at that time, one deleted since
    the run read it, an invalid value."""
    rng = random.Random(seed)
    now = timezone.now()
    run_at = now - timedelta(hours=rng.randrange(1, 48))
    plan = []
    for n in range(12):
        history = [
            # On the half hour: never at the run's time, which is on the hour.
            (now - timedelta(hours=h, minutes=30), rng.randrange(0, 40) * MIB)
            for h in rng.sample(range(0, 30 * 24), rng.randrange(0, 5))
        ]
        plan.append((f"box{n}", history))
    results = []
    for label, batched in (("batched", True), ("one-by-one", False)):
        domain = domain_add(actor=operator, client=client_a, name=f"{label}-{seed}.example")
        mailboxes = []
        for name, history in plan:
            mailbox = mailbox_create(
                actor=operator, domain=domain, username=name, password=GOOD_PASSWORD
            )
            for at, used in history:
                mailbox_usage_record(actor=operator, mailbox=mailbox, used_bytes=used, at=at)
            mailboxes.append(mailbox)
        mailbox_usage_record(
            actor=operator, mailbox=mailboxes[0], used_bytes=MIB, at=run_at
        )  # again
        mailbox_delete(actor=operator, mailbox=mailboxes[1], at=now - timedelta(minutes=1))
        measures = [
            Measure(mailbox=m, used_bytes=-1 if i == 2 else (i + 1) * MIB, messages=i)
            for i, m in enumerate(mailboxes)
        ]
        if batched:
            result = mailbox_usage_record_batch(actor=operator, measures=measures, at=run_at)
            refused = sorted((address.split("@")[0], e.code) for address, e in result.refused)
            recorded = result.recorded
        else:
            refused, recorded = [], 0
            for measure in measures:
                try:
                    mailbox_usage_record(
                        actor=operator,
                        mailbox=measure.mailbox,
                        used_bytes=measure.used_bytes,
                        messages=measure.messages,
                        at=run_at,
                    )
                    recorded += 1
                except PostdeskError as error:
                    refused.append((measure.mailbox.address.local_part, error.code))
        results.append((state(domain), sorted(refused), recorded))
    assert results[0] == results[1]
    _state, refused, recorded = results[0]
    assert refused == [("box0", "usage_sample_exists"), ("box2", "usage_invalid")]
    assert recorded == 10  # the deleted mailbox's measure, dated before its deletion, is kept


def test_a_batch_runs_a_fixed_number_of_queries(operator, domain):
    """10 or 300 mailboxes measured (one batch each): the same queries, whatever the number,
    but for the insert, which Django splits where SQLite takes at most 999 parameters a
    statement (PostgreSQL: one)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    now = timezone.now()
    others = []
    for start, count in ((0, 10), (10, 300)):
        mailboxes = [
            mailbox_create(actor=operator, domain=domain, username=f"u{n}", password=GOOD_PASSWORD)
            for n in range(start, start + count)
        ]
        for at in (now - timedelta(days=9), now - timedelta(days=1)):
            mailbox_usage_record_batch(
                actor=operator, measures=[Measure(m, 5 * MIB) for m in mailboxes], at=at
            )
        with CaptureQueriesContext(connection) as captured:
            result = mailbox_usage_record_batch(
                actor=operator, measures=[Measure(m, 8 * MIB, 3) for m in mailboxes], at=now
            )
        assert result.recorded == count and not result.refused
        inserts = [q for q in captured if q["sql"].startswith("INSERT")]
        assert 1 <= len(inserts) <= -(-count * 7 // 999)  # 7 columns a sample
        # One batch: its savepoint (a transaction outside tests), the mailboxes' lock, the
        # later samples, the latest samples closed, the insert, the usage, the growth.
        others.append(len(captured) - len(inserts) + 1)
        mailboxes[0].refresh_from_db()
        assert (mailboxes[0].used_bytes, mailboxes[0].growth_7d_bytes) == (8 * MIB, 3 * MIB)
    assert others == [query_budget("service:mailbox_usage_record_batch")] * 2


def test_a_second_measure_of_a_mailbox_at_the_same_time_is_refused(operator, domain):
    mailbox = mailbox_create(actor=operator, domain=domain, username="m", password=GOOD_PASSWORD)
    result = mailbox_usage_record_batch(
        actor=operator, measures=[Measure(mailbox, MIB), Measure(mailbox, 2 * MIB)]
    )
    assert result.recorded == 1
    assert [(a, e.code) for a, e in result.refused] == [("m@example.com", "usage_sample_exists")]
    assert list(UsageSample.objects.values_list("bytes", flat=True)) == [MIB]


def test_only_the_provider_records_usage(owner, operator, domain):
    mailbox = mailbox_create(actor=operator, domain=domain, username="m", password=GOOD_PASSWORD)
    with pytest.raises(PermissionDenied):
        mailbox_usage_record_batch(actor=owner, measures=[Measure(mailbox, MIB)])
    assert not UsageSample.objects.exists()


def test_the_collector_records_known_addresses_and_counts_the_others(operator, domain):
    """What Dovecot reported (its HTTP API is the mail-stack tests'): known mailboxes are
    measured, an address the panel no longer has is counted, a refusal is reported."""
    marie = mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    mailbox_create(actor=operator, domain=domain, username="jean", password=GOOD_PASSWORD)
    at = timezone.now() - timedelta(minutes=5)
    mailbox_usage_record(actor=operator, mailbox=marie, used_bytes=MIB, at=at)
    summary = record_usage(
        {
            "marie@example.com": (2 * MIB, 20),
            "jean@example.com": (3 * MIB, 30),
            "gone@example.com": (MIB, 1),
        },
        at=at,
    )
    assert (summary.measured, summary.unknown) == (1, 1)
    assert summary.unreported == 0  # marie was reported, only not recorded
    assert [address for address, _message in summary.refused] == ["marie@example.com"]
    assert "already recorded" in summary.refused[0][1]
    jean = Mailbox.objects.get(local_part="jean")
    assert (jean.used_bytes, jean.used_measured_at, jean.growth_7d_bytes) == (3 * MIB, at, 3 * MIB)
    # A mailbox Dovecot leaves out is counted: it keeps its last measure.
    assert record_usage({"jean@example.com": (4 * MIB, 31)}, at=at + timedelta(seconds=1)) == (
        CollectSummary(measured=1, unknown=0, refused=[], unreported=1)
    )
