"""Collector runs racing each other (a cron run that overlaps the next), a single measure and
a mailbox's deletion: real threads with their own connections, on SQLite and PostgreSQL.
Whatever the order the database lets them in, each mailbox's chain of samples stays whole
and its usage and growth follow its samples."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from postdesk.billing.models import UsageSample
from postdesk.billing.selectors import GROWTH_WINDOW
from postdesk.mail.models import Mailbox
from postdesk.mail.services import (
    Measure,
    mailbox_create,
    mailbox_delete,
    mailbox_usage_record,
    mailbox_usage_record_batch,
)
from tests.conftest import GOOD_PASSWORD
from tests.mail.test_concurrency import race

pytestmark = pytest.mark.django_db(transaction=True)
MIB = 1024**2


def chains_are_whole() -> None:
    """Each mailbox's samples, by time, each held until the next; the latest open."""
    by_key: dict[int, list[tuple]] = {}
    for key, at, until in UsageSample.objects.order_by("mailbox_key", "at").values_list(
        "mailbox_key", "at", "until"
    ):
        by_key.setdefault(key, []).append((at, until))
    for key, samples in by_key.items():
        times = [at for at, _until in samples]
        assert [until for _at, until in samples] == [*times[1:], None], key


def usage_follows_the_samples() -> None:
    for mailbox in Mailbox.objects.all():
        samples = list(
            UsageSample.objects.filter(mailbox_key=mailbox.pk)
            .order_by("at")
            .values_list("at", "bytes")
        )
        latest_at, latest_bytes = samples[-1]
        before = [b for at, b in samples if at <= latest_at - GROWTH_WINDOW]
        assert mailbox.used_bytes == latest_bytes
        assert mailbox.used_measured_at == latest_at
        assert mailbox.growth_7d_bytes == latest_bytes - (before[-1] if before else 0)


@pytest.mark.parametrize("repeat", range(3))
def test_overlapping_runs_a_measure_and_a_deletion(operator, domain, repeat):
    mailboxes = [
        mailbox_create(actor=operator, domain=domain, username=f"m{n}", password=GOOD_PASSWORD)
        for n in range(30)
    ]
    now = timezone.now()
    mailbox_usage_record_batch(
        actor=operator, measures=[Measure(m, MIB) for m in mailboxes], at=now - timedelta(days=8)
    )
    first_run, second_run = now - timedelta(minutes=10), now - timedelta(minutes=5)

    def run(at, size):
        return mailbox_usage_record_batch(
            actor=operator, measures=[Measure(m, size) for m in mailboxes], at=at
        )

    results = race(
        lambda: run(second_run, 3 * MIB),
        lambda: run(first_run, 2 * MIB),  # the earlier run, late: its samples go in between
        lambda: mailbox_usage_record(
            actor=operator, mailbox=mailboxes[1], used_bytes=7 * MIB, at=now - timedelta(days=1)
        ),
        lambda: mailbox_delete(actor=operator, mailbox=mailboxes[0], at=now - timedelta(minutes=1)),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    for run_result in results[:2]:
        # Every measure recorded: the deleted mailbox's too, as it was measured before.
        assert (run_result.recorded, run_result.refused) == (30, [])
    chains_are_whole()
    usage_follows_the_samples()
    assert not Mailbox.objects.filter(pk=mailboxes[0].pk).exists()
    # The deletion is the deleted mailbox's last sample: it stores nothing from then on.
    assert UsageSample.objects.filter(mailbox_key=mailboxes[0].pk).latest("at").bytes == 0
    assert Mailbox.objects.get(pk=mailboxes[2].pk).used_bytes == 3 * MIB


@pytest.mark.parametrize("repeat", range(3))
def test_late_measures_of_a_deleted_mailbox_keep_its_chain_whole(operator, domain, repeat):
    # A deleted mailbox has no row to lock: its late measures (a collector's runs that read it
    # before the deletion) must still go into its chain one at a time.
    mailbox = mailbox_create(actor=operator, domain=domain, username="gone", password=GOOD_PASSWORD)
    now = timezone.now()
    mailbox_usage_record(
        actor=operator, mailbox=mailbox, used_bytes=MIB, at=now - timedelta(days=8)
    )
    mailbox_delete(actor=operator, mailbox=mailbox, at=now - timedelta(seconds=1))
    late = [now - timedelta(minutes=minutes) for minutes in range(10, 70, 10)]
    results = race(
        *(
            lambda at=at: mailbox_usage_record(
                actor=operator, mailbox=mailbox, used_bytes=MIB, at=at
            )
            for at in late
        )
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    chains_are_whole()
    assert UsageSample.objects.filter(mailbox_key=mailbox.pk).count() == 2 + len(late)
