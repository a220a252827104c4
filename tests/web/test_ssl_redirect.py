"""With POSTDESK_SSL_REDIRECT, plain HTTP is sent to HTTPS, except what is asked over loopback
whatever the public scheme: nginx's gate subrequests and monitors' /healthz."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_http_goes_to_https_but_the_gate_and_healthz_answer(settings):
    settings.SECURE_SSL_REDIRECT = True
    browser = Client()
    moved = browser.get("/login/")
    assert moved.status_code == 301 and moved["Location"].startswith("https://")
    assert browser.get("/healthz").status_code == 200
    gate = browser.get("/dataplane/gate/eas")  # no gate key: refused, but not redirected
    assert gate.status_code == 403
