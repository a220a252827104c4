"""The gate reaches a mailbox's home (#19 item 2, docs/scale.md): before a phone's command,
the doveadm call that turns folder change tracking on goes to the Dovecot holding the
mailbox's folders, its home backend, at the fleet's doveadm port with the fleet's key; a
mailbox without a home (a single host) keeps the local POSTDESK_DOVEADM_URL.

No Dovecot here: two small HTTP servers on the same port stand for the panel host's doveadm
(127.0.0.3) and a backend's (127.0.0.1), and record what reaches them. The real Dovecot at a
real home is tests/dataplane/test_fleet_protocols.py's."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache
from django.test import Client

from postdesk.dataplane import provisioner, routing
from postdesk.mail.hosts import host_add
from postdesk.mail.services import mailbox_create
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

GATE_KEY = "gate-key-for-tests"


@pytest.mark.parametrize(
    ("local", "home", "expected"),
    [
        # No home: this host's own Dovecot, whatever the URL says.
        ("http://127.0.0.1:10028/doveadm/v1", None, "http://127.0.0.1:10028/doveadm/v1"),
        # A home: the same port and path, at the home's address.
        ("http://127.0.0.1:10028/doveadm/v1", "10.0.0.2", "http://10.0.0.2:10028/doveadm/v1"),
        (
            "http://127.0.0.1:10028/doveadm/v1",
            "2001:db8::2",
            "http://[2001:db8::2]:10028/doveadm/v1",
        ),
        # Nothing connected: nothing to reach, home or not (the caller says why).
        ("", "10.0.0.2", ""),
    ],
)
def test_the_doveadm_url_of_a_mailbox_is_its_homes(settings, local, home, expected):
    settings.POSTDESK_DOVEADM_URL = local
    assert provisioner.doveadm_url(home) == expected


class _Doveadm(BaseHTTPRequestHandler):
    """Answers a doveadm HTTP API call as Dovecot does for a search with no match, and
    records the command, its user and the key it was given."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        [[command, parameters, tag]] = body
        self.server.calls.append(  # type: ignore[attr-defined]
            (command, parameters["user"], self.headers["Authorization"])
        )
        answer = json.dumps([["doveadmResponse", [], tag]]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def doveadms() -> Iterator[dict[str, ThreadingHTTPServer]]:
    """A doveadm stand-in at 127.0.0.1 (the home) and one at 127.0.0.3 (this host), one port."""
    home = ThreadingHTTPServer(("127.0.0.1", 0), _Doveadm)
    here = ThreadingHTTPServer(("127.0.0.3", home.server_port), _Doveadm)
    servers = {"home": home, "here": here}
    for server in servers.values():
        server.calls = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield servers
    for server in servers.values():
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _gate(settings, doveadms):
    settings.POSTDESK_GATE_KEY = GATE_KEY
    settings.POSTDESK_DOVEADM_URL = f"http://127.0.0.3:{doveadms['here'].server_port}/doveadm/v1"
    settings.POSTDESK_DOVEADM_API_KEY = routing.doveadm_api_key()
    cache.clear()
    yield
    cache.clear()


def folder_sync(address: str) -> int:
    token = base64.b64encode(f"{address}:{GOOD_PASSWORD}".encode()).decode()
    return (
        Client()
        .get(
            "/dataplane/gate/eas",
            HTTP_X_POSTDESK_GATE_KEY=GATE_KEY,
            HTTP_AUTHORIZATION=f"Basic {token}",
            HTTP_X_ORIGINAL_METHOD="POST",
            HTTP_X_ORIGINAL_URI="/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=x&DeviceId=A1",
        )
        .status_code
    )


def test_a_phones_folder_tracking_goes_to_the_mailboxs_home(operator, domain, doveadms):
    alone = mailbox_create(
        actor=operator, domain=domain, username="alone", password=GOOD_PASSWORD, eas_enabled=True
    )
    assert alone.home is None  # no backend yet: the install's single host
    assert folder_sync("alone@example.com") == 204
    key = f"X-Dovecot-API {base64.b64encode(routing.doveadm_api_key().encode()).decode()}"
    assert doveadms["here"].calls == [("search", "alone@example.com", key)]

    host_add(actor=operator, name="b2", address="127.0.0.1", roles=["backend"])
    homed = mailbox_create(
        actor=operator, domain=domain, username="homed", password=GOOD_PASSWORD, eas_enabled=True
    )
    assert homed.home.name == "b2"
    assert folder_sync("homed@example.com") == 204
    # At its home, with the fleet's key; this host's Dovecot was not asked.
    assert doveadms["home"].calls[-1] == ("search", "homed@example.com", key)
    assert [user for _c, user, _k in doveadms["here"].calls] == ["alone@example.com"]
