"""A fleet's routing as rendered (#19 item 2, docs/scale.md): each host's lookups, run through
the views as the daemons fill them in, and each host's files as Postfix's and Dovecot's own
parsers read them (`postconf -c`, `doveconf -c -n`). The fleet test (test_fleet.py) proves
the same with the daemons running."""

from __future__ import annotations

import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from postdesk.dataplane import routing
from postdesk.dataplane.models import Host
from postdesk.dataplane.render import (
    RenderError,
    StackConfig,
    database_settings,
    dovecot_queries,
    render_stack,
)
from postdesk.dataplane.system import system_config
from postdesk.errors import InvalidInput
from postdesk.mail.choices import MoveState
from postdesk.mail.hosts import host_add, mailbox_move
from postdesk.mail.models import Mailbox
from postdesk.mail.services import mailbox_create
from tests.conftest import GOOD_PASSWORD

from .test_lookups import run_lookup

pytestmark = pytest.mark.django_db

LMTP_PORT = 2424
IMAP_PORT = 2143
DSYNC_PORT = 2412
DOVEADM_PORT = 2428
POP3_PORT = 2110


@pytest.fixture
def fleet(operator, domain):
    """One MX+proxy and two backends; anna lives on b1, ben on b2 (the least loaded)."""
    host_add(actor=operator, name="edge", address="10.77.0.1", roles=["mx", "proxy"])
    host_add(actor=operator, name="b1", address="10.77.0.2", roles=["backend"])
    host_add(actor=operator, name="b2", address="2001:db8::3", roles=["backend"])
    anna = mailbox_create(actor=operator, domain=domain, username="anna", password=GOOD_PASSWORD)
    ben = mailbox_create(actor=operator, domain=domain, username="ben", password=GOOD_PASSWORD)
    assert (anna.home.name, ben.home.name) == ("b1", "b2")
    return anna, ben


def _engine() -> str:
    return database_settings()["engine"]


def _sources() -> tuple[str, str]:
    """The per-address row each daemon reads: Postfix's (%u) and Dovecot's (%n)."""
    if _engine() == "sqlite":
        where = "dataplane_mailboxes WHERE local_part = '{}' AND domain = '%d'"
        return where.format("%u"), where.format("%n")
    return "dataplane_mailbox('%u', '%d')", "dataplane_mailbox('%n', '%d')"


def test_the_mx_sends_each_mailbox_over_lmtp_to_its_own_home(fleet, domain):
    postfix, _ = _sources()
    query = routing.transport_query(postfix, routing.fleet_host("edge"), LMTP_PORT)
    assert run_lookup(query, "anna", domain.name) == [(f"lmtp:inet:[10.77.0.2]:{LMTP_PORT}",)]
    # An IPv6 home keeps its colons apart from the port.
    assert run_lookup(query, "ben", domain.name) == [(f"lmtp:inet:[2001:db8::3]:{LMTP_PORT}",)]
    assert run_lookup(query, "nobody", domain.name) == []


def test_a_home_is_local_to_itself_and_a_mailbox_without_home_is_local_everywhere(operator, domain):
    # Registered before any backend: the mailbox has no home, so every host serves it itself.
    host_add(actor=operator, name="edge", address="10.77.0.1", roles=["mx", "proxy"])
    mailbox_create(actor=operator, domain=domain, username="anna", password=GOOD_PASSWORD)
    postfix, dovecot = _sources()
    edge = routing.fleet_host("edge")
    assert run_lookup(routing.transport_query(postfix, edge, LMTP_PORT), "anna", domain.name) == []
    assert (
        run_lookup(
            routing.proxy_password_query(dovecot, edge, IMAP_PORT, POP3_PORT), "anna", domain.name
        )
        == []
    )
    local = dovecot_queries(_engine(), "/var/vmail", edge)["password_query"]
    assert [user for user, _ in run_lookup(local, "anna", domain.name)] == [f"anna@{domain.name}"]


