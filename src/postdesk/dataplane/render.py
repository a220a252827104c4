"""Render the mail stack's configuration from the settings and the panel's database.

`render_stack(config)` writes, under one directory: Postfix's main.cf/master.cf and its SQL
lookup files, Dovecot's configuration and SQL queries, OpenDKIM's and the gate's nginx
configuration, and SOGo's when the groupware runs (groupware.py). Every lookup reads the
`dataplane_*` views (views_sql.py), so a saved change is live for mail at once. Every port
a client reaches speaks TLS (tls.py).
"""

from __future__ import annotations

import pwd
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.template import Context, Engine

from . import groupware, routing, tls
from .choices import HostRole
from .routing import FleetHost

TEMPLATES = Path(__file__).parent / "templates" / "dataplane"

# The Postfix lookups: the file name, and the query (%s: the whole key; %u, %d: its local part
# and domain). On PostgreSQL the per-address lookups call the PL/pgSQL functions of
# views_sql.PG_FUNCTIONS (a plan cached per connection); on SQLite they read the views.
POSTFIX_LOOKUPS = {
    "sqlite": {
        "domains.cf": "SELECT 1 FROM dataplane_domains WHERE domain = '%s'",
        "mailboxes.cf": (
            "SELECT 1 FROM dataplane_mailboxes WHERE local_part = '%u' AND domain = '%d'"
        ),
        "aliases.cf": (
            "SELECT destination FROM dataplane_aliases WHERE local_part = '%u' AND domain = '%d'"
        ),
    },
    "pgsql": {
        "domains.cf": "SELECT 1 FROM dataplane_domains WHERE domain = '%s'",
        "mailboxes.cf": "SELECT 1 FROM dataplane_mailbox('%u', '%d')",
        "aliases.cf": "SELECT destination FROM dataplane_alias_destinations('%u', '%d')",
    },
}

# A mailbox's row for Postfix's per-address lookups, the same way (a fleet's transport).
_POSTFIX_MAILBOX = {
    "sqlite": "dataplane_mailboxes WHERE local_part = '%u' AND domain = '%d'",
    "pgsql": "dataplane_mailbox('%u', '%d')",
}

# Dovecot's passdb and userdb lookups (%n, %d: local part and domain), the same way.
_DOVECOT_MAILBOX = {
    "sqlite": "dataplane_mailboxes WHERE local_part = '%n' AND domain = '%d'",
    "pgsql": "dataplane_mailbox('%n', '%d')",
}

# The deliverability self-test's single-use logins (dataplane_probe_logins): a second passdb,
# asked only when the mailbox's own password did not match, and only for SMTP AUTH (%s: the
# service Postfix's SASL names), so a probe login never opens a mailbox over IMAP.
PROBE_PASSWORD_QUERY = (
    "SELECT address AS user, password FROM dataplane_probe_logins "  # noqa: S105 - a query
    "WHERE local_part = '%n' AND domain = '%d' AND '%s' = 'smtp'"
)


def dovecot_queries(engine: str, vmail: str, host: FleetHost | None = None) -> dict[str, str]:
    """The passdb and userdb queries. On a host of a fleet, the passdb answers only for the
    mailboxes served here (routing.py: the others go to the proxy's passdb); the userdb
    answers for all, so a misrouted delivery is still stored, never refused."""
    # Built from fixed fragments and the operator's vmail path; the daemon fills %n/%d.
    mailbox = _DOVECOT_MAILBOX[engine]
    local = routing.local_mailboxes(mailbox, host)
    return {
        "password_query": f"SELECT address AS user, password FROM {local}",  # noqa: S608
        "user_query": (
            f"SELECT '{vmail}/' || domain || '/' || storage AS home, "  # noqa: S608
            "CASE WHEN quota_mb > 0 THEN '*:bytes=' || (quota_mb * 1048576) "
            f"ELSE '*:bytes=0' END AS quota_rule FROM {mailbox}"
        ),
    }


