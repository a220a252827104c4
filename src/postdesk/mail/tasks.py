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
from postdesk.dataplane.outbox import retry_later
from postdesk.dataplane.queues import on_host
from postdesk.dataplane.sieve import forwarding_script

from .choices import MoveState
from .models import Mailbox, MailboxMove

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


# Between locking a mailbox being moved and its final copy. Each Postfix process keeps the
# route it last resolved for 30 s (resolve_clnt's one-entry cache, not configurable), so an
# MX may still send the mailbox's mail to the old home that long after the lock; waiting it
# out (and a margin for the deliveries under way) means the final copy takes every message
# the old home got, and none reaches it after.
MOVE_SETTLE_SECONDS = 35.0


def _move_set(move: MailboxMove, state: MoveState, **fields: object) -> None:
    """Record the move's new state at once (each step commits: the daemons read `switching`
    from the views while the task still runs)."""
    move.state = state
    for name, value in fields.items():
        setattr(move, name, value)
    move.save(update_fields=["state", *fields])


@task(takes_context=True)
def mailbox_move_run(context: TaskContext, move_id: int, address: str = "") -> str:
    """Move a mailbox to its new home (mail.hosts.mailbox_move), run by the old home's worker:
    a copy while the mailbox is live, then, locked (`switching`: its mail waits at the MX, its
    logins are refused, its sessions here kicked), a last short copy; then its home is the new
    host and this host's copy is removed by a task of its own. Any failure leaves the mailbox
    on its old home, working, and the move `failed` with the error. `address` is the
    mailbox's, for the operator's list of pending tasks."""
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
        _move_set(move, MoveState.COPYING, started_at=timezone.now())
        provisioner.copy_mailbox(email, move.target.address)
        _move_set(move, MoveState.SWITCHING)
        provisioner.kick_sessions(email)
        time.sleep(MOVE_SETTLE_SECONDS)
        provisioner.copy_mailbox(email, move.target.address)
        with transaction.atomic():
            Mailbox.objects.filter(pk=mailbox.pk).update(home=move.target)
            _move_set(move, MoveState.DONE, finished_at=timezone.now())
            on_host(mailbox_storage_remove, move.source.name).enqueue(
                mailbox.address.domain.name, mailbox.storage_id.hex
            )
    # Whatever went wrong (doveadm, the network, the database), the lock must end: the
    # mailbox goes on working on its old home and the operator reads why.
    except Exception as error:
        logger.warning("moving %s to %s failed: %s", email, move.target.name, error)
        _move_set(move, MoveState.FAILED, last_error=str(error), finished_at=timezone.now())
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
}
MAILBOX_ID_ARGUMENT = {mailbox_forwarding_apply.module_path: 0}
