"""Routing from the contract: what a host of a fleet forwards, and where (docs/scale.md).

A host renders its stack for its roles (backend, mx, proxy) and its own name. Every rule
reads `home_host` and `home_address` from the `dataplane_mailboxes` view (or, on
PostgreSQL, the `dataplane_mailbox()` function): a mailbox without a home (NULL) or homed
on this host is served here, any other one is forwarded to its home:

- proxy: Dovecot's passdb checks the mailbox's password here, once (IMAP or POP3), and
  answers `proxy=y`, `host=` the home's address; the proxy then logs in at the home as
  Dovecot's master user (`master=`, `pass=`), so the home never sees nor checks the
  customer's password.
- backend: a master passdb that knows that one user, from the proxies' addresses only
  (`allow_real_nets`), and those addresses trusted (`login_trusted_networks`).
- mx: Postfix's transport_maps send mail for a mailbox homed elsewhere over LMTP to its home.
- a mailbox being switched to a new home (`moving`, mail.moves) has its mail deferred at the
  MX and its logins refused at the proxy for that moment.

Every host of a fleet listens on the same ports (the system stack's standard ones; for the
loopback stack, the ones `dataplane up` is given), so a home's address is all a route needs.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from django.utils.crypto import salted_hmac

from .choices import HostRole
from .models import Host

ALL_ROLES = frozenset(HostRole.values)

# The user a proxy logs in as at a mailbox's home, on the mailbox's behalf (Dovecot's master
# users: "mailbox*master" in one name, or the authorization id of AUTHENTICATE PLAIN).
PROXY_MASTER_USER = "postdesk-proxy"


class UnknownHost(Exception):
    """`--host` names no registered mail host."""


@dataclass(frozen=True)
class FleetHost:
    """This host as the fleet knows it: its registered name and address, and the proxies'
    addresses (a backend takes logins on a mailbox's behalf from them alone)."""

    name: str
    address: str
    proxies: tuple[str, ...] = ()


def fleet_host(name: str) -> FleetHost:
    """The registered host `name` (`postdesk host add`); UnknownHost when there is none."""
    clean = (name or "").strip().lower()
    host = Host.objects.filter(name=clean).first()
    if host is None:
        raise UnknownHost(f"no mail host is named {clean or name!r}: register it with `host add`")
    proxies = Host.objects.filter(proxy=True).order_by("name").values_list("address", flat=True)
    return FleetHost(name=host.name, address=host.address, proxies=tuple(proxies))


def proxy_master_password() -> str:
    """The password proxies log in with at a home: derived from the panel's SECRET_KEY, so
    every host rendered with the panel's settings agrees on it and nothing new is stored."""
    return salted_hmac(
        "postdesk.dataplane.routing.proxy-master", "v1", algorithm="sha256"
    ).hexdigest()


def dsync_password() -> str:
    """The doveadm password every backend of the fleet shares (Dovecot's `doveadm_password`):
    a backend's dsync logs in with it at another's doveadm server to copy a mailbox there
    (mail.moves). Derived from SECRET_KEY as the proxies' password is, and apart from it."""
    return salted_hmac("postdesk.dataplane.routing.dsync", "v1", algorithm="sha256").hexdigest()


def doveadm_api_key() -> str:
    """The key of the doveadm HTTP API on every host of a fleet (Dovecot's `doveadm_api_key`):
    the panel's gate reaches a mailbox's home with it (provisioner.doveadm_url). Derived from
    SECRET_KEY as the other fleet passwords are, and apart from them; a single host keeps a
    key of its own, made when its stack is rendered."""
    return salted_hmac(
        "postdesk.dataplane.routing.doveadm-api", "v1", algorithm="sha256"
    ).hexdigest()


def proxy_master_passwd_line(proxies: tuple[str, ...]) -> str:
    """The backend's master passdb (passwd-file): the proxies' user, its password hashed
    (SHA256: the password is a random 256-bit key, a slow hash would only slow logins), valid
    only from the proxies' addresses (allow_real_nets: the proxy's own, not the client's IP
    it forwards)."""
    digest = hashlib.sha256(proxy_master_password().encode()).digest()
    nets = ",".join(proxies) or "127.0.0.1"
    return (
        f"{PROXY_MASTER_USER}:{{SHA256}}{base64.b64encode(digest).decode()}"
        f"::::::allow_real_nets={nets}\n"
    )


def _served_here(host: FleetHost) -> str:
    # The host's name comes from the Host table, checked when it was added: no quote in it.
    return f"(home_host IS NULL OR home_host = '{host.name}')"


def _homed_elsewhere(host: FleetHost) -> str:
    return f"home_host IS NOT NULL AND home_host <> '{host.name}'"


def _and(source: str, condition: str) -> str:
    """`source` (a view's WHERE clause, or a function call) narrowed by `condition`."""
    return f"{source} AND {condition}" if " WHERE " in source else f"{source} WHERE {condition}"


def local_mailboxes(source: str, host: FleetHost | None) -> str:
    """The mailboxes this host serves itself: all of them on a single host."""
    return source if host is None else _and(source, _served_here(host))


def proxy_password_query(
    source: str, host: FleetHost, imap_port: int, pop3_port: int, *, verify_homes: bool = False
) -> str:
    """Dovecot's passdb for mailboxes homed elsewhere: the password checked here, then the
    login forwarded to the home as the master user, to the home's port for the protocol
    logged in with (%s: Dovecot's service, imap or pop3), over STARTTLS. With
    `verify_homes` (the fleet's CA known: POSTDESK_FLEET_CA_FILE), the home's certificate
    must be signed by it and name the home's address (`starttls=yes`); without, any
    certificate is taken (`any-cert`): the hop must then stay inside a private network."""
    starttls = "yes" if verify_homes else "any-cert"
    return (
        "SELECT address AS user, password, 'Y' AS proxy, home_address AS host, "  # noqa: S608
        f"CASE WHEN '%s' = 'pop3' THEN '{pop3_port}' ELSE '{imap_port}' END AS port, "
        f"'{PROXY_MASTER_USER}' AS master, "
        f"'{proxy_master_password()}' AS pass, '{starttls}' AS starttls "
        f"FROM {_and(source, _homed_elsewhere(host))}"
    )


# What a mailbox being switched to its new home answers (mail.moves): Postfix's `retry`
# transport (master.cf: the error(8) agent) defers the mail, which waits in the MX's queue
# and goes to the new home at its next try; the proxy refuses its logins, the password
# checked first, and mail clients try again a moment later.
MOVING_TRANSPORT = "retry:4.2.0 the mailbox is being moved: try again in a minute"
MOVING_REASON = "The mailbox is being moved to another server: try again in a minute."


def transport_query(source: str, host: FleetHost, lmtp_port: int) -> str:
    """Postfix's transport for mailboxes homed elsewhere: LMTP to the home (an address in
    brackets: no DNS lookup, and an IPv6 one keeps its colons apart from the port); for a
    mailbox being switched to a new home, wherever it lives, a deferral."""
    return (
        f"SELECT CASE WHEN moving THEN '{MOVING_TRANSPORT}' "  # noqa: S608
        f"ELSE 'lmtp:inet:[' || home_address || ']:{lmtp_port}' END "
        f"FROM {_and(source, f'(moving OR {_homed_elsewhere(host)})')}"
    )


def moving_password_query(source: str) -> str:
    """The proxy's first passdb: a mailbox being switched to a new home is refused with a
    reason once its password matched (`nologin`), before any other passdb forwards it."""
    return (
        "SELECT address AS user, password, 'Y' AS nologin, "  # noqa: S608
        f"'{MOVING_REASON}' AS reason FROM {_and(source, 'moving')}"
    )
