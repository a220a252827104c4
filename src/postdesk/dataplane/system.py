"""The host's own mail daemons, panel and periodic jobs, configured as an operator installs them.

`render_system` writes, under one directory that mirrors the filesystem (DIR/etc/postfix/main.cf,
DIR/etc/systemd/system/postdesk.service …), the configuration of Debian's Postfix, Dovecot,
OpenDKIM, postsrsd and nginx on the standard ports, and the systemd units of the panel, the
task worker and one timer per periodic job. The files name their final paths, never DIR, so
one copy installs them (docs/deploy.md). The daemons' files come from the loopback stack's
templates (render.py) with `system` set; only what the loopback stack has no use for (units,
postsrsd's defaults, tmpfiles, the panel's env) has its own template.
"""

from __future__ import annotations

import grp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django_tasks import DEFAULT_TASK_QUEUE_NAME

from . import groupware
from .render import (
    SYSTEM_LAYOUT,
    RenderError,
    StackConfig,
    TemplateWriter,
    dataplane_database_settings,
    render_context,
    render_stack,
)
from .routing import ALL_ROLES, FleetHost

# The public ports are the standard ones; the loopback-only ones are fixed so that a second
# render names the same, and documented (docs/deploy.md) so that nothing else takes them.
SYSTEM_PORTS = {
    "smtp_port": 25,
    "submission_port": 587,
    "submissions_port": 465,
    "imap_port": 143,
    "imaps_port": 993,
    "pop3_port": 110,
    "pop3s_port": 995,
    "gate_port": 443,
    "lmtp_port": 24,
    "reinject_port": 10025,
    "auth_port": 10026,
    "quota_status_port": 10027,
    "doveadm_port": 10028,
    "dsync_port": 10030,  # a backend's doveadm server, for the other backends (docs/scale.md)
    "probe_port": 10029,  # the deliverability self-test's receiver
    "srs_forward_port": 10001,  # Debian's postsrsd defaults
    "srs_reverse_port": 10002,
    "opendkim_port": 8891,
    "upstream_port": 20000,  # MAPI behind the gate: no server is packaged for Debian
    "sogo_port": 20000,  # SOGo's default port (ActiveSync, webmail, DAV behind the gate)
    "memcached_port": 11211,  # Debian's memcached
}
# The panel's side of the keys it shares with this host's daemons (the units read it).
DATAPLANE_ENV = "/etc/postdesk/dataplane.env"
# The keys kept from one render to the next: StackConfig's field, and its line in DATAPLANE_ENV.
_KEPT_IN_ENV = {"gate_key": "POSTDESK_GATE_KEY", "doveadm_password": "POSTDESK_DOVEADM_API_KEY"}
UNIT_USER = "postdesk"
UNITS = "/etc/systemd/system"
ACME_WEBROOT = "/var/www/letsencrypt"


@dataclass(frozen=True)
class PeriodicJob:
    """A job of the periodic jobs' registry, as its timer needs it."""

    name: str
    every_seconds: int
    description: str


def kept_keys(out: Path, installed: Path = Path("/")) -> dict[str, str]:
    """The keys an earlier render gave this host, as StackConfig's fields: read back from the
    files installed under `installed`, else from the tree an earlier render left in `out`;
    none on a first render, which makes new ones. Kept, a render for an upgrade or a new
    certificate logs no webmail user out (SOGo's cookie key), and the panel keeps reaching
    Dovecot's doveadm API and the gate with the keys the running daemons know."""
    kept: dict[str, str] = {}
    # The installed files first: the keys the daemons run with, whatever `out` holds.
    for root in (installed, out):
        env = _read_kept(root / DATAPLANE_ENV.lstrip("/"))
        values = _env_values(env.decode()) if env is not None else {}
        for name, variable in _KEPT_IN_ENV.items():
            if values.get(variable):
                kept.setdefault(name, values[variable])
        sogo = _read_kept(root / SYSTEM_LAYOUT["sogo_conf"].lstrip("/"))
        key = groupware.encryption_key(sogo) if sogo is not None else None
        if key:
            kept.setdefault("sogo_encryption_key", key)
    return kept


def _env_values(text: str) -> dict[str, str]:
    """The VARIABLE=value lines of an environment file as systemd reads ours (no quoting)."""
    values = {}
    for line in text.splitlines():
        variable, equals, value = line.partition("=")
        if equals and not variable.startswith("#"):
            values[variable.strip()] = value.strip()
    return values


