"""Mailboxes, their password and their aliases."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Status

from postdesk.mail import selectors, services
from postdesk.mail.passwords import generate_password
from postdesk.mail.selectors import MailboxDetail

from ..schemas import (
    READ_ERRORS,
    WRITE_ERRORS,
    AliasIn,
    GeneratedPasswordOut,
    MailboxCreatedOut,
    MailboxCreateIn,
    MailboxOut,
    MailboxUpdateIn,
    PasswordIn,
)

router = Router(tags=["mailboxes"])


def mailbox_out(detail: MailboxDetail) -> dict:
    """The mailbox as the API shows it: its address-list row (the list's keys: `eas`,
    `mapi`…) and its dates. MailboxOut keeps what it declares, so the row's `type` and
    `growth_7d_bytes`, which the mailbox routes have never returned, stay out."""
    return {
        **detail.row.as_dict(),
        "password_changed_at": detail.mailbox.password_changed_at,
        "created_at": detail.mailbox.created_at,
    }


def _settings(payload: MailboxCreateIn | MailboxUpdateIn) -> dict:
    """A mailbox's settings as mail.services take them; the API's `eas`/`mapi` are the
    services' `eas_enabled`/`mapi_enabled` (None: unchanged, on an update)."""
    return {
        "quota_mb": payload.quota_mb,
        "aliases": payload.aliases,
        "destinations": payload.destinations,
        "delete_after_forwarding": payload.delete_after_forwarding,
        "keep_original_sender": payload.keep_original_sender,
        "eas_enabled": payload.eas,
        "mapi_enabled": payload.mapi,
    }


@router.post("/domains/{domain}/mailboxes", response={201: MailboxCreatedOut, **WRITE_ERRORS})
def mailbox_create(request: HttpRequest, domain: str, payload: MailboxCreateIn):
    """Create a mailbox. Without a password one is generated, returned here and only here."""
    found = selectors.domain_get(actor=request.auth, name=domain)
    generated = payload.password is None
    password = payload.password
    if password is None:
        password = generate_password(username=payload.username.strip().lower(), domain=found.name)
    mailbox = services.mailbox_create(
        actor=request.auth,
        domain=found,
        username=payload.username,
        password=password,
        **_settings(payload),
    )
    body = mailbox_out(selectors.mailbox_detail_of(actor=request.auth, mailbox=mailbox))
    body["password"] = password if generated else None
    return Status(201, body)


@router.get("/mailboxes/{address}", response={200: MailboxOut, **READ_ERRORS})
def mailbox_detail(request: HttpRequest, address: str):
    return mailbox_out(selectors.mailbox_detail(actor=request.auth, address=address))


@router.patch("/mailboxes/{address}", response={200: MailboxOut, **WRITE_ERRORS})
def mailbox_update(request: HttpRequest, address: str, payload: MailboxUpdateIn):
    """Change a mailbox's settings. `aliases` and `destinations` replace the whole list;
    removed aliases stay reserved for the reuse delay."""
    mailbox = selectors.mailbox_get(actor=request.auth, address=address)
    updated = services.mailbox_update(
        actor=request.auth,
        mailbox=mailbox,
        **_settings(payload),
    )
    return mailbox_out(selectors.mailbox_detail_of(actor=request.auth, mailbox=updated))


@router.delete("/mailboxes/{address}", response={204: None, **WRITE_ERRORS})
def mailbox_delete(request: HttpRequest, address: str):
    """Delete the mailbox, its messages and its aliases."""
    mailbox = selectors.mailbox_get(actor=request.auth, address=address)
    services.mailbox_delete(actor=request.auth, mailbox=mailbox)
    return Status(204, None)


@router.post(
    "/mailboxes/{address}/password",
    response={200: GeneratedPasswordOut, 204: None, **WRITE_ERRORS},
)
def mailbox_set_password(request: HttpRequest, address: str, payload: PasswordIn):
    """Set the password (204); without one in the request, generate it (200: returned once)."""
    mailbox = selectors.mailbox_get(actor=request.auth, address=address)
    password = payload.password
    if password is None:
        password = generate_password(
            username=mailbox.address.local_part, domain=mailbox.address.domain.name
        )
    services.mailbox_set_password(actor=request.auth, mailbox=mailbox, password=password)
    if payload.password is None:
        return Status(200, {"password": password})
    return Status(204, None)


def _local_part(name: str, domain_name: str) -> str:
    """An alias given as its full address in the mailbox's domain → its local part."""
    local, at, domain = name.strip().rpartition("@")
    return local if at and domain.lower().rstrip(".") == domain_name else name


@router.post("/mailboxes/{address}/aliases", response={201: MailboxOut, **WRITE_ERRORS})
def alias_add(request: HttpRequest, address: str, payload: AliasIn):
    mailbox = selectors.mailbox_get(actor=request.auth, address=address)
    updated = services.alias_add(
        actor=request.auth,
        mailbox=mailbox,
        name=_local_part(payload.name, mailbox.address.domain.name),
    )
    return Status(
        201, mailbox_out(selectors.mailbox_detail_of(actor=request.auth, mailbox=updated))
    )


@router.delete("/mailboxes/{address}/aliases/{alias}", response={204: None, **WRITE_ERRORS})
def alias_remove(request: HttpRequest, address: str, alias: str):
    """Remove an alias; its name stays reserved for the reuse delay."""
    mailbox = selectors.mailbox_get(actor=request.auth, address=address)
    services.alias_remove(
        actor=request.auth, mailbox=mailbox, name=_local_part(alias, mailbox.address.domain.name)
    )
    return Status(204, None)
