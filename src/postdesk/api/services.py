"""Every write to API tokens, and the check of a presented token."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from postdesk import crypto
from postdesk.audit.choices import Action
from postdesk.audit.services import audit_record
from postdesk.errors import (
    ErrorCollector,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PostdeskError,
)
from postdesk.tenancy.access import Actor, Source
from postdesk.tenancy.models import User

from . import tokens
from .errors import Unauthenticated
from .models import ApiToken, IdempotencyKey, TokenScope

MAX_EXPIRY_DAYS = 3650
OPERATOR_NAME_MAX = 100
# last_used_at is rewritten at most this often per token: a busy script must not turn every
# read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    plaintext: str  # shown once; never stored or logged


def _validate_expiry(expires_days: int | None, errors: ErrorCollector) -> None:
    if expires_days is None:
        return
    if (
        isinstance(expires_days, bool)
        or not isinstance(expires_days, int)
        or not 1 <= expires_days <= MAX_EXPIRY_DAYS
    ):
        errors.add(
            InvalidInput(
                "expires_invalid",
                _("Enter a number of days between 1 and %(max)d.") % {"max": MAX_EXPIRY_DAYS},
                "expires",
            )
        )


def token_create(
    *,
    actor: Actor,
    user: User | None = None,
    operator_name: str | None = None,
    scope: str = TokenScope.READ,
    expires_days: int | None = None,
    not_after: datetime | None = None,
) -> CreatedToken:
    """A personal token for `user`, or a provisioning token named `operator_name`.

    Only the operator creates provisioning tokens; a user may create their own tokens.
    `not_after` caps the expiry: a token made with an expiring token (over the API) expires
    no later than it, so a leaked short-lived token cannot mint a lasting one.
    """
    if (user is None) == (operator_name is None):
        raise ValueError("give exactly one of user and operator_name")
    if user is not None:
        if not actor.is_operator and actor.user != user:
            raise PermissionDenied(_("You can only create API tokens for yourself."))
    elif not actor.is_operator:
        raise PermissionDenied(_("Only the provider can create provisioning tokens."))

    errors = ErrorCollector()
    if scope not in TokenScope.values:
        errors.add(
            InvalidInput(
                "scope_invalid",
                _("Choose a scope among: %(scopes)s.") % {"scopes": ", ".join(TokenScope.values)},
                "scope",
            )
        )
    _validate_expiry(expires_days, errors)
    if operator_name is not None:
        operator_name = " ".join(operator_name.split())
        if not operator_name or len(operator_name) > OPERATOR_NAME_MAX:
            errors.add(
                InvalidInput(
                    "operator_name_invalid",
                    _("Enter a name of 1 to %(max)d characters for the operator token.")
                    % {"max": OPERATOR_NAME_MAX},
                    "operator",
                )
            )
    if user is not None and not user.is_active:
        errors.add(
            InvalidInput(
                "user_inactive",
                _("%(address)s is disabled: it cannot have API tokens.") % {"address": user.email},
                "email",
            )
        )
    errors.raise_if_any()

    now = timezone.now()
    expires_at = now + timedelta(days=expires_days) if expires_days else None
    if not_after is not None and (expires_at is None or expires_at > not_after):
        expires_at = not_after
    # A prefix collision (1 in 36^8 per pair) is retried with a fresh token.
    for _attempt in range(5):
        new = tokens.generate()
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user,
                    operator_name=operator_name or "",
                    prefix=new.prefix,
                    secret_hash=tokens.hash_secret(new.secret),
                    scope=scope,
                    expires_at=expires_at,
                )
                audit_record(
                    actor=actor,
                    action=Action.TOKEN_CREATE,
                    client_id=None,
                    target=new.prefix,
                    changes={
                        "owner": token.owner_label,
                        "scope": scope,
                        "expires_at": expires_at.isoformat() if expires_at else None,
                    },
                )
        except IntegrityError:
            continue
        return CreatedToken(token=token, plaintext=new.plaintext)
    raise RuntimeError("could not pick a free token prefix")


def token_revoke(*, actor: Actor, prefix: str) -> ApiToken:
    """Refuse the token from now on. The operator revokes any token, a user their own.

    Revoking a revoked token changes nothing.
    """
    text = (prefix or "").strip()
    parsed = tokens.parse(text)  # the whole token works too
    wanted = parsed[0] if parsed else text.lower()
    not_found = NotFound(_("No API token %(prefix)s.") % {"prefix": wanted[:20]}, "prefix")
    with transaction.atomic():
        token = (
            ApiToken.objects.select_for_update(of=("self",))  # the user row is optional
            .select_related("user")
            .filter(prefix=wanted)
        ).first()
        if token is None or (
            not actor.is_operator and token.user_id != getattr(actor.user, "pk", None)
        ):
            raise not_found
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_record(
                actor=actor,
                action=Action.TOKEN_REVOKE,
                client_id=None,
                target=token.prefix,
                changes={"owner": token.owner_label},
            )
    return token


@dataclass(frozen=True)
class TokenIdentity:
    """Who a valid token speaks for."""

    actor: Actor
    scope: str
    prefix: str
    expires_at: datetime | None = None


def token_authenticate(*, raw: str, ip: str | None) -> TokenIdentity:
    """The identity of a presented token, or Unauthenticated.

    Expired, revoked and disabled-account are told apart only once the secret matched, so a
    guesser learns nothing about which prefixes exist.
    """
    parsed = tokens.parse(raw)
    invalid = Unauthenticated("token_invalid", _("This API token is not valid."))
    if parsed is None:
        raise invalid
    prefix, secret = parsed
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not tokens.secret_matches(secret, token.secret_hash):
        raise invalid
    now = timezone.now()
    if token.revoked_at is not None:
        raise Unauthenticated("token_revoked", _("This API token has been revoked."))
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthenticated(
            "token_expired",
            _("This API token expired on %(date)s.")
            % {"date": token.expires_at.strftime("%Y-%m-%d %H:%M UTC")},
        )
    if token.user_id is not None and not token.user.is_active:
        raise Unauthenticated("account_disabled", _("The account of this API token is disabled."))
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    if token.user_id is None:
        actor = Actor.operator(token.operator_name, source=Source.API, ip=ip)
    else:
        actor = Actor.for_user(token.user, Source.API, ip)
    return TokenIdentity(
        actor=actor, scope=token.scope, prefix=token.prefix, expires_at=token.expires_at
    )


# --- Idempotency keys --------------------------------------------------------------------------

# How long a key is remembered. Billing systems retry within minutes; a day covers an outage.
IDEMPOTENCY_TTL = timedelta(hours=24)
IDEMPOTENCY_KEY_MAX = 255


class IdempotencyKeyReused(PostdeskError):
    """The same key came with a different request (HTTP 409)."""

    status = 409


@dataclass(frozen=True)
class IdempotentResult:
    status: int
    body: Any
    replayed: bool


def request_fingerprint(method: str, path: str, payload: Any) -> str:
    """The request as a key's owner meant it: formatting and key order of the JSON body do not
    count, its values do."""
    canonical = json.dumps(
        [method.upper(), path, payload],
        sort_keys=True,
        separators=(",", ":"),
        cls=DjangoJSONEncoder,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotent_call(
    *, actor: Actor, key: str | None, fingerprint: str, call: Callable[[], tuple[int, Any]]
) -> IdempotentResult:
    """Run `call` (a service call and the rendering of its answer) at most once per key.

    Without a key, it just runs. With one, the key is claimed in the same transaction as the
    call's writes: a retry after success gets the first answer again; a concurrent retry
    waits for the first to commit (the key's unique index) and then gets its answer; a call
    that failed stored nothing, so its retry runs anew. The same key with another request is
    refused (409).
    """
    if key is None:
        status, body = call()
        return IdempotentResult(status, body, replayed=False)
    key = key.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or not key.isascii() or not key.isprintable():
        raise InvalidInput(
            "idempotency_key_invalid",
            _("An Idempotency-Key has 1 to %(max)d printable ASCII characters.")
            % {"max": IDEMPOTENCY_KEY_MAX},
            "Idempotency-Key",
        )
    with transaction.atomic():
        IdempotencyKey.objects.filter(created_at__lt=timezone.now() - IDEMPOTENCY_TTL).delete()
        try:
            with transaction.atomic():
                claimed = IdempotencyKey.objects.create(
                    owner=actor.label, key=key, fingerprint=fingerprint
                )
        except IntegrityError:
            claimed = None
        if claimed is None:
            first = IdempotencyKey.objects.get(owner=actor.label, key=key)
            if first.fingerprint != fingerprint:
                raise IdempotencyKeyReused(
                    "idempotency_key_reused",
                    _(
                        "This Idempotency-Key was already used for a different request. Use a "
                        "new key for a new request."
                    ),
                    "Idempotency-Key",
                )
            body = json.loads(crypto.decrypt(first.response))
            return IdempotentResult(first.status, body, replayed=True)
        status, body = call()
        claimed.status = status
        claimed.response = crypto.encrypt(json.dumps(body, cls=DjangoJSONEncoder).encode())
        claimed.save(update_fields=["status", "response"])
    return IdempotentResult(status, body, replayed=False)
