"""The EAS/MAPI/DAV gate: nginx's auth_request asks here before letting a client through.

A request passes when its Basic credentials are a mailbox's address and current password,
the mailbox's option for that protocol is on, and its client is not suspended. The same
rules as the dataplane views: this reads `dataplane_mailboxes`, the contract.

Guessing is bounded: wrong passwords are counted per mailbox address and per client address
(postdesk.throttle), and over the limit the client gets 429 with Retry-After. A device whose
credentials were verified recently still passes meanwhile, so someone guessing at a mailbox
does not lock out its phones. A verified answer is remembered for POSTDESK_GATE_CACHE_SECONDS
under a keyed hash of the stored hash and the password (never the password itself): an
ActiveSync phone asks every few minutes, and each Argon2id verify costs ~0.5 s of CPU. A new
password changes the stored hash, so it holds at once, and so does a protocol switched off
(read on every request). A missing mailbox is verified against a dummy hash, so the time of
the answer does not tell which mailboxes exist.

A phone's request that passes (a POST: every ActiveSync command) first has Dovecot track the
changes of all the mailbox's folders (provisioner.track_changes_everywhere): SOGo's ActiveSync
sees new mail in a folder only once tracking is on there, and a folder created later (over
IMAP, in the webmail, by the phone) starts without it. Done here, before SOGo opens a folder
the phone names, as nginx waits for this answer; in a fleet, by the Dovecot of the mailbox's
home, where its folders are (provisioner.doveadm_url).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from enum import StrEnum
from functools import cache
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings
from django.core.cache import cache as shared_cache
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from postdesk import metrics
from postdesk.throttle import FailureLimit

from . import provisioner
from .passwords import hash_password, verify_password

logger = logging.getLogger(__name__)

# What each protocol's gate checks in the contract: a mailbox's own switch for ActiveSync and
# MAPI, its domain's for calendar and contact apps (CalDAV/CardDAV, the groupware's /SOGo/dav/).
PROTOCOL_COLUMNS = {"eas": "eas_enabled", "mapi": "mapi_enabled", "dav": "dav_enabled"}


class Decision(StrEnum):
    """The gate's answers about a client, as Prometheus counts them."""

    ALLOWED = "allowed"
    REFUSED = "refused"  # no, or wrong, credentials; or the protocol is off for the mailbox
    THROTTLED = "throttled"  # too many wrong passwords lately


def _credentials(request: HttpRequest) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user.strip().lower(), password) if sep else None


def _unauthorized() -> HttpResponse:
    response = HttpResponse(status=401)
    response["WWW-Authenticate"] = 'Basic realm="mail"'
    return response


def _too_many(seconds: int) -> HttpResponse:
    # A 403 with Retry-After: nginx's auth_request passes on only 2xx, 401 and 403, and our
    # nginx answers this one as 429 with the same Retry-After.
    response = HttpResponse(status=403)
    response["Retry-After"] = str(seconds)
    return response


def _limits() -> tuple[FailureLimit, FailureLimit]:
    window = settings.POSTDESK_GATE_FAILURE_WINDOW
    return (
        FailureLimit("gate-mailbox", settings.POSTDESK_GATE_FAILURE_LIMIT, window),
        FailureLimit("gate-client", settings.POSTDESK_GATE_CLIENT_FAILURE_LIMIT, window),
    )


@cache
def _dummy_hash(memory_kib: int, time_cost: int) -> str:
    """A hash with the current cost that no password matches, to verify against when the
    mailbox does not exist (one per cost, made once per process)."""
    return hash_password(secrets.token_urlsafe(32))


def _verified_key(stored_hash: str, password: str) -> str:
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"{stored_hash}\0{password}".encode(), hashlib.sha256
    )
    return f"postdesk:gate-verified:{digest.hexdigest()}"


def _recently_verified(stored_hash: str, password: str) -> bool:
    return shared_cache.get(_verified_key(stored_hash, password)) is not None


def _verify(stored_hash: str | None, password: str) -> bool:
    if stored_hash is None:
        verify_password(
            password,
            _dummy_hash(settings.POSTDESK_ARGON2_MEMORY_KIB, settings.POSTDESK_ARGON2_TIME_COST),
        )
        return False
    if not verify_password(password, stored_hash):
        return False
    shared_cache.set(
        _verified_key(stored_hash, password), True, timeout=settings.POSTDESK_GATE_CACHE_SECONDS
    )
    return True


