"""Start and stop the mail stack on 127.0.0.1, wired to the panel's database.

`up` renders the configuration into a run directory, prepares its directories with the
ownership each daemon needs, starts Postfix and Dovecot (and SOGo with memcached when the
groupware can run: groupware.py) detached from the caller (stdin from /dev/null, output to
log files: see DATAPLANE-NOTES), waits until every port accepts connections, and records
what it started in DIR/stack.json. `down` stops exactly that.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from . import groupware, tls
from .render import StackConfig, dataplane_database_settings, instance_name, render_stack

STATE_FILE = "stack.json"
DB_GROUP = "postdesk-db"


class StackError(Exception):
    """The stack could not be started or stopped; the message says why."""


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _start_detached(log: Path, *args: str) -> int:
    """Start a daemon with nothing of ours attached: it keeps what it inherits, and a caller
    waiting on our pipes would never see us finish (DATAPLANE-NOTES)."""
    with log.open("ab") as output:
        return subprocess.run(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            check=False,
            timeout=60,
        ).returncode


def _chown(path: Path, user: str, group: str | None = None) -> None:
    shutil.chown(path, user=user, group=group or grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name)


def _traversable(path: Path) -> None:
    """Postfix's and Dovecot's users must be able to reach the run directory and the database."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _share_sqlite(db_path: Path) -> None:
    """Let the daemons (OpenDKIM too) read a SQLite database in WAL mode.

    A WAL reader needs write access to the -wal and -shm files (SQLite creates them with the
    database file's owner and mode) and to the directory, to create them when absent. So the
    database and its directory go to a group the daemons' users belong to.
    """
    if _run("getent", "group", DB_GROUP).returncode != 0:
        _run("groupadd", "--system", DB_GROUP)
    for user in ("postfix", "dovecot", "mail", "opendkim"):
        _run("usermod", "--append", "--groups", DB_GROUP, user)
    directory = db_path.parent
    shutil.chown(directory, group=DB_GROUP)
    directory.chmod(0o2770 | (directory.stat().st_mode & 0o005))
    for path in [db_path, *directory.glob(db_path.name + "-*")]:
        shutil.chown(path, group=DB_GROUP)
        path.chmod(0o660)
    _traversable(directory)


