"""DNS health (SPF, DKIM, DMARC, MX) and the DKIM key."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Status

from postdesk.dns import selectors as dns_selectors
from postdesk.dns import services as dns_services
from postdesk.dns.dkim import record_host, record_value
from postdesk.mail.selectors import domain_get

from ..auth import read_token_auth
from ..schemas import (
    READ_ERRORS,
    WRITE_ERRORS,
    ConfirmIn,
    DkimOut,
    DkimRotateIn,
    DnsReportOut,
    QueuedOut,
)

router = Router(tags=["dns"])


@router.get("/domains/{domain}/dns", response={200: DnsReportOut, **READ_ERRORS})
def dns_status(request: HttpRequest, domain: str):
    """The last check's results, re-read in your language: the shape of `postdesk dns check
    DOMAIN --json`. All null: not checked yet."""
    found = domain_get(actor=request.auth, name=domain)
    stored = dns_selectors.dns_report(actor=request.auth, domain=found)
    if stored.report is None:
        return dict.fromkeys(DnsReportOut.model_fields)
    return {"checked_at": stored.checked_at, **stored.report.as_dict()}


@router.post(
    "/domains/{domain}/dns/check",
    response={202: QueuedOut, **READ_ERRORS},
    auth=read_token_auth,
    openapi_extra={"x-postdesk-scope": "read"},
)
def dns_check_now(request: HttpRequest, domain: str):
    """Ask for a check now ("Check now"); the result appears in the DNS status shortly.

    Changes nothing of yours, so a read-scope token and a viewer may ask too."""
    found = domain_get(actor=request.auth, name=domain)
    dns_services.dns_request_check(actor=request.auth, domain=found)
    return Status(202, {"queued": True})


@router.get("/domains/{domain}/dkim", response={200: DkimOut, **READ_ERRORS})
def dkim_detail(request: HttpRequest, domain: str):
    """Whether DKIM signs, and the records to publish (two during a key rotation)."""
    found = domain_get(actor=request.auth, name=domain)
    records = dns_selectors.dkim_records(actor=request.auth, domain=found)
    return {
        "enabled": any(r.status == "signing" for r in records),
        "records": [r.__dict__ for r in records],
    }


@router.post("/domains/{domain}/dkim/enable", response={200: DkimOut, **WRITE_ERRORS})
def dkim_enable(request: HttpRequest, domain: str):
    """Start signing; returns the record to publish. A key kept from a disable is reused."""
    found = domain_get(actor=request.auth, name=domain)
    key = dns_services.dkim_enable(actor=request.auth, domain=found)
    record = {
        "selector": key.selector,
        "status": key.status,
        "host": record_host(key.selector, found.name),
        "value": record_value(key.public_key),
    }
    return {"enabled": True, "records": [record]}


@router.post("/domains/{domain}/dkim/disable", response={204: None, **WRITE_ERRORS})
def dkim_disable(request: HttpRequest, domain: str, payload: ConfirmIn):
    """Stop signing at once. Needs {"confirm": true}."""
    found = domain_get(actor=request.auth, name=domain)
    dns_services.dkim_disable(actor=request.auth, domain=found, confirmed=payload.confirm)
    return Status(204, None)


def _dkim_out(request: HttpRequest, domain) -> dict:
    records = dns_selectors.dkim_records(actor=request.auth, domain=domain)
    return {
        "enabled": any(r.status == "signing" for r in records),
        "records": [r.__dict__ for r in records],
    }


@router.post("/domains/{domain}/dkim/prepare", response={200: DkimOut, **WRITE_ERRORS})
def dkim_prepare(request: HttpRequest, domain: str):
    """Key rotation, step 1: a new key under a new selector (`prepared`). Publish its record,
    then rotate. Asking again returns the same prepared key."""
    found = domain_get(actor=request.auth, name=domain)
    dns_services.dkim_prepare_rotation(actor=request.auth, domain=found)
    return _dkim_out(request, found)


@router.post("/domains/{domain}/dkim/rotate", response={200: DkimOut, **WRITE_ERRORS})
def dkim_rotate(request: HttpRequest, domain: str, payload: DkimRotateIn):
    """Key rotation, step 2: sign with the prepared key once its record is visible in the DNS
    (400 `dkim_not_published` before, unless `force`). The old key is retired."""
    found = domain_get(actor=request.auth, name=domain)
    dns_services.dkim_rotate(actor=request.auth, domain=found, force=payload.force)
    return _dkim_out(request, found)
