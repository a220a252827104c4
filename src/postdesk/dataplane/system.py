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

from .render import (
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
UNIT_USER = "postdesk"
UNITS = "/etc/systemd/system"
ACME_WEBROOT = "/var/www/letsencrypt"


@dataclass(frozen=True)
class PeriodicJob:
    """A job of the periodic jobs' registry, as its timer needs it."""

    name: str
    every_seconds: int
    description: str


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
) -> StackConfig:
    """The stack's configuration for the host's own daemons, written under `out`."""
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
    writer.write("/etc/postdesk/dataplane.env", "system/dataplane.env", mode=0o600)
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
