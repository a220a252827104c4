"""Every write of the DNS area: DKIM keys and stored DNS answers."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from postdesk import crypto
from postdesk.audit.services import audit_record
from postdesk.errors import InvalidInput
from postdesk.mail.models import Domain
from postdesk.tenancy.access import Actor, require_client_access

from . import resolver
from .checks import DnsExpectations, DnsReport, Recorder, Replay, evaluate
from .dkim import DkimState, generate_key_pair, is_valid_selector
from .models import DkimKey, DkimKeyStatus, DnsStatus

logger = logging.getLogger(__name__)


def expectations(domain: Domain, key: DkimKey | None) -> DnsExpectations:
    return DnsExpectations(
        domain=domain.name,
        spf_mechanism=settings.POSTDESK_SPF_MECHANISM,
        mx_hosts=list(settings.POSTDESK_MX_HOSTS),
        dkim_selector=key.selector if key else None,
        dkim_public_key=key.public_key if key else None,
    )


def signing_key(domain: Domain) -> DkimKey | None:
    return DkimKey.objects.filter(domain=domain, status=DkimKeyStatus.SIGNING).first()


# --- DKIM --------------------------------------------------------------------------------------


def _set_status(key: DkimKey, status: str) -> None:
    key.status = status
    key.status_changed_at = timezone.now()
    key.save(update_fields=["status", "status_changed_at"])


def _new_key(domain: Domain, status: str) -> DkimKey:
    base = settings.POSTDESK_DKIM_SELECTOR
    if not is_valid_selector(base):
        raise InvalidInput(
            "dkim_selector_invalid",
            _("The configured DKIM selector “%(selector)s” is not valid.") % {"selector": base},
        )
    taken = set(DkimKey.objects.filter(domain=domain).values_list("selector", flat=True))
    # mail, mail2, mail3…: a rotation never reuses a selector that receivers may have cached.
    selector = base
    number = 1
    while selector in taken:
        number += 1
        selector = f"{base}{number}"
    pair = generate_key_pair()
    return DkimKey.objects.create(
        domain=domain,
        selector=selector,
        status=status,
        private_key_encrypted=crypto.encrypt(pair.private_pem),
        public_key=pair.public_key,
        status_changed_at=timezone.now(),
    )


def _audit(actor: Actor, domain: Domain, action: str, key: DkimKey) -> None:
    """Record a DKIM change, and hand the signer the new set of keys (same transaction)."""
    from postdesk.dataplane.tasks import dkim_keys_deploy

    dkim_keys_deploy.enqueue()
    audit_record(
        actor=actor,
        action=action,
        client_id=domain.client_id,
        domain_name=domain.name,
        target=f"{key.selector}._domainkey.{domain.name}",
    )


def dkim_enable(*, actor: Actor, domain: Domain) -> DkimKey:
    """Start signing. A key kept from an earlier "Disable" is reused: its record still works."""
    require_client_access(actor, domain.client_id, write=True)
    with transaction.atomic():
        Domain.objects.select_for_update().filter(pk=domain.pk).first()
        current = signing_key(domain)
        if current is not None:
            return current
        kept = (
            DkimKey.objects.filter(domain=domain, status=DkimKeyStatus.DISABLED)
            .order_by("-status_changed_at")
            .first()
        )
        if kept is not None:
            _set_status(kept, DkimKeyStatus.SIGNING)
            key = kept
        else:
            key = _new_key(domain, DkimKeyStatus.SIGNING)
        _audit(actor, domain, "dkim.enable", key)
    return key


def dkim_disable(*, actor: Actor, domain: Domain, confirmed: bool) -> None:
    """Stop signing at once (the signer reads only signing keys). Needs confirmation."""
    require_client_access(actor, domain.client_id, write=True)
    if not confirmed:
        raise InvalidInput(
            "confirmation_required",
            _("Confirm that you want to disable DKIM: your messages will no longer be signed."),
            "confirm",
        )
    with transaction.atomic():
        key = (
            DkimKey.objects.select_for_update()
            .filter(domain=domain, status=DkimKeyStatus.SIGNING)
            .first()
        )
        if key is None:
            return
        _set_status(key, DkimKeyStatus.DISABLED)
        DkimKey.objects.filter(domain=domain, status=DkimKeyStatus.PREPARED).delete()
        _audit(actor, domain, "dkim.disable", key)


def dkim_prepare_rotation(*, actor: Actor, domain: Domain) -> DkimKey:
    """A new key under a new selector, to publish before it replaces the signing one."""
    require_client_access(actor, domain.client_id, write=True)
    with transaction.atomic():
        Domain.objects.select_for_update().filter(pk=domain.pk).first()
        if signing_key(domain) is None:
            raise InvalidInput("dkim_disabled", _("Enable DKIM before preparing a new key."), None)
        prepared = DkimKey.objects.filter(domain=domain, status=DkimKeyStatus.PREPARED).first()
        if prepared is not None:
            return prepared
        try:
            key = _new_key(domain, DkimKeyStatus.PREPARED)
        except IntegrityError:  # a concurrent request prepared one first
            return DkimKey.objects.get(domain=domain, status=DkimKeyStatus.PREPARED)
        _audit(actor, domain, "dkim.prepare", key)
    return key


def dkim_rotate(*, actor: Actor, domain: Domain, force: bool = False, fetch_txt=None) -> DkimKey:
    """Make the prepared key the signing one, once its record is published.

    Switching before the record is visible would have receivers reject our signatures, so
    it is refused unless forced.
    """
    require_client_access(actor, domain.client_id, write=True)
    prepared = DkimKey.objects.filter(domain=domain, status=DkimKeyStatus.PREPARED).first()
    if prepared is None:
        raise InvalidInput("dkim_not_prepared", _("Prepare a new key first."), None)
    if not force:
        from .dkim import check_dkim

        result = check_dkim(
            domain.name, prepared.selector, prepared.public_key, fetch_txt or resolver.lookup_txt
        )
        if result.state != DkimState.ACTIVE:
            raise InvalidInput(
                "dkim_not_published",
                _(
                    "The new key's record is not visible in your DNS yet (%(host)s). Publish "
                    "it and wait for propagation before switching, so no message goes out "
                    "with a signature receivers cannot verify."
                )
                % {"host": result.host},
                None,
            )
    with transaction.atomic():
        old = (
            DkimKey.objects.select_for_update()
            .filter(domain=domain, status=DkimKeyStatus.SIGNING)
            .first()
        )
        if old is not None:
            _set_status(old, DkimKeyStatus.RETIRED)
        _set_status(prepared, DkimKeyStatus.SIGNING)
        _audit(actor, domain, "dkim.rotate", prepared)
    return prepared


# --- Checks ------------------------------------------------------------------------------------


def _ask(domain: Domain, key: DkimKey | None, dns_resolver) -> DnsStatus:
    """Run every check against the live DNS; an unsaved status row with the answers."""
    recorder = Recorder(
        lambda name: resolver.lookup_txt(name, dns_resolver),
        lambda name: resolver.lookup_mx(name, dns_resolver),
    )
    report = evaluate(expectations(domain, key), recorder)
    return DnsStatus(
        domain=domain,
        answers=recorder.answers,
        spf_state=report.spf.state,
        dkim_state=report.dkim.state,
        dmarc_state=report.dmarc.state,
        mx_state=report.mx.state,
        checked_at=timezone.now(),
    )


_STATUS_FIELDS = ["answers", "spf_state", "dkim_state", "dmarc_state", "mx_state", "checked_at"]


def _store(statuses: list[DnsStatus]) -> None:
    DnsStatus.objects.bulk_create(
        statuses,
        update_conflicts=True,
        unique_fields=["domain"],
        update_fields=_STATUS_FIELDS,
        batch_size=500,
    )


def dns_check_domain(domain: Domain, dns_resolver=None) -> tuple[DnsStatus, DnsReport]:
    """Ask the DNS now and store its answers. A system action: no actor, no audit."""
    key = signing_key(domain)
    status = _ask(domain, key, dns_resolver or resolver.make_resolver())
    _store([status])
    return status, evaluate(expectations(domain, key), Replay(status.answers))


def dns_request_check(*, actor: Actor, domain: Domain) -> None:
    """ "Check now": queue a check for the task worker. Looking is enough to ask for it."""
    from .tasks import check_domain_dns

    require_client_access(actor, domain.client_id, write=False)
    check_domain_dns.enqueue(domain.pk)


@dataclass(frozen=True)
class RecheckSummary:
    checked: int
    unknown: int
    failed: int


def dns_recheck_all(*, stale_after_seconds: int = 0, concurrency: int = 32) -> RecheckSummary:
    """Re-check every domain whose answers are older than `stale_after_seconds`.

    DNS waits dominate, so threads overlap the lookups; they touch no database. The answers
    are then written in batches, a few statements for a thousand domains.
    """
    cutoff = timezone.now() - timedelta(seconds=stale_after_seconds)
    domains = list(
        Domain.objects.exclude(dns_status__checked_at__gt=cutoff).only("id", "name", "client_id")
    )
    keys = {
        k.domain_id: k
        for k in DkimKey.objects.filter(domain__in=domains, status=DkimKeyStatus.SIGNING)
    }
    dns_resolver = resolver.make_resolver()  # dnspython resolvers are safe to share

    def check(domain: Domain) -> DnsStatus | None:
        try:
            return _ask(domain, keys.get(domain.pk), dns_resolver)
        except Exception:  # one domain's failure must not stop the others
            logger.exception("DNS check of %s failed", domain.name)
            return None

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(check, domains))
    statuses = [s for s in results if s is not None]
    with transaction.atomic():
        _store(statuses)
    unknown = sum(
        "unknown" in {s.spf_state, s.dkim_state, s.dmarc_state, s.mx_state} for s in statuses
    )
    return RecheckSummary(
        checked=len(statuses), unknown=unknown, failed=len(results) - len(statuses)
    )
