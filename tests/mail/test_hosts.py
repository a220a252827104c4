"""Mail hosts and homes: every new mailbox gets the least loaded active backend as its home
(ties by name, a client's pinned hosts first), a draining host takes none, and an install with
no backend registered keeps working as the single host it was (no home, nothing else asked of
it). Only the operator manages or sees any of it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from postdesk.audit.models import AuditEvent
from postdesk.dataplane.models import Host
from postdesk.errors import PermissionDenied, PostdeskError, ValidationFailed
from postdesk.mail.hosts import home_choose, host_add, host_drain, host_list
from postdesk.mail.models import HostLoadChange, Mailbox
from postdesk.mail.services import host_loads_compact, mailbox_create, mailbox_delete
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db


def create(actor, domain, name: str) -> Mailbox:
    return mailbox_create(actor=actor, domain=domain, username=name, password=GOOD_PASSWORD)


def homes(*names: str) -> list[str | None]:
    """Each mailbox's home host by name (None: no home)."""
    found = dict(Mailbox.objects.values_list("local_part", "home__name"))
    return [found[name] for name in names]


def add(operator, name: str, address: str = "192.0.2.10", roles=("backend",)):
    return host_add(actor=operator, name=name, address=address, roles=roles)


def test_without_hosts_a_mailbox_has_no_home_and_nothing_else_changes(operator, domain):
    box = create(operator, domain, "anna")

    assert box.home is None
    assert host_list(actor=operator) == []


def test_the_least_loaded_active_backend_is_the_home_ties_by_name(operator, domain):
    add(operator, "mail2", "192.0.2.2")
    add(operator, "mail1", "192.0.2.1")
    add(operator, "mx1", "192.0.2.9", roles=["mx", "proxy"])  # not a backend: never a home

    for name in ("a", "b", "c", "d", "e"):
        create(operator, domain, name)

    # Ties go to the first name; then each creation evens the counts out.
    assert homes("a", "b", "c", "d", "e") == ["mail1", "mail2", "mail1", "mail2", "mail1"]
    counts = {row.name: row.mailboxes for row in host_list(actor=operator)}
    assert counts == {"mail1": 3, "mail2": 2, "mx1": 0}


def test_a_draining_host_takes_no_new_mailbox_and_keeps_its_own(operator, domain):
    add(operator, "mail1", "192.0.2.1")
    create(operator, domain, "a")
    add(operator, "mail2", "192.0.2.2")

    drained = host_drain(actor=operator, name="mail1")
    for name in ("b", "c"):
        create(operator, domain, name)

    assert drained.state == "draining"
    assert homes("a", "b", "c") == ["mail1", "mail2", "mail2"]
    rows = {row.name: (row.state, row.mailboxes) for row in host_list(actor=operator)}
    assert rows == {"mail1": ("draining", 1), "mail2": ("active", 2)}


def test_every_backend_draining_leaves_new_mailboxes_without_a_home(operator, domain):
    add(operator, "mail1", "192.0.2.1")
    host_drain(actor=operator, name="mail1")

    assert home_choose(client_id=domain.client_id) is None


def test_the_first_backend_becomes_the_home_of_the_mailboxes_without_one(operator, domain):
    create(operator, domain, "before1")
    create(operator, domain, "before2")

    add(operator, "front", "192.0.2.9", roles=["mx", "proxy"])  # not a backend: adopts none
    assert homes("before1", "before2") == [None, None]
    first = add(operator, "mail1", "192.0.2.1", roles=["backend", "mx", "proxy"])
    second = add(operator, "mail2", "192.0.2.2")

    assert (first.mailboxes_adopted, second.mailboxes_adopted) == (2, 0)
    assert homes("before1", "before2") == ["mail1", "mail1"]
    event = AuditEvent.objects.get(action="host.add", target="mail1")
    assert event.client_id is None
    assert event.changes == {
        "address": "192.0.2.1",
        "roles": ["backend", "mx", "proxy"],
        "mailboxes": 2,
    }


def loads(operator) -> dict[str, int]:
    return {row.name: row.mailboxes for row in host_list(actor=operator)}


