"""The address list: search, type filter, storage sort, pagination, and a fixed query count."""

from __future__ import annotations

import pytest

from postdesk.errors import InvalidInput, NotFound
from postdesk.mail.choices import AddressListSort, AddressListType
from postdesk.mail.models import Domain, Mailbox
from postdesk.mail.selectors import (
    address_list,
    domain_get,
    domain_list,
    domain_with_address_list,
    forward_get,
    mailbox_get,
)
from postdesk.mail.services import domain_add, forward_create, mailbox_create
from tests.budgets import query_budget
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def populated(owner, domain):
    """marie (aliases, forwarding, 3 GB), jean (1 GB), info and orders (forwards)."""
    marie = mailbox_create(
        actor=owner,
        domain=domain,
        username="marie.dupont",
        password=GOOD_PASSWORD,
        aliases=["m.dupont", "contact"],
        destinations=["marie.perso@gmail.com"],
        eas_enabled=True,
    )
    jean = mailbox_create(
        actor=owner, domain=domain, username="jean", password=GOOD_PASSWORD, mapi_enabled=True
    )
    Mailbox.objects.filter(pk=marie.pk).update(used_bytes=3 * 1024**3)
    Mailbox.objects.filter(pk=jean.pk).update(used_bytes=1 * 1024**3)
    forward_create(
        actor=owner, domain=domain, name="info", destinations=["jean@example.com", "boss@x.org"]
    )
    forward_create(actor=owner, domain=domain, name="orders", destinations=["erp@software.org"])
    return domain


def listed(actor, domain, **kwargs) -> list[str]:
    return [row.address for row in address_list(actor=actor, domain=domain, **kwargs).rows]


def test_lists_mailboxes_and_forwards_with_their_details(owner, populated):
    page = address_list(actor=owner, domain=populated)
    assert page.total == 4
    rows = {row.address: row for row in page.rows}
    assert list(rows) == [
        "info@example.com",
        "jean@example.com",
        "marie.dupont@example.com",
        "orders@example.com",
    ]
    marie = rows["marie.dupont@example.com"]
    assert marie.type == "mailbox"
    assert marie.aliases == ["contact@example.com", "m.dupont@example.com"]
    assert marie.destinations == ["marie.perso@gmail.com"]
    assert (marie.eas_enabled, marie.mapi_enabled, marie.used_bytes) == (True, False, 3 * 1024**3)
    info = rows["info@example.com"]
    assert info.type == "forward"
    assert info.destinations == ["jean@example.com", "boss@x.org"]
    assert info.used_bytes is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dupont", ["marie.dupont@example.com"]),  # part of an address
        ("CONTACT", ["marie.dupont@example.com"]),  # part of an alias, any case
        ("m.dupont@example", ["marie.dupont@example.com"]),  # an alias as an address
        ("gmail", ["marie.dupont@example.com"]),  # a forwarding destination
        ("jean@", ["info@example.com", "jean@example.com"]),  # an address and a destination
        ("EAN@", ["info@example.com", "jean@example.com"]),  # the end of a name, any case
        ("an@ex", ["info@example.com", "jean@example.com"]),
        ("%an@", []),  # the end of a name: LIKE wildcards are searched literally too
        ("software.org", ["orders@example.com"]),
        (
            "@example.com",
            [
                "info@example.com",
                "jean@example.com",
                "marie.dupont@example.com",
                "orders@example.com",
            ],
        ),
        ("nothing-like-this", []),
        ("100%_", []),  # LIKE wildcards are searched literally
        # No name holds a NUL: it is dropped (PostgreSQL refuses it in a text).
        ("du\x00pont", ["marie.dupont@example.com"]),
    ],
)
def test_search(owner, populated, text, expected):
    assert listed(owner, populated, search=text) == expected


def test_type_filter(owner, populated):
    assert listed(owner, populated, type=AddressListType.MAILBOX) == [
        "jean@example.com",
        "marie.dupont@example.com",
    ]
    assert listed(owner, populated, type=AddressListType.FORWARD) == [
        "info@example.com",
        "orders@example.com",
    ]
    assert listed(owner, populated, type=AddressListType.FORWARD, search="jean") == [
        "info@example.com"
    ]


