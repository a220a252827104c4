"""`postdesk dataplane render --system`: the host's own daemons and units, as an operator
installs them (one copy of DIR/etc onto /etc), each file passing its daemon's own checker."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from postdesk.dataplane import groupware
from postdesk.dataplane.render import RenderError
from postdesk.dataplane.system import render_system, system_config
from postdesk.errors import NotFound
from postdesk.jobs.services import jobs_all
from postdesk.mail.hosts import host_add

from .conftest import STACK_HOSTNAME, issue

POSTDESK = Path(sys.executable).with_name("postdesk")

# Checked as installed: in a mount namespace of its own, the rendered etc/ is laid over the
# host's /etc (as the copy of docs/deploy.md would) and /var gets a throwaway upper layer, so
# the daemons' checkers read the files at the paths they name, and the host is left as it was.
CHECKS = """
set -u
mount -t tmpfs tmpfs "$SCRATCH"
mkdir "$SCRATCH/upper" "$SCRATCH/work"
mount -t overlay overlay -o "lowerdir=$OUT/etc:/etc" /etc
mount -t overlay overlay -o "lowerdir=/var,upperdir=$SCRATCH/upper,workdir=$SCRATCH/work" /var
check() {
  name=$1; shift
  "$@" >"$SCRATCH/$name.out" 2>&1
  echo "== $name $?"
  cat "$SCRATCH/$name.out"
}
check tmpfiles systemd-tmpfiles --create /etc/tmpfiles.d/postdesk.conf
check postfix postfix check
check postconf postconf -n
check doveconf doveconf -n
check opendkim opendkim -n
check nginx nginx -t
check systemd systemd-analyze verify /etc/systemd/system/postdesk*.service \
  /etc/systemd/system/postdesk*.timer