# Listening ports are drawn below the kernel's ephemeral range (Linux: 32768-60999). A port
# the kernel hands out for binding to 0 is also what it hands to the next outgoing
# connection (to the database, an SMTP test client), so between choosing it and the daemon
# binding it, it was sometimes taken: "nginx: bind() ... Address already in use".
_LISTEN_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, never given twice by this process."""
    rng = secrets.SystemRandom()
    for _ in range(200):
        port = rng.choice(_LISTEN_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise OSError("no free port between 20000 and 32767 on 127.0.0.1")


class RenderError(Exception):
    """The configuration cannot be written as asked; the message says why."""


@dataclass
class StackConfig:
    dir: Path
    smtp_port: int = 2525
    submission_port: int = 2587
    submissions_port: int = 2465  # submission over implicit TLS (RFC 8314)
    imap_port: int = 2143
    imaps_port: int = 2993
    pop3_port: int = 2110  # POP3 with STARTTLS (STLS)
    pop3s_port: int = 2995  # POP3 over implicit TLS
    gate_port: int = 8443
    # The certificate every port presents (PEM, the chain in the cert file) and its key;
    # without them, a self-signed one for `hostname` is made under DIR/tls.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    relay: str | None = None  # "host:port": where mail to other domains goes
    hostname: str = "mail.postdesk.test"
    lmtp_port: int = field(default_factory=free_port)
    auth_port: int = field(default_factory=free_port)
    doveadm_port: int = field(default_factory=free_port)
    # A backend of a fleet: where the other backends' dsync reaches its doveadm server, on its
    # own address, to copy a mailbox moved here (mail.moves); the same on every host.
    dsync_port: int = field(default_factory=free_port)
    quota_status_port: int = field(default_factory=free_port)
    reinject_port: int = field(default_factory=free_port)
    srs_forward_port: int = field(default_factory=free_port)
    srs_reverse_port: int = field(default_factory=free_port)
    upstream_port: int = field(default_factory=free_port)  # the stand-in (MAPI; EAS without SOGo)
    opendkim_port: int = field(default_factory=free_port)
    # The deliverability self-test's receiver (docs/dns.md): mail to `probe_address` leaves
    # through our SMTP client to a loopback smtpd on `probe_port` (inbound settings, its own
    # name), which delivers it to that mailbox. Empty: no self-test.
    probe_address: str = field(default_factory=lambda: settings.POSTDESK_PROBE_ADDRESS)
    probe_port: int = field(default_factory=free_port)
    sogo_port: int = field(default_factory=free_port)
    memcached_port: int = field(default_factory=free_port)
    # The panel, as nginx reaches it for the EAS/MAPI gate, and the key nginx shows it.
    panel_url: str = "http://127.0.0.1:8000"
    # The keys the daemons share with the panel, and SOGo's cookie key: new ones for a new
    # stack; a host's render keeps those installed (system.kept_keys).
    gate_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    doveadm_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    sogo_encryption_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # The host's own daemons (`render --system`, system.py): `dir` is then only where the tree
    # is written, and every file names its final path (the layout below).
    system: bool = False
    system_vmail: Path = Path("/var/vmail")
    # A host of a fleet (docs/scale.md): which roles it plays, and which registered host it is
    # (routing.fleet_host). None, in all three roles: the install's single host, as always.
    roles: frozenset[str] = routing.ALL_ROLES
    host: FleetHost | None = None

    def __post_init__(self) -> None:
        unknown = self.roles - routing.ALL_ROLES
        if unknown or not self.roles:
            raise RenderError(
                f"unknown role {', '.join(sorted(unknown))}: choose among "
                f"{', '.join(sorted(routing.ALL_ROLES))}"
                if unknown
                else "give at least one role"
            )
        if self.host is None and self.roles != routing.ALL_ROLES:
            # Only a registered host knows which mailboxes are its own and where the others go.
            raise RenderError("a stack with only some roles needs --host NAME, a registered host")
        if self.host is not None:
            # The panel's gate calls the doveadm API of a mailbox's home, whichever host it is,
            # with the one key it has: every host of a fleet shares it (routing.py).
            self.doveadm_password = routing.doveadm_api_key()

    @property
    def vmail(self) -> Path:
        return self.system_vmail if self.system else self.dir / "vmail"

    def layout(self) -> dict[str, str]:
        """The final path of each configuration file and directory the daemons read."""
        if self.system:
            return SYSTEM_LAYOUT | {"vmail": str(self.vmail)}
        return {
            "postfix_dir": f"{self.dir}/postfix",
            "postfix_maps": f"{self.dir}/postfix",
            "dovecot_conf": f"{self.dir}/dovecot/dovecot.conf",
            "dovecot_sql": f"{self.dir}/dovecot/sql.conf.ext",
            "dovecot_probe_sql": f"{self.dir}/dovecot/probe-sql.conf.ext",
            "nginx_conf": f"{self.dir}/nginx/nginx.conf",
            "opendkim_conf": f"{self.dir}/opendkim/opendkim.conf",
            "opendkim_dir": f"{self.dir}/opendkim",
            "opendkim_pidfile": f"{self.dir}/run/opendkim.pid",
            "sogo_conf": f"{self.dir}/sogo/GNUstep/Defaults/sogod.plist",
            "dovecot_proxy_sql": f"{self.dir}/dovecot/proxy-sql.conf.ext",
            "dovecot_master_users": f"{self.dir}/dovecot/proxy-master.passwd",
            "dovecot_moving_sql": f"{self.dir}/dovecot/moving-sql.conf.ext",
            "vmail": str(self.vmail),
        }

    def groupware_unavailable(self, db: dict[str, Any]) -> str:
        """Why SOGo is not part of this stack; "" when it is. The host's render writes its
        configuration for a PostgreSQL panel whatever is installed where it runs."""
        return groupware.unavailable_reason(db, installed_here=not self.system)

    def written_at(self, final: str) -> Path:
        """Where the file the daemons will read at `final` is written now: the same place for
        the loopback stack; under `dir`, mirroring the filesystem, for the host's daemons."""
        return self.dir / Path(final).relative_to("/" if self.system else self.dir)

    def certificate(self) -> tls.Certificate:
        """The operator's certificate once checked, or the stack's own self-signed one."""
        if self.tls_cert is None and self.tls_key is None:
            if self.system:
                # Written into the tree, named where it is copied: every daemon starts before
                # certbot has run (docs/deploy.md switches to certbot's).
                made = tls.self_signed(self.hostname, self.dir / SYSTEM_TLS.relative_to("/"))
                return tls.Certificate(
                    cert=SYSTEM_TLS / made.cert.name, key=SYSTEM_TLS / made.key.name
                )
            # Valid for 127.0.0.1 too: the loopback stack's clients connect by address (the
            # self-test's submission checks the certificate, docs/dns.md).
            return tls.self_signed(self.hostname, self.dir / "tls", addresses=["127.0.0.1"])
        if self.tls_cert is None or self.tls_key is None:
            raise tls.CertificateError("give --tls-cert and --tls-key together")
        return tls.checked(self.tls_cert, self.tls_key)