@require_GET
def gate(request: HttpRequest, protocol: str) -> HttpResponse:
    expected = settings.POSTDESK_GATE_KEY
    given = request.headers.get("X-Postdesk-Gate-Key", "")
    if not expected or not hmac.compare_digest(given, expected):
        return HttpResponse(status=403)  # only our nginx may ask
    column = PROTOCOL_COLUMNS.get(protocol)
    if column is None:
        return HttpResponse(status=404)
    decision, response, home_address = _decide(request, column)
    # nginx's subrequest is a GET: it names the phone's method and URI in headers.
    phone_command = request.headers.get("X-Original-Method") == "POST"
    if decision is Decision.ALLOWED and protocol == "eas" and phone_command:
        command = eas_command(request.headers.get("X-Original-URI"))
        _track_changes(_credentials(request)[0], home_address, command)
    # Counted for Prometheus (postdesk.metrics): only answers about a mailbox's client, not
    # the refusals above, which only a misconfigured nginx or a stranger gets.
    metrics.GATE_DECISIONS.labels(service=protocol, decision=decision).inc()
    return response


# ActiveSync's command codes in a base64-encoded query (MS-ASHTTP 2.2.1.1.1.1.1), by name.
_EAS_COMMAND_CODES = {9: "FolderSync", 10: "FolderCreate", 12: "FolderUpdate"}


def eas_command(uri: str | None) -> str:
    """The ActiveSync command a phone's request URI names ("" when it names none we know):
    `?Cmd=Sync&User=…` as most phones send it, or the base64-encoded binary query (its second
    byte is the command's code) that some send instead."""
    query = urlsplit(uri or "").query
    named = parse_qs(query).get("Cmd")
    if named:
        return named[0]
    try:
        packed = base64.b64decode(unquote(query), validate=True)
    except (binascii.Error, ValueError):
        return ""
    return _EAS_COMMAND_CODES.get(packed[1], "") if len(packed) > 1 else ""


def _tracked_key(address: str) -> str:
    return f"postdesk:gate-tracked:{address.lower()}"


def _track_changes(address: str, home_address: str | None, command: str) -> None:
    """Dovecot tracks every folder's changes before SOGo opens one. Not reaching Dovecot
    does not refuse the phone: SOGo could not read its mail either, and says so itself.

    Not at every command: a phone learns of a folder only through FolderSync, so that is
    when a new folder must be tracked; otherwise once per POSTDESK_GATE_CACHE_SECONDS per
    mailbox (a folder made meanwhile by a client that never tells the phone). A folder the
    phone itself creates or renames exists only after SOGo answers: its next command
    tracks it.
    """
    if not provisioner.connected():  # no mail server connected yet: nothing to prepare
        return
    key = _tracked_key(address)
    if command in ("FolderCreate", "FolderUpdate"):
        shared_cache.delete(key)
        return
    if command != "FolderSync" and shared_cache.get(key) is not None:
        return
    try:
        provisioner.track_changes_everywhere(address, home_address)
    except (provisioner.ProvisionerUnavailable, provisioner.NothingMatched) as error:
        logger.warning("gate: folder change tracking for %s not turned on: %s", address, error)
        return
    shared_cache.set(key, True, timeout=settings.POSTDESK_GATE_CACHE_SECONDS)


def _decide(request: HttpRequest, column: str) -> tuple[Decision, HttpResponse, str | None]:
    """What the gate decides, with its answer for nginx, and the address of the mailbox's home
    (None: no home, or no such mailbox)."""
    credentials = _credentials(request)
    if credentials is None:
        return Decision.REFUSED, _unauthorized(), None
    address, password = credentials
    # Our nginx says who the client is (only it holds the gate key).
    client = request.headers.get("X-Real-IP") or request.META.get("REMOTE_ADDR") or "unknown"
    local_part, _, domain = address.rpartition("@")
    with connection.cursor() as cursor:
        # `column` is one of PROTOCOL_COLUMNS, never the client's text.
        cursor.execute(
            f"SELECT password, {column}, home_address FROM dataplane_mailboxes "  # noqa: S608
            "WHERE local_part = %s AND domain = %s",
            [local_part, domain],
        )
        row = cursor.fetchone()
    stored_hash = row[0] if row is not None else None
    if stored_hash is None or not _recently_verified(stored_hash, password):
        per_mailbox, per_client = _limits()
        blocked = max(per_mailbox.blocked_for(address), per_client.blocked_for(client))
        if blocked:
            return Decision.THROTTLED, _too_many(blocked), None
        if not _verify(stored_hash, password):
            per_mailbox.record_failure(address)
            per_client.record_failure(client)
            return Decision.REFUSED, _unauthorized(), None
    if not row[1]:
        # Right password, protocol not enabled.
        return Decision.REFUSED, HttpResponse(status=403), None
    return Decision.ALLOWED, HttpResponse(status=204), row[2]
