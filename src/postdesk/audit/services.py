"""record(): the one way a change is written to the audit log.

Services call it inside their transaction, so a change and its audit event commit together.
Never pass a secret (password, key, token) in `changes`.
"""

from __future__ import annotations

from typing import Any, Protocol

from django.contrib.auth.models import AbstractBaseUser

from .choices import Action
from .models import AuditEvent


class Actor(Protocol):
    """Who acts, as the log keeps it (tenancy.access.Actor is the one every service takes):
    audit sits below the apps whose changes it records, so it names only what it reads."""

    @property
    def user(self) -> AbstractBaseUser | None: ...

    @property
    def label(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def ip(self) -> str | None: ...


# Keys that must never reach the log, whatever a caller passes.
_SECRET_KEYS = frozenset({"password", "password_hash", "private_key", "token", "secret"})


def audit_record(
    *,
    actor: Actor,
    action: Action,
    client_id: int | None,
    domain_name: str = "",
    target: str = "",
    changes: dict[str, Any] | None = None,
) -> AuditEvent:
    clean = {k: v for k, v in (changes or {}).items() if k not in _SECRET_KEYS}
    return AuditEvent.objects.create(
        actor_user=actor.user,
        actor_label=actor.label,
        source=actor.source,
        ip=actor.ip,
        client_id=client_id,
        domain_name=domain_name,
        action=action,
        target=target,
        changes=clean,
    )
