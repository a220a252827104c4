"""The mail area's side effects on the mail servers, queued in the same transaction as the
change (a transactional outbox).

The database task backend writes the task row inside the service's transaction, so the change
and its side effect commit together or not at all. A task that cannot reach the mail server
queues itself again with a growing delay, until it succeeds (dataplane.outbox): nothing is
lost while a server is down, and the panel shows the change as pending meanwhile
(selectors.mailbox_changes_pending).

What touches a mailbox's files or its Dovecot sessions is queued for the worker of its home
host (`at_home`): kicks, change tracking, storage removal, forwarding scripts. SOGo's cache
is the panel's, not a host's: forgetting a login stays on the `default` queue.
"""

from __future__ import annotations

import logging
import time

from django.db import transaction
from django.utils import timezone
from django_tasks import task
from django_tasks.base import Task, TaskContext

from postdesk.dataplane import provisioner
from postdesk.dataplane.models import Host
from postdesk.dataplane.outbox import retry_later
from postdesk.dataplane.queues import on_host
from postdesk.dataplane.sieve import forwarding_script

from .choices import MoveState
from .models import MOVE_UNDER_WAY, Mailbox, MailboxMove, MailboxMoveAck

logger = logging.getLogger(__name__)


def at_home(task_function: Task, mailbox: Mailbox) -> Task:
    """The task, for the worker of the mailbox's home host (`default` without a home: the
    install's single host)."""
    return on_host(task_function, mailbox.home.name if mailbox.home_id else None)


@task(takes_context=True)
def mailbox_sessions_kick(context: TaskContext, address: str, attempt: int = 0) -> str:
    try:
        provisioner.kick_sessions(address)
    except provisioner.ProvisionerUnavailable:
        return retry_later(context, attempt, address)
    return "sessions disconnected"


@task(takes_context=True)
def mailbox_changes_track(context: TaskContext, address: str, attempt: int = 0) -> str:
    try:
        provisioner.track_changes(address)
    except provisioner.ProvisionerUnavailable:
        return retry_later(context, attempt, address)
    return "change tracking on"


@task(takes_context=True)
def mailbox_groupware_forget(context: TaskContext, address: str, attempt: int = 0) -> str:
    try:
        provisioner.forget_groupware_user(address)
    except provisioner.ProvisionerUnavailable:
        return retry_later(context, attempt, address)
    return "groupware cache forgotten"


@task(takes_context=True)
def mailboxes_groupware_forget(context: TaskContext, addresses: list[str], attempt: int = 0) -> str:
    """mailbox_groupware_forget for many mailboxes at once (a client suspended)."""
    try:
        provisioner.forget_groupware_users(addresses)
    except provisioner.ProvisionerUnavailable:
        return retry_later(context, attempt, addresses)
    return "groupware cache forgotten"


@task(takes_context=True)
def mailbox_storage_remove(
    context: TaskContext, domain: str, storage: str, address: str = "", attempt: int = 0
) -> str:
    """Remove a deleted mailbox's messages and, given its address, its SOGo data (calendars,
    contacts, preferences). Tasks queued before the address was passed have none."""
    try:
        provisioner.remove_storage(domain, storage)
        if address:
            provisioner.remove_groupware_data(address)
    except provisioner.ProvisionerUnavailable:
        return retry_later(context, attempt, domain, storage, address)
    return "storage removed"


@task(takes_context=True)
def mailbox_forwarding_apply(context: TaskContext, mailbox_id: int, attempt: int = 0) -> str:
    """Write the mailbox's forwarding script from its current settings (whatever changed)."""
    mailbox = Mailbox.objects.select_related("address__domain").filter(pk=mailbox_id).first()
    if mailbox is None:
        return "mailbox gone"
    address = mailbox.address
    script = forwarding_script(
        address=address.email,
        destinations=list(
            address.destinations.order_by("position").values_list("email", flat=True)
        ),
        delete_after_forwarding=mailbox.delete_after_forwarding,
        keep_original_sender=mailbox.keep_original_sender,
    )
    try:
        provisioner.write_forwarding(address.domain.name, mailbox.storage_id.hex, script)
    except provisioner.ProvisionerUnavailable:
        return retry_later(context, attempt, mailbox_id)
    return "forwarding written" if script else "forwarding removed"


# How long a move's lock waits for every MX host's acknowledgement (mailbox_move_routes_drop)
# before it gives up: a host that is down fails the move, which keeps the old home.
MOVE_ACK_TIMEOUT = 120.0
# The last copy, under the lock, sends only what changed since the first: it is short, and a
# bound on it bounds the lock (the sweeper, hosts.mailbox_moves_sweep, counts on it).
LAST_COPY_TIMEOUT = 600.0


class MoveNoLongerUnderWay(Exception):
    """The move left the state its task expected (the sweeper marked it failed)."""


def _move_set(move: MailboxMove, was: MoveState, state: MoveState, **fields: object) -> None:
    """Record the move's new state at once (each step commits: the daemons read `switching`
    from the views while the task still runs), if it is still `was`: a move the sweeper
    marked failed meanwhile stays failed, on its old home."""
    changed = MailboxMove.objects.filter(pk=move.pk, state=was).update(state=state, **fields)
    if not changed:
        raise MoveNoLongerUnderWay(f"the move is no longer {was}")
    move.state = state
    for name, value in fields.items():
        setattr(move, name, value)


def _acknowledge(move: MailboxMove, host_name: str) -> None:
    MailboxMoveAck.objects.get_or_create(move=move, host=Host.objects.get(name=host_name))


