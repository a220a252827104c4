"""The mail area's side effects on the mail servers, queued in the same transaction as the
change (a transactional outbox).

The database task backend writes the task row inside the service's transaction, so the change
and its side effect commit together or not at all. A task that cannot reach the mail server
queues itself again with a growing delay, until it succeeds (dataplane.outbox): nothing is
lost while a server is down, and the panel shows the change as pending meanwhile
(selectors.mailbox_changes_pending).
"""

from __future__ import annotations

from django_tasks import task

from postdesk.dataplane import provisioner
from postdesk.dataplane.outbox import retry_later
from postdesk.dataplane.sieve import forwarding_script

from .models import Mailbox


@task()
def mailbox_sessions_kick(address: str, attempt: int = 0) -> str:
    try:
        provisioner.kick_sessions(address)
    except provisioner.ProvisionerUnavailable:
        return retry_later(mailbox_sessions_kick, attempt, address)
    return "sessions disconnected"


@task()
def mailbox_changes_track(address: str, attempt: int = 0) -> str:
    try:
        provisioner.track_changes(address)
    except provisioner.ProvisionerUnavailable:
        return retry_later(mailbox_changes_track, attempt, address)
    return "change tracking on"


@task()
def mailbox_groupware_forget(address: str, attempt: int = 0) -> str:
    try:
        provisioner.forget_groupware_user(address)
    except provisioner.ProvisionerUnavailable:
        return retry_later(mailbox_groupware_forget, attempt, address)
    return "groupware cache forgotten"


@task()
def mailboxes_groupware_forget(addresses: list[str], attempt: int = 0) -> str:
    """mailbox_groupware_forget for many mailboxes at once (a client suspended)."""
    try:
        provisioner.forget_groupware_users(addresses)
    except provisioner.ProvisionerUnavailable:
        return retry_later(mailboxes_groupware_forget, attempt, addresses)
    return "groupware cache forgotten"


@task()
def mailbox_storage_remove(domain: str, storage: str, address: str = "", attempt: int = 0) -> str:
    """Remove a deleted mailbox's messages and, given its address, its SOGo data (calendars,
    contacts, preferences). Tasks queued before the address was passed have none."""
    try:
        provisioner.remove_storage(domain, storage)
        if address:
            provisioner.remove_groupware_data(address)
    except provisioner.ProvisionerUnavailable:
        return retry_later(mailbox_storage_remove, attempt, domain, storage, address)
    return "storage removed"


@task()
def mailbox_forwarding_apply(mailbox_id: int, attempt: int = 0) -> str:
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
        return retry_later(mailbox_forwarding_apply, attempt, mailbox_id)
    return "forwarding written" if script else "forwarding removed"