# Where `render --system` puts what the host's daemons read (Debian's places; the lookups hold
# the database password, so they sit apart, readable by their daemon's group only).
SYSTEM_LAYOUT = {
    "postfix_dir": "/etc/postfix",
    "postfix_maps": "/etc/postfix/postdesk",
    "dovecot_conf": "/etc/dovecot/dovecot.conf",
    "dovecot_sql": "/etc/dovecot/postdesk-sql.conf.ext",
    "dovecot_probe_sql": "/etc/dovecot/postdesk-probe-sql.conf.ext",
    # Debian's nginx.conf includes conf.d/*.conf at its http level.
    "nginx_conf": "/etc/nginx/conf.d/postdesk.conf",
    "opendkim_conf": "/etc/opendkim.conf",
    "opendkim_dir": "/var/lib/opendkim",
    "opendkim_pidfile": "/run/opendkim/opendkim.pid",  # Debian's opendkim.service reads it
    "sogo_conf": "/etc/sogo/sogo.conf",
    "dovecot_proxy_sql": "/etc/dovecot/postdesk-proxy-sql.conf.ext",
    "dovecot_master_users": "/etc/dovecot/postdesk-proxy-master.passwd",
    "dovecot_moving_sql": "/etc/dovecot/postdesk-moving-sql.conf.ext",
}
SYSTEM_TLS = Path("/etc/postdesk/tls")