def test_sort_by_storage(owner, populated):
    assert listed(owner, populated, sort=AddressListSort.STORAGE)[:2] == [
        "marie.dupont@example.com",
        "jean@example.com",
    ]
    ascending = listed(owner, populated, sort=AddressListSort.STORAGE_ASC)
    assert ascending[:2] == ["jean@example.com", "marie.dupont@example.com"]


def test_pagination(owner, populated):
    first = address_list(actor=owner, domain=populated, per_page=3)
    second = address_list(actor=owner, domain=populated, per_page=3, page=2)
    assert (first.total, first.num_pages, first.has_next, first.has_previous) == (4, 2, True, False)
    assert [r.address for r in second.rows] == ["orders@example.com"]
    assert second.has_previous and not second.has_next
    # A page past the end shows the last page rather than an error.
    assert address_list(actor=owner, domain=populated, per_page=3, page=99).page == 2


def test_removed_aliases_are_not_listed(owner, populated):
    from postdesk.mail.services import alias_remove, mailbox_delete

    marie = mailbox_get(actor=owner, address="marie.dupont@example.com")
    alias_remove(actor=owner, mailbox=marie, name="contact")
    assert listed(owner, populated, search="contact") == []
    mailbox_delete(actor=owner, mailbox=marie)
    assert "marie.dupont@example.com" not in listed(owner, populated)
    assert listed(owner, populated, search="m.dupont") == []


def test_unknown_filter_or_sort_is_a_clear_error(owner, populated):
    with pytest.raises(InvalidInput):
        address_list(actor=owner, domain=populated, type="alias")
    with pytest.raises(InvalidInput):
        address_list(actor=owner, domain=populated, sort="password")


def test_another_client_sees_nothing(outsider, populated, other_domain):
    with pytest.raises(NotFound):
        address_list(actor=outsider, domain=populated)
    with pytest.raises(NotFound):
        domain_get(actor=outsider, name="example.com")
    with pytest.raises(NotFound):
        mailbox_get(actor=outsider, address="jean@example.com")
    with pytest.raises(NotFound):
        forward_get(actor=outsider, address="info@example.com")
    assert [d.name for d in domain_list(actor=outsider)] == ["example.net"]


def test_viewer_can_read(viewer, populated):
    assert address_list(actor=viewer, domain=populated).total == 4
    assert mailbox_get(actor=viewer, address="JEAN@Example.com").address.local_part == "jean"


