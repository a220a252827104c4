"""Background DNS checks, queued in the database (django-tasks) and run by `postdesk db_worker`."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tasks import task

from postdesk.mail.models import Domain

# A temporary DNS failure is retried after these delays, then left to the periodic re-check.
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30))


@task()
def check_domain_dns(domain_id: int, attempt: int = 0) -> str:
    from .services import dns_check_domain

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