def _wait_for_ports(ports: dict[str, int], logs: list[Path], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    waiting = dict(ports)
    while waiting and time.monotonic() < deadline:
        for name, port in list(waiting.items()):
            with socket.socket() as sock:
                sock.settimeout(0.2)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    del waiting[name]
        if waiting:
            time.sleep(0.1)
    if waiting:
        tails = "; ".join(f"{log.name}: {log.read_text()[-400:]!r}" for log in logs if log.exists())
        raise StackError(f"not listening after {timeout:.0f} s: {', '.join(waiting)}. {tails}")


def up(config: StackConfig, db: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start Postfix and Dovecot; return the state written to DIR/stack.json."""
    if os.geteuid() != 0:
        raise StackError("the mail stack needs root to start Postfix and Dovecot")
    state_path = config.dir / STATE_FILE
    if state_path.exists():
        raise StackError(f"a stack is already running in {config.dir} (run `dataplane down`)")
    db = db or dataplane_database_settings()
    config.dir.mkdir(parents=True, exist_ok=True)
    config.dir.chmod(0o755)
    _traversable(config.dir)
    for sub in ("log", "run", "postfix-queue", "postfix-data", "vmail"):
        (config.dir / sub).mkdir(exist_ok=True)
    _chown(config.dir / "postfix-data", "postfix")
    _chown(config.dir / "vmail", "mail")
    (config.dir / "vmail").chmod(0o770)
    if db["engine"] == "sqlite":
        if not Path(db["path"]).exists():
            raise StackError(f"no database at {db['path']}: run `postdesk migrate` first")
        _share_sqlite(Path(db["path"]))

    certificate = config.certificate()  # a certificate that cannot be used stops us here
    render_stack(config, db)
    for path in (config.dir / "postfix").glob("*.cf"):
        shutil.chown(path, group="postfix")
    for secret in [
        *(config.dir / "dovecot").glob("*sql.conf.ext"),
        *(config.dir / "dovecot").glob("*.passwd"),  # a backend's master user (routing.py)
    ]:
        shutil.chown(secret, group="dovecot")

    postfix_dir = str(config.dir / "postfix")
    check = _run("postfix", "-c", postfix_dir, "check")
    if check.returncode != 0:
        # With no terminal and no syslog, Postfix says nothing; under a pseudo-terminal it
        # prints the reason (DATAPLANE-NOTES).
        told = _run("script", "-qc", f"postfix -c {postfix_dir} check", "/dev/null")
        reason = (check.stderr or check.stdout or told.stdout).strip()
        raise StackError(f"postfix check failed: {reason}")
    startup_log = config.dir / "log" / "startup.log"
    if _start_detached(startup_log, "postfix", "-c", postfix_dir, "start") != 0:
        raise StackError(f"postfix did not start: see {startup_log}")
    srs_pidfile = config.dir / "run" / "postsrsd.pid"
    secret = config.dir / "postsrsd.secret"
    if not secret.exists():
        secret.write_text(secrets.token_urlsafe(32) + "\n")
    secret.chmod(0o600)
    if (
        _start_detached(
            startup_log,
            "postsrsd",
            f"-s{secret}",
            f"-d{config.hostname}",
            "-l127.0.0.1",
            f"-f{config.srs_forward_port}",
            f"-r{config.srs_reverse_port}",
            "-upostsrsd",
            f"-p{srs_pidfile}",
            "-4",
            "-D",
        )
        != 0
    ):
        _start_detached(startup_log, "postfix", "-c", postfix_dir, "stop")
        raise StackError(f"postsrsd did not start: {startup_log.read_text()[-500:]}")
    dovecot_conf = str(config.dir / "dovecot" / "dovecot.conf")
    if _start_detached(startup_log, "dovecot", "-c", dovecot_conf) != 0:
        _stop_pidfile(srs_pidfile)
        _start_detached(startup_log, "postfix", "-c", postfix_dir, "stop")
        raise StackError(f"dovecot did not start: {startup_log.read_text()[-500:]}")

    dkim_dir = config.dir / "opendkim"
    shutil.chown(dkim_dir, group="opendkim")
    dkim_dir.chmod(0o750)
    for path in dkim_dir.iterdir():
        shutil.chown(path, group="opendkim")
    opendkim_pidfile = config.dir / "run" / "opendkim.pid"
    if (
        _start_detached(
            startup_log,
            "opendkim",
            "-x",
            str(dkim_dir / "opendkim.conf"),
            "-P",
            str(opendkim_pidfile),
        )
        != 0
    ):
        _start_detached(startup_log, "dovecot", "-c", dovecot_conf, "stop")
        _start_detached(startup_log, "postfix", "-c", postfix_dir, "stop")
        _stop_pidfile(srs_pidfile)
        raise StackError(f"opendkim did not start: {startup_log.read_text()[-500:]}")
    nginx_conf = config.dir / "nginx" / "nginx.conf"
    nginx_conf.chmod(0o640)
    if _start_detached(startup_log, "nginx", "-c", str(nginx_conf), "-p", str(config.dir)) != 0:
        _start_detached(startup_log, "dovecot", "-c", dovecot_conf, "stop")
        _start_detached(startup_log, "postfix", "-c", postfix_dir, "stop")
        _stop_pidfile(srs_pidfile)
        _stop_pidfile(opendkim_pidfile)
        raise StackError(f"nginx did not start: {startup_log.read_text()[-500:]}")

    groupware_off = config.groupware_unavailable(db)
    groupware_ports: dict[str, int] = {}
    if not groupware_off:
        try:
            _start_groupware(config, startup_log)
        except StackError:
            for pidfile in (srs_pidfile, opendkim_pidfile, config.dir / "run" / "nginx.pid"):
                _stop_pidfile(pidfile)
            _start_detached(startup_log, "dovecot", "-c", dovecot_conf, "stop")
            _start_detached(startup_log, "postfix", "-c", postfix_dir, "stop")
            raise
        groupware_ports = {"sogo": config.sogo_port, "memcached": config.memcached_port}

    state = {
        "dir": str(config.dir),
        "postfix_config": postfix_dir,
        "dovecot_config": dovecot_conf,
        "dovecot_instance": instance_name(config),
        "ports": {
            "smtp": config.smtp_port,
            "submission": config.submission_port,
            "submissions": config.submissions_port,
            "imap": config.imap_port,
            "imaps": config.imaps_port,
            "pop3": config.pop3_port,
            "pop3s": config.pop3s_port,
            "lmtp": config.lmtp_port,
            "auth": config.auth_port,
            "doveadm": config.doveadm_port,
            "quota_status": config.quota_status_port,
            "reinject": config.reinject_port,
            "srs_forward": config.srs_forward_port,
            "srs_reverse": config.srs_reverse_port,
            "gate": config.gate_port,
            "upstream": config.upstream_port,
            "opendkim": config.opendkim_port,
            **({"probe": config.probe_port} if config.probe_address else {}),
            **groupware_ports,
        },
        # Whether SOGo (webmail, ActiveSync, CalDAV/CardDAV) runs behind the gate, and if
        # not, why.
        "groupware": {"running": not groupware_off, "reason": groupware_off},
        "tls_cert": str(certificate.cert),
        "tls_key": str(certificate.key),
        "opendkim_dir": str(dkim_dir),
        "opendkim_pidfile": str(opendkim_pidfile),
        "gate_key": config.gate_key,
        "nginx_pidfile": str(config.dir / "run" / "nginx.pid"),
        "postsrsd_pidfile": str(srs_pidfile),
        "doveadm_url": f"http://127.0.0.1:{config.doveadm_port}/doveadm/v1",
        "doveadm_api_key": config.doveadm_password,
        "vmail": str(config.vmail),
        "relay": config.relay,
    }
    state_path.write_text(json.dumps(state, indent=2))
    state_path.chmod(0o600)
    try:
        logs = [config.dir / "log" / "postfix.log", config.dir / "log" / "dovecot.log"]
        _wait_for_ports(state["ports"], [*logs, config.dir / "sogo" / "sogod.log"])
    except StackError:
        down(config.dir)
        raise
    return state


def _start_groupware(config: StackConfig, startup_log: Path) -> None:
    """Start memcached and a private sogod, both detached, on loopback.

    sogod runs as Debian's `sogo` user (it refuses root) and reads its settings from
    DIR/sogo (GNUSTEP_CONFIG_FILE), not from /etc/sogo/sogo.conf's keys that we set.
    """
    sogo_dir = config.dir / "sogo"
    cache_run = config.dir / "run" / "memcached"
    cache_run.mkdir(exist_ok=True)
    _chown(cache_run, "memcache")
    if (
        _start_detached(
            startup_log,
            "memcached",
            "-d",
            "-l",
            "127.0.0.1",
            "-p",
            str(config.memcached_port),
            "-U",
            "0",
            "-m",
            "64",
            "-u",
            "memcache",
            "-P",
            str(cache_run / "memcached.pid"),
        )
        != 0
    ):
        raise StackError(f"memcached did not start: {startup_log.read_text()[-500:]}")
    for path in [sogo_dir, *sogo_dir.rglob("*")]:
        _chown(path, groupware.USER)
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "GNUSTEP_CONFIG_FILE": str(sogo_dir / "GNUstep.conf"),
        "HOME": str(sogo_dir),
    }
    started = _start_detached(
        startup_log,
        "runuser",
        "-u",
        groupware.USER,
        "--",
        "env",
        "-i",
        *(f"{name}={value}" for name, value in env.items()),
        str(groupware.SOGOD),
        "-WOPidFile",
        str(sogo_dir / "sogod.pid"),
        "-WOLogFile",
        str(sogo_dir / "sogod.log"),
    )
    if started != 0:
        _stop_pidfile(cache_run / "memcached.pid")
        raise StackError(f"sogod did not start: {startup_log.read_text()[-500:]}")


def _stop_groupware(directory: Path) -> None:
    _stop_process_tree(directory / "sogo" / "sogod.pid")
    _stop_pidfile(directory / "run" / "memcached" / "memcached.pid")


def _stop_process_tree(pidfile: Path, grace: float = 1) -> None:
    """End sogod's watchdog and its workers: SIGTERM, and SIGKILL for what is left after
    `grace` seconds: its watchdog takes about 9 s to end on TERM, and SOGo keeps nothing in
    memory that a kill would lose (its tables are in the database, its cache is memcached)."""
    pid = _pid(pidfile)
    if pid is None:
        return
    children = _children(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.1)
    for leftover in [pid, *children]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(leftover, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    """Whether the process runs (a zombie does not: nobody may be there to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        # "PID (comm) STATE PPID ...": comm may hold spaces, so read after its ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(proc.name))
    return found


def reload(directory: Path) -> None:
    """Have Postfix, Dovecot and nginx read their configuration and certificate again.

    For a renewed certificate (certbot's deploy hook): each daemon keeps its listening sockets
    and its open sessions, so no connection is refused meanwhile. The pair is checked first:
    a renewal whose key does not match leaves the running certificate in place.
    """
    state = read_state(directory)
    tls.checked(Path(state["tls_cert"]), Path(state["tls_key"]))
    log = Path(state["dir"]) / "log" / "startup.log"
    if _start_detached(log, "postfix", "-c", state["postfix_config"], "reload") != 0:
        raise StackError(f"postfix did not reload: {log.read_text()[-500:]}")
    if _start_detached(log, "dovecot", "-c", state["dovecot_config"], "reload") != 0:
        raise StackError(f"dovecot did not reload: {log.read_text()[-500:]}")
    _signal_pidfile(Path(state["nginx_pidfile"]), signal.SIGHUP)


def read_state(directory: Path) -> dict[str, Any]:
    state_path = directory / STATE_FILE
    if not state_path.exists():
        raise StackError(f"no stack is running in {directory}")
    return json.loads(state_path.read_text())


def down(directory: Path) -> None:
    """Stop what `up` started in this directory, and nothing else."""
    state = read_state(directory)
    log = Path(state["dir"]) / "log" / "startup.log"
    _start_detached(log, "dovecot", "-c", state["dovecot_config"], "stop")
    _start_detached(log, "postfix", "-c", state["postfix_config"], "stop")
    _stop_pidfile(Path(state["postsrsd_pidfile"]))
    _stop_pidfile(Path(state["nginx_pidfile"]))
    _stop_pidfile(Path(state["opendkim_pidfile"]))
    if state.get("groupware", {}).get("running"):
        _stop_groupware(Path(state["dir"]))
    deadline = time.monotonic() + 15
    pidfiles = [
        Path(state["dir"]) / "postfix-queue" / "pid" / "master.pid",
        Path(state["dir"]) / "run" / "dovecot" / "master.pid",
    ]
    while time.monotonic() < deadline and any(_alive(p) for p in pidfiles):
        time.sleep(0.1)
    _end_leftovers(state["dovecot_instance"])
    (directory / STATE_FILE).unlink()


def _end_leftovers(instance: str) -> None:
    """End this instance's Dovecot processes that outlive their master.

    Seen here: after `dovecot stop`, the master exits but its children (imap sessions, auth,
    anvil, log) live on, reparented to init, so a logged-in session would survive a restart.
    They carry the instance name in their title, which tells them from any other Dovecot.
    """
    prefix = f"dovecot-{instance}/".encode()
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        found = False
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                title = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(prefix):
                found = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal_number)
        if not found:
            return
        time.sleep(0.5)


def _pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _stop_pidfile(pidfile: Path) -> None:
    """End the process a pidfile names (postsrsd has no stop command)."""
    pid = _pid(pidfile)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pidfile):
        time.sleep(0.05)
    pidfile.unlink(missing_ok=True)


def _signal_pidfile(pidfile: Path, signal_number: int) -> None:
    pid = _pid(pidfile)
    if pid is None:
        raise StackError(f"no process recorded in {pidfile}")
    try:
        os.kill(pid, signal_number)
    except ProcessLookupError:
        raise StackError(f"the process recorded in {pidfile} is gone") from None


def _alive(pidfile: Path) -> bool:
    pid = _pid(pidfile)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_dovecot(directory: Path) -> None:
    """Stop Dovecot alone (an outage, for the outbox's tests and for maintenance)."""
    state = read_state(directory)
    _start_detached(
        Path(state["dir"]) / "log" / "startup.log", "dovecot", "-c", state["dovecot_config"], "stop"
    )
    pidfile = Path(state["dir"]) / "run" / "dovecot" / "master.pid"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(pidfile):
        time.sleep(0.1)
    _end_leftovers(state["dovecot_instance"])


def start_dovecot(directory: Path) -> None:
    state = read_state(directory)
    log = Path(state["dir"]) / "log" / "startup.log"
    if _start_detached(log, "dovecot", "-c", state["dovecot_config"]) != 0:
        raise StackError(f"dovecot did not start: {log.read_text()[-500:]}")
    ports = {k: state["ports"][k] for k in ("imap", "lmtp", "auth", "doveadm", "quota_status")}
    _wait_for_ports(ports, [Path(state["dir"]) / "log" / "dovecot.log"])
