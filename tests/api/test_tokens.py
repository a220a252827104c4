"""API tokens: the format, storage of a hash only, scope, expiry, revocation, last use, and
who a token acts as."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from postdesk.api import tokens
from postdesk.api.models import ApiToken, TokenScope
from postdesk.api.services import token_create, token_revoke
from postdesk.audit.models import AuditEvent
from postdesk.errors import InvalidInput, NotFound, PermissionDenied, PostdeskError
from postdesk.mail.models import Mailbox
from tests.api.conftest import make_token
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

NEW_MAILBOX = {"username": "new", "password": GOOD_PASSWORD}


def test_format_and_parsing():
    new = tokens.generate()
    text = new.plaintext
    assert text.startswith(f"pd_{new.prefix}_") and len(new.prefix) == 8
    assert tokens.parse(text) == (new.prefix, new.secret)
    assert tokens.parse(f"  {text}\n") == (new.prefix, new.secret)
    for bad in ["", "pd_", text[:-1], text + "x", "xx" + text[2:], text.replace("pd_", "pd-")]:
        assert tokens.parse(bad) is None, bad
    assert tokens.generate().plaintext != text


def test_only_a_hash_of_the_secret_is_stored(operator, owner):
    created = token_create(actor=operator, user=owner.user, scope=TokenScope.WRITE)
    prefix, secret = tokens.parse(created.plaintext)
    row = ApiToken.objects.get()
    assert row.prefix == prefix
    assert secret not in row.secret_hash and len(row.secret_hash) == 64
    assert tokens.secret_matches(secret, row.secret_hash)
    # The audit event names the token by its prefix and never holds the secret.
    event = AuditEvent.objects.get(action="token.create")
    assert event.target == prefix
    assert secret not in str(event.changes) and created.plaintext not in str(event.changes)


def test_a_token_acts_as_its_user_with_ip_in_the_audit(api, owner_token, domain):
    assert api.post("domains/example.com/mailboxes", owner_token, NEW_MAILBOX).status == 201
    event = AuditEvent.objects.get(action="mailbox.create")
    assert (event.actor_label, event.source, event.ip) == ("owner@example.org", "api", "127.0.0.1")


def test_a_provisioning_token_acts_as_the_operator(api, operator_token, other_domain):
    response = api.post("domains/example.net/mailboxes", operator_token, NEW_MAILBOX)
    assert response.status == 201
    event = AuditEvent.objects.get(action="mailbox.create")
    assert (event.actor_label, event.source) == ("operator:billing", "api")


def test_missing_malformed_and_unknown_tokens_are_401(api, owner_token, domain):
    prefix, _secret = tokens.parse(owner_token)
    wrong_secret = f"pd_{prefix}_{tokens.generate().secret}"
    unknown = tokens.generate().plaintext
    cases = [
        (None, "token_missing"),
        ("not-a-token", "token_invalid"),
        (wrong_secret, "token_invalid"),
        (unknown, "token_invalid"),
    ]
    for token, code in cases:
        response = api.get("domains", token)
        assert (response.status, response.body["code"]) == (401, code), token
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    basic = api.http.get("/api/v1/domains", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


def test_expired_token_is_refused(api, operator, owner, domain):
    token = make_token(operator, owner, expires_days=30)
    row = ApiToken.objects.get()
    assert timedelta(days=29) < row.expires_at - timezone.now() <= timedelta(days=30)
    assert api.get("domains", token).status == 200
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api.get("domains", token, lang="fr")
    assert (response.status, response.body["code"]) == (401, "token_expired")


def test_revoked_token_is_refused(api, operator, owner, owner_token, domain):
    prefix = tokens.parse(owner_token)[0]
    assert api.get("domains", owner_token).status == 200
    token_revoke(actor=operator, prefix=prefix)
    response = api.get("domains", owner_token)
    assert (response.status, response.body["code"]) == (401, "token_revoked")
    # Revoking again changes nothing and records nothing more.
    token_revoke(actor=operator, prefix=prefix.upper())
    assert AuditEvent.objects.filter(action="token.revoke").count() == 1


def test_a_disabled_users_tokens_are_refused(api, owner, owner_token, domain):
    owner.user.is_active = False
    owner.user.save()
    response = api.get("domains", owner_token)
    assert (response.status, response.body["code"]) == (401, "account_disabled")


def test_read_scope_cannot_write(api, owner_read_token, mailbox):
    assert api.get("mailboxes/marie@example.com", owner_read_token).status == 200
    for method, path, body in [
        ("POST", "domains/example.com/mailboxes", NEW_MAILBOX),
        ("PATCH", "mailboxes/marie@example.com", {"quota_mb": 1}),
        ("DELETE", "mailboxes/marie@example.com", None),
    ]:
        response = api.call(method, path, owner_read_token, body=body)
        assert (response.status, response.body["code"]) == (403, "permission_denied"), path
    assert Mailbox.objects.count() == 1
    assert Mailbox.objects.get().quota_mb == 100
    # Asking for a DNS check changes nothing: a read token may.
    assert api.post("domains/example.com/dns/check", owner_read_token).status == 202


def test_last_use_is_recorded_at_most_once_a_minute(api, owner_token, domain):
    assert ApiToken.objects.get().last_used_at is None
    api.get("domains", owner_token)
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    api.get("domains", owner_token)
    assert ApiToken.objects.get().last_used_at == first  # no write for a second call
    ApiToken.objects.update(last_used_at=timezone.now() - timedelta(minutes=2))
    api.get("domains", owner_token)
    assert ApiToken.objects.get().last_used_at > first


def test_who_may_create_and_revoke_tokens(operator, owner, viewer, outsider):
    # A user makes their own tokens only; provisioning tokens are the operator's.
    own = token_create(actor=owner, user=owner.user)
    with pytest.raises(PermissionDenied):
        token_create(actor=owner, user=viewer.user)
    with pytest.raises(PermissionDenied):
        token_create(actor=owner, operator_name="billing")
    # Another user's token looks like no token at all.
    with pytest.raises(NotFound):
        token_revoke(actor=outsider, prefix=own.token.prefix)
    token_revoke(actor=owner, prefix=own.plaintext)  # the whole token works too
    assert ApiToken.objects.get().revoked_at is not None


def test_token_validation(operator, owner):
    with pytest.raises(PostdeskError) as caught:
        token_create(actor=operator, user=owner.user, scope="admin", expires_days=0)
    assert [e.field for e in caught.value.errors] == ["scope", "expires"]
    with pytest.raises(InvalidInput) as caught:
        token_create(actor=operator, operator_name="   ")
    assert caught.value.code == "operator_name_invalid"
    owner.user.is_active = False
    owner.user.save()
    with pytest.raises(InvalidInput) as caught:
        token_create(actor=operator, user=owner.user)
    assert caught.value.code == "user_inactive"
    assert not ApiToken.objects.exists()


def test_removing_a_membership_takes_effect_at_once(api, owner, owner_token, domain):
    assert api.get("domains/example.com", owner_token).status == 200
    owner.user.memberships.all().delete()
    assert api.get("domains/example.com", owner_token).status == 404
    assert api.get("domains", owner_token).body["items"] == []