def database_settings(settings_dict: dict[str, Any] | None = None) -> dict[str, Any]:
    """The panel's database as the daemons must reach it."""
    db = settings_dict or connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return {"engine": "sqlite", "path": str(Path(db["NAME"]).resolve())}
    if db["ENGINE"] == "django.db.backends.postgresql":
        return {
            "engine": "pgsql",
            "host": db.get("HOST") or "127.0.0.1",
            "port": db.get("PORT") or 5432,
            "name": db["NAME"],
            "user": db.get("USER") or "",
            "password": db.get("PASSWORD") or "",
        }
    raise ValueError(f"the mail stack cannot read a {db['ENGINE']} database")


def dataplane_database_settings() -> dict[str, Any]:
    """The database the daemons read the views from: POSTDESK_DATAPLANE_DATABASE_URL (a
    streaming replica, docs/scale.md) or, unset, the panel's own."""
    return database_settings(settings.POSTDESK_DATAPLANE_DATABASE)


# OpenDKIM's data-set DSN, `backend://[user[:pwd]@][port+]host/dbase/...`, has no quoting:
# these characters end a part wherever they stand.
_DSN_PUNCTUATION = frozenset(":@+/?")


def opendkim_dsn(db: dict[str, Any]) -> tuple[str, str]:
    """OpenDKIM's DSN for the panel's database, and the directory it must run in ("" if none).

    OpenDBX's SQLite driver opens HOST + DBASE, joined without a separator, and the DSN allows
    no slash in either: so OpenDKIM runs in the database's directory (BaseDirectory) and the
    file name is split in two.
    """
    if db["engine"] == "sqlite":
        path = Path(db["path"])
        name = path.name
        if len(name) < 2 or _DSN_PUNCTUATION & set(name):
            raise RenderError(
                f"OpenDKIM cannot name the database file {name!r}: rename it without any of "
                f"{''.join(sorted(_DSN_PUNCTUATION))}"
            )
        return f"sqlite3://{name[0]}/{name[1:]}", str(path.parent)
    credentials = db["user"] + (f":{db['password']}" if db["password"] else "")
    parts = {"user": db["user"], "password": db["password"], "host": db["host"], "name": db["name"]}
    for part, value in parts.items():
        if _DSN_PUNCTUATION & set(str(value)):
            raise RenderError(
                f"OpenDKIM cannot use a database {part} containing any of "
                f"{''.join(sorted(_DSN_PUNCTUATION))}: choose one without"
            )
    login = f"{credentials}@" if credentials else ""
    return f"pgsql://{login}{db['port']}+{db['host']}/{db['name']}", ""


def instance_name(config: StackConfig) -> str:
    """Dovecot's instance name, in every process title of this stack's Dovecot. A fleet's
    hosts may share a machine and their ports (one network namespace each: the fleet test),
    so theirs carries the host's name too."""
    if config.host is not None:
        return f"postdesk-{config.host.name}-{config.smtp_port}"
    return f"postdesk-{config.smtp_port}"


def _addresses(*addresses: str) -> str:
    return ", ".join(dict.fromkeys(address for address in addresses if address))


def _fleet_ca_file() -> str:
    """POSTDESK_FLEET_CA_FILE, checked: a proxy that cannot read it would refuse every login
    it forwards, so a wrong path stops the render instead."""
    named = settings.POSTDESK_FLEET_CA_FILE
    if named and not Path(named).is_file():
        raise RenderError(f"POSTDESK_FLEET_CA_FILE names no file: {named}")
    return str(Path(named).resolve()) if named else ""


