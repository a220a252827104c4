"""Reads of the API area: token owners and token lists."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from postdesk.errors import NotFound, PermissionDenied
from postdesk.tenancy.access import Actor
from postdesk.tenancy.models import User

from .models import ApiToken


def token_owner_get(*, actor: Actor, email: str) -> User:
    """The user a personal token is for: the operator names anyone, a user only themself."""
    wanted = (email or "").strip()
    user = User.objects.filter(email__iexact=wanted).first()
    if user is None or (not actor.is_operator and actor.user != user):
        raise NotFound(_("No user %(address)s.") % {"address": wanted}, "email")
    return user


def token_list(*, actor: Actor) -> QuerySet[ApiToken]:
    """The operator sees every token; a user, their own. One query."""
    tokens = ApiToken.objects.select_related("user").order_by("-created_at", "prefix")
    if actor.is_operator:
        return tokens
    if actor.user is None:
        raise PermissionDenied(_("Sign in to see your API tokens."))
    return tokens.filter(user=actor.user)
