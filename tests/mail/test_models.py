"""The rules the database itself enforces, whoever writes to it (the services, an operator's
SQL, a future importer): one owner per local part per domain, lowercase names, consistent
reservations, no repeated destination."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from postdesk.mail.choices import AddressKind
from postdesk.mail.models import Address, Destination

pytestmark = pytest.mark.django_db


def insert(domain, local_part: str, kind: str = AddressKind.MAILBOX, **extra) -> Address:
    return Address.objects.create(domain=domain, local_part=local_part, kind=kind, **extra)


def refused(func) -> bool:
    try:
        with transaction.atomic():
            func()
    except IntegrityError:
        return True
    return False


@pytest.mark.parametrize(
    "second_kind", [AddressKind.MAILBOX, AddressKind.ALIAS, AddressKind.FORWARD]
)
def test_one_local_part_per_domain_across_every_kind(domain, second_kind):
    insert(domain, "info", AddressKind.ALIAS)
    assert refused(lambda: insert(domain, "info", second_kind))


def test_a_reserved_alias_holds_its_name(domain):
    insert(domain, "old", AddressKind.RELEASED, available_at=timezone.now())
    assert refused(lambda: insert(domain, "old", AddressKind.MAILBOX))


def test_names_are_stored_lowercase(domain):
    assert refused(lambda: insert(domain, "Info"))


def test_name_length_is_bounded(domain):
    assert refused(lambda: insert(domain, ""))


def test_reservation_and_expiry_go_together(domain):
    assert refused(lambda: insert(domain, "a", AddressKind.RELEASED))
    assert refused(lambda: insert(domain, "b", AddressKind.ALIAS, available_at=timezone.now()))
    assert refused(lambda: insert(domain, "c", "bogus"))


def test_the_same_name_in_two_domains_is_fine(domain, other_domain):
    insert(domain, "info")
    insert(other_domain, "info")
    assert Address.objects.filter(local_part="info").count() == 2


def test_a_destination_appears_once_per_list(domain):
    address = insert(domain, "info", AddressKind.FORWARD)
    Destination.objects.create(address=address, email="a@x.org")
    assert refused(lambda: Destination.objects.create(address=address, email="a@x.org", position=1))
    assert refused(lambda: Destination.objects.create(address=address, email="B@x.org"))
