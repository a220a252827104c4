"""The mail hosts and each mailbox's home: the services and selectors of `postdesk host`, and
the rule that picks a new mailbox's home (docs/dataplane.md, "Hosts and homes").

A host is the data plane's (dataplane.models.Host); a home is a mailbox's, so the rules that
join the two live here. Only the operator sees any of it: the customer's pages and API never
name a host.

With no backend registered, a mailbox has no home and lives on the install's single host, as
before hosts existed. The first backend the operator registers becomes the home of every
mailbox without one: that is the host they ran on, so register it first.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Concat
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tasks_db.models import get_date_max

from postdesk.audit.choices import Action
from postdesk.audit.services import audit_record
from postdesk.dataplane import provisioner
from postdesk.dataplane.choices import HostRole, HostState
from postdesk.dataplane.models import Host
from postdesk.dataplane.queues import (
    HOST_NAME_MAX,
    on_host,
    pending_tasks,
    queue_host,
    with_pending,
)
from postdesk.errors import ErrorCollector, InvalidInput, NotFound, PermissionDenied
from postdesk.tenancy.access import Actor

from .addresses import split_address
from .choices import MoveState
from .models import MOVE_UNDER_WAY, HostLoadChange, Mailbox, MailboxMove
from .tasks import (
    ADDRESS_ARGUMENT,
    LAST_COPY_TIMEOUT,
    MAILBOX_ID_ARGUMENT,
    MOVE_ACK_TIMEOUT,
    mailbox_move_run,
)

logger = logging.getLogger(__name__)

# A host name as DNS spells one (labels of letters, digits and inner hyphens), lower case.
# At most HOST_NAME_MAX (27) characters: the host's task queue, `host-NAME`, must fit
# django-tasks' column (dataplane/queues.py).
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def _require_operator(actor: Actor) -> None:
    if not actor.is_operator:
        raise PermissionDenied(_("Only the provider can manage mail hosts."))


def hosts_with_load(hosts: QuerySet[Host] | None = None) -> QuerySet[Host]:
    """The hosts, each with `mailboxes`: how many mailboxes call it home. One query, however
    many hosts and mailboxes: the sum of each host's few load changes (HostLoadChange, kept
    by triggers), not a count of its mailboxes."""
    loads = (
        HostLoadChange.objects.filter(host=OuterRef("pk"))
        .order_by()
        .values("host")
        .annotate(n=Sum("mailboxes"))
        .values("n")
    )
    return (Host.objects.all() if hosts is None else hosts).annotate(
        mailboxes=Coalesce(Subquery(loads, output_field=IntegerField()), Value(0))
    )


# --- Reads -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostRow:
    name: str
    address: str
    roles: list[str]
    state: str
    mailboxes: int
    pending: int  # tasks waiting for (or running on) the host's worker


def host_list(*, actor: Actor) -> list[HostRow]:
    """Every mail host by name, with how many mailboxes call it home and how many tasks wait
    for its worker. One query."""
    _require_operator(actor)
    return [
        HostRow(
            name=host.name,
            address=host.address,
            roles=host.roles,
            state=host.state,
            mailboxes=host.mailboxes,
            pending=host.pending,
        )
        for host in with_pending(hosts_with_load()).order_by("name")
    ]


def backend_names() -> list[str]:
    """Every backend host by name, draining ones too: they still hold mailboxes. One query."""
    return list(Host.objects.filter(backend=True).order_by("name").values_list("name", flat=True))


@dataclass(frozen=True)
class PendingTask:
    """A side effect not applied yet, and whose worker it waits for."""

    task: str  # the task's function, mailbox_sessions_kick
    # The address it is for (or a `*@domain` mask); None for what is no one mailbox's (DKIM
    # keys, several mailboxes' SOGo logins, a mailbox deleted since).
    mailbox: str | None
    host: str | None  # whose worker runs it; None: the `default` queue (the panel's)
    status: str  # READY (waiting) or RUNNING
    queued_at: datetime
    next_try_at: datetime | None  # a retry's time; None: as soon as its worker is free
    attempt: int  # 0, then 1… for each retry after the server did not answer


def tasks_pending(*, actor: Actor) -> list[PendingTask]:
    """Every task not done yet, oldest first, with the host it waits for. Two queries: the
    tasks, and the addresses of the mailboxes some name by id."""
    _require_operator(actor)
    rows = list(
        pending_tasks()
        .order_by("enqueued_at")
        .values_list("task_path", "args_kwargs", "queue_name", "status", "enqueued_at", "run_after")
    )
    by_id = {
        args_kwargs["args"][MAILBOX_ID_ARGUMENT[path]]
        for path, args_kwargs, *_rest in rows
        if path in MAILBOX_ID_ARGUMENT
    }
    addresses = (
        dict(
            Mailbox.objects.filter(pk__in=by_id).values_list(
                "pk", Concat("local_part", Value("@"), "domain__name")
            )
        )
        if by_id
        else {}
    )

    def mailbox_of(path: str, args: list) -> str | None:
        if path in ADDRESS_ARGUMENT:
            position = ADDRESS_ARGUMENT[path]
            return (args[position] or None) if len(args) > position else None
        if path in MAILBOX_ID_ARGUMENT:
            return addresses.get(args[MAILBOX_ID_ARGUMENT[path]])
        return None

    never = get_date_max()
    return [
        PendingTask(
            task=path.rpartition(".")[2],
            mailbox=mailbox_of(path, args_kwargs["args"]),
            host=queue_host(queue_name),
            status=status,
            queued_at=queued_at,
            next_try_at=None if run_after == never else run_after,
            attempt=args_kwargs["kwargs"].get("attempt", 0),
        )
        for path, args_kwargs, queue_name, status, queued_at, run_after in rows
    ]


def home_choose(*, client_id: int) -> Host | None:
    """The home of a client's new mailbox: the active backend with the fewest mailboxes (ties
    by name), among the client's pinned hosts when POSTDESK_CLIENT_HOSTS lists it. None when
    no backend is registered: the install's single host. One query, or two for a pinned
    client whose hosts cannot take it.

    Called inside the creation's transaction. Two creations at once may both pick the host
    that was least loaded before either: the balance is not exact, and evens out with the
    next creations; nothing fails.
    """
    backends = Host.objects.filter(backend=True, state=HostState.ACTIVE)
    pinned = settings.POSTDESK_CLIENT_HOSTS.get(client_id)
    if pinned:
        home = _least_loaded(backends.filter(name__in=pinned))
        if home is not None:
            return home
        # A pin to hosts that are drained, gone or misspelt must not stop the customer from
        # creating a mailbox: it goes where any other client's would, and the operator is told.
        logger.warning(
            "POSTDESK_CLIENT_HOSTS: none of client %s's hosts (%s) is an active backend; "
            "its new mailbox's home is chosen among all of them",
            client_id,
            ", ".join(pinned),
        )
    return _least_loaded(backends)


def _least_loaded(hosts: QuerySet[Host]) -> Host | None:
    return hosts_with_load(hosts).order_by("mailboxes", "name").first()


# --- Writes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostAdded:
    host: Host
    # The mailboxes without a home that the first backend took in (0 for any other host).
    mailboxes_adopted: int


def _clean_name(name: str, errors: ErrorCollector) -> str:
    clean = (name or "").strip().lower()
    if len(clean) > HOST_NAME_MAX or not _HOST_NAME.fullmatch(clean):
        errors.add(
            InvalidInput(
                "host_name_invalid",
                _(
                    "Enter a host name of at most %(max)d letters, digits, hyphens and dots, "
                    "for example mail2."
                )
                % {"max": HOST_NAME_MAX},
                "name",
            )
        )
    return clean


def _clean_address(address: str, errors: ErrorCollector) -> str:
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        errors.add(
            InvalidInput(
                "host_address_invalid",
                _("Enter the host's IP address, for example 192.0.2.10 or 2001:db8::10."),
                "address",
            )
        )
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip)


def _clean_roles(roles: Iterable[str], errors: ErrorCollector) -> list[str]:
    wanted = {(role or "").strip().lower() for role in roles} - {""}
    unknown = sorted(wanted - set(HostRole.values))
    if unknown or not wanted:
        errors.add(
            InvalidInput(
                "host_role_invalid",
                _("Unknown role %(roles)s: a host's roles are among %(known)s.")
                % {"roles": ", ".join(unknown), "known": ", ".join(HostRole.values)}
                if unknown
                else _("Give the host at least one role among %(known)s.")
                % {"known": ", ".join(HostRole.values)},
                "roles",
            )
        )
    return [role for role in HostRole.values if role in wanted]


def _host_taken(name: str) -> InvalidInput:
    return InvalidInput(
        "host_taken", _("A mail host named %(name)s already exists.") % {"name": name}, "name"
    )


def host_add(*, actor: Actor, name: str, address: str, roles: Iterable[str]) -> HostAdded:
    """Register a mail host, active. The first backend becomes the home of every mailbox
    without one (the install's single host until now)."""
    _require_operator(actor)
    errors = ErrorCollector()
    clean_name = _clean_name(name, errors)
    clean_address = _clean_address(address, errors)
    clean_roles = _clean_roles(roles, errors)
    if clean_name and Host.objects.filter(name=clean_name).exists():
        errors.add(_host_taken(clean_name))
    errors.raise_if_any()
    try:
        with transaction.atomic():
            first_backend = (
                HostRole.BACKEND in clean_roles and not Host.objects.filter(backend=True).exists()
            )
            host = Host.objects.create(
                name=clean_name,
                address=clean_address,
                **{role: True for role in clean_roles},
            )
            adopted = (
                Mailbox.objects.filter(home__isnull=True).update(home=host) if first_backend else 0
            )
            audit_record(
                actor=actor,
                action=Action.HOST_ADD,
                client_id=None,
                target=clean_name,
                changes={"address": clean_address, "roles": clean_roles, "mailboxes": adopted},
            )
    except IntegrityError:
        # Another `host add` of the same name committed between the check and the insert.
        raise _host_taken(clean_name) from None
    return HostAdded(host=host, mailboxes_adopted=adopted)


def _host_not_found(name: str, field: str = "name") -> NotFound:
    return NotFound(_("No mail host is named %(name)s.") % {"name": name}, field)


def host_drain(*, actor: Actor, name: str) -> Host:
    """No new homes on the host from now on; the mailboxes there stay until they are moved.
    Draining a host that drains already changes nothing."""
    _require_operator(actor)
    clean_name = (name or "").strip().lower()
    with transaction.atomic():
        host = Host.objects.select_for_update().filter(name=clean_name).first()
        if host is None:
            raise _host_not_found(clean_name or name)
        if host.state != HostState.DRAINING:
            host.state = HostState.DRAINING
            host.save(update_fields=["state"])
            audit_record(actor=actor, action=Action.HOST_DRAIN, client_id=None, target=host.name)
    return host


# --- Moving a mailbox --------------------------------------------------------------------------


def _move_under_way(address: str) -> InvalidInput:
    return InvalidInput(
        "move_under_way",
        _("%(address)s is already being moved: wait until that move is done or failed.")
        % {"address": address},
        "address",
    )


def mailbox_move(*, actor: Actor, address: str, to: str) -> MailboxMove:
    """Queue the move of a mailbox to the active backend `to` (docs/scale.md, "Moving a
    mailbox"), run by its current home's worker (tasks.mailbox_move_run): the mailbox keeps
    working meanwhile, and its mail keeps arriving. One move at a time per mailbox."""
    _require_operator(actor)
    local_part, domain_name = split_address(address)
    email = f"{local_part}@{domain_name}"
    clean_to = (to or "").strip().lower()
    with transaction.atomic():
        mailbox = (
            # Only the mailbox's row: its home (an outer join) stays unlocked.
            Mailbox.objects.select_for_update(of=("self",))
            .select_related("home")
            .filter(address__local_part=local_part, address__domain__name=domain_name)
            .first()
        )
        if mailbox is None:
            raise NotFound(_("No mailbox %(address)s.") % {"address": email}, "address")
        target = Host.objects.filter(name=clean_to).first()
        if target is None:
            raise _host_not_found(clean_to or to, "to")
        if not target.backend or target.state != HostState.ACTIVE:
            raise InvalidInput(
                "move_host_not_backend",
                _("%(name)s is not an active backend: a mailbox moves only to one.")
                % {"name": target.name},
                "to",
            )
        if mailbox.home_id == target.pk:
            raise InvalidInput(
                "move_already_home",
                _("%(address)s already lives on %(name)s.")
                % {"address": email, "name": target.name},
                "to",
            )
        if mailbox.home_id is None:
            # Only while no backend is registered, when `to` cannot be one.
            raise InvalidInput(
                "move_no_home",
                _("%(address)s has no home host to move from.") % {"address": email},
                "address",
            )
        if MailboxMove.objects.filter(mailbox=mailbox, state__in=MOVE_UNDER_WAY).exists():
            raise _move_under_way(email)
        try:
            with transaction.atomic():
                move = MailboxMove.objects.create(
                    mailbox=mailbox, source=mailbox.home, target=target
                )
        except IntegrityError:
            # Another move of the same mailbox committed between the check and the insert.
            raise _move_under_way(email) from None
        on_host(mailbox_move_run, mailbox.home.name).enqueue(move.pk, email)
        audit_record(
            actor=actor,
            action=Action.MAILBOX_MOVE,
            client_id=None,
            target=email,
            changes={"from": mailbox.home.name, "to": target.name},
        )
    return move


@dataclass(frozen=True)
class MoveRow:
    mailbox: str
    source: str  # the host it moves from
    target: str  # and to
    state: str
    created_at: datetime
    finished_at: datetime | None
    last_error: str


def mailbox_moves(*, actor: Actor, limit: int = 100) -> list[MoveRow]:
    """The latest moves, newest first, the ones under way and the finished ones. One query."""
    _require_operator(actor)
    moves = MailboxMove.objects.select_related("mailbox__address__domain", "source", "target")
    return [
        MoveRow(
            mailbox=move.mailbox.address.email,
            source=move.source.name,
            target=move.target.name,
            state=move.state,
            created_at=move.created_at,
            finished_at=move.finished_at,
            last_error=move.last_error,
        )
        for move in moves.order_by("-created_at", "-pk")[:limit]
    ]


# How long a move may stay copying, or locked, before the sweeper takes its worker for dead:
# the longest its task can spend there (a first copy; the kick, this host's own routes, every
# MX's acknowledgement and the last copy), with a margin.
_SWEEP_MARGIN = timedelta(minutes=5)
MOVE_DEAD_AFTER = {
    MoveState.COPYING: timedelta(seconds=provisioner.COPY_TIMEOUT) + _SWEEP_MARGIN,
    MoveState.SWITCHING: timedelta(
        seconds=provisioner.ROUTES_DROP_TIMEOUT + MOVE_ACK_TIMEOUT + LAST_COPY_TIMEOUT
    )
    + _SWEEP_MARGIN,
}


def mailbox_moves_sweep(*, now: datetime | None = None) -> list[str]:
    """Mark failed each move whose worker died: copying or locked (`switching`) with no task
    under way for it, or for longer than its task could take (MOVE_DEAD_AFTER; a killed
    worker leaves its task `RUNNING`). Its mailbox is then unlocked on its old home, which
    has all its mail: the home changes only at a move's end. Returns the swept mailboxes'
    addresses. Two queries, and one update per move swept."""
    now = now or timezone.now()
    running = {
        args_kwargs["args"][0]
        for args_kwargs in pending_tasks()
        .filter(task_path=mailbox_move_run.module_path)
        .values_list("args_kwargs", flat=True)
    }
    moves = MailboxMove.objects.filter(
        state__in=[MoveState.COPYING, MoveState.SWITCHING]
    ).select_related("mailbox__address__domain", "source")
    swept = []
    for move in moves.order_by("pk"):
        since = move.locked_at if move.state == MoveState.SWITCHING else move.started_at
        if move.pk in running and since and since > now - MOVE_DEAD_AFTER[move.state]:
            continue
        error = _(
            "The worker of %(host)s stopped while the move was %(state)s: the mailbox stays "
            "on %(host)s, unlocked. Move it again when that worker runs."
        ) % {"host": move.source.name, "state": move.state}
        # Only if the task has not moved on meanwhile (a live task finishing its step).
        if MailboxMove.objects.filter(pk=move.pk, state=move.state).update(
            state=MoveState.FAILED, last_error=error, finished_at=now
        ):
            logger.warning("move of %s swept: %s", move.mailbox.address.email, error)
            swept.append(move.mailbox.address.email)
    return swept
