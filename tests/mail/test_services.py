"""The services: every write the client area, the API and the CLI make."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from postdesk.audit.models import AuditEvent
from postdesk.dataplane.passwords import verify_password
from postdesk.errors import (
    AddressTaken,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PostdeskError,
)
from postdesk.mail.choices import AddressKind
from postdesk.mail.models import Address, Alias, Destination, Forward, Mailbox
from postdesk.mail.services import (
    alias_add,
    alias_remove,
    domain_add,
    forward_create,
    forward_delete,
    forward_update,
    mailbox_create,
    mailbox_delete,
    mailbox_set_password,
    mailbox_update,
)
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db


def make_mailbox(actor, domain, username="marie.dupont", **kwargs) -> Mailbox:
    return mailbox_create(
        actor=actor, domain=domain, username=username, password=GOOD_PASSWORD, **kwargs
    )


def addresses(domain) -> dict[str, str]:
    return dict(Address.objects.filter(domain=domain).values_list("local_part", "kind"))


# --- Mailbox creation ----------------------------------------------------------------------------


def test_create_mailbox_with_every_setting(owner, domain):
    mailbox = make_mailbox(
        owner,
        domain,
        username="Marie.Dupont",
        aliases=["m.dupont", "MARIE"],
        quota_mb=5120,
        destinations=["Marie@Gmail.com"],
        delete_after_forwarding=True,
        keep_original_sender=True,
        eas_enabled=True,
        mapi_enabled=True,
    )
    mailbox.refresh_from_db()
    assert mailbox.address.local_part == "marie.dupont"
    assert mailbox.quota_mb == 5120
    assert (mailbox.delete_after_forwarding, mailbox.keep_original_sender) == (True, True)
    assert (mailbox.eas_enabled, mailbox.mapi_enabled) == (True, True)
    assert sorted(a.address.local_part for a in mailbox.aliases.all()) == ["m.dupont", "marie"]
    assert list(mailbox.address.destinations.values_list("email", flat=True)) == ["marie@gmail.com"]
    assert mailbox.password_hash.startswith("{ARGON2ID}$argon2id$")
    assert verify_password(GOOD_PASSWORD, mailbox.password_hash)
    assert GOOD_PASSWORD not in mailbox.password_hash


def test_every_invalid_field_is_reported_at_once_and_nothing_is_written(owner, domain):
    with pytest.raises(PostdeskError) as caught:
        mailbox_create(
            actor=owner,
            domain=domain,
            username="bad..name",
            password="short",
            aliases=["ok", "no way"],
            quota_mb=-1,
            destinations=["not-an-address"],
        )
    fields = {e.field for e in caught.value.errors}
    # The password too, though the username is not valid: every field in one round (#14).
    assert fields == {"username", "password", "aliases", "quota_mb", "destinations"}
    assert not Address.objects.exists()
    assert not AuditEvent.objects.filter(action="mailbox.create").exists()


def test_weak_password_is_refused_and_nothing_is_written(owner, domain):
    with pytest.raises(InvalidInput) as caught:
        mailbox_create(actor=owner, domain=domain, username="marie", password="Marie-2024-ab!")
    assert caught.value.code == "password_weak"
    assert caught.value.field == "password"
    assert "Marie-2024-ab!" not in str(caught.value.message)
    assert not Mailbox.objects.exists()


def test_password_confirmation_must_match(owner, domain):
    with pytest.raises(InvalidInput) as caught:
        mailbox_create(
            actor=owner,
            domain=domain,
            username="marie",
            password=GOOD_PASSWORD,
            password_confirmation=GOOD_PASSWORD + "x",
        )
    assert caught.value.code == "password_mismatch"
    assert caught.value.field == "password_confirmation"


@pytest.mark.parametrize("quota", [-1, 10 * 1024 * 1024 + 1, True, "5"])
def test_quota_outside_the_rule_is_refused(owner, domain, quota):
    with pytest.raises(InvalidInput) as caught:
        make_mailbox(owner, domain, quota_mb=quota)
    assert caught.value.field == "quota_mb"


def test_quota_zero_means_plan_limit_only(owner, domain):
    assert make_mailbox(owner, domain, quota_mb=0).quota_mb == 0


@pytest.mark.parametrize("taken_by", ["mailbox", "alias", "forward"])
def test_one_namespace_per_domain(owner, domain, taken_by):
    if taken_by == "mailbox":
        make_mailbox(owner, domain, username="info")
    elif taken_by == "alias":
        make_mailbox(owner, domain, username="marie", aliases=["info"])
    else:
        forward_create(actor=owner, domain=domain, name="info", destinations=["a@example.org"])
    with pytest.raises(AddressTaken) as caught:
        make_mailbox(owner, domain, username="INFO")
    assert caught.value.code == "address_taken"
    assert caught.value.status == 409
    with pytest.raises(AddressTaken):
        make_mailbox(owner, domain, username="jean", aliases=["info"])
    with pytest.raises(AddressTaken):
        forward_create(actor=owner, domain=domain, name="info", destinations=["b@example.org"])
    assert not Address.objects.filter(local_part="jean").exists()


def test_same_name_in_another_domain_is_free(owner, domain, operator):
    second = domain_add(actor=operator, client=domain.client, name="example.org")
    make_mailbox(owner, domain, username="info")
    assert make_mailbox(owner, second, username="info").address.domain == second


def test_alias_cannot_repeat_or_be_the_mailbox_itself(owner, domain):
    with pytest.raises(InvalidInput) as caught:
        make_mailbox(owner, domain, username="marie", aliases=["Marie"])
    assert caught.value.code == "alias_is_mailbox"
    with pytest.raises(InvalidInput) as caught:
        make_mailbox(owner, domain, username="marie", aliases=["m", "M"])
    assert caught.value.code == "alias_duplicate"


def test_an_alias_added_twice_or_already_there_is_refused_and_nothing_changes(owner, domain):
    mailbox = make_mailbox(owner, domain, username="marie", aliases=["m"])
    for add in (["m"], ["dupont", "Dupont"]):
        with pytest.raises(InvalidInput) as caught:
            mailbox_update(actor=owner, mailbox=mailbox, add_aliases=add, quota_mb=1)
        assert caught.value.code == "alias_duplicate"
        assert caught.value.message == f"{add[-1].lower()}@example.com is already in the list."
    with pytest.raises(InvalidInput) as caught:
        mailbox_update(actor=owner, mailbox=mailbox, aliases=["x", "X"])
    assert caught.value.code == "alias_duplicate"
    mailbox.refresh_from_db()
    assert [a.address.local_part for a in mailbox.aliases.all()] == ["m"]
    assert mailbox.quota_mb != 1


def test_mailbox_cannot_forward_to_itself_or_its_aliases(owner, domain):
    with pytest.raises(InvalidInput) as caught:
        make_mailbox(owner, domain, username="marie", aliases=["m"], destinations=["M@example.com"])
    assert caught.value.code == "destination_self"
    with pytest.raises(InvalidInput) as caught:
        make_mailbox(owner, domain, destinations=["a@example.org", "A@example.org"])
    assert caught.value.code == "destination_duplicate"


# --- Mailbox edits -------------------------------------------------------------------------------


def test_update_changes_only_what_is_given(owner, domain):
    mailbox = make_mailbox(owner, domain, quota_mb=100, eas_enabled=True, destinations=["a@x.org"])
    mailbox_update(actor=owner, mailbox=mailbox, quota_mb=200, mapi_enabled=True)
    mailbox.refresh_from_db()
    assert (mailbox.quota_mb, mailbox.eas_enabled, mailbox.mapi_enabled) == (200, True, True)
    assert list(mailbox.address.destinations.values_list("email", flat=True)) == ["a@x.org"]
    event = AuditEvent.objects.filter(action="mailbox.update").get()
    assert event.changes == {"quota_mb": [100, 200], "mapi_enabled": [False, True]}


def test_destinations_are_replaced_and_cleared(owner, domain):
    mailbox = make_mailbox(owner, domain, destinations=["a@x.org", "b@x.org"])
    mailbox_update(actor=owner, mailbox=mailbox, destinations=["c@x.org", "a@x.org"])
    assert list(mailbox.address.destinations.values_list("email", flat=True)) == [
        "c@x.org",
        "a@x.org",
    ]
    mailbox_update(actor=owner, mailbox=mailbox, destinations=[])
    assert not Destination.objects.exists()


def test_failed_update_changes_nothing(owner, domain):
    mailbox = make_mailbox(owner, domain, aliases=["m"], quota_mb=100)
    make_mailbox(owner, domain, username="jean")
    with pytest.raises(AddressTaken):
        mailbox_update(actor=owner, mailbox=mailbox, quota_mb=999, aliases=["free", "jean"])
    mailbox.refresh_from_db()
    assert mailbox.quota_mb == 100
    assert addresses(domain) == {"marie.dupont": "mailbox", "m": "alias", "jean": "mailbox"}


def test_alias_add_and_remove(owner, domain):
    mailbox = make_mailbox(owner, domain)
    alias_add(actor=owner, mailbox=mailbox, name="M.Dupont")
    assert addresses(domain)["m.dupont"] == AddressKind.ALIAS
    alias_remove(actor=owner, mailbox=mailbox, name="m.dupont")
    assert not Alias.objects.exists()
    with pytest.raises(InvalidInput) as caught:
        alias_remove(actor=owner, mailbox=mailbox, name="never-there")
    assert caught.value.code == "alias_not_found"


def test_removed_alias_is_reserved_for_the_delay_then_free(owner, domain, settings):
    settings.POSTDESK_ALIAS_REUSE_DELAY = timedelta(minutes=15)
    marie = make_mailbox(owner, domain, username="marie", aliases=["contact"])
    jean = make_mailbox(owner, domain, username="jean")
    alias_remove(actor=owner, mailbox=marie, name="contact")

    reserved = Address.objects.get(local_part="contact")
    assert reserved.kind == AddressKind.RELEASED
    delay = reserved.available_at - timezone.now()
    assert timedelta(minutes=14) < delay <= timedelta(minutes=15)
    for attempt in (
        lambda: alias_add(actor=owner, mailbox=jean, name="contact"),
        lambda: alias_add(actor=owner, mailbox=marie, name="contact"),
        lambda: make_mailbox(owner, domain, username="contact"),
        lambda: forward_create(
            actor=owner, domain=domain, name="contact", destinations=["a@x.org"]
        ),
    ):
        with pytest.raises(AddressTaken) as caught:
            attempt()
        assert "reserved" in str(caught.value.message)

    # Once the delay has passed, anyone may take the name.
    Address.objects.filter(pk=reserved.pk).update(available_at=timezone.now())
    alias_add(actor=owner, mailbox=jean, name="contact")
    assert Alias.objects.get(address__local_part="contact").mailbox == jean


def test_reuse_delay_is_configurable(owner, domain, settings):
    settings.POSTDESK_ALIAS_REUSE_DELAY = timedelta(minutes=2)
    marie = make_mailbox(owner, domain, aliases=["contact"])
    alias_remove(actor=owner, mailbox=marie, name="contact")
    delay = Address.objects.get(local_part="contact").available_at - timezone.now()
    assert timedelta(minutes=1) < delay <= timedelta(minutes=2)


def test_delete_mailbox_deletes_its_aliases_and_reserves_them(owner, domain):
    mailbox = make_mailbox(owner, domain, aliases=["m", "md"], destinations=["a@x.org"])
    mailbox_delete(actor=owner, mailbox=mailbox)
    assert not Mailbox.objects.exists()
    assert not Alias.objects.exists()
    assert not Destination.objects.exists()
    assert addresses(domain) == {"m": "released", "md": "released"}
    # The mailbox's own name is free again at once, with a new, empty storage location.
    again = make_mailbox(owner, domain)
    assert again.storage_id != mailbox.storage_id


def test_set_password_is_an_admin_reset(owner, domain):
    mailbox = make_mailbox(owner, domain)
    before = mailbox.password_changed_at
    mailbox_set_password(actor=owner, mailbox=mailbox, password="New-Secret-42xy")
    mailbox.refresh_from_db()
    assert verify_password("New-Secret-42xy", mailbox.password_hash)
    assert not verify_password(GOOD_PASSWORD, mailbox.password_hash)
    assert mailbox.password_changed_at > before
    event = AuditEvent.objects.get(action="mailbox.password")
    assert "New-Secret-42xy" not in str(event.changes)


def test_set_password_applies_the_seven_checks(owner, domain):
    mailbox = make_mailbox(owner, domain, username="marie")
    old_hash = mailbox.password_hash
    with pytest.raises(InvalidInput) as caught:
        mailbox_set_password(actor=owner, mailbox=mailbox, password="Example-Pass-12!")
    assert caught.value.code == "password_weak"
    mailbox.refresh_from_db()
    assert mailbox.password_hash == old_hash


# --- Forwards ------------------------------------------------------------------------------------


def test_forward_life_cycle(owner, domain):
    forward = forward_create(
        actor=owner, domain=domain, name="Info", destinations=["Marie@gmail.com", "jean@x.org"]
    )
    assert forward.address.local_part == "info"
    assert list(forward.address.destinations.values_list("email", flat=True)) == [
        "marie@gmail.com",
        "jean@x.org",
    ]
    forward_update(actor=owner, forward=forward, destinations=["jean@x.org"])
    assert list(forward.address.destinations.values_list("email", flat=True)) == ["jean@x.org"]
    forward_delete(actor=owner, forward=forward)
    assert not Forward.objects.exists()
    assert not Address.objects.exists()


@pytest.mark.parametrize(
    ("destinations", "code"),
    [
        ([], "destination_required"),
        (["info@example.com"], "destination_self"),
        (["a@x.org", "A@X.org"], "destination_duplicate"),
        (["nope"], "destination_invalid"),
    ],
)
def test_forward_destination_rules(owner, domain, destinations, code):
    with pytest.raises(InvalidInput) as caught:
        forward_create(actor=owner, domain=domain, name="info", destinations=destinations)
    assert caught.value.code == code
    assert caught.value.field == "destinations"
    assert not Forward.objects.exists()


def test_destination_count_is_capped(owner, domain, settings):
    settings.POSTDESK_MAX_DESTINATIONS = 3
    with pytest.raises(InvalidInput) as caught:
        forward_create(
            actor=owner, domain=domain, name="all", destinations=[f"u{i}@x.org" for i in range(4)]
        )
    assert caught.value.code == "destination_too_many"


# --- Domains -------------------------------------------------------------------------------------


def test_domain_names_are_normalized_and_unique(operator, client_a, client_b):
    domain = domain_add(actor=operator, client=client_a, name=" Example.COM. ")
    assert domain.name == "example.com"
    with pytest.raises(InvalidInput) as caught:
        domain_add(actor=operator, client=client_b, name="EXAMPLE.com")
    assert caught.value.code == "domain_taken"
    for bad in ["", "localhost", "-bad.com", "a..b.com", "exa mple.com", "1.2.3.4"]:
        with pytest.raises(InvalidInput):
            domain_add(actor=operator, client=client_a, name=bad)


# --- Access --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_can_write(request, domain, role):
    actor = request.getfixturevalue(role)
    assert make_mailbox(actor, domain).pk


def test_viewer_cannot_write(viewer, owner, domain):
    mailbox = make_mailbox(owner, domain)
    forward = forward_create(actor=owner, domain=domain, name="info", destinations=["a@x.org"])
    attempts = [
        lambda: make_mailbox(viewer, domain, username="jean"),
        lambda: mailbox_update(actor=viewer, mailbox=mailbox, quota_mb=1),
        lambda: mailbox_set_password(actor=viewer, mailbox=mailbox, password="Other-Secret-42"),
        lambda: mailbox_delete(actor=viewer, mailbox=mailbox),
        lambda: alias_add(actor=viewer, mailbox=mailbox, name="x"),
        lambda: forward_create(actor=viewer, domain=domain, name="x", destinations=["a@x.org"]),
        lambda: forward_update(actor=viewer, forward=forward, destinations=["b@x.org"]),
        lambda: forward_delete(actor=viewer, forward=forward),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied):
            attempt()
    mailbox.refresh_from_db()
    assert mailbox.quota_mb == 0
    assert Mailbox.objects.count() == 1


def test_another_client_cannot_touch_anything(outsider, owner, domain):
    """A user of client B gets "not found" for every object of client A."""
    mailbox = make_mailbox(owner, domain)
    forward = forward_create(actor=owner, domain=domain, name="info", destinations=["a@x.org"])
    attempts = [
        lambda: make_mailbox(outsider, domain, username="jean"),
        lambda: mailbox_update(actor=outsider, mailbox=mailbox, quota_mb=1),
        lambda: mailbox_set_password(actor=outsider, mailbox=mailbox, password="Other-Secret-42"),
        lambda: mailbox_delete(actor=outsider, mailbox=mailbox),
        lambda: alias_add(actor=outsider, mailbox=mailbox, name="x"),
        lambda: forward_create(actor=outsider, domain=domain, name="x", destinations=["a@x.org"]),
        lambda: forward_update(actor=outsider, forward=forward, destinations=["b@x.org"]),
        lambda: forward_delete(actor=outsider, forward=forward),
        lambda: domain_add(actor=outsider, client=domain.client, name="evil.example"),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound):
            attempt()
    assert Mailbox.objects.count() == 1
    assert Forward.objects.count() == 1


def test_inactive_user_loses_access(owner, domain):
    owner.user.is_active = False
    owner.user.save()
    with pytest.raises(NotFound):
        make_mailbox(owner, domain)


# --- Audit ---------------------------------------------------------------------------------------


def test_every_write_is_audited_with_who_what_and_where(owner, domain):
    mailbox = make_mailbox(owner, domain, aliases=["m"])
    mailbox_update(actor=owner, mailbox=mailbox, eas_enabled=True)
    mailbox_set_password(actor=owner, mailbox=mailbox, password="New-Secret-42xy")
    alias_remove(actor=owner, mailbox=mailbox, name="m")
    forward = forward_create(actor=owner, domain=domain, name="info", destinations=["a@x.org"])
    forward_update(actor=owner, forward=forward, destinations=["b@x.org"])
    forward_delete(actor=owner, forward=forward)
    mailbox_delete(actor=owner, mailbox=mailbox)

    events = list(
        AuditEvent.objects.filter(domain_name="example.com", actor_user=owner.user).order_by("pk")
    )
    assert [e.action for e in events] == [
        "mailbox.create",
        "mailbox.update",
        "mailbox.password",
        "mailbox.update",
        "forward.create",
        "forward.update",
        "forward.delete",
        "mailbox.delete",
    ]
    for event in events:
        assert event.actor_user == owner.user
        assert event.actor_label == "owner@example.org"
        assert event.source == "web"
        assert event.client_id == domain.client_id
        assert event.at is not None
    assert events[0].target == "marie.dupont@example.com"
    assert events[3].changes == {"aliases_removed": ["m"]}


def test_operator_actions_are_audited_as_the_operator(operator, domain):
    make_mailbox(operator, domain)
    event = AuditEvent.objects.get(action="mailbox.create")
    assert event.actor_user is None
    assert event.actor_label == "operator:test-operator"
    assert event.source == "cli"


def test_a_no_op_update_records_nothing(owner, domain):
    mailbox = make_mailbox(owner, domain, quota_mb=10)
    mailbox_update(actor=owner, mailbox=mailbox, quota_mb=10)
    assert not AuditEvent.objects.filter(action="mailbox.update").exists()


def test_password_never_reaches_the_logs(owner, domain, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    from django.db import connection

    connection.force_debug_cursor = True  # log every SQL statement too
    try:
        mailbox = make_mailbox(owner, domain)
        mailbox_set_password(actor=owner, mailbox=mailbox, password="Logged-Never-42x")
        with pytest.raises(InvalidInput):
            mailbox_set_password(actor=owner, mailbox=mailbox, password="weak-but-secret")
    finally:
        connection.force_debug_cursor = False
    assert caplog.records  # SQL was logged, so the check below means something
    for secret in (GOOD_PASSWORD, "Logged-Never-42x", "weak-but-secret"):
        assert secret not in caplog.text
    assert secret not in str(AuditEvent.objects.values_list("changes", flat=True))


def test_errors_speak_the_users_language(owner, domain):
    from django.utils import translation

    make_mailbox(owner, domain, username="info")
    with translation.override("fr"), pytest.raises(AddressTaken) as caught:
        make_mailbox(owner, domain, username="info")
    assert str(caught.value.message) == "info@example.com est déjà utilisée par une boîte courriel."
