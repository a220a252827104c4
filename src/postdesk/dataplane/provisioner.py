"""The side effects the database cannot express, done on the mail servers.

Called by the outbox tasks (mail/tasks.py, dns/tasks.py) and the usage collector, and by no
request but the gate's (folder change tracking before a phone's command, gate.py): each raises
ProvisionerUnavailable when the server cannot be reached, and the task is queued again until
it succeeds.
"""

from __future__ import annotations

import base64
import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import psutil
from django.conf import settings
from django.db import DatabaseError, connection
from pymemcache.client.base import Client as MemcacheClient
from pymemcache.exceptions import MemcacheError

from . import groupware
from .routing import MOVING_TRANSPORT

# What the operator is told while no mail server is connected.
NOT_CONNECTED = (
    "no mail servers connected (POSTDESK_DOVEADM_URL is not set): changes are saved and "
    "apply when a mail host connects"
)


def connected() -> bool:
    """Whether a mail server is connected: the panel knows where its doveadm API is."""
    return bool(settings.POSTDESK_DOVEADM_URL)


class ProvisionerUnavailable(Exception):
    """The mail server did not answer; retry later."""


# sysexits' EX_NOUSER: doveadm found no session or user matching the mask.
EX_NOUSER = 68


class NothingMatched(Exception):
    """doveadm matched nothing (no open session to kick)."""


def _bracketed(address: str) -> str:
    """An IP address as a URL or a dsync destination names it: an IPv6 one in brackets, its
    colons apart from the port's."""
    return f"[{address}]" if ":" in address else address


def doveadm_url(home_address: str | None) -> str:
    """Where the doveadm HTTP API of a mailbox's home answers, for a caller that runs
    elsewhere (the panel's gate). A mailbox without a home lives here: POSTDESK_DOVEADM_URL
    (this host's Dovecot, unchanged on a single host). A mailbox homed on a backend of a
    fleet: the same URL at the home's address, since every host of a fleet listens on the
    same doveadm port and takes the same key (routing.doveadm_api_key)."""
    local = settings.POSTDESK_DOVEADM_URL
    if not home_address or not local:
        return local
    parts = urlsplit(local)
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{_bracketed(home_address)}{port}"))


