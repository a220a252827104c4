"""Two requests racing for one address: one wins, the other gets a clean "taken" error.

Real threads with their own database connections, on SQLite and on PostgreSQL; the database's
unique constraint decides, not a check in Python that both racers could pass.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction

from postdesk.errors import AddressTaken
from postdesk.mail.hosts import host_add, host_drain
from postdesk.mail.models import Address, DomainTotalsChange, Forward, Mailbox
from postdesk.mail.selectors import domain_summary
from postdesk.mail.services import (
    domain_totals_compact,
    forward_create,
    mailbox_create,
    mailbox_delete,
)
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def race(*attempts: Callable[[], object]) -> list[object]:
    """Run the attempts at the same instant in threads; return each result or exception."""
    barrier = threading.Barrier(len(attempts))
    results: list[object] = [None] * len(attempts)

    def run(i: int, attempt: Callable[[], object]) -> None:
        try:
            barrier.wait()
            results[i] = attempt()
        except Exception as error:
            results[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def outcome(results: list[object]) -> tuple[int, int]:
    unexpected = [
        r for r in results if isinstance(r, Exception) and not isinstance(r, AddressTaken)
    ]
    assert not unexpected, unexpected
    return (
        sum(not isinstance(r, Exception) for r in results),
        sum(isinstance(r, AddressTaken) for r in results),
    )


@pytest.mark.parametrize("repeat", range(3))
def test_two_mailboxes_with_the_same_name(owner, domain, repeat):
    def create():
        return mailbox_create(actor=owner, domain=domain, username="info", password=GOOD_PASSWORD)

    assert outcome(race(create, create)) == (1, 1)
    assert Address.objects.filter(local_part="info").count() == 1
    assert Mailbox.objects.count() == 1


def test_mailbox_alias_and_forward_race_for_one_name(owner, domain):
    mailbox_create(actor=owner, domain=domain, username="marie", password=GOOD_PASSWORD)

    def as_mailbox():
        return mailbox_create(actor=owner, domain=domain, username="info", password=GOOD_PASSWORD)

    def as_alias():
        return mailbox_create(
            actor=owner, domain=domain, username="jean", password=GOOD_PASSWORD, aliases=["info"]
        )

    def as_forward():
        return forward_create(actor=owner, domain=domain, name="info", destinations=["a@x.org"])

    results = race(as_mailbox, as_alias, as_forward)
    assert outcome(results) == (1, 2)
    assert Address.objects.filter(local_part="info").count() == 1
    # When the alias racer lost, the mailbox "jean" it came with was not created either.
    mailbox_won, alias_won, forward_won = (not isinstance(r, Exception) for r in results)
    assert Address.objects.filter(local_part="jean").exists() == alias_won
    assert Mailbox.objects.count() == 1 + mailbox_won + alias_won
    assert Forward.objects.count() == forward_won


def test_mailboxes_created_at_once_all_get_a_home(operator, owner, domain):
    """Creations racing for the least loaded backend may pick the same one (each reads the
    counts before the other commits): the balance is not exact, but every one succeeds and
    lands on an active backend."""
    for name, address in (("mail1", "192.0.2.1"), ("mail2", "192.0.2.2")):
        host_add(actor=operator, name=name, address=address, roles=["backend"])
    host_add(actor=operator, name="old", address="192.0.2.3", roles=["backend"])
    host_drain(actor=operator, name="old")

    def create(name: str) -> Callable[[], object]:
        return lambda: mailbox_create(
            actor=owner, domain=domain, username=name, password=GOOD_PASSWORD
        )

    results = race(*(create(f"box{i}") for i in range(6)))

    assert not [r for r in results if isinstance(r, Exception)], results
    homes = list(Mailbox.objects.values_list("home__name", flat=True))
    assert len(homes) == 6
    assert set(homes) <= {"mail1", "mail2"}


def test_a_writer_does_not_wait_for_another_writer_of_the_domain(owner, domain):
    # A domain's counts used to be one row every write updated in its transaction: a second
    # writer of the domain waited for the first to commit, and two writers that had taken
    # other rows first (a name, a mailbox) deadlocked. Now each write appends its change.
    # SQLite lets one writer in at a time (the database's lock), so only PostgreSQL can show it.
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes every writer")
    first_written, first_may_commit = threading.Event(), threading.Event()

    def first() -> None:
        with transaction.atomic():
            mailbox_create(actor=owner, domain=domain, username="first", password=GOOD_PASSWORD)
            first_written.set()
            first_may_commit.wait(30)

    def second() -> object:
        first_written.wait(30)
        return forward_create(actor=owner, domain=domain, name="second", destinations=["a@x.org"])

    with ThreadPoolExecutor(2) as pool:
        first_done = pool.submit(_closing(first))
        second_done = pool.submit(_closing(second))
        try:
            # The first writer's transaction is still open while the second commits.
            assert isinstance(second_done.result(timeout=10), Forward)
            assert not first_done.done()
        finally:
            first_may_commit.set()
        first_done.result(timeout=30)
    assert domain_summary(actor=owner, domain=domain).mailboxes == 1
    assert domain_summary(actor=owner, domain=domain).forwards == 1


def test_compaction_racing_writers_keeps_every_count(owner, domain):
    mailboxes = [
        mailbox_create(actor=owner, domain=domain, username=f"m{n}", password=GOOD_PASSWORD)
        for n in range(6)
    ]

    def create(n: int) -> Callable[[], object]:
        return lambda: mailbox_create(
            actor=owner,
            domain=domain,
            username=f"new{n}",
            password=GOOD_PASSWORD,
            aliases=[f"a{n}"],
        )

    def delete(mailbox: Mailbox) -> Callable[[], object]:
        return lambda: mailbox_delete(actor=owner, mailbox=mailbox)

    results = race(
        domain_totals_compact,
        *(create(n) for n in range(3)),
        domain_totals_compact,
        *(delete(mailbox) for mailbox in mailboxes[:3]),
        domain_totals_compact,
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    for _ in range(2):  # as written, then folded
        summary = domain_summary(actor=owner, domain=domain)
        assert summary.mailboxes == Mailbox.objects.count() == 6
        assert summary.aliases == Address.objects.filter(kind="alias").count() == 3
        domain_totals_compact()
    assert DomainTotalsChange.objects.filter(domain=domain).count() == 1


def _closing(work: Callable[[], object]) -> Callable[[], object]:
    """`work` in a thread that closes its own database connection when done."""

    def run() -> object:
        try:
            return work()
        finally:
            connection.close()

    return run
