"""Every write to domains, mailboxes, aliases and forwards.

Each service takes the actor, checks their access, validates every field (collecting all the
errors so a form can show them together), writes in one transaction and records an audit
event in that same transaction. A failed call changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from postdesk.audit.choices import Action
from postdesk.audit.services import audit_record
from postdesk.billing.models import UsageSample
from postdesk.billing.selectors import (
    usage_growth,
    usage_keys_sampled_since,
    usage_sampled_bytes,
)
from postdesk.billing.services import (
    BilledMailbox,
    NewestSample,
    SampledMailbox,
    protocols_end_many,
    protocols_record,
    usage_end_many,
    usage_measure_check,
    usage_measure_is_valid,
    usage_sample_add,
    usage_sample_exists,
    usage_samples_append,
)
from postdesk.clock import resolve_at
from postdesk.dataplane.passwords import hash_password
from postdesk.dataplane.queues import on_host
from postdesk.errors import (
    AddressTaken,
    ErrorCollector,
    InvalidInput,
    PermissionDenied,
    PostdeskError,
)
from postdesk.tenancy.access import Actor, require_client_access
from postdesk.tenancy.models import Client

from .addresses import (
    destination_next,
    normalize_destination,
    normalize_destinations,
    normalize_domain_name,
    normalize_local_part,
)
from .choices import AddressKind
from .hosts import home_choose
from .models import (
    Address,
    Alias,
    Destination,
    Domain,
    DomainTotalsChange,
    Forward,
    HostLoadChange,
    Mailbox,
)
from .passwords import validate_password
from .selectors import client_addresses_among
from .tasks import (
    at_home,
    mailbox_changes_track,
    mailbox_forwarding_apply,
    mailbox_groupware_forget,
    mailbox_sessions_kick,
    mailbox_storage_remove,
    mailboxes_groupware_forget,
)

# --- Domains -----------------------------------------------------------------------------------


def _domain_taken(name: str) -> InvalidInput:
    return InvalidInput(
        "domain_taken", _("%(domain)s is already hosted here.") % {"domain": name}, "domain"
    )


def domain_name_clean(name: str, field: str = "domain") -> str:
    """The name a new domain would get (normalized), or the error that it cannot: not a
    domain name, or already hosted here (by any client)."""
    domain_name = normalize_domain_name(name, field=field)
    if Domain.objects.filter(name=domain_name).exists():
        raise _domain_taken(domain_name)
    return domain_name


def domain_add(*, actor: Actor, client: Client, name: str) -> Domain:
    require_client_access(actor, client.pk, write=True)
    domain_name = normalize_domain_name(name)
    try:
        with transaction.atomic():
            domain = Domain.objects.create(client=client, name=domain_name)
            audit_record(
                actor=actor,
                action=Action.DOMAIN_ADD,
                client_id=client.pk,
                domain_name=domain_name,
                target=domain_name,
            )
    except IntegrityError:
        raise _domain_taken(domain_name) from None
    return domain


def domain_setting_set(
    *, actor: Actor, domain: Domain, field: str, value: Any, action: str
) -> Domain:
    """Change one of a domain's own settings (a field of Domain), under lock; recorded in the
    audit log as `action` with its value before and after, when it changed."""
    require_client_access(actor, domain.client_id, write=True)
    with transaction.atomic():
        before = Domain.objects.select_for_update().values_list(field, flat=True).get(pk=domain.pk)
        setattr(domain, field, value)
        if before != value:
            Domain.objects.filter(pk=domain.pk).update(**{field: value})
            audit_record(
                actor=actor,
                action=action,
                client_id=domain.client_id,
                domain_name=domain.name,
                target=domain.name,
                changes={field: [before, value]},
            )
    return domain


def domain_dav_set(*, actor: Actor, domain: Domain, enabled: bool) -> Domain:
    """Let calendar and contact apps (CalDAV/CardDAV) reach the domain's mailboxes, or not.
    The gate in front of the groupware reads the switch at every request, so it holds at
    once; the webmail and ActiveSync (its calendars and contacts too) do not depend on it."""
    return domain_setting_set(
        actor=actor, domain=domain, field="dav_enabled", value=enabled, action=Action.DOMAIN_DAV
    )


# --- The shared namespace of a domain ------------------------------------------------------------


@dataclass(frozen=True)
class RemovedDomains:
    domains: list[str]
    mailboxes: int


def client_domains_remove(*, actor: Actor, client: Client) -> RemovedDomains:
    """Remove every domain of the client with all it holds (mailboxes, aliases, forwards, DKIM
    keys, DNS status), as a deletion of each mailbox would: its EAS/MAPI periods end and its
    storage drops to 0 now (billing keeps its history, so the cycle still bills it), its open
    sessions are disconnected and its messages removed in the background.

    Set-wise (a handful of statements and one task per mailbox, whatever the client's size),
    inside the caller's transaction when there is one. Released addresses are not reserved:
    the domain goes with them. The caller records the event (a termination records one for
    the whole client).
    """
    require_client_access(actor, client.pk, write=True)
    at = resolve_at(None)
    with transaction.atomic():
        domains = list(Domain.objects.filter(client=client).order_by("name"))
        mailboxes = list(
            Mailbox.objects.filter(address__domain__client=client).values_list(
                "pk",
                "address__domain_id",
                "address__domain__name",
                "storage_id",
                "address__local_part",
                "home__name",
            )
        )
        protocols_end_many(mailbox_keys=[pk for pk, *_rest in mailboxes], at=at)
        usage_end_many(
            [
                SampledMailbox(key=pk, domain_id=domain_id, address=f"{local}@{domain_name}")
                for pk, domain_id, domain_name, _storage, local, _home in mailboxes
            ],
            at=at,
        )
        client_sessions_kick(client_id=client.pk)
        for _pk, _domain_id, domain_name, storage_id, local, home in mailboxes:
            on_host(mailbox_storage_remove, home).enqueue(
                domain_name, storage_id.hex, f"{local}@{domain_name}"
            )
        Domain.objects.filter(client=client).delete()
    return RemovedDomains(domains=[d.name for d in domains], mailboxes=len(mailboxes))


def client_sessions_kick(*, client_id: int) -> None:
    """Disconnect the open IMAP/POP sessions of every mailbox of the client's domains (a
    task per domain and home host of its mailboxes, queued in the caller's transaction;
    `*@domain` is a doveadm mask), and have SOGo forget the logins it cached for them (one
    task: memcached deletes by key only, so the keys are the mailboxes' addresses, read
    now)."""
    # A domain without a mailbox has no session to end. One query, whatever the size.
    homes = (
        Mailbox.objects.filter(address__domain__client_id=client_id)
        .values_list("address__domain__name", "home__name")
        .order_by("address__domain__name", "home__name")
        .distinct()
    )
    for domain_name, home in homes:
        on_host(mailbox_sessions_kick, home).enqueue(f"*@{domain_name}")
    addresses = [
        f"{local}@{domain}"
        for local, domain in Mailbox.objects.filter(
            address__domain__client_id=client_id
        ).values_list("address__local_part", "address__domain__name")
    ]
    if addresses:
        mailboxes_groupware_forget.enqueue(addresses)


def _taken_error(existing: Address | None, email: str, field: str) -> AddressTaken:
    if existing is None or existing.kind == AddressKind.MAILBOX:
        message = _("%(address)s is already used by a mailbox.")
    elif existing.kind == AddressKind.ALIAS:
        message = _("%(address)s is already used as an alias.")
    elif existing.kind == AddressKind.FORWARD:
        message = _("%(address)s is already used by a forward.")
    else:
        minutes = max(1, math.ceil((existing.available_at - timezone.now()).total_seconds() / 60))
        return AddressTaken(
            _(
                "%(address)s was removed recently and stays reserved for %(minutes)d more "
                "minute(s) before it can be used again."
            )
            % {"address": email, "minutes": minutes},
            field,
        )
    return AddressTaken(message % {"address": email}, field)


def _check_available(domain: Domain, wanted: dict[str, str], errors: ErrorCollector) -> None:
    """Report every wanted local part (→ its field) that is already taken."""
    if not wanted:
        return
    now = timezone.now()
    taken = (
        Address.objects.filter(domain=domain, local_part__in=wanted)
        .exclude(kind=AddressKind.RELEASED, available_at__lte=now)
        .only("local_part", "kind", "available_at")
    )
    for existing in taken:
        email = f"{existing.local_part}@{domain.name}"
        errors.add(_taken_error(existing, email, wanted[existing.local_part]))


def _expired_reservations_drop(domain: Domain, local_parts: Sequence[str]) -> None:
    """Removed aliases whose reuse delay has passed free their names (one statement)."""
    Address.objects.filter(
        domain=domain,
        local_part__in=local_parts,
        kind=AddressKind.RELEASED,
        available_at__lte=timezone.now(),
    ).delete()


def _claim(domain: Domain, local_part: str, kind: str, field: str) -> Address:
    """Take a local part of the domain, or raise AddressTaken.

    The unique constraint decides: when two requests race for one name, the second insert
    fails inside its savepoint and becomes a clean "taken" error.
    """
    _expired_reservations_drop(domain, [local_part])
    try:
        with transaction.atomic():
            return Address.objects.create(domain=domain, local_part=local_part, kind=kind)
    except IntegrityError:
        existing = Address.objects.filter(domain=domain, local_part=local_part).first()
        raise _taken_error(existing, f"{local_part}@{domain.name}", field) from None


def _claim_many(domain: Domain, local_parts: Sequence[str], kind: str, field: str) -> list:
    """Take several local parts of the domain at once (a mailbox's aliases): one statement
    for the expired reservations, one insert for all. When one of them is taken meanwhile
    (a race the earlier availability check could not see), each is claimed alone, so the
    error names it."""
    if not local_parts:
        return []
    _expired_reservations_drop(domain, local_parts)
    try:
        with transaction.atomic():
            return Address.objects.bulk_create(
                [Address(domain=domain, local_part=name, kind=kind) for name in local_parts]
            )
    except IntegrityError:
        return [_claim(domain, name, kind, field) for name in local_parts]


def _release(addresses: Iterable[Address]) -> None:
    """Turn removed aliases into reservations that expire after the reuse delay."""
    ids = [a.pk for a in addresses]
    if ids:
        Address.objects.filter(pk__in=ids).update(
            kind=AddressKind.RELEASED,
            available_at=timezone.now() + settings.POSTDESK_ALIAS_REUSE_DELAY,
        )


def _normalize_aliases(
    names: Iterable[str],
    *,
    exclude: str,
    domain: Domain,
    errors: ErrorCollector,
    listed: Sequence[str] = (),
) -> list[str]:
    """The names as local parts, each once; an error for the mailbox's own name and for a
    name given twice or already `listed`. More names than a mailbox may have are refused
    before any is read (linear either way)."""
    names = list(names)
    maximum = settings.POSTDESK_MAX_ALIASES
    if len(names) > maximum:
        errors.add(_alias_limit_error(maximum))
        return []
    result: list[str] = []
    seen = set(listed)
    for name in names:
        local_part = errors.check(normalize_local_part, name, field="aliases")
        if local_part is None:
            continue
        if local_part == exclude:
            errors.add(
                InvalidInput(
                    "alias_is_mailbox",
                    _("An alias cannot be the mailbox's own name."),
                    "aliases",
                )
            )
        elif local_part in seen:
            errors.add(_alias_duplicate_error(local_part, domain))
        else:
            result.append(local_part)
            seen.add(local_part)
    return result


def _alias_duplicate_error(local_part: str, domain: Domain) -> InvalidInput:
    return InvalidInput(
        "alias_duplicate",
        _("%(address)s is already in the list.") % {"address": f"{local_part}@{domain.name}"},
        "aliases",
    )


def _alias_limit_error(maximum: int) -> InvalidInput:
    return InvalidInput(
        "alias_limit",
        _("A mailbox can have at most %(max)d aliases.") % {"max": maximum},
        "aliases",
    )


def _check_alias_count(count: int, errors: ErrorCollector) -> None:
    if count > settings.POSTDESK_MAX_ALIASES:
        errors.add(_alias_limit_error(settings.POSTDESK_MAX_ALIASES))


def _validate_quota(quota_mb: int, errors: ErrorCollector) -> None:
    maximum = settings.POSTDESK_MAX_QUOTA_MB
    if isinstance(quota_mb, bool) or not isinstance(quota_mb, int) or not 0 <= quota_mb <= maximum:
        errors.add(
            InvalidInput(
                "quota_invalid",
                _("Enter a whole number of megabytes between 0 and %(max)d (0 = plan limit only).")
                % {"max": maximum},
                "quota_mb",
            )
        )


def _set_destinations(address: Address, destinations: Sequence[str]) -> None:
    Destination.objects.filter(address=address).delete()
    Destination.objects.bulk_create(
        Destination(address=address, email=email, position=i)
        for i, email in enumerate(destinations)
    )


def _billed(mailbox: Mailbox) -> BilledMailbox:
    """The mailbox as billing's protocol periods keep it (its address and domain loaded)."""
    address = mailbox.address
    return BilledMailbox(
        key=mailbox.pk,
        address=address.email,
        domain_id=address.domain_id,
        client_id=address.domain.client_id,
    )


def _sampled(mailbox: Mailbox, *, exists: bool = True) -> SampledMailbox:
    """The mailbox as billing's usage samples keep it (its address loaded)."""
    address = mailbox.address
    return SampledMailbox(
        key=mailbox.pk, domain_id=address.domain_id, address=address.email, exists=exists
    )


def _lock(model: type, pk: int) -> Any:
    """Re-read a row under lock, so two concurrent edits apply one after the other."""
    return model.objects.select_for_update().select_related("address__domain").get(pk=pk)


# --- Mailboxes ---------------------------------------------------------------------------------


def mailbox_create(
    *,
    actor: Actor,
    domain: Domain,
    username: str,
    password: str,
    password_confirmation: str | None = None,
    aliases: Sequence[str] = (),
    quota_mb: int = 0,
    destinations: Sequence[str] = (),
    delete_after_forwarding: bool = False,
    keep_original_sender: bool = False,
    eas_enabled: bool = False,
    mapi_enabled: bool = False,
    at: datetime | None = None,
) -> Mailbox:
    """`at` (default now) dates the change for billing: it opens the EAS/MAPI periods."""
    require_client_access(actor, domain.client_id, write=True)
    at = resolve_at(at)
    errors = ErrorCollector()
    local_part = errors.check(normalize_local_part, username, field="username")
    # The password is checked even when the username is not valid, against the name as typed:
    # every field's errors come back in one round.
    errors.check(
        validate_password,
        password,
        password if password_confirmation is None else password_confirmation,
        username=local_part if local_part is not None else (username or "").strip(),
        domain=domain.name,
    )
    alias_names = _normalize_aliases(aliases, exclude=local_part, domain=domain, errors=errors)
    _validate_quota(quota_mb, errors)
    own = {f"{n}@{domain.name}" for n in [local_part, *alias_names] if n}
    clean_destinations = errors.check(
        normalize_destinations,
        list(destinations),
        own_addresses=own,
        max_count=settings.POSTDESK_MAX_DESTINATIONS,
    )
    _check_loop(domain, own, clean_destinations, errors)
    # A name already taken is reported with the other fields' errors, not after them: every
    # valid name is looked up in the same pass (_claim still decides when two requests race).
    wanted = {n: "aliases" for n in alias_names}
    if local_part is not None:
        wanted = {local_part: "username", **wanted}
    _check_available(domain, wanted, errors)
    errors.raise_if_any()
    # Hash before taking the write lock: it is the slow part.
    password_hash = hash_password(password)

    with transaction.atomic():
        address = _claim(domain, local_part, AddressKind.MAILBOX, "username")
        mailbox = Mailbox.objects.create(
            address=address,
            domain=domain,
            home=home_choose(client_id=domain.client_id),
            local_part=address.local_part,
            growth_7d_bytes=0,
            password_hash=password_hash,
            password_changed_at=timezone.now(),
            quota_mb=quota_mb,
            delete_after_forwarding=delete_after_forwarding,
            keep_original_sender=keep_original_sender,
            eas_enabled=eas_enabled,
            mapi_enabled=mapi_enabled,
        )
        Alias.objects.bulk_create(
            Alias(address=claimed, mailbox=mailbox)
            for claimed in _claim_many(domain, alias_names, AddressKind.ALIAS, "aliases")
        )
        _set_destinations(address, clean_destinations)
        if clean_destinations:
            at_home(mailbox_forwarding_apply, mailbox).enqueue(mailbox.pk)
        # A phone reading the mailbox through SOGo sees new mail only in folders Dovecot
        # tracks the changes of (provisioner.track_changes).
        at_home(mailbox_changes_track, mailbox).enqueue(address.email)
        if eas_enabled or mapi_enabled:
            protocols_record(
                mailbox=_billed(mailbox),
                eas_enabled=eas_enabled,
                mapi_enabled=mapi_enabled,
                at=at,
            )
        audit_record(
            actor=actor,
            action=Action.MAILBOX_CREATE,
            client_id=domain.client_id,
            domain_name=domain.name,
            target=address.email,
            changes={
                "aliases": alias_names,
                "quota_mb": quota_mb,
                "destinations": clean_destinations,
                "delete_after_forwarding": delete_after_forwarding,
                "keep_original_sender": keep_original_sender,
                "eas_enabled": eas_enabled,
                "mapi_enabled": mapi_enabled,
            },
        )
    return mailbox


def mailbox_update(
    *,
    actor: Actor,
    mailbox: Mailbox,
    quota_mb: int | None = None,
    aliases: Sequence[str] | None = None,
    add_aliases: Sequence[str] = (),
    remove_aliases: Sequence[str] = (),
    destinations: Sequence[str] | None = None,
    delete_after_forwarding: bool | None = None,
    keep_original_sender: bool | None = None,
    eas_enabled: bool | None = None,
    mapi_enabled: bool | None = None,
    at: datetime | None = None,
) -> Mailbox:
    """Change a mailbox's settings; None (or an empty add/remove list) leaves a setting as is.

    `aliases` replaces the whole list (the web form); `add_aliases`/`remove_aliases` change it
    name by name (the CLI). Removed aliases stay reserved for the reuse delay. `at` (default
    now) dates the change for billing: it opens or closes the EAS/MAPI periods.
    """
    domain = mailbox.address.domain
    require_client_access(actor, domain.client_id, write=True)
    at = resolve_at(at)
    # What the request says is read before the lock, once and linearly (a list of 10,000
    # aliases is refused before any is read); under the lock, only what depends on the
    # mailbox's current state. Every error is reported together, after both.
    errors = ErrorCollector()
    own_name = mailbox.address.local_part
    given = None
    if aliases is not None:
        given = _normalize_aliases(aliases, exclude=own_name, domain=domain, errors=errors)
    adding = _normalize_aliases(add_aliases, exclude=own_name, domain=domain, errors=errors)
    removing = _normalize_aliases(remove_aliases, exclude="", domain=domain, errors=errors)
    if quota_mb is not None:
        _validate_quota(quota_mb, errors)

    with transaction.atomic():
        mailbox = _lock(Mailbox, mailbox.pk)
        address = mailbox.address
        current = {
            a.address.local_part: a
            for a in mailbox.aliases.select_related("address").order_by("address__local_part")
        }
        wanted_aliases = list(current) if given is None else list(given)
        listed = set(wanted_aliases)
        for name in adding:
            if name in listed:
                errors.add(_alias_duplicate_error(name, domain))
            else:
                wanted_aliases.append(name)
                listed.add(name)
        for name in removing:
            if name not in listed:
                errors.add(
                    InvalidInput(
                        "alias_not_found",
                        _("%(address)s is not an alias of this mailbox.")
                        % {"address": f"{name}@{domain.name}"},
                        "aliases",
                    )
                )
            else:
                wanted_aliases.remove(name)
                listed.discard(name)
        current_destinations = list(address.destinations.values_list("email", flat=True))
        own = {address.email, *(f"{n}@{domain.name}" for n in wanted_aliases)}
        new_destinations = errors.check(
            normalize_destinations,
            list(current_destinations if destinations is None else destinations),
            own_addresses=own,
            max_count=settings.POSTDESK_MAX_DESTINATIONS,
        )
        if new_destinations != current_destinations:
            _check_loop(domain, own, new_destinations, errors)
        _check_alias_count(len(wanted_aliases), errors)
        added = [n for n in wanted_aliases if n not in current]
        removed = [n for n in current if n not in wanted_aliases]
        _check_available(domain, dict.fromkeys(added, "aliases"), errors)
        errors.raise_if_any()

        changes: dict[str, Any] = {}
        for field_name, value in (
            ("quota_mb", quota_mb),
            ("delete_after_forwarding", delete_after_forwarding),
            ("keep_original_sender", keep_original_sender),
            ("eas_enabled", eas_enabled),
            ("mapi_enabled", mapi_enabled),
        ):
            if value is not None and getattr(mailbox, field_name) != value:
                changes[field_name] = [getattr(mailbox, field_name), value]
                setattr(mailbox, field_name, value)
        if removed:
            _release(current[n].address for n in removed)
            Alias.objects.filter(pk__in=[current[n].pk for n in removed]).delete()
            changes["aliases_removed"] = removed
        Alias.objects.bulk_create(
            Alias(address=claimed, mailbox=mailbox)
            for claimed in _claim_many(domain, added, AddressKind.ALIAS, "aliases")
        )
        if added:
            changes["aliases_added"] = added
        if new_destinations != current_destinations:
            _set_destinations(address, new_destinations)
            changes["destinations"] = [current_destinations, new_destinations]
        if "eas_enabled" in changes:
            # SOGo refuses ActiveSync itself too, once it reads the switch again.
            mailbox_groupware_forget.enqueue(address.email)
        if "eas_enabled" in changes or "mapi_enabled" in changes:
            protocols_record(
                mailbox=_billed(mailbox),
                eas_enabled=mailbox.eas_enabled,
                mapi_enabled=mailbox.mapi_enabled,
                at=at,
            )
        if changes.keys() & {"destinations", "delete_after_forwarding", "keep_original_sender"}:
            at_home(mailbox_forwarding_apply, mailbox).enqueue(mailbox.pk)
        if changes:
            mailbox.save()
            audit_record(
                actor=actor,
                action=Action.MAILBOX_UPDATE,
                client_id=domain.client_id,
                domain_name=domain.name,
                target=address.email,
                changes=changes,
            )
    return mailbox


def mailbox_set_password(
    *,
    actor: Actor,
    mailbox: Mailbox,
    password: str,
    password_confirmation: str | None = None,
) -> None:
    """Set a new password (an administrator's reset: the old one is not needed)."""
    address = mailbox.address
    domain = address.domain
    require_client_access(actor, domain.client_id, write=True)
    validate_password(
        password,
        password if password_confirmation is None else password_confirmation,
        username=address.local_part,
        domain=domain.name,
    )
    password_hash = hash_password(password)
    with transaction.atomic():
        updated = Mailbox.objects.filter(pk=mailbox.pk).update(
            password_hash=password_hash, password_changed_at=timezone.now()
        )
        if not updated:
            raise InvalidInput("not_found", _("This mailbox no longer exists."), None)
        # The guide: every session of the mailbox is disconnected when its password changes.
        at_home(mailbox_sessions_kick, mailbox).enqueue(address.email)
        # SOGo must not take the old password from its cache (nor refuse the new one).
        mailbox_groupware_forget.enqueue(address.email)
        audit_record(
            actor=actor,
            action=Action.MAILBOX_PASSWORD,
            client_id=domain.client_id,
            domain_name=domain.name,
            target=address.email,
        )
    mailbox.password_hash = password_hash


def mailbox_delete(*, actor: Actor, mailbox: Mailbox, at: datetime | None = None) -> None:
    """Delete a mailbox and its aliases. Its aliases stay reserved for the reuse delay.

    `at` (default now) dates the deletion for billing: the mailbox's EAS/MAPI periods end
    and its storage drops to 0 then; its history stays, so the cycle still bills it.
    """
    domain = mailbox.address.domain
    require_client_access(actor, domain.client_id, write=True)
    at = resolve_at(at)
    with transaction.atomic():
        mailbox = _lock(Mailbox, mailbox.pk)
        aliases = list(mailbox.aliases.select_related("address"))
        _release(a.address for a in aliases)
        protocols_record(mailbox=_billed(mailbox), eas_enabled=False, mapi_enabled=False, at=at)
        usage_end_many([_sampled(mailbox)], at=at)
        email = mailbox.address.email
        # The messages go for good, in the background; sessions still open are closed.
        at_home(mailbox_sessions_kick, mailbox).enqueue(email)
        mailbox_groupware_forget.enqueue(email)
        at_home(mailbox_storage_remove, mailbox).enqueue(domain.name, mailbox.storage_id.hex, email)
        # Deleting the address deletes the mailbox row, its aliases and its destinations.
        mailbox.address.delete()
        audit_record(
            actor=actor,
            action=Action.MAILBOX_DELETE,
            client_id=domain.client_id,
            domain_name=domain.name,
            target=email,
            changes={"aliases": [a.address.local_part for a in aliases]},
        )


# --- Usage -------------------------------------------------------------------------------------
#
# A measure of a mailbox's disk use is two writes in one transaction, under the mailbox's lock:
# a sample in billing's ledger (what the cycle bills) and the mailbox's own usage and growth
# (what the address list shows and sorts by). Only these functions write the latter.


def _require_collector(actor: Actor) -> None:
    if not actor.is_operator:
        raise PermissionDenied(_("Only the provider records usage."))


def mailbox_usage_record(
    *,
    actor: Actor,
    mailbox: Mailbox,
    used_bytes: int,
    at: datetime | None = None,
    messages: int | None = None,
) -> UsageSample:
    """A measure of a mailbox's disk use at `at` (default now), as the collector writes it.

    The mailbox's current usage follows only when the sample is newer than the last one, so
    samples may arrive late or out of order (a replayed history); its 7-day growth is
    recomputed from its samples either way (`mailbox_growth_refresh`). A late measure of a
    mailbox deleted since is kept when dated before its deletion (billing bills it).
    """
    _require_collector(actor)
    moment = resolve_at(at)
    usage_measure_check(used_bytes, messages)
    try:
        with transaction.atomic():
            # One writer per mailbox at a time: the chain of samples stays consistent.
            exists = (
                Mailbox.objects.select_for_update().filter(pk=mailbox.pk).values_list("pk").first()
            )
            sample = usage_sample_add(
                mailbox=_sampled(mailbox, exists=exists is not None),
                at=moment,
                used_bytes=used_bytes,
                messages=messages,
            )
            if exists is not None:
                mailbox_usage_set(mailbox=mailbox, used_bytes=used_bytes, at=moment)
                # Even a late sample can change it: it may be the one in force 7 days
                # before the latest.
                mailbox_growth_refresh(Mailbox.objects.filter(pk=mailbox.pk))
    except IntegrityError:
        raise usage_sample_exists(_sampled(mailbox), moment) from None
    return sample


def mailbox_usage_set(*, mailbox: Mailbox, used_bytes: int, at: datetime) -> bool:
    """The mailbox's current disk use, measured at `at`, unless a newer measure is stored.

    One conditional UPDATE, so a late or replayed measure never overwrites a newer one, even
    when two writers race. Returns whether the mailbox changed. Callers validate the values
    and record the sample (`mailbox_usage_record` does both).
    """
    updated = (
        Mailbox.objects.filter(pk=mailbox.pk)
        .filter(Q(used_measured_at__isnull=True) | Q(used_measured_at__lt=at))
        .update(used_bytes=used_bytes, used_measured_at=at)
    )
    if updated:
        mailbox.used_bytes = used_bytes
        mailbox.used_measured_at = at
    return bool(updated)


def mailbox_growth_refresh(mailboxes: QuerySet[Mailbox]) -> int:
    """Set each mailbox's `growth_7d_bytes` from its samples (billing's `usage_growth` rule),
    in one UPDATE whatever the number of mailboxes; returns how many it updated.

    As of the latest measure, not of the moment of reading: stored, the list can sort by it
    from an index (docs/billing.md). `mailbox_usage_record` calls it for the mailbox it
    measured; a bulk load of samples (a benchmark) calls it for every mailbox it wrote.
    """
    return mailboxes.update(growth_7d_bytes=usage_growth(OuterRef("pk")))


@dataclass(frozen=True)
class Measure:
    """One mailbox's disk use as a collector's run read it."""

    mailbox: Mailbox  # its address loaded
    used_bytes: int
    messages: int | None = None


@dataclass(frozen=True)
class BatchResult:
    recorded: int
    # (address, error) of each measure refused, as `mailbox_usage_record` would refuse it.
    refused: list[tuple[str, PostdeskError]]


# Mailboxes per transaction of `mailbox_usage_record_batch`: a run of 100,000 mailboxes
# commits 200 times instead of 100,000, and holds no mailbox's lock longer than one chunk's
# writes.
BATCH_SIZE = 500


def mailbox_usage_record_batch(
    *, actor: Actor, measures: Iterable[Measure], at: datetime | None = None
) -> BatchResult:
    """Every measure of a collector's run, all at `at` (default now): what
    `mailbox_usage_record` would write for each, in a handful of queries per `BATCH_SIZE`
    mailboxes.

    Set-wise for a measure newer than every sample of its mailbox (a collector's run, every
    time but the first of a replayed history): the new samples are appended to the ledger,
    and the mailboxes' usage and growth are set from them. Any other measure (a sample
    already at or after `at`, a mailbox deleted since it was read, an invalid value) goes
    through `mailbox_usage_record` on its own, so the result is the same as calling it for
    each; one refused measure does not stop the others.
    """
    _require_collector(actor)
    moment = resolve_at(at)
    recorded, refused = 0, []
    pending = list(measures)
    for start in range(0, len(pending), BATCH_SIZE):
        chunk: dict[int, Measure] = {}
        one_by_one = []
        for measure in pending[start : start + BATCH_SIZE]:
            # A second measure of a mailbox at the same time is mailbox_usage_record's to refuse.
            if measure.mailbox.pk in chunk:
                one_by_one.append(measure)
            else:
                chunk[measure.mailbox.pk] = measure
        with transaction.atomic():
            # The same lock as mailbox_usage_record's, taken in one order (no deadlock between
            # runs).
            present = dict(
                Mailbox.objects.select_for_update(of=("self",))
                .filter(pk__in=chunk)
                .order_by("pk")
                .values_list("pk", "address__domain_id")
            )
            later = usage_keys_sampled_since(list(present), moment)
            newest = []
            for pk, measure in chunk.items():
                if (
                    pk in present
                    and pk not in later
                    and usage_measure_is_valid(measure.used_bytes, measure.messages)
                ):
                    newest.append(pk)
                else:
                    one_by_one.append(measure)
            if newest:
                usage_samples_append(
                    [
                        NewestSample(
                            mailbox_key=pk,
                            domain_id=present[pk],
                            used_bytes=chunk[pk].used_bytes,
                            messages=chunk[pk].messages,
                        )
                        for pk in newest
                    ],
                    at=moment,
                )
                mailboxes = Mailbox.objects.filter(pk__in=newest)
                # As mailbox_usage_set: unless a newer measure is stored.
                mailboxes.filter(
                    Q(used_measured_at__isnull=True) | Q(used_measured_at__lt=moment)
                ).update(
                    used_bytes=usage_sampled_bytes(OuterRef("pk"), moment),
                    used_measured_at=moment,
                )
                mailbox_growth_refresh(mailboxes)
                recorded += len(newest)
        for measure in one_by_one:
            try:
                mailbox_usage_record(
                    actor=actor,
                    mailbox=measure.mailbox,
                    used_bytes=measure.used_bytes,
                    messages=measure.messages,
                    at=moment,
                )
            except PostdeskError as error:
                refused.append((measure.mailbox.address.email, error))
            else:
                recorded += 1
    return BatchResult(recorded=recorded, refused=refused)


# --- Domain totals -----------------------------------------------------------------------------
#
# The triggers of mail migration 0009 append each write's change to its domain's counts; the
# `compact-totals` job folds them, so that reading a domain's totals sums a handful of rows.


@dataclass(frozen=True)
class TotalsCompaction:
    folded: int  # change rows removed
    kept: int  # rows written in their place (one per domain whose totals are not all zero)


def domain_totals_compact() -> TotalsCompaction:
    """Fold the change rows of every domain that has more than one into a single row with
    their sums; a domain whose sums are all zero (a deleted domain) keeps none."""
    return _changes_fold(DomainTotalsChange, "domain_id")


def host_loads_compact() -> TotalsCompaction:
    """Fold the load changes of every host that has more than one into a single row (mail
    migration 0014's triggers append them): as `domain_totals_compact`, per host."""
    return _changes_fold(HostLoadChange, "host_id")


def _changes_fold(model: type[DomainTotalsChange | HostLoadChange], key: str) -> TotalsCompaction:
    """Fold the rows of `model` (appended changes, their columns `model.SUMMED`) into one row
    per `key` that has more than one; a key whose sums are all zero keeps none.

    Exact while writers append: only rows already committed are folded, and the removal
    and the sums commit together, so a reader sees either the rows or their sum. It takes no
    lock a writer waits for. One compaction at a time (the job's claim; on PostgreSQL also a
    table lock that only another compaction, VACUUM or a schema change conflicts with).
    """
    # Only the table's and columns' names are formatted into the SQL; values are parameters.
    table = model._meta.db_table
    columns = ", ".join(model.SUMMED)
    sums = [f"SUM({column})" for column in model.SUMMED]
    summed = ", ".join(sums)
    not_zero = " OR ".join(f"{total} <> 0" for total in sums)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE")
            # One statement, one snapshot: it removes exactly the rows it sums; a writer's
            # rows committed meanwhile stay for the next run.
            cursor.execute(
                f"""WITH many AS (
                      SELECT {key} FROM {table} GROUP BY {key} HAVING COUNT(*) > 1
                    ), gone AS (
                      DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM many)
                      RETURNING {key}, {columns}
                    ), kept AS (
                      INSERT INTO {table} ({key}, {columns})
                      SELECT {key}, {summed} FROM gone GROUP BY {key}
                      HAVING {not_zero} RETURNING 1
                    )
                    SELECT (SELECT COUNT(*) FROM gone), (SELECT COUNT(*) FROM kept)"""  # noqa: S608
            )
            folded, kept = cursor.fetchone()
        else:
            # SQLite: the transaction holds the database's write lock (IMMEDIATE), so no row
            # is added between the statements; the rows written here come after `last`.
            cursor.execute(f"SELECT MAX(id) FROM {table}")  # noqa: S608
            last = cursor.fetchone()[0] or 0
            many = (
                f"SELECT {key} FROM {table} WHERE id <= %s "  # noqa: S608
                f"GROUP BY {key} HAVING COUNT(*) > 1"
            )
            cursor.execute(
                f"""INSERT INTO {table} ({key}, {columns})
                    SELECT {key}, {summed} FROM {table}
                    WHERE id <= %s AND {key} IN ({many})
                    GROUP BY {key} HAVING {not_zero}""",  # noqa: S608
                [last, last],
            )
            kept = cursor.rowcount
            cursor.execute(
                f"DELETE FROM {table} WHERE id <= %s AND {key} IN ({many})",  # noqa: S608
                [last, last],
            )
            folded = cursor.rowcount
    return TotalsCompaction(folded=folded, kept=kept)


# --- A form's tags, checked one by one -----------------------------------------------------------
#
# The mailbox and forward forms add aliases and destinations as tags; each is checked as it is
# added, by the rules the save applies (the save checks them all again). Read-only.


def _quietly(normalize, value: str) -> str | None:
    """A value in its stored form, or None when it is not valid (it has its own error)."""
    try:
        return normalize(value)
    except PostdeskError:
        return None


def alias_name_clean(
    *,
    actor: Actor,
    domain: Domain,
    name: str,
    listed: Sequence[str] = (),
    mailbox_name: str = "",
    mailbox: Mailbox | None = None,
) -> str:
    """The alias a tag adds (its stored local part), or the error the save would give: not a
    valid name, the mailbox's own name, already `listed`, or taken in the domain.

    `mailbox` is the mailbox being edited (its own aliases are not "taken"); a new mailbox
    gives the `mailbox_name` typed so far.
    """
    require_client_access(actor, domain.client_id, write=True)
    errors = ErrorCollector()
    current: set[str] = set()
    if mailbox is not None:
        own = mailbox.address.local_part
        current = set(mailbox.aliases.values_list("address__local_part", flat=True))
    else:
        own = _quietly(normalize_local_part, mailbox_name)
    names = [n for n in (_quietly(normalize_local_part, x) for x in listed) if n]
    added = _normalize_aliases([name], exclude=own, domain=domain, errors=errors, listed=names)
    _check_available(domain, {n: "aliases" for n in added if n not in current}, errors)
    errors.raise_if_any()
    return added[0]


def destination_clean(
    *, actor: Actor, domain: Domain, value: str, listed: Sequence[str] = (), own: Sequence[str] = ()
) -> str:
    """The destination a tag adds (stored form), or the error the save would give: not an
    address, one of the form's `own` names (the mailbox's or forward's name and aliases) of
    the domain, already `listed`, or one too many."""
    require_client_access(actor, domain.client_id, write=True)
    own_names = (_quietly(normalize_local_part, n) for n in own)
    return destination_next(
        value,
        listed=[d for d in (_quietly(normalize_destination, x) for x in listed) if d],
        own_addresses={f"{n}@{domain.name}" for n in own_names if n},
        max_count=settings.POSTDESK_MAX_DESTINATIONS,
    )


# --- Aliases -----------------------------------------------------------------------------------


def alias_add(*, actor: Actor, mailbox: Mailbox, name: str) -> Mailbox:
    return mailbox_update(actor=actor, mailbox=mailbox, add_aliases=[name])


def alias_remove(*, actor: Actor, mailbox: Mailbox, name: str) -> Mailbox:
    return mailbox_update(actor=actor, mailbox=mailbox, remove_aliases=[name])


# --- Forwards ----------------------------------------------------------------------------------


# How many forwarding hops a loop is looked for through (Postfix's own hop limit is far
# higher; a chain of our own addresses this long is already a mistake).
LOOP_DEPTH = 10


def _forwarding_loop(domain: Domain, sources: set[str], destinations: Sequence[str]) -> str | None:
    """The destination through which mail sent to `sources` (an address, with a mailbox's
    aliases) would come back to them, following the forwards, the mailboxes' forwarding and
    the aliases of the client's own domains; None without a loop. Two queries a hop."""
    came_from = {email: email for email in destinations}  # reached address → its first hop
    frontier = set(destinations)
    for _hop in range(LOOP_DEPTH):
        looped = sorted(frontier & sources)
        if looped:
            return came_from[looped[0]]
        if not frontier:
            return None
        hosted = client_addresses_among(domain.client_id, frontier)
        following: dict[str, str] = {}  # next address → its first hop
        forwarding: dict[int, str] = {}  # address id → its email, for its destinations
        for pk, local, name, kind, mailbox_local in hosted.values_list(
            "pk", "local_part", "domain__name", "kind", "alias__mailbox__address__local_part"
        ):
            email = f"{local}@{name}"
            if email not in frontier:  # a local part of one domain, the name of another
                continue
            if kind == AddressKind.ALIAS:  # delivers to its mailbox
                following.setdefault(f"{mailbox_local}@{name}", came_from[email])
            else:
                forwarding[pk] = email
        for address_id, email in Destination.objects.filter(address_id__in=forwarding).values_list(
            "address_id", "email"
        ):
            following.setdefault(email, came_from[forwarding[address_id]])
        following = {e: hop for e, hop in following.items() if e not in came_from or e in sources}
        came_from.update({e: hop for e, hop in following.items() if e not in came_from})
        frontier = set(following)
    return None


def _check_loop(
    domain: Domain, sources: set[str], destinations: Sequence[str] | None, errors: ErrorCollector
) -> None:
    if destinations:
        hop = _forwarding_loop(domain, sources, destinations)
        if hop is not None:
            errors.add(_loop_error(hop))


def _loop_error(destination: str) -> InvalidInput:
    return InvalidInput(
        "destination_loop",
        _(
            "%(address)s forwards back here, directly or through other addresses: mail would "
            "go round in a loop."
        )
        % {"address": destination},
        "destinations",
    )


def _validate_forward_destinations(
    destinations: Sequence[str], own: str, errors: ErrorCollector
) -> list[str] | None:
    result = errors.check(
        normalize_destinations,
        list(destinations),
        own_addresses={own},
        max_count=settings.POSTDESK_MAX_DESTINATIONS,
    )
    if result is not None and not result:
        errors.add(
            InvalidInput(
                "destination_required",
                _("Add at least one destination address."),
                "destinations",
            )
        )
    return result


def forward_create(
    *, actor: Actor, domain: Domain, name: str, destinations: Sequence[str]
) -> Forward:
    require_client_access(actor, domain.client_id, write=True)
    errors = ErrorCollector()
    local_part = errors.check(normalize_local_part, name, field="name")
    clean = _validate_forward_destinations(
        destinations, f"{local_part}@{domain.name}" if local_part else "", errors
    )
    if local_part is not None:
        _check_loop(domain, {f"{local_part}@{domain.name}"}, clean, errors)
    # A taken name is reported with the destinations' errors, in one round (as mailbox_create).
    if local_part is not None:
        _check_available(domain, {local_part: "name"}, errors)
    errors.raise_if_any()
    with transaction.atomic():
        address = _claim(domain, local_part, AddressKind.FORWARD, "name")
        forward = Forward.objects.create(address=address)
        _set_destinations(address, clean)
        audit_record(
            actor=actor,
            action=Action.FORWARD_CREATE,
            client_id=domain.client_id,
            domain_name=domain.name,
            target=address.email,
            changes={"destinations": clean},
        )
    return forward


def forward_update(*, actor: Actor, forward: Forward, destinations: Sequence[str]) -> Forward:
    domain = forward.address.domain
    require_client_access(actor, domain.client_id, write=True)
    with transaction.atomic():
        forward = _lock(Forward, forward.pk)
        address = forward.address
        errors = ErrorCollector()
        clean = _validate_forward_destinations(destinations, address.email, errors)
        _check_loop(domain, {address.email}, clean, errors)
        errors.raise_if_any()
        current = list(address.destinations.values_list("email", flat=True))
        if clean != current:
            _set_destinations(address, clean)
            forward.save(update_fields=["updated_at"])
            audit_record(
                actor=actor,
                action=Action.FORWARD_UPDATE,
                client_id=domain.client_id,
                domain_name=domain.name,
                target=address.email,
                changes={"destinations": [current, clean]},
            )
    return forward


def forward_delete(*, actor: Actor, forward: Forward) -> None:
    domain = forward.address.domain
    require_client_access(actor, domain.client_id, write=True)
    with transaction.atomic():
        forward = _lock(Forward, forward.pk)
        email = forward.address.email
        destinations = list(forward.address.destinations.values_list("email", flat=True))
        forward.address.delete()
        audit_record(
            actor=actor,
            action=Action.FORWARD_DELETE,
            client_id=domain.client_id,
            domain_name=domain.name,
            target=email,
            changes={"destinations": destinations},
        )