def test_a_hosts_load_follows_every_write_and_survives_compaction(operator, domain):
    """The load is kept by the database's triggers as mailboxes come, go and move, whatever
    writes them, and reads the same once the job folded its changes."""
    mail1 = add(operator, "mail1", "192.0.2.1").host
    mail2 = add(operator, "mail2", "192.0.2.2").host
    boxes = [create(operator, domain, name) for name in ("a", "b", "c", "d")]
    assert loads(operator) == {"mail1": 2, "mail2": 2}

    mailbox_delete(actor=operator, mailbox=boxes[0])  # on mail1
    # A move's switch, and a bulk change of home written straight to the table.
    Mailbox.objects.filter(pk=boxes[1].pk).update(home=mail1)  # mail2 -> mail1
    Mailbox.objects.filter(pk__in=[boxes[2].pk, boxes[3].pk]).update(home=mail2)
    Mailbox.objects.filter(pk=boxes[3].pk).update(home=mail2)  # no change: nothing appended
    assert loads(operator) == {"mail1": 1, "mail2": 2}
    assert loads(operator) == {
        host.name: Mailbox.objects.filter(home=host).count() for host in (mail1, mail2)
    }

    changes = HostLoadChange.objects.count()
    done = host_loads_compact()
    assert done.folded == changes and done.kept == 2
    assert HostLoadChange.objects.count() == 2
    assert loads(operator) == {"mail1": 1, "mail2": 2}


def test_a_pinned_client_gets_its_own_hosts(settings, operator, domain, other_domain):
    add(operator, "mail1", "192.0.2.1")
    add(operator, "mail2", "192.0.2.2")
    add(operator, "mail3", "192.0.2.3")
    settings.POSTDESK_CLIENT_HOSTS = {domain.client_id: ("mail2", "mail3")}

    for name in ("a", "b", "c"):
        create(operator, domain, name)
    create(operator, other_domain, "other")  # unpinned: any backend, the least loaded

    assert homes("a", "b", "c") == ["mail2", "mail3", "mail2"]
    assert homes("other") == ["mail1"]


def test_a_pin_to_no_active_backend_falls_back_to_every_backend(settings, operator, domain, caplog):
    add(operator, "mail1", "192.0.2.1")
    add(operator, "mail2", "192.0.2.2")
    host_drain(actor=operator, name="mail2")
    settings.POSTDESK_CLIENT_HOSTS = {domain.client_id: ("mail2", "gone")}

    create(operator, domain, "a")

    assert homes("a") == ["mail1"]
    assert "none of client" in caplog.text and "mail2, gone" in caplog.text


def test_the_host_list_is_one_query_whatever_the_numbers(operator, domain):
    for i in range(3):
        add(operator, f"mail{i}", f"192.0.2.{i + 1}")
    for i in range(6):
        create(operator, domain, f"box{i}")

    with CaptureQueriesContext(connection) as queries:
        rows = host_list(actor=operator)

    assert len(queries) == 1
    assert [(row.name, row.mailboxes) for row in rows] == [
        ("mail0", 2),
        ("mail1", 2),
        ("mail2", 2),
    ]
    assert rows[0].address == "192.0.2.1" and rows[0].roles == ["backend"]


def _error_codes(error: PostdeskError) -> list[str]:
    return [e.code for e in error.errors]


@pytest.mark.parametrize(
    ("name", "address", "roles", "code"),
    [
        ("mail 1", "192.0.2.1", ["backend"], "host_name_invalid"),
        ("", "192.0.2.1", ["backend"], "host_name_invalid"),
        ("mail1", "192.0.2.300", ["backend"], "host_address_invalid"),
        ("mail1", "mail.example", ["backend"], "host_address_invalid"),
        ("mail1", "192.0.2.1", ["backend", "imap"], "host_role_invalid"),
        ("mail1", "192.0.2.1", [""], "host_role_invalid"),
    ],
)
def test_a_bad_host_is_refused_and_nothing_is_written(operator, name, address, roles, code):
    with pytest.raises((ValidationFailed, PostdeskError)) as raised:
        host_add(actor=operator, name=name, address=address, roles=roles)

    assert _error_codes(raised.value) == [code]
    assert not Host.objects.exists()


def test_a_taken_name_and_an_unknown_host_are_refused(operator):
    add(operator, "mail1")

    with pytest.raises(PostdeskError) as taken:
        add(operator, "MAIL1", "192.0.2.2")
    with pytest.raises(PostdeskError) as unknown:
        host_drain(actor=operator, name="mail9")

    assert _error_codes(taken.value) == ["host_taken"]
    assert _error_codes(unknown.value) == ["not_found"]
    assert Host.objects.count() == 1


def test_an_ipv6_address_is_kept_and_a_mapped_ipv4_unpacked(operator):
    add(operator, "mail6", "2001:DB8:0:0::10")
    add(operator, "mail4", "::ffff:192.0.2.4")

    assert {row.name: row.address for row in host_list(actor=operator)} == {
        "mail4": "192.0.2.4",
        "mail6": "2001:db8::10",
    }


def test_only_the_operator_manages_or_lists_hosts(owner, operator):
    add(operator, "mail1")

    for attempt in (
        lambda: host_add(actor=owner, name="mail2", address="192.0.2.2", roles=["backend"]),
        lambda: host_drain(actor=owner, name="mail1"),
        lambda: host_list(actor=owner),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
    assert Host.objects.get().state == "active"
