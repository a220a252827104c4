"""Side effects queued in the same transaction as the change (a transactional outbox).

The database task backend writes the task row inside the service's transaction, so the change
and its side effect commit together or not at all. A task that cannot reach the mail server
queues itself again with a growing delay, until it succeeds: nothing is lost while a server
is down, and the panel shows the change as pending meanwhile.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tasks import task

from . import provisioner

MAX_DELAY = timedelta(minutes=10)


def _retry(task_function, attempt: int, *args: object) -> str:
    delay = min(timedelta(seconds=5 * 2**attempt), MAX_DELAY)
    task_function.using(run_after=timezone.now() + delay).enqueue(*args, attempt=attempt + 1)
    return f"mail server unavailable, retry {attempt + 1} queued in {delay}"


@task()
def mailbox_sessions_kick(address: str, attempt: int = 0) -> str:
    try:
        provisioner.kick_sessions(address)
    except provisioner.ProvisionerUnavailable:
        return _retry(mailbox_sessions_kick, attempt, address)
    return "sessions disconnected"


@task()
def mailbox_storage_remove(domain: str, storage: str, attempt: int = 0) -> str:
    try:
        provisioner.remove_storage(domain, storage)
    except provisioner.ProvisionerUnavailable:
        return _retry(mailbox_storage_remove, attempt, domain, storage)
    return "storage removed"


@task()
def mailbox_forwarding_apply(mailbox_id: int, attempt: int = 0) -> str:
    """Write the mailbox's forwarding script from its current settings (whatever changed)."""
    from postdesk.mail.models import Mailbox

    from .sieve import forwarding_script

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
        return _retry(mailbox_forwarding_apply, attempt, mailbox_id)
    return "forwarding written" if script else "forwarding removed"


@task()
def dkim_keys_deploy(attempt: int = 0) -> str:
    """Hand OpenDKIM the current signing keys (after enable, disable or rotation)."""
    from postdesk import crypto
    from postdesk.dns.models import DkimKey, DkimKeyStatus

    keys = [
        (k.domain.name, k.selector, k.pk, crypto.decrypt(k.private_key_encrypted))
        for k in DkimKey.objects.filter(
            status=DkimKeyStatus.SIGNING, domain__client__suspended_at__isnull=True
        ).select_related("domain")
    ]
    try:
        provisioner.deploy_dkim_keys(keys)
    except provisioner.ProvisionerUnavailable:
        return _retry(dkim_keys_deploy, attempt)
    return f"{len(keys)} signing key(s) deployed"