@task(takes_context=True)
def mailbox_move_routes_drop(
    context: TaskContext, move_id: int, host_name: str, address: str = "", attempt: int = 0
) -> str:
    """On an MX host, for a mailbox just locked for its move: Postfix here routes none of its
    mail to the old home any more (provisioner.drop_cached_routes); then acknowledge it, which
    the move waits for. A move no longer switching (done, failed) needs nothing."""
    move = MailboxMove.objects.filter(pk=move_id, state=MoveState.SWITCHING).first()
    if move is None:
        return "the move is no longer switching"
    try:
        provisioner.drop_cached_routes(address)
    except provisioner.ProvisionerUnavailable:
        return retry_later(context, attempt, move_id, host_name, address)
    _acknowledge(move, host_name)
    return "routes dropped"


@task(takes_context=True)
def mailbox_move_routes_refresh(context: TaskContext, address: str = "", attempt: int = 0) -> str:
    """On an MX host, once a mailbox's move is over: Postfix's processes start afresh, so
    none answers senders from a route resolved during the lock."""
    try:
        provisioner.reload_postfix()
    except provisioner.ProvisionerUnavailable:
        return retry_later(context, attempt, address)
    return "routes refreshed"


def _wait_for_every_mx(move: MailboxMove, email: str) -> None:
    """Have every MX host drop the routes it keeps for the mailbox and wait until each
    acknowledged it, MOVE_ACK_TIMEOUT at most. The old home, when it is an MX itself, does it
    here: its worker is this one, busy with the move."""
    mx_hosts = list(Host.objects.filter(mx=True).values_list("name", flat=True))
    for name in mx_hosts:
        if name != move.source.name:
            on_host(mailbox_move_routes_drop, name).enqueue(move.pk, name, email)
    if move.source.name in mx_hosts:
        provisioner.drop_cached_routes(email)
        _acknowledge(move, move.source.name)
    deadline = time.monotonic() + MOVE_ACK_TIMEOUT
    while True:
        acknowledged = set(move.acks.values_list("host__name", flat=True))
        missing = sorted(set(mx_hosts) - acknowledged)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise provisioner.ProvisionerUnavailable(
                f"no acknowledgement from the MX host(s) {', '.join(missing)} within "
                f"{MOVE_ACK_TIMEOUT:.0f} s: is their worker running?"
            )
        time.sleep(0.2)


@task(takes_context=True)
def mailbox_move_run(context: TaskContext, move_id: int, address: str = "") -> str:
    """Move a mailbox to its new home (mail.hosts.mailbox_move), run by the old home's worker:
    a copy while the mailbox is live, then, locked (`switching`: its mail waits at the MX, its
    logins are refused, its sessions here kicked), once every MX host acknowledged that none
    of its mail still goes to this host, a last short copy; then its home is the new host and
    this host's copy is removed by a task of its own. Any failure leaves the mailbox on its
    old home, working, and the move `failed` with the error. `address` is the mailbox's, for
    the operator's list of pending tasks."""
    move = (
        MailboxMove.objects.select_related("mailbox__address__domain", "source", "target")
        .filter(pk=move_id, state=MoveState.QUEUED)
        .first()
    )
    if move is None:
        return "no queued move"
    mailbox = move.mailbox
    email = mailbox.address.email
    try:
        if mailbox.home_id != move.source_id:
            raise provisioner.ProvisionerUnavailable(
                f"{email} no longer lives on {move.source.name}"
            )
        _move_set(move, MoveState.QUEUED, MoveState.COPYING, started_at=timezone.now())
        provisioner.copy_mailbox(email, move.target.address)
        _move_set(move, MoveState.COPYING, MoveState.SWITCHING, locked_at=timezone.now())
        provisioner.kick_sessions(email)
        _wait_for_every_mx(move, email)
        provisioner.copy_mailbox(email, move.target.address, LAST_COPY_TIMEOUT)
        with transaction.atomic():
            _move_set(move, MoveState.SWITCHING, MoveState.DONE, finished_at=timezone.now())
            Mailbox.objects.filter(pk=mailbox.pk).update(home=move.target)
            on_host(mailbox_storage_remove, move.source.name).enqueue(
                mailbox.address.domain.name, mailbox.storage_id.hex
            )
            for name in Host.objects.filter(mx=True).values_list("name", flat=True):
                on_host(mailbox_move_routes_refresh, name).enqueue(email)
    except MoveNoLongerUnderWay as gone:
        return f"move stopped: {gone}"
    # Whatever went wrong (doveadm, the network, the database), the lock must end: the
    # mailbox goes on working on its old home and the operator reads why.
    except Exception as error:
        logger.warning("moving %s to %s failed: %s", email, move.target.name, error)
        MailboxMove.objects.filter(pk=move.pk, state__in=MOVE_UNDER_WAY).update(
            state=MoveState.FAILED, last_error=str(error), finished_at=timezone.now()
        )
        return f"move failed: {error}"
    return f"moved to {move.target.name}"


# Which argument of each task names its mailbox, for the operator's list of pending tasks
# (hosts.tasks_pending): an address (or a domain's `*@domain` mask), or the mailbox's id.
ADDRESS_ARGUMENT = {
    mailbox_sessions_kick.module_path: 0,
    mailbox_changes_track.module_path: 0,
    mailbox_groupware_forget.module_path: 0,
    mailbox_storage_remove.module_path: 2,
    mailbox_move_run.module_path: 1,
    mailbox_move_routes_drop.module_path: 2,
    mailbox_move_routes_refresh.module_path: 0,
}
MAILBOX_ID_ARGUMENT = {mailbox_forwarding_apply.module_path: 0}