def test_the_proxy_checks_the_password_and_forwards_the_login_to_the_home(fleet, domain):
    anna, _ = fleet
    _, dovecot = _sources()
    edge = routing.fleet_host("edge")
    [row] = run_lookup(
        routing.proxy_password_query(dovecot, edge, IMAP_PORT, POP3_PORT), "anna", domain.name
    )
    assert row == (
        f"anna@{domain.name}",
        anna.password_hash,  # checked here, at the proxy
        "Y",
        "10.77.0.2",
        str(IMAP_PORT),
        routing.PROXY_MASTER_USER,  # the home trusts the proxy's master login, not the password
        routing.proxy_master_password(),
        "any-cert",
    )
    # Not served by the proxy itself.
    local = dovecot_queries(_engine(), "/var/vmail", edge)["password_query"]
    assert run_lookup(local, "anna", domain.name) == []


def test_a_backend_serves_its_own_mailboxes_and_only_them(fleet, domain):
    queries = dovecot_queries(_engine(), "/var/vmail", routing.fleet_host("b1"))
    assert [user for user, _ in run_lookup(queries["password_query"], "anna", domain.name)] == [
        f"anna@{domain.name}"
    ]
    assert run_lookup(queries["password_query"], "ben", domain.name) == []
    # The userdb still knows every mailbox: a delivery that comes here anyway is stored.
    assert len(run_lookup(queries["user_query"], "ben", domain.name)) == 1


def test_a_mailbox_being_switched_waits_at_the_mx_and_is_refused_at_the_proxy(
    fleet, domain, operator
):
    """mail.moves' lock, as the daemons read it: while `switching`, the MX's transport defers
    the mailbox's mail (Postfix's retry transport) and the proxy's first passdb refuses its
    logins once the password matched; before and after, nothing of it."""
    anna, _ = fleet
    postfix, dovecot = _sources()
    edge = routing.fleet_host("edge")
    transport = routing.transport_query(postfix, edge, LMTP_PORT)
    refusal = routing.moving_password_query(dovecot)
    move = mailbox_move(actor=operator, address=anna.address.email, to="b2")
    assert run_lookup(refusal, "anna", domain.name) == []
    move.state = MoveState.SWITCHING
    move.save()
    assert run_lookup(transport, "anna", domain.name) == [(routing.MOVING_TRANSPORT,)]
    assert routing.MOVING_TRANSPORT.startswith("retry:4.")  # a deferral, never a bounce
    assert run_lookup(refusal, "anna", domain.name) == [
        (f"anna@{domain.name}", anna.password_hash, "Y", routing.MOVING_REASON)
    ]
    # Only that mailbox: ben's mail and logins go on.
    assert run_lookup(refusal, "ben", domain.name) == []
    assert run_lookup(transport, "ben", domain.name) == [(f"lmtp:inet:[2001:db8::3]:{LMTP_PORT}",)]
    # Even where the MX is its home too (a host in every role): held, not delivered.
    host_add(actor=operator, name="all", address="10.77.0.9", roles=["mx", "proxy", "backend"])
    Mailbox.objects.filter(pk=anna.pk).update(home=Host.objects.get(name="all"))
    here = routing.transport_query(postfix, routing.fleet_host("all"), LMTP_PORT)
    assert run_lookup(here, "anna", domain.name) == [(routing.MOVING_TRANSPORT,)]
    move.state = MoveState.DONE
    move.save()
    assert run_lookup(here, "anna", domain.name) == []  # its own again: delivered here
    assert run_lookup(refusal, "anna", domain.name) == []


def _render(tmp_path: Path, name: str, roles: str, out: str = "") -> Path:
    config = StackConfig(
        dir=tmp_path / (out or name),
        roles=frozenset(roles.split(",")),
        host=routing.fleet_host(name),
        lmtp_port=LMTP_PORT,
        imap_port=IMAP_PORT,
        dsync_port=DSYNC_PORT,
        doveadm_port=DOVEADM_PORT,
    )
    render_stack(config)
    return config.dir


def _postconf(directory: Path, *names: str) -> dict[str, str]:
    out = subprocess.run(
        ["postconf", "-c", str(directory / "postfix"), "-n", *names],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split(" = ", 1) for line in out.splitlines())


