"""Every write of the DNS area that an actor makes: DKIM keys, the MTA-STS mode, and asking
for a check.

The checks themselves (asking the live DNS and storing its answers) are in `status`, run by
the task worker and `dns recheck-all`."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from postdesk import crypto
from postdesk.audit.choices import Action
from postdesk.audit.services import audit_record
from postdesk.errors import InvalidInput, NotFound
from postdesk.mail.choices import MtaStsMode
from postdesk.mail.models import Domain, Mailbox
from postdesk.mail.services import domain_setting_set
from postdesk.tenancy.access import Actor, require_client_access

from . import resolver
from .dkim import DkimState, check_dkim, generate_key_pair, is_valid_selector
from .models import DeliverabilityTest, DeliverabilityTestState, DkimKey, DkimKeyStatus
from .selectors import signing_key
from .tasks import check_domain_dns, deliverability_test_send, dkim_keys_deploy_to_signers

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


def _audit(actor: Actor, domain: Domain, action: Action, key: DkimKey) -> None:
    """Record a DKIM change, and hand the signer the new set of keys (same transaction)."""
    dkim_keys_deploy_to_signers()
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
        _audit(actor, domain, Action.DKIM_ENABLE, key)
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
        _audit(actor, domain, Action.DKIM_DISABLE, key)


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
        _audit(actor, domain, Action.DKIM_PREPARE, key)
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
        _audit(actor, domain, Action.DKIM_ROTATE, prepared)
    return prepared


# --- Checks ------------------------------------------------------------------------------------


def dns_request_check(*, actor: Actor, domain: Domain) -> None:
    """ "Check now": queue a check for the task worker. Looking is enough to ask for it."""
    require_client_access(actor, domain.client_id, write=False)
    check_domain_dns.enqueue(domain.pk)


# --- MTA-STS -----------------------------------------------------------------------------------


def mta_sts_mode_set(*, actor: Actor, domain: Domain, mode: str) -> Domain:
    """Choose what the domain's MTA-STS policy asks of senders. The policy's id changes with
    it, so the _mta-sts record must be published again for senders to take the new mode."""
    require_client_access(actor, domain.client_id, write=True)
    if mode not in MtaStsMode.values:
        raise InvalidInput(
            "mta_sts_mode_invalid", _("Choose the testing or the enforce mode."), "mode"
        )
    return domain_setting_set(
        actor=actor, domain=domain, field="mta_sts_mode", value=mode, action=Action.MTA_STS_MODE
    )


# --- The deliverability self-test ----------------------------------------------------------------

# A test still queued or waiting this long after the timeout is over: its worker died.
_STALE_AFTER = timedelta(minutes=5)


def _sender(domain: Domain, address: str | None) -> Mailbox:
    mailboxes = Mailbox.objects.filter(domain=domain).select_related("address")
    if address is not None:
        local_part, _at, domain_name = address.strip().lower().rpartition("@")
        mailbox = mailboxes.filter(local_part=local_part).first()
        if mailbox is None or domain_name != domain.name:
            raise NotFound(_("No mailbox %(address)s.") % {"address": address}, "address")
        return mailbox
    # One click on the dashboard: the domain's first mailbox by name.
    mailbox = mailboxes.order_by("local_part").first()
    if mailbox is None:
        raise InvalidInput(
            "no_mailbox",
            _("Create a mailbox first: the test message leaves from one of your mailboxes."),
            None,
        )
    return mailbox


def deliverability_test_request(
    *, actor: Actor, domain: Domain, address: str | None = None, queue: bool = True
) -> DeliverabilityTest:
    """Start a self-test: a message from `address` (a mailbox of `domain`; by default its
    first mailbox) to the provider's probe address, judged as a receiver would on arrival.
    It replaces the domain's last test. Queued for the worker unless `queue` is False (the
    operator's command runs it itself: probe.selftest_run)."""
    require_client_access(actor, domain.client_id, write=True)
    if not settings.POSTDESK_PROBE_ADDRESS:
        raise InvalidInput(
            "selftest_unavailable",
            _("The deliverability test is not available on this service."),
            None,
        )
    mailbox = _sender(domain, address)
    now = timezone.now()
    busy_after = now - timedelta(seconds=settings.POSTDESK_PROBE_TIMEOUT) - _STALE_AFTER
    with transaction.atomic():
        Domain.objects.select_for_update().filter(pk=domain.pk).first()
        last = DeliverabilityTest.objects.filter(domain=domain).first()
        if (
            last is not None
            and last.state in (DeliverabilityTestState.QUEUED, DeliverabilityTestState.WAITING)
            and last.requested_at > busy_after
        ):
            raise InvalidInput(
                "selftest_running",
                _("A deliverability test is already under way. Its result shows here shortly."),
                None,
            )
        sender = f"{mailbox.local_part}@{domain.name}"
        test, _created = DeliverabilityTest.objects.update_or_create(
            domain=domain,
            defaults={
                "mailbox": mailbox,
                "sender": sender,
                "state": DeliverabilityTestState.QUEUED,
                "token": secrets.token_hex(16),
                "login_hash": "",
                "login_expires_at": None,
                "requested_at": now,
                "submitted_at": None,
                "received_at": None,
                "facts": {},
                "error": "",
            },
        )
        if queue:
            deliverability_test_send.enqueue(test.pk)
        audit_record(
            actor=actor,
            action=Action.DELIVERABILITY_TEST,
            client_id=domain.client_id,
            domain_name=domain.name,
            target=sender,
        )
    return test
