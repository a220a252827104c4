"""Calling /api/v1 as a client would: through Django's whole stack (middleware included, so
Accept-Language and the URL configuration are real), with bearer tokens made by the service."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client as HttpClient

from postdesk.api.models import TokenScope
from postdesk.api.services import token_create
from postdesk.mail.services import forward_create, mailbox_create
from postdesk.tenancy.access import Actor
from tests.conftest import GOOD_PASSWORD


@dataclass
class Response:
    status: int
    body: Any
    headers: Any


class Api:
    def __init__(self) -> None:
        self.http = HttpClient()

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        lang: str | None = None,
        raw: str | None = None,
    ) -> Response:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if lang:
            headers["Accept-Language"] = lang
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        kwargs: dict[str, Any] = {"headers": headers}
        if data is not None:
            kwargs.update(data=data, content_type="application/json")
        response = getattr(self.http, method.lower())(
            path if path.startswith("/") else f"/api/v1/{path}", **kwargs
        )
        content = response.content
        parsed = (
            json.loads(content)
            if content and "json" in response.get("Content-Type", "")
            else content
        )
        return Response(response.status_code, parsed, response)

    def get(self, path: str, token: str | None = None, **kw: Any) -> Response:
        return self.call("GET", path, token, **kw)

    def post(self, path: str, token: str | None = None, body: Any = None, **kw: Any) -> Response:
        return self.call("POST", path, token, body=body if body is not None else {}, **kw)

    def patch(self, path: str, token: str | None = None, body: Any = None, **kw: Any) -> Response:
        return self.call("PATCH", path, token, body=body if body is not None else {}, **kw)

    def put(self, path: str, token: str | None = None, body: Any = None, **kw: Any) -> Response:
        return self.call("PUT", path, token, body=body if body is not None else {}, **kw)

    def delete(self, path: str, token: str | None = None, **kw: Any) -> Response:
        return self.call("DELETE", path, token, **kw)


@pytest.fixture
def api(db) -> Api:
    return Api()


def make_token(operator: Actor, who: Actor, scope: str = TokenScope.WRITE, **kw: Any) -> str:
    return token_create(actor=operator, user=who.user, scope=scope, **kw).plaintext


@pytest.fixture
def owner_token(operator, owner) -> str:
    return make_token(operator, owner)


@pytest.fixture
def owner_read_token(operator, owner) -> str:
    return make_token(operator, owner, TokenScope.READ)


@pytest.fixture
def viewer_token(operator, viewer) -> str:
    return make_token(operator, viewer)


@pytest.fixture
def outsider_token(operator, outsider) -> str:
    return make_token(operator, outsider)


@pytest.fixture
def operator_token(operator) -> str:
    return token_create(actor=operator, operator_name="billing", scope=TokenScope.WRITE).plaintext


@pytest.fixture
def mailbox(operator, domain):
    return mailbox_create(
        actor=operator,
        domain=domain,
        username="marie",
        password=GOOD_PASSWORD,
        aliases=["m.dupont"],
        destinations=["marie@elsewhere.example"],
        quota_mb=100,
    )


@pytest.fixture
def forward(operator, domain):
    return forward_create(
        actor=operator, domain=domain, name="info", destinations=["marie@example.com"]
    )


@pytest.fixture(autouse=True)
def _fresh_throttle():
    """The failed-token counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