def _fill(owner, domain, mailboxes: int) -> None:
    from bench.dataset import add_addresses

    add_addresses(domain, mailboxes=mailboxes, aliases=mailboxes, forwards=mailboxes // 5)


@pytest.mark.parametrize("search", ["", "user1"])
def test_query_count_is_fixed_whatever_the_size(owner, domain, django_assert_num_queries, search):
    """10 rows or 300 rows (several pages of 50): the same number of queries."""
    budget = query_budget("selector:address_list:search" if search else "selector:address_list")
    mailbox_create(
        actor=owner, domain=domain, username="seed", password=GOOD_PASSWORD, aliases=["s1"]
    )
    counts = []
    for extra in (10, 300):
        _fill(owner, domain, extra)
        owner._roles.clear()
        with django_assert_num_queries(budget) as captured:
            page = address_list(actor=owner, domain=domain, search=search)
        assert page.rows
        counts.append(len(captured))
    assert counts[0] == counts[1]


def _expected_order(rows, sort: str) -> list[str]:
    def storage(row, descending: bool):
        if row.used_bytes is None:  # forwards last, by name
            return (1, 0, row.local_part)
        return (0, -row.used_bytes if descending else row.used_bytes, row.local_part)

    keys = {
        AddressListSort.ADDRESS: lambda r: r.local_part,
        AddressListSort.STORAGE: lambda r: storage(r, True),
        AddressListSort.STORAGE_ASC: lambda r: storage(r, False),
        # Forwards have no growth: last, by name.
        AddressListSort.GROWTH: lambda r: (
            r.growth_7d_bytes is None,
            -(r.growth_7d_bytes or 0),
            r.local_part,
        ),
    }
    return [r.address for r in sorted(rows, key=keys[sort])]


@pytest.mark.parametrize("sort", AddressListSort.values)
@pytest.mark.parametrize("search", ["", "user1", "martin", "ops1", "zzz", "@example.c", "1@ex"])
def test_every_page_of_every_sort_and_search_follows_one_order(owner, domain, sort, search):
    """The pages are cut by the database on the sort keys alone and then read in full (or,
    searching, from the matches' ids): together they are the whole list, in order, with the
    same rows as one big page, and the total is the number of matches."""
    _fill(owner, domain, 120)
    everything = address_list(actor=owner, domain=domain, per_page=10_000).rows
    wanted = [
        r
        for r in everything
        if not search or any(search in text for text in (r.address, *r.aliases, *r.destinations))
    ]
    whole = address_list(actor=owner, domain=domain, sort=sort, search=search, per_page=10_000)
    assert [r.address for r in whole.rows] == _expected_order(wanted, sort)
    assert whole.total == len(wanted)
    paged = []
    for number in range(1, -(-len(wanted) // 25) + 1):
        page = address_list(
            actor=owner, domain=domain, sort=sort, search=search, per_page=25, page=number
        )
        assert (page.page, page.total) == (number, len(wanted))
        paged += page.rows
    assert paged == whole.rows
    # A page past the end (a stale link) shows the last page, or the empty first one.
    beyond = address_list(
        actor=owner, domain=domain, sort=sort, search=search, per_page=25, page=99
    )
    last = max(1, -(-len(wanted) // 25))
    assert (beyond.page, beyond.total) == (last, len(wanted))
    assert beyond.rows == whole.rows[(last - 1) * 25 :]
    # Cursor pages, forwards then back: the same rows, in the same order, each once.
    pages = [address_list(actor=owner, domain=domain, sort=sort, search=search, per_page=25)]
    while pages[-1].next_cursor:
        pages.append(
            address_list(
                actor=owner,
                domain=domain,
                sort=sort,
                search=search,
                per_page=25,
                cursor=pages[-1].next_cursor,
            )
        )
    assert [row for page in pages for row in page.rows] == whole.rows
    assert all(page.total == len(wanted) for page in pages)
    back = pages[-1]
    for expected in reversed(pages[:-1]):
        back = address_list(
            actor=owner,
            domain=domain,
            sort=sort,
            search=search,
            per_page=25,
            cursor=back.previous_cursor,
        )
        assert back.rows == expected.rows
    assert back.previous_cursor is None


def test_storage_sort_reads_the_covering_index_on_sqlite(owner, populated):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "sqlite":
        pytest.skip("the INDEXED BY hint is SQLite's; PostgreSQL plans with statistics")
    with CaptureQueriesContext(connection) as captured:  # a page by number: by offset
        rows = listed(owner, populated, sort=AddressListSort.STORAGE, per_page=1, page=2)
    assert rows == ["jean@example.com"]
    assert any("INDEXED BY mail_mailbox_usage_idx" in q["sql"] for q in captured)


def test_domain_summary_counts_only_the_domain_and_reads_the_last_measure(
    owner, outsider, domain, other_domain, django_assert_num_queries
):
    from datetime import UTC, datetime

    from postdesk.mail.selectors import domain_summary

    _fill(owner, domain, 40)
    _fill(owner, other_domain, 15)  # another client's: counted nowhere here
    measured = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    Mailbox.objects.filter(address__domain=domain).update(
        used_measured_at=datetime(2024, 5, 1, tzinfo=UTC)
    )
    Mailbox.objects.filter(address__domain=domain, address__local_part__startswith="a").update(
        used_measured_at=measured
    )
    Mailbox.objects.filter(address__domain=other_domain).update(used_measured_at=None)
    mailboxes = Mailbox.objects.filter(address__domain=domain)
    owner._roles.clear()
    with django_assert_num_queries(2):  # the membership, then one aggregate
        summary = domain_summary(actor=owner, domain=domain)
    assert summary.mailboxes == mailboxes.count() == 40
    assert summary.used_bytes == sum(m.used_bytes for m in mailboxes)
    assert summary.eas_accounts == mailboxes.filter(eas_enabled=True).count()
    assert summary.mapi_accounts == mailboxes.filter(mapi_enabled=True).count()
    assert (summary.aliases, summary.forwards) == (40, 8)
    assert summary.used_measured_at == measured
    with pytest.raises(NotFound):
        domain_summary(actor=outsider, domain=domain)
    empty = domain_summary(actor=outsider, domain=other_domain)
    assert empty.mailboxes == 15 and empty.used_measured_at is None


def test_the_search_has_trigram_indexes_on_postgresql():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("trigram indexes are PostgreSQL's (mail migration 0003)")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE indexname IN (%s, %s) ORDER BY indexname",
            ["mail_address_local_part_trgm", "mail_destination_email_trgm"],
        )
        assert [row[0] for row in cursor.fetchall()] == [
            "mail_address_local_part_trgm",
            "mail_destination_email_trgm",
        ]


def test_the_names_read_backwards_have_a_fine_histogram_on_postgresql():
    """The search by the end of a name ("user50000@") reads the index of reversed names
    only if the planner sees how few names match: with a hundred buckets it guessed 13,000
    rows among 1.45 million and read a whole domain instead (mail migration 0015)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the reversed names' index is PostgreSQL's (mail migration 0013)")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstattarget FROM pg_attribute"
            " WHERE attrelid = 'mail_address_local_part_reverse'::regclass AND attnum = 1"
        )
        assert cursor.fetchone()[0] == 1000


def test_a_search_on_an_absurd_page_shows_the_last_page(owner, populated):
    page = address_list(actor=owner, domain=populated, search="o", per_page=2, page=10**30)
    assert (page.page, page.total, len(page.rows)) == (2, 3, 1)


def test_every_mailbox_knows_its_domain_for_the_storage_index(owner, populated, domain):
    """Mailbox.domain (a copy of its address's domain) orders the storage sort's pages: the
    service sets it, and migration 0004 filled it for the mailboxes created before it."""
    import importlib

    from django.apps import apps

    assert Mailbox.objects.count() >= 2
    assert not Mailbox.objects.exclude(domain_id=domain.pk).exists()
    Mailbox.objects.update(domain=None)  # as before the migration
    migration = importlib.import_module("postdesk.mail.migrations.0004_mailbox_domain")
    migration.copy_domains(apps, None)
    assert not Mailbox.objects.exclude(domain_id=domain.pk).exists()
    # Pages within the mailboxes come off the index, in the same order as the whole list.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    whole = listed(owner, populated, sort=AddressListSort.STORAGE)
    with CaptureQueriesContext(connection) as captured:
        first = listed(owner, populated, sort=AddressListSort.STORAGE, per_page=1)
    second = listed(owner, populated, sort=AddressListSort.STORAGE, per_page=1, page=2)
    assert first + second == whole[:2] == ["marie.dupont@example.com", "jean@example.com"]
    assert any('FROM "mail_mailbox"' in q["sql"] and "domain_id" in q["sql"] for q in captured)


def _as_shown(domain, page) -> tuple:
    return (domain.pk, domain.name, page.total, page.next_cursor is None, page.rows)


def test_a_first_page_read_with_its_domain_is_the_same_page(owner, populated):
    """domain_with_address_list reads the whole list's first page of a domain seen before
    beside the domain's own read (one round trip on PostgreSQL): the same domain and page as
    domain_get then address_list, in every type and sort."""
    domain_get(actor=owner, name="example.com")  # seen: the next read is together
    for type_ in AddressListType.values:
        for sort in AddressListSort.values:
            expected = address_list(actor=owner, domain=populated, type=type_, sort=sort)
            domain, page = domain_with_address_list(
                actor=owner, name="EXAMPLE.com", type=type_, sort=sort
            )
            assert _as_shown(domain, page) == _as_shown(populated, expected)


def test_a_first_page_read_for_an_old_id_is_read_again(owner, operator, client_a, populated):
    """A domain made again under the same name has another id: the page read for the id the
    process knew is dropped and the new domain's read."""
    domain_get(actor=owner, name="example.com")
    Domain.objects.filter(pk=populated.pk).delete()
    again = domain_add(actor=operator, client=client_a, name="example.com")
    forward_create(actor=operator, domain=again, name="new", destinations=["x@example.org"])
    domain, page = domain_with_address_list(actor=owner, name="example.com")
    assert domain.pk == again.pk
    assert [row.address for row in page.rows] == ["new@example.com"]
    assert page.total == 1


def test_a_first_page_read_with_its_domain_is_refused_without_access(owner, outsider, populated):
    """Another client's user, even for a domain this process knows, gets the domain's "not
    found" as with domain_get, and no row of it."""
    domain_with_address_list(actor=owner, name="example.com")
    with pytest.raises(NotFound):
        domain_with_address_list(actor=outsider, name="example.com")
    with pytest.raises(NotFound):
        domain_get(actor=outsider, name="example.com")
