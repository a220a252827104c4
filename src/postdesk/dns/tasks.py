"""The DNS area's background work, queued in the database (django-tasks) and run by
`postdesk db_worker`: checks asked for with "Check now", and the DKIM keys handed to the
signer after each change (a transactional outbox: queued in the change's transaction)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tasks import task

from postdesk import crypto
from postdesk.dataplane import provisioner
from postdesk.dataplane.outbox import retry_later
from postdesk.mail.models import Domain

from .models import DkimKey, DkimKeyStatus
from .status import dns_check_domain

# A temporary DNS failure is retried after these delays, then left to the periodic re-check.
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30))


@task()
def check_domain_dns(domain_id: int, attempt: int = 0) -> str:
    domain = Domain.objects.filter(pk=domain_id).first()
    if domain is None:
        return "domain gone"
    status, _report = dns_check_domain(domain)
    unknown = "unknown" in {
        status.spf_state,
        status.dkim_state,
        status.dmarc_state,
        status.mx_state,
    }
    if unknown and attempt < len(RETRY_DELAYS):
        check_domain_dns.using(run_after=timezone.now() + RETRY_DELAYS[attempt]).enqueue(
            domain_id, attempt + 1
        )
        return "unknown, retry queued"
    return "unknown" if unknown else "checked"


@task()
def dkim_keys_deploy(attempt: int = 0) -> str:
    """Hand OpenDKIM the current signing keys (after enable, disable or rotation, and when a
    client is suspended, unsuspended or terminated: a suspended client's mail is not signed)."""
    keys = [
        (k.domain.name, k.selector, k.pk, crypto.decrypt(k.private_key_encrypted))
        for k in DkimKey.objects.filter(
            status=DkimKeyStatus.SIGNING, domain__client__suspended_at__isnull=True
        ).select_related("domain")
    ]
    try:
        provisioner.deploy_dkim_keys(keys)
    except provisioner.ProvisionerUnavailable:
        return retry_later(dkim_keys_deploy, attempt)
    return f"{len(keys)} signing key(s) deployed"
