"""The gate under attack and under load, asked as our nginx asks it (the key, X-Real-IP):
wrong passwords are bounded per mailbox and per client address; a known device still passes
meanwhile; a verified device is not verified again for a while, yet a new password or a
protocol switched off holds at once; a missing mailbox costs the same verify as a wrong
password. tests/dataplane/test_gate.py checks the same through the real nginx."""

from __future__ import annotations

import base64
import statistics
import time

import pytest
from django.core.cache import cache
from django.test import Client

from postdesk.dataplane import gate
from postdesk.mail.services import (
    domain_dav_set,
    mailbox_create,
    mailbox_set_password,
    mailbox_update,
)
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

KEY = "gate-key-for-tests"
WRONG = "Wrong-Passw0rd!"


@pytest.fixture(autouse=True)
def _gate(settings):
    settings.POSTDESK_GATE_KEY = KEY
    settings.POSTDESK_GATE_FAILURE_LIMIT = 3
    settings.POSTDESK_GATE_CLIENT_FAILURE_LIMIT = 5
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def marie(operator, domain):
    return mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )


def ask(user: str, password: str, ip: str = "198.51.100.7", protocol: str = "eas"):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return Client().get(
        f"/dataplane/gate/{protocol}",
        HTTP_X_POSTDESK_GATE_KEY=KEY,
        HTTP_X_REAL_IP=ip,
        HTTP_AUTHORIZATION=f"Basic {token}",
    )


@pytest.fixture
def verifies(monkeypatch):
    """How many Argon2id verifications the gate ran (a spy on the real function)."""
    calls = []
    real = gate.verify_password

    def counted(password, stored):
        calls.append(stored)
        return real(password, stored)

    monkeypatch.setattr(gate, "verify_password", counted)
    return calls


def test_wrong_passwords_for_one_mailbox_are_bounded(marie):
    assert [ask("marie@example.com", WRONG).status_code for _ in range(3)] == [401] * 3
    refused = ask("marie@example.com", WRONG)
    assert refused.status_code == 403 and 0 < int(refused["Retry-After"]) <= 600
    # Now even the right password from a new device waits: guessing it right gains nothing.
    assert ask("marie@example.com", GOOD_PASSWORD, ip="203.0.113.50").status_code == 403
    # Another mailbox is not affected.
    assert ask("other@example.com", WRONG, ip="203.0.113.50").status_code == 401


def test_a_device_verified_before_keeps_working_while_someone_guesses(marie):
    assert ask("marie@example.com", GOOD_PASSWORD, ip="192.0.2.10").status_code == 204
    for _ in range(4):
        ask("marie@example.com", WRONG, ip="198.51.100.66")
    assert ask("marie@example.com", WRONG, ip="198.51.100.66").status_code == 403
    assert ask("marie@example.com", GOOD_PASSWORD, ip="192.0.2.10").status_code == 204


def test_one_client_address_guessing_many_mailboxes_is_bounded(marie, operator, domain):
    for n in range(5):
        assert ask(f"user{n}@example.com", WRONG).status_code == 401
    refused = ask("marie@example.com", GOOD_PASSWORD)
    assert refused.status_code == 403 and refused["Retry-After"]
    assert ask("marie@example.com", GOOD_PASSWORD, ip="192.0.2.99").status_code == 204


def test_a_verified_device_is_not_verified_again_yet_changes_hold_at_once(
    marie, verifies, operator
):
    assert ask("marie@example.com", GOOD_PASSWORD).status_code == 204
    assert ask("marie@example.com", GOOD_PASSWORD).status_code == 204
    assert len(verifies) == 1  # the phone's next request costs no Argon2id
    mailbox_update(actor=operator, mailbox=marie, eas_enabled=False)
    assert ask("marie@example.com", GOOD_PASSWORD).status_code == 403
    mailbox_update(actor=operator, mailbox=marie, eas_enabled=True)
    mailbox_set_password(actor=operator, mailbox=marie, password="Other-Secret-42xy")
    assert ask("marie@example.com", GOOD_PASSWORD).status_code == 401
    assert ask("marie@example.com", "Other-Secret-42xy").status_code == 204


def test_calendar_and_contact_apps_follow_the_domains_switch_at_once(marie, operator, domain):
    """/SOGo/dav/'s gate: any mailbox of a domain with DAV on (the default), none once the
    customer turns it off, even a device verified a moment before; the others still pass."""
    assert ask("marie@example.com", GOOD_PASSWORD, protocol="dav").status_code == 204

    domain_dav_set(actor=operator, domain=domain, enabled=False)
    assert ask("marie@example.com", GOOD_PASSWORD, protocol="dav").status_code == 403
    assert ask("marie@example.com", GOOD_PASSWORD, protocol="eas").status_code == 204
    assert ask("marie@example.com", WRONG, protocol="dav").status_code == 401

    domain_dav_set(actor=operator, domain=domain, enabled=True)
    assert ask("marie@example.com", GOOD_PASSWORD, protocol="dav").status_code == 204