def _read_kept(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except PermissionError:
        # New keys would log every webmail user out and cut the panel off its daemons.
        raise RenderError(f"cannot read {path} to keep its keys: render as root") from None


def system_config(
    out: Path,
    *,
    hostname: str,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    relay: str | None = None,
    panel_url: str = "http://127.0.0.1:8000",
    vmail: Path = Path("/var/vmail"),
    roles: frozenset[str] = ALL_ROLES,
    host: FleetHost | None = None,
    installed: Path = Path("/"),
) -> StackConfig:
    """The stack's configuration for the host's own daemons, written under `out`, with the
    keys already installed under `installed` or rendered into `out` (kept_keys)."""
    return StackConfig(
        dir=out,
        hostname=hostname,
        tls_cert=tls_cert,
        tls_key=tls_key,
        relay=relay,
        panel_url=panel_url,
        system=True,
        system_vmail=vmail,
        roles=roles,
        host=host,
        **SYSTEM_PORTS,
        **kept_keys(out, installed),
    )


def render_system(
    config: StackConfig,
    *,
    executable: Path,
    jobs: list[PeriodicJob],
    workers: int = 4,
    db: dict[str, Any] | None = None,
    worker_queues: list[str] | None = None,
) -> list[Path]:
    """Write the host's configuration tree under `config.dir`; return the files written.

    `executable` is the `postdesk` the units run; `jobs` the periodic jobs, one timer each;
    `worker_queues` the task queues its worker runs (queues.worker_queues; default: the
    `default` queue of a single host).
    """
    db = db or dataplane_database_settings()
    context = render_context(config, db) | {
        "executable": str(executable),
        "workers": workers,
        "worker_queues": ",".join(worker_queues or [DEFAULT_TASK_QUEUE_NAME]),
        "panel_bind": urlsplit(config.panel_url).netloc,
        "unit_user": UNIT_USER,
        "acme_webroot": ACME_WEBROOT,
    }
    writer = TemplateWriter(config, context)
    render_stack(config, db, writer)
    writer.write("/etc/default/postsrsd", "system/postsrsd")
    writer.write("/etc/tmpfiles.d/postdesk.conf", "system/tmpfiles.conf")
    # Keys shared with the daemons; systemd reads the file as root before starting the units.
    writer.write(DATAPLANE_ENV, "system/dataplane.env", mode=0o600)
    writer.write(f"{UNITS}/postdesk.service", "system/postdesk.service")
    writer.write(f"{UNITS}/postdesk-worker.service", "system/postdesk-worker.service")
    for job in jobs:
        unit = f"{UNITS}/postdesk-job-{job.name}"
        writer.write(f"{unit}.service", "system/job.service", {"job": job})
        writer.write(f"{unit}.timer", "system/job.timer", {"job": job})
    layout = config.layout()
    for path in writer.written:
        if path.parent == config.written_at(layout["postfix_maps"]):
            _give_group(path, "postfix")
        elif path in (
            config.written_at(layout["dovecot_sql"]),
            config.written_at(layout["dovecot_probe_sql"]),
            config.written_at(layout["dovecot_proxy_sql"]),
            config.written_at(layout["dovecot_master_users"]),
        ):
            _give_group(path, "dovecot")
        elif path == config.written_at(layout["opendkim_conf"]):
            _give_group(path, "opendkim")
        elif path == config.written_at(layout["sogo_conf"]):
            _give_group(path, "sogo")
    _traversable_tree(config.dir)
    return writer.written


def _give_group(path: Path, group: str) -> None:
    """Let the daemon's group read a file holding the database password, when we can say so
    (as root, once the daemon is installed); the copy keeps it (`cp --preserve`)."""
    if os.geteuid() != 0:
        return
    try:
        grp.getgrnam(group)
    except KeyError:
        return
    shutil.chown(path, group=group)


def _traversable_tree(out: Path) -> None:
    """Every folder of the tree 0755, as /etc's are: a copy that keeps modes changes none of
    the host's folders (a 0700 one from a strict umask would lock the daemons out of /etc)."""
    for directory in out.rglob("*"):
        if directory.is_dir():
            directory.chmod(0o755)