def fleet_context(config: StackConfig, db: dict[str, Any]) -> dict[str, Any]:
    """What a host's roles change in the templates; on a single host, what it always was."""
    host = config.host
    own = "" if host is None else host.address
    roles = config.roles
    mailbox = _POSTFIX_MAILBOX[db["engine"]]
    return {
        "own_address": own,
        # The loopback stack listens on the host's address too, for the rest of the fleet.
        "public_address": "*, ::" if config.system else _addresses("127.0.0.1", own),
        # LMTP: from the MX hosts to a backend; loopback only on a single host.
        "lmtp_address": _addresses("127.0.0.1", own if host and HostRole.BACKEND in roles else ""),
        "inet_interfaces": _addresses("127.0.0.1", own),
        "inet_protocols": "all" if ":" in own else "ipv4",
        # A backend trusts its proxies: it logs the client's address they forward, and takes
        # their logins without TLS on its own (they STARTTLS anyway: routing.py).
        "trusted_proxies": " ".join(host.proxies) if host and HostRole.BACKEND in roles else "",
        "proxies_here": host is not None and HostRole.PROXY in roles,
        # The CA a proxy verifies the homes' certificates against (routing.proxy_password_query).
        "fleet_ca_file": _fleet_ca_file() if host is not None and HostRole.PROXY in roles else "",
        "master_users": host is not None and HostRole.BACKEND in roles,
        # A backend of a fleet takes the copies of mailboxes moved to it (dsync, mail.moves)
        # from the other backends, with the fleet's doveadm password.
        "dsync_address": own if host and HostRole.BACKEND in roles else "",
        # The doveadm HTTP API: the host's own worker on loopback; on a backend of a fleet, the
        # panel's gate too, at the backend's address (provisioner.doveadm_url).
        "doveadm_http_address": _addresses(
            "127.0.0.1", own if host and HostRole.BACKEND in roles else ""
        ),
        "dsync_password": routing.dsync_password() if host and HostRole.BACKEND in roles else "",
        "transport": (
            routing.transport_query(mailbox, host, config.lmtp_port)
            if host is not None and HostRole.MX in roles
            else ""
        ),
        # Only a backend holds the maildirs whose quota Dovecot's policy service reads.
        "quota_check": HostRole.BACKEND in roles,
    }


def render_context(config: StackConfig, db: dict[str, Any]) -> dict[str, Any]:
    """What every template of the stack is rendered with."""
    certificate = config.certificate()
    dkim_dsn, dkim_directory = opendkim_dsn(db)
    fleet = fleet_context(config, db)
    return {
        **vars(config),
        **config.layout(),
        "dir": str(config.dir),
        "db": db,
        "map_type": db["engine"],
        "instance": instance_name(config),
        "mail_uid": pwd.getpwnam("mail").pw_uid,
        "relay_host": config.relay.rsplit(":", 1)[0] if config.relay else "",
        "relay_port": config.relay.rsplit(":", 1)[1] if config.relay else "",
        **fleet,
        # Postfix's public services: on the host, its standard service names on every address;
        # on a loopback stack that is a fleet's host, on inet_interfaces (loopback and its own).
        "listen": {
            name: name
            if config.system
            else (str(port) if fleet["own_address"] else f"127.0.0.1:{port}")
            for name, port in (
                ("smtp", config.smtp_port),
                ("submission", config.submission_port),
                ("submissions", config.submissions_port),
            )
        },
        "tls_cert": str(certificate.cert),
        "tls_key": str(certificate.key),
        "tls_ciphers": tls.MOZILLA_INTERMEDIATE_CIPHERS,
        "tls_minimum": tls.MINIMUM_PROTOCOL,
        "tls_dh": str(tls.FFDHE_GROUP) if tls.FFDHE_GROUP.exists() else "",
        "dkim_dsn": dkim_dsn,
        "dkim_directory": dkim_directory,
        "groupware": not config.groupware_unavailable(db),
        "sogo_resources": str(groupware.WEB_RESOURCES),
    }


class TemplateWriter:
    """Renders the stack's templates into files, each where `config.written_at` puts it."""

    def __init__(self, config: StackConfig, context: dict[str, Any]) -> None:
        self.config = config
        self.context = context
        self.engine = Engine(dirs=[str(TEMPLATES)], autoescape=False)
        self.written: list[Path] = []

    def write(
        self, final: str, template: str, extra: dict[str, Any] | None = None, mode: int = 0o644
    ) -> Path:
        text = self.engine.get_template(template).render(
            Context({**self.context, **(extra or {})}, autoescape=False)
        )
        return self.write_text(final, text, mode)

    def write_text(self, final: str, text: str, mode: int = 0o644) -> Path:
        path = self.config.written_at(final)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        self.written.append(path)
        return path


