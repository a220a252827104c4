"""The address list: search, type filter, storage sort, pagination, and a fixed query count."""

from __future__ import annotations

import pytest

from postdesk.errors import InvalidInput, NotFound
from postdesk.mail.choices import AddressListSort, AddressListType
from postdesk.mail.models import Mailbox
from postdesk.mail.selectors import (
    address_list,
    domain_get,
    domain_list,
    forward_get,
    mailbox_get,
)
from postdesk.mail.services import forward_create, mailbox_create
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