def _doveadm(
    command: str, parameters: dict, timeout: float = 10, home_address: str | None = None
) -> list:
    url = doveadm_url(home_address)
    if not url:
        raise ProvisionerUnavailable("POSTDESK_DOVEADM_URL is not set")
    key = base64.b64encode(settings.POSTDESK_DOVEADM_API_KEY.encode()).decode()
    request = urllib.request.Request(  # noqa: S310 - the operator's configured doveadm URL
        url,
        data=json.dumps([[command, parameters, "postdesk"]]).encode(),
        headers={"Authorization": f"X-Dovecot-API {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ProvisionerUnavailable(f"doveadm at {url}: {error}") from None
    kind, payload, _tag = answer[0]
    if kind == "error":
        if isinstance(payload, dict) and payload.get("exitCode") == EX_NOUSER:
            raise NothingMatched(command)
        raise ProvisionerUnavailable(f"doveadm {command} failed: {payload}")
    return payload


def mailbox_usage() -> dict[str, tuple[int, int]]:
    """address → (bytes, messages) of every mailbox, as Dovecot's quota accounting knows
    them: one doveadm call (`quota get` for all users, through the HTTP API)."""
    usage: dict[str, list[int]] = {}
    for row in _doveadm("quotaGet", {"allUsers": True}):
        bucket = usage.setdefault(row["username"].lower(), [0, 0])
        if row["type"] == "STORAGE":
            bucket[0] = int(row["value"]) * 1024  # Dovecot counts storage in KiB
        elif row["type"] == "MESSAGE":
            bucket[1] = int(row["value"])
    return {address: (values[0], values[1]) for address, values in usage.items()}


def kick_sessions(address: str) -> None:
    """Disconnect every IMAP (and other Dovecot) session of a mailbox."""
    with contextlib.suppress(NothingMatched):  # no session open: nothing to disconnect
        _doveadm("kick", {"mask": [address]})


# How long one copy of a mailbox (dsync) may take: a large mailbox's first copy is long.
COPY_TIMEOUT = 6 * 3600


def copy_mailbox(address: str, destination: str, timeout: float = COPY_TIMEOUT) -> None:
    """Make the mailbox at the backend `destination` (an IP address) the same as here: its
    folders, messages (with their UIDs), flags and subscriptions, what Dovecot's `doveadm
    backup` (dsync, one way) copies. It reaches the destination's doveadm server at the
    fleet's `doveadm_port`, logging in with its `doveadm_password` (dovecot.conf); what is
    there already and not here is removed, so a copy run again only sends what changed."""
    target = f"tcp:{_bracketed(destination)}"
    try:
        _doveadm("backup", {"user": address, "destination": [target]}, timeout)
    except ProvisionerUnavailable as error:
        # doveadm answers a dsync that could not reach the target by closing the connection:
        # the reason (refused, no route, a wrong doveadm_password) is only in its log.
        raise ProvisionerUnavailable(
            f"copy of {address} to {destination} failed ({error}); Dovecot's log on this "
            "host says why (doveadm backup)"
        ) from None


# How long an MX may take, once a mailbox is locked for its move, to see the lock in its own
# lookup (a replica's lag), and then to finish the deliveries it had already begun.
ROUTES_DROP_TIMEOUT = 60.0
# The Postfix processes that may still send a locked mailbox's mail to its old home: the
# queue manager routes each recipient through its resolver client, which keeps its last
# answer for 30 s (resolve_clnt's one-entry cache, not a setting), and the LMTP clients
# deliver what it routed. trivial-rewrite asks the transport table at every lookup, and the
# table's SQL client caches nothing.
QUEUE_MANAGER = "qmgr"
LMTP_CLIENT = "lmtp"


# postmap's exit status for a key the table does not have.
POSTMAP_NOT_FOUND = 1


def _postfix(*command: str, not_found_ok: bool = False) -> str:
    """A Postfix command (`postconf`, `postmap`, `postfix`) on this host's instance; its
    output ("" for a key `postmap -q` did not find, when that is fine)."""
    config = settings.POSTDESK_POSTFIX_CONFIG_DIR
    try:
        done = subprocess.run(
            [command[0], "-c", config, *command[1:]],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ProvisionerUnavailable(f"{command[0]}: {error}") from None
    if not_found_ok and done.returncode == POSTMAP_NOT_FOUND:
        return ""
    if done.returncode != 0:
        raise ProvisionerUnavailable(f"{' '.join(command)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def reload_postfix() -> None:
    """Have this host's Postfix start its processes afresh: each smtpd keeps the routes it
    resolved for as long as it lives (its resolver's table, smtpd_resolve), so after a
    mailbox's move one would go on answering the lock's 450 for it."""
    _postfix("postfix", "reload")


def _until(condition, what: str, deadline: float) -> None:
    while not condition():
        if time.monotonic() > deadline:
            raise ProvisionerUnavailable(f"Postfix: {what} after {ROUTES_DROP_TIMEOUT:.0f} s")
        time.sleep(0.1)


def drop_cached_routes(address: str) -> None:
    """Make sure this MX's Postfix sends no more of the mailbox's mail to its old home, once
    the mailbox is locked for its move (mail.tasks.mailbox_move_run): its own transport lookup
    answers the lock, a reload replaced the queue manager (and its resolver's cached route),
    and every LMTP delivery the old queue manager had begun is over. ProvisionerUnavailable
    when Postfix is unreachable or that takes longer than ROUTES_DROP_TIMEOUT."""
    deadline = time.monotonic() + ROUTES_DROP_TIMEOUT
    queue_dir, _, maps = _postfix("postconf", "-xh", "queue_directory", "transport_maps").partition(
        "\n"
    )
    # The fleet's table (render.py): `TYPE:DIR/transport.cf`, after the probe's inline map.
    table = re.search(r"([\w:]+:/[^\s,]+/transport\.cf)", maps)
    if table:
        _until(
            lambda: (
                _postfix("postmap", "-q", address, table.group(1), not_found_ok=True).strip()
                == MOVING_TRANSPORT
            ),
            f"the transport table does not answer the lock for {address}",
            deadline,
        )
    try:
        master = psutil.Process(int((Path(queue_dir) / "pid" / "master.pid").read_text()))
        queue_managers = [p for p in master.children() if p.name() == QUEUE_MANAGER]
        _postfix("postfix", "reload")
        _gone, alive = psutil.wait_procs(queue_managers, timeout=ROUTES_DROP_TIMEOUT)
        if alive:
            raise ProvisionerUnavailable("Postfix: the queue manager did not restart")
        # A delivery under way holds its queue file open; the new queue manager routes
        # afresh, so only those begun before it can still reach the old home.
        begun = _queue_files_delivered(master, queue_dir)
        _until(
            lambda: not begun & _queue_files_delivered(master, queue_dir),
            "deliveries begun before the lock are not over",
            deadline,
        )
    except (OSError, ValueError, psutil.Error) as error:
        raise ProvisionerUnavailable(f"Postfix in {queue_dir}: {error}") from None


def _queue_files_delivered(master: psutil.Process, queue_dir: str) -> set[str]:
    """The queue files the master's LMTP clients hold open: the messages being delivered."""
    files = set()
    for child in master.children():
        try:
            if child.name() == LMTP_CLIENT:
                files.update(f.path for f in child.open_files() if f.path.startswith(queue_dir))
        except psutil.NoSuchProcess:  # done meanwhile
            continue
    return files


def track_changes(address: str) -> None:
    """Have Dovecot track the changes (modseqs) of a mailbox's Inbox from now on.

    SOGo's ActiveSync reads a folder's state from HIGHESTMODSEQ in Dovecot's answer to
    SELECT and, while that is absent, answers every Sync with "no changes" (it enables
    CONDSTORE itself only once it saw a change). Dovecot sends HIGHESTMODSEQ once tracking
    is on for the folder, which any use of a modseq turns on for good: a search on MODSEQ
    does, even in an empty folder (`doveadm mailbox update --min-highest-modseq` does not
    for Maildir). So a new mailbox's Inbox is searched once that way (Dovecot creates it if
    no mail came yet).
    """
    _doveadm("search", {"user": address, "query": ["mailbox", "INBOX", "modseq", "1"]})


# A modseq no message has: the search finds nothing, so Dovecot answers with no rows whatever
# the size of the mailbox, yet it turns tracking on in every folder it opens.
_NO_MESSAGE_HAS = str(2**64 - 1)


def track_changes_everywhere(address: str, home_address: str | None = None) -> None:
    """Have Dovecot track the changes of every folder of a mailbox, whoever created it and
    when (track_changes says why SOGo's ActiveSync needs it). Dovecot 2.3 has no setting
    that turns tracking on for every folder: only a client's use of a modseq does, folder by
    folder. One search over all folders, with a modseq nothing has, does it in each. Asked
    of the Dovecot at `home_address`, where the folders are (doveadm_url)."""
    query = ["mailbox", "*", "modseq", _NO_MESSAGE_HAS]
    _doveadm("search", {"user": address, "query": query}, home_address=home_address)


def forget_groupware_user(address: str) -> None:
    """Have SOGo check a mailbox against the database again at its next request
    (forget_groupware_users)."""
    forget_groupware_users([address])


def forget_groupware_users(addresses: list[str]) -> None:
    """Have SOGo check these mailboxes against the database again at their next request.

    SOGo caches, per login, the password it last verified (SHA-1) and the modules the
    mailbox may use, in memcached under "LOGIN+attributes", for SOGoCacheCleanupInterval
    (300 s): until it is gone, the old password keeps working there, the new one is
    refused, and an ActiveSync switched off still passes. LOGIN is as the user typed it,
    and SOGo takes a login in any case (the view's c_uid, as Dovecot does), so each case
    typed has its own entry: memcached deletes by exact key only, so the keys are read from
    its list of keys (`lru_crawler metadump`) and every case of the addresses is deleted.
    Without the groupware (POSTDESK_SOGO_MEMCACHED empty) there is nothing to forget.
    """
    server = settings.POSTDESK_SOGO_MEMCACHED
    if not server:
        return
    host, _, port = server.rpartition(":")
    wanted = {f"{address.lower()}+attributes" for address in addresses}
    client = MemcacheClient((host, int(port)), connect_timeout=5, timeout=5)
    try:
        cached = _cached_keys(client)
        keys = wanted | {key for key in cached if key.lower() in wanted}
        client.delete_many(sorted(keys), noreply=False)
    except (MemcacheError, OSError) as error:
        raise ProvisionerUnavailable(f"SOGo's memcached at {server}: {error}") from None
    finally:
        client.close()


def _cached_keys(client: MemcacheClient) -> list[str]:
    """Every key memcached holds now (its `lru_crawler metadump`, one "key=…" line each,
    URL-encoded)."""
    dump = client.raw_command("lru_crawler metadump all", "END\r\n").decode()
    if dump.startswith("BUSY"):  # a crawl already running: the task tries again shortly
        raise MemcacheError("memcached's key list is busy")
    return [
        unquote(line.split()[0].removeprefix("key="))
        for line in dump.splitlines()
        if line.startswith("key=")
    ]


def storage_path(domain: str, storage: str) -> Path:
    # The same layout as the Dovecot user_query: VMAIL/DOMAIN/STORAGE.
    return Path(settings.POSTDESK_VMAIL_DIR) / domain / storage


def remove_storage(domain: str, storage: str) -> None:
    """Delete a deleted mailbox's messages for good."""
    if not settings.POSTDESK_VMAIL_DIR:
        raise ProvisionerUnavailable("POSTDESK_VMAIL_DIR is not set")
    path = storage_path(domain, storage)
    if not path.parent.parent.exists():
        raise ProvisionerUnavailable(f"the mail storage {settings.POSTDESK_VMAIL_DIR} is absent")
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass  # never delivered to, or already removed: done either way
    except OSError as error:
        raise ProvisionerUnavailable(f"cannot remove {path}: {error}") from None


def remove_groupware_data(address: str) -> None:
    """Delete what SOGo keeps of a deleted mailbox (calendars, contacts, preferences), as
    `sogo-tool remove` does: SOGo's tables live in the panel's own PostgreSQL database
    (groupware.py); without them (SQLite, or SOGo never started) there is nothing to do."""
    try:
        with connection.cursor() as cursor:
            tables = set(connection.introspection.table_names(cursor))
            for sql in groupware.user_data_removal(tables):
                cursor.execute(sql, [address])
    except DatabaseError as error:
        raise ProvisionerUnavailable(f"cannot remove SOGo's data of {address}: {error}") from None


SIEVE_FILE = "postdesk-forwarding.sieve"


def write_forwarding(domain: str, storage: str, script: str | None) -> None:
    """Install (or remove) the mailbox's forwarding script where Dovecot runs it."""

    if not settings.POSTDESK_VMAIL_DIR:
        raise ProvisionerUnavailable("POSTDESK_VMAIL_DIR is not set")
    home = storage_path(domain, storage)
    target = home / SIEVE_FILE
    compiled = target.with_suffix(".svbin")
    try:
        if script is None:
            target.unlink(missing_ok=True)
            compiled.unlink(missing_ok=True)
            return
        mail = pwd.getpwnam("mail")
        for directory in (home.parent, home):
            if not directory.exists():
                directory.mkdir(mode=0o700)
                os.chown(directory, mail.pw_uid, mail.pw_gid)
        temporary = target.with_suffix(".tmp")
        temporary.write_text(script)
        os.chown(temporary, mail.pw_uid, mail.pw_gid)
        temporary.replace(target)  # atomic: Dovecot never reads half a script
        compiled.unlink(missing_ok=True)
    except OSError as error:
        raise ProvisionerUnavailable(f"cannot write {target}: {error}") from None


def deploy_dkim_keys(keys: list[tuple[int, bytes]]) -> dict[int, str]:
    """Write the private keys OpenDKIM may sign with, (key id, PEM) each; return each key's
    file by its id.

    Files only: which domain signs with which key, OpenDKIM reads from the `dataplane_dkim`
    view for each message, so there is no table to rewrite and no reload to wait for. Files
    of keys no longer given are removed.
    """
    directory = settings.POSTDESK_OPENDKIM_DIR
    if not directory:
        raise ProvisionerUnavailable("POSTDESK_OPENDKIM_DIR is not set")
    keys_dir = Path(directory) / "keys"
    written: dict[int, str] = {}
    try:
        gid = grp.getgrnam("opendkim").gr_gid
        # OpenDKIM refuses a key that anyone but its own user may read (RequireSafeKeys).
        uid = pwd.getpwnam("opendkim").pw_uid
        keys_dir.mkdir(mode=0o750, exist_ok=True)
        os.chown(keys_dir, 0, gid)
        for key_id, pem in keys:
            path = keys_dir / f"{key_id}.pem"
            # A key never changes once made: only a new one is written.
            if not (path.exists() and path.read_bytes() == pem):
                _atomic_write(path, pem.decode(), 0o600, gid, uid)
            written[key_id] = str(path)
        for stale in keys_dir.glob("*.pem"):
            if str(stale) not in written.values():
                stale.unlink()
    except (OSError, KeyError) as error:
        raise ProvisionerUnavailable(f"cannot deploy DKIM keys: {error}") from None
    return written


def _atomic_write(path: Path, text: str, mode: int, gid: int, uid: int = 0) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.chmod(mode)
    os.chown(temporary, uid, gid)
    temporary.replace(path)