def render_stack(
    config: StackConfig, db: dict[str, Any] | None = None, writer: TemplateWriter | None = None
) -> list[Path]:
    """Write every daemon's configuration file; return their paths. `db`: the database the
    daemons read (default: dataplane_database_settings)."""
    db = db or dataplane_database_settings()
    writer = writer or TemplateWriter(config, render_context(config, db))
    where = config.layout()
    # Lookup files may hold a database password: readable by their daemon only.
    secret = 0o640
    writer.write(f"{where['postfix_dir']}/main.cf", "postfix/main.cf")
    writer.write(f"{where['postfix_dir']}/master.cf", "postfix/master.cf")
    lookups = dict(POSTFIX_LOOKUPS[db["engine"]])
    if writer.context["transport"]:
        lookups["transport.cf"] = writer.context["transport"]
    for name, query in lookups.items():
        writer.write(
            f"{where['postfix_maps']}/{name}", "postfix/lookup.cf", {"query": query}, secret
        )
    writer.write(where["dovecot_conf"], "dovecot/dovecot.conf")
    writer.write(
        where["dovecot_sql"],
        "dovecot/sql.conf.ext",
        dovecot_queries(db["engine"], str(config.vmail), config.host),
        secret,
    )
    if writer.context["proxies_here"]:
        # A mailbox being switched to a new home: refused for that moment (routing.py).
        writer.write(
            where["dovecot_moving_sql"],
            "dovecot/sql.conf.ext",
            {
                "password_query": routing.moving_password_query(_DOVECOT_MAILBOX[db["engine"]]),
                "user_query": "",
            },
            secret,
        )
        # Mailboxes homed on another backend: checked here, forwarded there (routing.py).
        query = routing.proxy_password_query(
            _DOVECOT_MAILBOX[db["engine"]],
            config.host,
            config.imap_port,
            config.pop3_port,
            verify_homes=bool(writer.context["fleet_ca_file"]),
        )
        writer.write(
            where["dovecot_proxy_sql"],
            "dovecot/sql.conf.ext",
            {"password_query": query, "user_query": ""},
            secret,
        )
    if writer.context["master_users"]:
        writer.write_text(
            where["dovecot_master_users"],
            routing.proxy_master_passwd_line(config.host.proxies),
            secret,
        )
    writer.write(
        where["dovecot_probe_sql"],
        "dovecot/sql.conf.ext",
        {"password_query": PROBE_PASSWORD_QUERY, "user_query": ""},
        secret,
    )
    # On the host, only the gate's http-level part: Debian's nginx.conf is the main file.
    writer.write(where["nginx_conf"], "nginx/gate.conf" if config.system else "nginx/nginx.conf")
    # OpenDKIM reads the signing table from the database too (the same password).
    writer.write(where["opendkim_conf"], "opendkim/opendkim.conf", mode=secret)
    if not config.groupware_unavailable(db):
        render_sogo(config, db, writer)
    return writer.written


def render_sogo(config: StackConfig, db: dict[str, Any], writer: TemplateWriter) -> None:
    """SOGo's settings (they hold the database password: readable by its group only)."""
    where = config.layout()
    settings = groupware.defaults(
        # SOGo writes its own tables (sessions, calendars): the panel's database, the primary,
        # never a read-only replica; its users it reads from the views like the other daemons.
        db=database_settings(),
        users_db=db,
        hostname=config.hostname,
        sogo_port=config.sogo_port,
        memcached_port=config.memcached_port,
        imap_port=config.imap_port,
        submission_port=config.submission_port,
        encryption_key=config.sogo_encryption_key,
        # Debian's unit starts 3; on loopback 2 are enough and start faster.
        workers=3 if config.system else 2,
    )
    writer.write_text(where["sogo_conf"], groupware.render(settings), 0o640)
    if not config.system:
        defaults_dir = Path(where["sogo_conf"]).parent
        writer.write_text(f"{config.dir}/sogo/GNUstep.conf", groupware.gnustep_config(defaults_dir))