def _doveconf(directory: Path) -> str:
    done = subprocess.run(
        ["doveconf", "-c", str(directory / "dovecot" / "dovecot.conf"), "-n"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_each_roles_files_pass_postfix_and_dovecot_and_say_what_it_does(fleet, tmp_path):
    edge = _render(tmp_path, "edge", "mx,proxy")
    postfix = _postconf(edge, "transport_maps", "inet_interfaces", "smtpd_recipient_restrictions")
    assert postfix["transport_maps"].endswith(f"{edge}/postfix/transport.cf")
    assert postfix["inet_interfaces"] == "127.0.0.1, 10.77.0.1"
    # The quota lives on the homes: an MX without mailboxes asks no policy service.
    assert "check_policy_service" not in postfix["smtpd_recipient_restrictions"]
    dovecot = _doveconf(edge)
    assert f"args = {edge}/dovecot/proxy-sql.conf.ext" in dovecot
    # A mailbox being moved is refused before any passdb forwards it.
    assert dovecot.index(f"{edge}/dovecot/moving-sql.conf.ext") < dovecot.index(
        f"{edge}/dovecot/proxy-sql.conf.ext"
    )
    assert "doveadm_password" not in dovecot  # a proxy stores no mailbox: no dsync
    assert "address = 127.0.0.1, 10.77.0.1" in dovecot  # IMAP for the customers
    assert "master = yes" not in dovecot

    b1 = _render(tmp_path, "b1", "backend")
    assert "check_policy_service" in _postconf(b1, "smtpd_recipient_restrictions").popitem()[1]
    dovecot = _doveconf(b1)
    assert "login_trusted_networks = 10.77.0.1" in dovecot
    assert f"args = {b1}/dovecot/proxy-master.passwd" in dovecot
    assert "master = yes" in dovecot
    assert "proxy-sql.conf.ext" not in dovecot
    # LMTP from the MX hosts, on the backend's own address.
    assert "address = 127.0.0.1, 10.77.0.2\n    port = 2424" in dovecot
    # The other backends' dsync (a move) reaches its doveadm server on its own address, with
    # the fleet's doveadm password (hidden by doveconf).
    assert f"address = 10.77.0.2\n    port = {DSYNC_PORT}" in dovecot
    assert f"doveadm_port = {DSYNC_PORT}" in dovecot
    assert "doveadm_password = # hidden" in dovecot
    assert routing.dsync_password() in (b1 / "dovecot" / "dovecot.conf").read_text()
    master_users = (b1 / "dovecot" / "proxy-master.passwd").read_text()
    assert master_users.startswith(f"{routing.PROXY_MASTER_USER}:{{SHA256}}")
    assert master_users.strip().endswith("allow_real_nets=10.77.0.1")
    assert routing.proxy_master_password() not in master_users


def test_a_single_host_renders_as_before_hosts_existed(fleet, tmp_path):
    single = StackConfig(dir=tmp_path / "single")
    render_stack(single)
    assert not (single.dir / "postfix" / "transport.cf").exists()
    assert not (single.dir / "dovecot" / "proxy-sql.conf.ext").exists()
    assert not (single.dir / "dovecot" / "proxy-master.passwd").exists()
    assert "home_host" not in (single.dir / "dovecot" / "sql.conf.ext").read_text()
    postfix = _postconf(single.dir, "inet_interfaces", "transport_maps")
    assert postfix == {"inet_interfaces": "127.0.0.1"}
    assert "master = yes" not in _doveconf(single.dir)


def test_some_roles_need_a_registered_host(fleet, tmp_path):
    with pytest.raises(RenderError, match="--host"):
        StackConfig(dir=tmp_path, roles=frozenset({"mx"}))
    with pytest.raises(RenderError, match="unknown role"):
        StackConfig(dir=tmp_path, roles=frozenset({"relay"}), host=routing.fleet_host("b1"))
    with pytest.raises(InvalidInput, match="no mail host is named 'b9'"):
        call_command(
            "dataplane",
            "render",
            "--out",
            str(tmp_path),
            "--role",
            "backend",
            "--host",
            "B9",
            stdout=StringIO(),
        )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the functions: PostgreSQL only")
def test_on_postgresql_the_routes_read_the_cached_plan_function(fleet):
    edge = routing.fleet_host("edge")
    postfix, dovecot = _sources()
    assert "dataplane_mailbox('%u', '%d') WHERE" in routing.transport_query(postfix, edge, 24)
    assert "dataplane_mailbox('%n', '%d') WHERE" in routing.proxy_password_query(
        dovecot, edge, 143, 110
    )


def test_the_proxy_forwards_pop3_to_the_homes_pop3_port(fleet, domain):
    """Dovecot fills %s with the service logged in to: a POP3 login goes to the home's POP3
    port, an IMAP one to its IMAP port (both the same on every host of a fleet)."""
    _, dovecot = _sources()
    edge = routing.fleet_host("edge")
    query = routing.proxy_password_query(dovecot, edge, IMAP_PORT, POP3_PORT)
    columns = "SELECT host, port FROM ({}) AS forwarded"
    for service, port in (("pop3", str(POP3_PORT)), ("imap", str(IMAP_PORT))):
        filled = query.replace("'%s'", f"'{service}'")
        assert run_lookup(columns.format(filled), "anna", domain.name) == [("10.77.0.2", port)]


def test_a_backends_doveadm_api_takes_the_panels_calls_with_the_fleets_key(fleet, tmp_path):
    """The panel's gate calls the doveadm HTTP API of a mailbox's home (provisioner.
    doveadm_url): every backend listens on its own address too, with one key for the fleet;
    a single host keeps its API on loopback with a key of its own."""
    b1 = _render(tmp_path, "b1", "backend")
    assert f"address = 127.0.0.1, 10.77.0.2\n    port = {DOVEADM_PORT}" in _doveconf(b1)
    key = routing.doveadm_api_key()
    assert f"doveadm_api_key = {key}\n" in (b1 / "dovecot" / "dovecot.conf").read_text()
    edge = _render(tmp_path, "edge", "mx,proxy")
    assert f"address = 127.0.0.1\n    port = {DOVEADM_PORT}" in _doveconf(edge)
    assert f"doveadm_api_key = {key}\n" in (edge / "dovecot" / "dovecot.conf").read_text()

    single = StackConfig(dir=tmp_path / "single")
    assert single.doveadm_password != key


def test_with_the_fleets_ca_the_proxy_verifies_the_homes_certificates(fleet, tmp_path, settings):
    """POSTDESK_FLEET_CA_FILE set: `starttls=yes` and OpenSSL's store (SSL_CERT_FILE) on the
    proxy (the fleet test proves a foreign certificate refused); unset: `any-cert`; a path
    naming nothing stops the render rather than every forwarded login."""
    edge = _render(tmp_path, "edge", "mx,proxy")
    assert "'any-cert' AS starttls" in (edge / "dovecot" / "proxy-sql.conf.ext").read_text()
    assert "SSL_CERT_FILE" not in _doveconf(edge)

    authority = tmp_path / "fleet-ca.pem"
    authority.write_text("-----BEGIN CERTIFICATE-----\n")
    settings.POSTDESK_FLEET_CA_FILE = str(authority)
    edge = _render(tmp_path, "edge", "mx,proxy", out="edge-verified")
    assert "'yes' AS starttls" in (edge / "dovecot" / "proxy-sql.conf.ext").read_text()
    dovecot = _doveconf(edge)
    assert f"LISTEN_FDS NOTIFY_SOCKET SSL_CERT_FILE={authority}\n" in dovecot
    assert "service imap-login {\n  chroot = \n" in dovecot
    # A backend forwards nothing: no CA to read there.
    assert "SSL_CERT_FILE" not in _doveconf(_render(tmp_path, "b1", "backend"))

    settings.POSTDESK_FLEET_CA_FILE = str(tmp_path / "missing.pem")
    with pytest.raises(RenderError, match="POSTDESK_FLEET_CA_FILE"):
        _render(tmp_path, "edge", "mx,proxy", out="edge-missing")


def test_a_fleet_hosts_render_gives_the_panel_the_fleets_doveadm_key(fleet, tmp_path):
    """`render --system --host`: whatever key the host had alone (kept from one render to the
    next), in a fleet its Dovecot and its panel's dataplane.env carry the fleet's, which the
    gate uses at every home."""
    out = tmp_path / "out"
    (out / "etc" / "postdesk").mkdir(parents=True)
    (out / "etc" / "postdesk" / "dataplane.env").write_text("POSTDESK_DOVEADM_API_KEY=alone\n")
    config = system_config(
        out,
        hostname="mail.example.net",
        roles=frozenset({"backend"}),
        host=routing.fleet_host("b1"),
        installed=tmp_path / "installed",
    )
    assert config.doveadm_password == routing.doveadm_api_key()
    alone = system_config(tmp_path / "out", hostname="mail.example.net", installed=tmp_path)
    assert alone.doveadm_password == "alone"