def test_a_missing_mailbox_costs_a_verify_like_a_wrong_password(marie, verifies, settings):
    assert ask("nobody@example.com", WRONG).status_code == 401
    assert len(verifies) == 1  # against a hash of the current cost, that nothing matches
    assert verifies[0].startswith("{ARGON2ID}$argon2id$v=19$m=1024,t=1,p=1$")


def test_the_answer_time_does_not_tell_which_mailboxes_exist(marie, settings, operator):
    # The production cost: a verify is tenths of a second, a missing row would be milliseconds.
    settings.POSTDESK_ARGON2_MEMORY_KIB = 65536
    settings.POSTDESK_ARGON2_TIME_COST = 3
    settings.POSTDESK_GATE_FAILURE_LIMIT = settings.POSTDESK_GATE_CLIENT_FAILURE_LIMIT = 100
    mailbox_set_password(actor=operator, mailbox=marie, password=GOOD_PASSWORD)

    def seconds(user: str) -> float:
        started = time.perf_counter()
        assert ask(user, WRONG).status_code == 401
        return time.perf_counter() - started

    existing = statistics.median(seconds("marie@example.com") for _ in range(3))
    missing = statistics.median(seconds("nobody@example.com") for _ in range(3))
    assert missing > existing * 0.5, (existing, missing)


@pytest.mark.parametrize(
    ("uri", "command"),
    [
        (
            "/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=marie&DeviceId=A1&DeviceType=iPhone",
            "FolderSync",
        ),
        ("/Microsoft-Server-ActiveSync?User=marie&DeviceId=A1&DeviceType=Android&Cmd=Sync", "Sync"),
        # The base64 form (MS-ASHTTP): version 14.1, then command code 9 (FolderSync), ...
        (
            "/Microsoft-Server-ActiveSync?" + base64.b64encode(bytes([141, 9, 0, 0])).decode(),
            "FolderSync",
        ),
        ("/Microsoft-Server-ActiveSync?" + base64.b64encode(bytes([141, 0, 0, 0])).decode(), ""),
        ("/Microsoft-Server-ActiveSync", ""),
        ("/Microsoft-Server-ActiveSync?not base64!", ""),
    ],
)
def test_the_gate_reads_which_command_a_phone_sends(uri, command):
    assert gate.eas_command(uri) == command


def phone_command(cmd: str):
    token = base64.b64encode(f"marie@example.com:{GOOD_PASSWORD}".encode()).decode()
    return Client().get(
        "/dataplane/gate/eas",
        HTTP_X_POSTDESK_GATE_KEY=KEY,
        HTTP_X_REAL_IP="198.51.100.7",
        HTTP_AUTHORIZATION=f"Basic {token}",
        HTTP_X_ORIGINAL_METHOD="POST",
        HTTP_X_ORIGINAL_URI=f"/Microsoft-Server-ActiveSync?Cmd={cmd}&User=marie&DeviceId=A1",
    )


def test_folder_tracking_is_asked_of_dovecot_at_folder_sync_not_at_every_command(
    marie, monkeypatch
):
    """Each phone command used to cost a search of every folder in Dovecot. Now: at each
    FolderSync (when a phone learns of a folder), else once a while per mailbox, and after
    a folder the phone created, at its next command. Dovecot's side is proven with a real
    phone in tests/dataplane/test_groupware.py; here the gate's calls are counted."""
    asked: list[str] = []
    monkeypatch.setattr(gate.provisioner, "connected", lambda: True)
    monkeypatch.setattr(
        gate.provisioner, "track_changes_everywhere", lambda address, _home: asked.append(address)
    )

    for cmd in ("Sync", "Ping", "Sync", "Ping"):
        assert phone_command(cmd).status_code == 204
    assert asked == ["marie@example.com"]  # the first command; the others within the while

    assert phone_command("FolderSync").status_code == 204
    assert len(asked) == 2
    assert phone_command("FolderCreate").status_code == 204  # the folder exists after SOGo
    assert len(asked) == 2
    assert phone_command("Sync").status_code == 204  # of the new folder: tracked first
    assert len(asked) == 3
    assert phone_command("Ping").status_code == 204
    assert len(asked) == 3
