"""The DNS area's background work, queued in the database (django-tasks) and run by
`postdesk db_worker`: checks asked for with "Check now", and the DKIM keys handed to the
signer after each change (a transactional outbox: queued in the change's transaction), and
the deliverability self-test's steps."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django_tasks import task
from django_tasks.base import TaskContext

from postdesk import crypto
from postdesk.dataplane import provisioner
from postdesk.dataplane.outbox import retry_later
from postdesk.dataplane.queues import signer_queues
from postdesk.mail.models import Domain

from .models import DeliverabilityTest, DeliverabilityTestState, DkimKey, DkimKeyStatus
from .probe import POLL_SECONDS, selftest_collect, selftest_send
from .status import dns_check_domain

# A temporary DNS failure is retried after these delays, then left to the periodic re-check.
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30))


@task()
def check_domain_dns(domain_id: int, attempt: int = 0) -> str:
    domain = Domain.objects.filter(pk=domain_id).first()
    if domain is None:
        return "domain gone"
    status, _report = dns_check_domain(domain)
    unknown = status.has_unknown
    if unknown and attempt < len(RETRY_DELAYS):
        check_domain_dns.using(run_after=timezone.now() + RETRY_DELAYS[attempt]).enqueue(
            domain_id, attempt + 1
        )
        return "unknown, retry queued"
    return "unknown" if unknown else "checked"


@task(takes_context=True)
def dkim_keys_deploy(context: TaskContext, attempt: int = 0) -> str:
    """Write the signer's key files and record where each is (after enable, rotation, and a
    client's suspension or termination).

    Every key that may sign again is deployed, disabled and prepared ones too: enabling DKIM
    again, or a rotation's switch, then holds from the next message, read by OpenDKIM from
    `dataplane_dkim`. A key is recorded as deployed only once its file is written, so the
    signer is never told to use a key it cannot read; a retired key's file is removed.
    """
    keys = list(
        DkimKey.objects.exclude(status=DkimKeyStatus.RETIRED).only(
            "private_key_encrypted", "key_file"
        )
    )
    try:
        written = provisioner.deploy_dkim_keys(
            [(key.pk, crypto.decrypt(key.private_key_encrypted)) for key in keys]
        )
    except provisioner.ProvisionerUnavailable:
        return retry_later(context, attempt)
    changed = []
    for key in keys:
        if key.key_file != written[key.pk]:
            key.key_file = written[key.pk]
            changed.append(key)
    with transaction.atomic():
        DkimKey.objects.bulk_update(changed, ["key_file"], batch_size=500)
        # Retired (or, on another host's worker, newly retired) keys no longer have a file.
        DkimKey.objects.filter(status=DkimKeyStatus.RETIRED).exclude(key_file="").update(
            key_file=""
        )
    return f"{len(written)} key(s) deployed"


def dkim_keys_deploy_to_signers() -> None:
    """Queue the key files' deployment for every host that signs, one task each on its own
    worker's queue (dataplane.queues.signer_queues), in the caller's transaction: a signer
    that is down gets its keys when it is back, the others at once."""
    for queue_name in signer_queues():
        dkim_keys_deploy.using(queue_name=queue_name).enqueue()


@task()
def deliverability_test_send(test_id: int) -> str:
    """The self-test's first step: submit the probe message, then look for it shortly."""
    test = DeliverabilityTest.objects.filter(pk=test_id).first()
    if test is None:
        return "test gone"
    selftest_send(test)
    if test.state == DeliverabilityTestState.WAITING:
        deliverability_test_collect.using(
            run_after=timezone.now() + timedelta(seconds=POLL_SECONDS)
        ).enqueue(test_id)
    return test.state


@task()
def deliverability_test_collect(test_id: int) -> str:
    """Look for the probe message; until it arrives or the timeout passes, look again later
    (queued again rather than waiting, so the worker runs other tasks meanwhile)."""
    test = DeliverabilityTest.objects.filter(pk=test_id).first()
    if test is None:
        return "test gone"
    if not selftest_collect(test):
        deliverability_test_collect.using(
            run_after=timezone.now() + timedelta(seconds=POLL_SECONDS)
        ).enqueue(test_id)
    return test.state