"""


def _render(out: Path, *extra: str) -> list[Path]:
    output = StringIO()
    call_command(
        "dataplane",
        "render",
        "--out",
        str(out),
        "--system",
        "--hostname",
        STACK_HOSTNAME,
        *extra,
        stdout=output,
    )
    return [Path(line) for line in output.getvalue().split()]


def _checks(out: Path, scratch: Path) -> dict[str, tuple[int, str]]:
    """Each checker's exit status and output, run on the tree as if copied onto the host."""
    scratch.mkdir()
    ran = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", CHECKS],
        env={**os.environ, "OUT": str(out), "SCRATCH": str(scratch)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    results = {}
    for block in re.split(r"^== ", ran.stdout, flags=re.MULTILINE)[1:]:
        head, _, text = block.partition("\n")
        name, status = head.split()
        results[name] = (int(status), text.strip())
    assert results, ran.stderr
    return results


@pytest.mark.mailstack
def test_each_daemon_accepts_the_rendered_system_configuration(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("checking as installed needs a mount namespace (root)")
    out = tmp_path / "out"
    _render(out)  # no certificate given: the self-signed default must satisfy every daemon

    results = _checks(out, tmp_path / "scratch")

    assert set(results) == {
        "tmpfiles", "postfix", "postconf", "doveconf", "opendkim", "nginx", "systemd"
    }  # fmt: skip
    for name, (status, text) in results.items():
        assert status == 0, f"{name}: {text}"
    # Silent but for nginx's own verdict: a warning (a lookup file Postfix cannot open, a unit
    # line systemd ignores) is a failure too.
    for name in ("tmpfiles", "postfix", "opendkim", "systemd"):
        assert results[name][1] == "", f"{name}: {results[name][1]}"
    for name in ("postconf", "doveconf", "nginx"):
        assert "warn" not in results[name][1], f"{name}: {results[name][1]}"
    assert "test is successful" in results["nginx"][1]
    # What the checkers saw is the installed configuration: the standard ports on every address.
    postconf = results["postconf"][1]
    assert "inet_interfaces = all" in postconf
    assert "smtpd_tls_security_level = may" in postconf
    assert "smtpd_tls_auth_only = yes" in postconf
    assert "maillog_file" not in postconf  # syslog, hence the journal
    doveconf = results["doveconf"][1]
    assert re.search(r"inet_listener imap \{\s+address = \*, ::\s+port = 143\s", doveconf)
    assert re.search(
        r"inet_listener imaps \{\s+address = \*, ::\s+port = 993\s+ssl = yes", doveconf
    )
    assert "ssl = required" in doveconf
    assert "log_path" not in doveconf


def test_the_tree_names_final_paths_and_standard_ports(tmp_path):
    out = tmp_path / "out"
    written = _render(out)

    etc = out / "etc"
    for path in written:
        assert path.is_relative_to(etc)
        assert str(out) not in path.read_text(), f"{path} names the render directory"
    master = (etc / "postfix/master.cf").read_text()
    services = {line.split()[0]: line for line in master.splitlines() if " inet " in line}
    assert set(services) == {"smtp", "submission", "submissions", "127.0.0.1:10025"}
    assert "smtpd_tls_security_level=encrypt" in master.split("submission inet")[1]
    assert "smtpd_tls_wrappermode=yes" in master.split("submissions inet")[1]
    main = (etc / "postfix/main.cf").read_text()
    assert "mysql" not in main and "/etc/postfix/postdesk/domains.cf" in main
    assert "queue_directory" not in main  # Debian's /var/spool/postfix
    assert "smtpd_tls_chain_files = /etc/postdesk/tls/key.pem, /etc/postdesk/tls/cert.pem" in main
    nginx = (etc / "nginx/conf.d/postdesk.conf").read_text()
    assert {"listen 80;", "listen [::]:80;", "listen 443 ssl;", "listen [::]:443 ssl;"} <= {
        line.strip() for line in nginx.splitlines()
    }
    assert "location /.well-known/acme-challenge/" in nginx
    assert "return 301 https://$host$request_uri;" in nginx
    assert "/var/vmail" in (etc / "dovecot/postdesk-sql.conf.ext").read_text()
    # Without --tls-cert/--tls-key, a self-signed certificate goes where the files name it.
    assert (etc / "postdesk/tls/cert.pem").exists()
    assert (etc / "postdesk/tls/key.pem").stat().st_mode & 0o777 == 0o600
    # The keys the panel shares with the daemons, in the env file the units read.
    env = dict(
        line.split("=", 1)
        for line in (etc / "postdesk/dataplane.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert env["POSTDESK_DOVEADM_URL"] == "http://127.0.0.1:10028/doveadm/v1"
    assert (
        f"doveadm_api_key = {env['POSTDESK_DOVEADM_API_KEY']}"
        in (etc / "dovecot/dovecot.conf").read_text()
    )
    assert f'X-Postdesk-Gate-Key "{env["POSTDESK_GATE_KEY"]}"' in nginx
    assert (etc / "postdesk/dataplane.env").stat().st_mode & 0o777 == 0o600


def test_units_run_this_install_and_time_every_job_of_the_registry(tmp_path, settings):
    settings.POSTDESK_JOB_DNS_RECHECK = timedelta(minutes=45)
    out = tmp_path / "out"
    _render(out)

    units = out / "etc/systemd/system"
    panel = (units / "postdesk.service").read_text()
    assert f"ExecStart={POSTDESK} serve --bind 127.0.0.1:8000 --workers 4" in panel
    assert "Type=notify" in panel and "ExecReload=/bin/kill -HUP $MAINPID" in panel
    assert "Restart=on-failure" in panel
    worker = (units / "postdesk-worker.service").read_text()
    # A single host: its one worker runs every task, on django-tasks' default queue.
    assert f"ExecStart={POSTDESK} db_worker --queue-name default\n" in worker
    for unit in (panel, worker):
        assert "User=postdesk" in unit
        assert "EnvironmentFile=/etc/postdesk/postdesk.env" in unit
        assert "ProtectSystem=strict" in unit and "NoNewPrivileges=yes" in unit
    jobs = jobs_all()
    assert {path.name for path in units.glob("postdesk-job-*")} == {
        f"postdesk-job-{job.name}.{kind}" for job in jobs for kind in ("service", "timer")
    }
    for job in jobs:
        service = (units / f"postdesk-job-{job.name}.service").read_text()
        assert f"ExecStart={POSTDESK} jobs run {job.name}" in service
        assert "Type=oneshot" in service
        timer = (units / f"postdesk-job-{job.name}.timer").read_text()
        assert f"OnUnitActiveSec={int(job.every.total_seconds())}s" in timer
    assert "OnUnitActiveSec=2700s" in (units / "postdesk-job-dns-recheck.timer").read_text()


@pytest.mark.django_db
def test_a_host_of_several_gets_a_worker_for_its_own_queue(tmp_path, operator):
    """The tasks that touch a host's files wait on `host-NAME`, for that host's worker; the
    host the panel runs on also runs the default queue."""
    host_add(actor=operator, name="mail2", address="192.0.2.2", roles=["backend"])
    worker = "etc/systemd/system/postdesk-worker.service"
    _render(tmp_path / "backend", "--host", "mail2")
    assert f"ExecStart={POSTDESK} db_worker --queue-name host-mail2\n" in (
        (tmp_path / "backend" / worker).read_text()
    )
    _render(tmp_path / "panel", "--host", "mail2", "--default-queue")
    assert f"ExecStart={POSTDESK} db_worker --queue-name default,host-mail2\n" in (
        (tmp_path / "panel" / worker).read_text()
    )
    # A worker for a queue no task goes to would wait forever: the host must exist.
    with pytest.raises(NotFound):
        _render(tmp_path / "typo", "--host", "mial2")


def test_the_operators_certificate_is_named_as_given(tmp_path, test_ca):
    # certbot's live/ names are links to the newest files: a renewal must be picked up by a
    # reload, so the configuration names the link, not the file it points to today.
    archive = tmp_path / "archive"
    cert, key = issue(test_ca, archive)
    live = tmp_path / "live"
    live.mkdir()
    (live / "fullchain.pem").symlink_to(cert)
    (live / "privkey.pem").symlink_to(key)
    out = tmp_path / "out"

    _render(out, "--tls-cert", str(live / "fullchain.pem"), "--tls-key", str(live / "privkey.pem"))

    main = (out / "etc/postfix/main.cf").read_text()
    assert f"smtpd_tls_chain_files = {live}/privkey.pem, {live}/fullchain.pem" in main
    assert f"ssl_cert = <{live}/fullchain.pem" in (out / "etc/dovecot/dovecot.conf").read_text()
    assert not (out / "etc/postdesk/tls").exists()


def test_the_tree_keeps_the_hosts_folder_modes_and_daemon_groups(tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o077)  # a strict umask must not reach /etc through the copy
    try:
        _render(out)
    finally:
        os.umask(old)

    for directory in (out / "etc").rglob("*"):
        if directory.is_dir():
            assert directory.stat().st_mode & 0o777 == 0o755, directory
    lookups = out / "etc/postfix/postdesk"
    for path in [*lookups.iterdir(), out / "etc/dovecot/postdesk-sql.conf.ext"]:
        assert path.stat().st_mode & 0o777 == 0o640
    if os.geteuid() == 0 and shutil.which("postfix"):
        assert {path.group() for path in lookups.iterdir()} == {"postfix"}
        assert (out / "etc/dovecot/postdesk-sql.conf.ext").group() == "dovecot"


def test_the_host_gets_sogo_behind_the_gate_when_the_panel_is_on_postgresql(tmp_path):
    """SOGo keeps its tables only in PostgreSQL (groupware.py): on SQLite the host's gate
    keeps ActiveSync's upstream port and no SOGo configuration is written."""
    out = tmp_path / "out"
    _render(out)
    etc = out / "etc"
    nginx = (etc / "nginx/conf.d/postdesk.conf").read_text()
    env = (etc / "postdesk/dataplane.env").read_text()
    if connection.vendor != "postgresql":
        assert not (etc / "sogo/sogo.conf").exists()
        assert "/SOGo/" not in nginx and "POSTDESK_SOGO_MEMCACHED" not in env
        return
    sogo = plistlib.loads((etc / "sogo/sogo.conf").read_bytes())
    assert sogo["WOPort"] == "127.0.0.1:20000"
    assert sogo["SOGoIMAPServer"].startswith("imap://127.0.0.1:143/?tls=YES")
    assert sogo["SOGoSMTPServer"].startswith("smtp://127.0.0.1:587/?tls=YES")
    assert sogo["SOGoMemcachedHost"] == "127.0.0.1:11211"
    (source,) = sogo["SOGoUserSources"]
    name = connection.settings_dict["NAME"]
    assert source["viewURL"].endswith(f"/{name}/dataplane_sogo_users")
    assert source["ModulesConstraints"] == {"ActiveSync": {"activesync": "1"}}
    assert "proxy_pass http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync;" in nginx
    assert "location /SOGo/ {" in nginx
    assert "POSTDESK_SOGO_MEMCACHED=127.0.0.1:11211" in env


def _render_keys(out: Path, installed: Path) -> dict[str, str | None]:
    """Render the host's tree into `out`, keeping what is installed under `installed` (the
    host's `/`), and return the keys it holds, each checked the same on both of its sides."""
    config = system_config(out, hostname=STACK_HOSTNAME, installed=installed)
    render_system(config, executable=POSTDESK, jobs=[])
    etc = out / "etc"
    env = dict(
        line.split("=", 1)
        for line in (etc / "postdesk/dataplane.env").read_text().splitlines()
        if line.startswith("POSTDESK_")
    )
    gate, doveadm = env["POSTDESK_GATE_KEY"], env["POSTDESK_DOVEADM_API_KEY"]
    # The daemons' side: nginx shows the gate key to the panel, Dovecot asks for the API key.
    assert f'X-Postdesk-Gate-Key "{gate}";' in (etc / "nginx/conf.d/postdesk.conf").read_text()
    assert f"doveadm_api_key = {doveadm}\n" in (etc / "dovecot/dovecot.conf").read_text()
    sogo = etc / "sogo/sogo.conf"  # PostgreSQL only (groupware.py)
    return {
        "gate": gate,
        "doveadm": doveadm,
        "sogo": plistlib.loads(sogo.read_bytes())["SOGoEncryptionKey"] if sogo.exists() else None,
    }


def test_rendering_again_keeps_the_keys_shared_with_the_panel_and_webmail_sessions(tmp_path):
    """A new gate or doveadm key cuts the panel off the daemons until it restarts with the new
    dataplane.env, and a new SOGo key logs every webmail user out: a render for an upgrade or a
    certificate keeps them; only a first render makes new ones."""
    nothing_installed = tmp_path / "bare-host"
    nothing_installed.mkdir()
    out = tmp_path / "out"

    first = _render_keys(out, nothing_installed)
    assert _render_keys(out, nothing_installed) == first

    fresh = _render_keys(tmp_path / "fresh", nothing_installed)
    assert fresh["gate"] != first["gate"] and fresh["doveadm"] != first["doveadm"]
    if first["sogo"] is not None:
        assert fresh["sogo"] != first["sogo"]

    # Once copied onto the host (docs/deploy.md), the installed keys are kept whatever tree
    # the next render writes into: the running daemons have them.
    installed = tmp_path / "host"
    shutil.copytree(out / "etc", installed / "etc")
    assert _render_keys(tmp_path / "fresh", installed) == first


def test_the_installed_webmail_key_is_kept_and_debians_own_sogo_conf_is_not_read(tmp_path):
    """SOGo's settings are rendered on PostgreSQL only: its key is read back from the file as
    the render writes it, whatever the database of this pass."""
    installed = tmp_path / "host"
    sogo_conf = installed / "etc/sogo/sogo.conf"
    sogo_conf.parent.mkdir(parents=True)
    sogo_conf.write_text(groupware.render({"SOGoEncryptionKey": "kept-key", "WOPort": "x"}))
    config = system_config(tmp_path / "out", hostname=STACK_HOSTNAME, installed=installed)
    assert config.sogo_encryption_key == "kept-key"

    # Debian's sogo.conf, before our first render, is an old-style property list.
    sogo_conf.write_text('{\n  SOGoEncryptionKey = "not-ours";\n}\n')
    config = system_config(tmp_path / "out", hostname=STACK_HOSTNAME, installed=installed)
    assert config.sogo_encryption_key not in {"not-ours", "kept-key"}
    assert len(config.sogo_encryption_key) >= 32


def test_installed_keys_the_render_may_not_read_stop_it(tmp_path, monkeypatch):
    """Rendering without root over a host's installed files: new keys would break the panel
    and the webmail, so the render stops and says why."""
    env = tmp_path / "host/etc/postdesk/dataplane.env"
    env.parent.mkdir(parents=True)
    env.write_text("POSTDESK_GATE_KEY=x\n")
    env.chmod(0)
    if os.geteuid() == 0:
        # Root reads a file whatever its mode: the refusal a non-root render gets, mocked.
        read_bytes = Path.read_bytes

        def refused(path: Path) -> bytes:
            if path == env:
                raise PermissionError(13, "Permission denied", str(path))
            return read_bytes(path)

        monkeypatch.setattr(Path, "read_bytes", refused)
    with pytest.raises(RenderError, match="render as root"):
        system_config(tmp_path / "out", hostname=STACK_HOSTNAME, installed=tmp_path / "host")
