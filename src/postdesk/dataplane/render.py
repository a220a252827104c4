"""Render the mail stack's configuration from the settings and the panel's database.

`render_stack(config)` writes, under one directory: Postfix's main.cf/master.cf and its SQL
lookup files, Dovecot's configuration and SQL queries, OpenDKIM's and the gate's nginx
configuration. Every lookup reads the `dataplane_*` views (views_sql.py), so a saved change is
live for mail at once. Every port a client reaches speaks TLS (tls.py).
"""

from __future__ import annotations

import pwd
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection
from django.template import Context, Engine

from . import tls

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

# Dovecot's passdb and userdb lookups (%n, %d: local part and domain), the same way.
_DOVECOT_MAILBOX = {
    "sqlite": "dataplane_mailboxes WHERE local_part = '%n' AND domain = '%d'",
    "pgsql": "dataplane_mailbox('%n', '%d')",
}


def dovecot_queries(engine: str, vmail: str) -> dict[str, str]:
    # Built from fixed fragments and the operator's vmail path; the daemon fills %n/%d.
    mailbox = _DOVECOT_MAILBOX[engine]
    return {
        "password_query": f"SELECT address AS user, password FROM {mailbox}",  # noqa: S608
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


@dataclass
class StackConfig:
    dir: Path
    smtp_port: int = 2525
    submission_port: int = 2587
    submissions_port: int = 2465  # submission over implicit TLS (RFC 8314)
    imap_port: int = 2143
    imaps_port: int = 2993
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
    quota_status_port: int = field(default_factory=free_port)
    reinject_port: int = field(default_factory=free_port)
    srs_forward_port: int = field(default_factory=free_port)
    srs_reverse_port: int = field(default_factory=free_port)
    upstream_port: int = field(default_factory=free_port)
    opendkim_port: int = field(default_factory=free_port)
    # The panel, as nginx reaches it for the EAS/MAPI gate, and the key nginx shows it.
    panel_url: str = "http://127.0.0.1:8000"
    gate_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    doveadm_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def vmail(self) -> Path:
        return self.dir / "vmail"

    def certificate(self) -> tls.Certificate:
        """The operator's certificate once checked, or the stack's own self-signed one."""
        if self.tls_cert is None and self.tls_key is None:
            return tls.self_signed(self.hostname, self.dir / "tls")
        if self.tls_cert is None or self.tls_key is None:
            raise tls.CertificateError("give --tls-cert and --tls-key together")
        return tls.checked(self.tls_cert, self.tls_key)


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


class RenderError(Exception):
    """The configuration cannot be written as asked; the message says why."""


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
    """Dovecot's instance name, in every process title of this stack's Dovecot."""
    return f"postdesk-{config.smtp_port}"


def _engine() -> Engine:
    return Engine(dirs=[str(TEMPLATES)], autoescape=False)


def render_stack(config: StackConfig, db: dict[str, Any] | None = None) -> list[Path]:
    """Write every configuration file; return their paths."""
    db = db or database_settings()
    certificate = config.certificate()
    dkim_dsn, dkim_directory = opendkim_dsn(db)
    context = {
        **vars(config),
        "dir": str(config.dir),
        "vmail": str(config.vmail),
        "db": db,
        "map_type": db["engine"],
        "instance": instance_name(config),
        "mail_uid": pwd.getpwnam("mail").pw_uid,
        "relay_host": config.relay.rsplit(":", 1)[0] if config.relay else "",
        "relay_port": config.relay.rsplit(":", 1)[1] if config.relay else "",
        "tls_cert": str(certificate.cert),
        "tls_key": str(certificate.key),
        "tls_ciphers": tls.MOZILLA_INTERMEDIATE_CIPHERS,
        "tls_minimum": tls.MINIMUM_PROTOCOL,
        "tls_dh": str(tls.FFDHE_GROUP) if tls.FFDHE_GROUP.exists() else "",
        "dkim_dsn": dkim_dsn,
        "dkim_directory": dkim_directory,
    }
    engine = _engine()
    written: list[Path] = []

    def write(relative: str, template: str, extra: dict[str, Any] | None = None) -> None:
        path = config.dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        text = engine.get_template(template).render(
            Context({**context, **(extra or {})}, autoescape=False)
        )
        path.write_text(text)
        # Lookup files may hold a database password: readable by their daemon only.
        path.chmod(0o640 if relative.endswith((".cf", ".ext")) else 0o644)
        written.append(path)

    write("postfix/main.cf", "postfix/main.cf")
    write("postfix/master.cf", "postfix/master.cf")
    for name, query in POSTFIX_LOOKUPS[db["engine"]].items():
        write(f"postfix/{name}", "postfix/lookup.cf", {"query": query})
    write("dovecot/dovecot.conf", "dovecot/dovecot.conf")
    write(
        "dovecot/sql.conf.ext",
        "dovecot/sql.conf.ext",
        dovecot_queries(db["engine"], str(config.vmail)),
    )
    write("nginx/nginx.conf", "nginx/nginx.conf")
    write("opendkim/opendkim.conf", "opendkim/opendkim.conf")
    return written
