"""Login hardening of the client area: lockout after repeated failures, TOTP two-factor (codes
computed here as an authenticator app does), session expiry, the password change that logs
out the user's other sessions, and the security headers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client as Browser
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from postdesk.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

PASSWORD = "Owner-Passw0rd!x"
TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "postdesk" / "web" / "templates"


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture
def user(owner):
    owner.user.set_password(PASSWORD)
    owner.user.save()
    return owner.user


def _login(browser: Browser, password: str = PASSWORD, ip: str = "192.0.2.10", **extra):
    return browser.post(
        reverse("web:login"),
        {"username": "owner@example.org", "password": password, **extra},
        REMOTE_ADDR=ip,
    )


def _code(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows now (or `steps_ahead` 30 s steps later)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def _logged_in(browser: Browser) -> bool:
    return browser.get(reverse("web:domains")).status_code == 200


# --- Lockout ------------------------------------------------------------------------------------


def test_repeated_failures_lock_out_then_even_the_right_password_is_refused(user, settings):
    browser = Browser()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = _login(browser, "wrong")
        assert response.status_code == 200
        assert "enter a correct" in _text(response).lower()
    locked = _login(browser, "wrong")
    assert locked.status_code == 429
    text = _text(locked)
    assert "Login blocked for now" in text
    assert "blocked for 15 minutes" in text
    again = _login(browser)  # the right password, still refused
    assert again.status_code == 429
    assert not _logged_in(browser)
    # The lockout is for this username from this address: elsewhere, the user still logs in.
    other = Browser()
    assert _login(other, ip="198.51.100.7").status_code == 302
    assert _logged_in(other)


def test_a_successful_login_resets_the_failure_count(user, settings):
    browser = Browser()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(browser, "wrong")
    assert _login(browser).status_code == 302
    browser.post(reverse("web:logout"))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(browser, "wrong").status_code == 200
    assert _login(browser).status_code == 302


# --- TOTP ---------------------------------------------------------------------------------------


def _enrol(browser: Browser) -> TOTPDevice:
    url = reverse("web:two_factor")
    assert "Set up two-factor authentication" in _text(browser.get(url))
    browser.post(url, {"action": "start"})
    page = _text(browser.get(url))
    assert "<svg" in page and "<path" in page  # the QR code, drawn by us
    device = TOTPDevice.objects.get(user__email="owner@example.org", confirmed=False)
    secret = page.split('id="totp-secret">')[1].split("<")[0].replace(" ", "")
    assert secret and secret in device.config_url
    wrong = browser.post(url, {"action": "confirm", "token": "000000"})
    assert wrong.status_code == 400
    assert "This code is not valid." in _text(wrong).split('id="id_token-errors"')[1][:200]
    response = browser.post(url, {"action": "confirm", "token": _code(device)}, follow=True)
    assert "Two-factor authentication is on" in _text(response)
    device.refresh_from_db()
    assert device.confirmed
    return device


def test_enrol_then_every_login_asks_for_the_code(user):
    browser = Browser()
    _login(browser)
    device = _enrol(browser)
    assert AuditEvent.objects.filter(action="account.totp_enable").count() == 1
    browser.post(reverse("web:logout"))

    response = _login(browser, next="/domains/example.com/")
    assert response.status_code == 302 and response["Location"] == reverse("web:login_code")
    # The password alone logs nobody in.
    assert not _logged_in(browser)
    wrong = browser.post(reverse("web:login_code"), {"token": "123456"})
    assert wrong.status_code == 400
    assert "This code is not valid." in _text(wrong)
    assert not _logged_in(browser)
    # The app's next code (the one used to enrol cannot be replayed).
    done = browser.post(reverse("web:login_code"), {"token": _code(device, steps_ahead=1)})
    assert done.status_code == 302 and done["Location"] == "/domains/example.com/"
    assert _logged_in(browser)


def test_the_code_step_expires_and_cannot_be_reached_without_the_password(user, settings):
    device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    browser = Browser()
    response = browser.get(reverse("web:login_code"), follow=True)
    assert "Your login has expired" in _text(response)
    settings.POSTDESK_LOGIN_TOTP_SECONDS = 0
    _login(browser)
    time.sleep(0.01)
    response = browser.post(reverse("web:login_code"), {"token": _code(device)}, follow=True)
    assert "Your login has expired" in _text(response)
    assert not _logged_in(browser)


def test_wrong_codes_count_towards_the_lockout(user, settings):
    TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    browser = Browser()
    _login(browser)
    statuses = [
        browser.post(
            reverse("web:login_code"), {"token": "000000"}, REMOTE_ADDR="192.0.2.10"
        ).status_code
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert statuses[-1] == 429, statuses
    assert _login(browser).status_code == 429


def test_turn_two_factor_off_needs_a_current_code(user):
    browser = Browser()
    _login(browser)
    device = _enrol(browser)
    url = reverse("web:two_factor")
    refused = browser.post(url, {"action": "disable", "token": "000000"})
    assert refused.status_code == 400
    assert TOTPDevice.objects.filter(confirmed=True).exists()
    browser.post(url, {"action": "disable", "token": _code(device, steps_ahead=1)})
    assert not TOTPDevice.objects.exists()
    browser.post(reverse("web:logout"))
    assert _login(browser).status_code == 302
    assert _logged_in(browser)  # no code asked any more


def test_account_pages_need_a_login(client):
    for name in ["account", "two_factor", "password_change"]:
        response = client.get(reverse(f"web:{name}"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("web:login"))
    for name in ["sessions_end"]:
        response = client.post(reverse(f"web:{name}"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("web:login"))


# --- Sessions and the password ------------------------------------------------------------------


def test_sessions_expire_after_the_age_and_at_browser_close(user):
    assert django_settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True
    assert 0 < django_settings.SESSION_COOKIE_AGE <= 24 * 3600
    browser = Browser()
    response = _login(browser)
    cookie = response.cookies[django_settings.SESSION_COOKIE_NAME]
    assert not cookie["expires"] and not cookie["max-age"]  # a browser-session cookie
    assert cookie["httponly"]
    assert browser.session.get_expire_at_browser_close()


def test_password_change_logs_out_the_other_sessions_only(user):
    here, elsewhere = Browser(), Browser()
    _login(here)
    _login(elsewhere, ip="198.51.100.7")
    assert _logged_in(here) and _logged_in(elsewhere)
    url = reverse("web:password_change")
    bad = here.post(
        url,
        {
            "old_password": "wrong",
            "new_password": "short",
            "new_password_confirmation": "other",
        },
    )
    assert bad.status_code == 400
    text = _text(bad)
    assert "Your current password is not correct." in text.split('id="id_old_password-errors"')[1]
    assert "at least 12 characters" in text.split('id="id_new_password-errors"')[1][:400]
    assert "do not match" in text.split('id="id_new_password_confirmation-errors"')[1][:300]
    new = "An0ther-Passw0rd!"
    done = here.post(
        url,
        {"old_password": PASSWORD, "new_password": new, "new_password_confirmation": new},
        follow=True,
    )
    assert "Your other sessions have been logged out." in _text(done)
    assert _logged_in(here)
    assert not _logged_in(elsewhere)
    user.refresh_from_db()
    assert user.check_password(new)
    assert AuditEvent.objects.filter(action="account.password_change").count() == 1


# --- Headers ------------------------------------------------------------------------------------


def test_security_headers(owner_browser, domain):
    for url in [reverse("web:login"), reverse("web:dashboard", args=["example.com"])]:
        response = (Browser() if "login" in url else owner_browser).get(url)
        csp = response["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert directives["object-src"] == "'none'"
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in response  # plain HTTP: never sent
    secure = Browser().get(reverse("web:login"), secure=True)
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")


def test_no_hsts_in_debug():
    # Settings are read once per process: ask a fresh one with DJANGO_DEBUG on.
    code = "from django.conf import settings; print(settings.SECURE_HSTS_SECONDS)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "postdesk.settings"}
    outputs = {}
    for debug in ("1", "0"):
        env["DJANGO_DEBUG"] = debug
        result = subprocess.run(
            [sys.executable, "-c", "import django; django.setup(); " + code],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs[debug] = int(result.stdout.strip())
    assert outputs == {"1": 0, "0": 31536000}


def test_templates_have_no_inline_script_style_or_event_handler():
    # The CSP refuses them, so they would silently break in the browser.
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        source = path.read_text()
        for match in re.finditer(r"<script\b[^>]*>", source):
            if "src=" not in match.group(0) and 'type="application/json"' not in match.group(0):
                offenders.append(f"{path.name}: {match.group(0)}")
        for match in re.finditer(r"<[a-z][^>]*\s(on[a-z]+|style)\s*=", source):
            offenders.append(f"{path.name}: {match.group(0)[:60]}")
        if "javascript:" in source:
            offenders.append(f"{path.name}: javascript: URL")
    assert not offenders, offenders


def test_the_admin_uses_the_same_login(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == reverse("web:login") + "?next=/admin/"


def test_turning_two_factor_on_or_off_logs_out_the_other_sessions_only(user):
    here, elsewhere = Browser(), Browser()
    _login(here)
    _login(elsewhere, ip="198.51.100.7")
    device = _enrol(here)  # a session opened with the password alone must not survive this
    assert _logged_in(here)
    assert not _logged_in(elsewhere)

    _login(elsewhere, ip="198.51.100.7")
    elsewhere.post(reverse("web:login_code"), {"token": _code(device, steps_ahead=1)})
    assert _logged_in(elsewhere)
    done = here.post(
        reverse("web:two_factor"),
        {"action": "disable", "token": _code(device, steps_ahead=2)},
        follow=True,
    )
    assert "Your other sessions have been logged out." in _text(done)
    assert _logged_in(here)
    assert not _logged_in(elsewhere)


def test_log_out_other_sessions_keeps_this_one(user, viewer):
    here, elsewhere, other_user = Browser(), Browser(), Browser()
    _login(here)
    _login(elsewhere, ip="198.51.100.7")
    other_user.force_login(viewer.user)
    assert "Log out other sessions" in _text(here.get(reverse("web:account")))
    assert here.get(reverse("web:sessions_end")).status_code == 405  # a change: POST only
    done = here.post(reverse("web:sessions_end"), follow=True)
    assert "Your other sessions have been logged out." in _text(done)
    assert _logged_in(here)
    assert not _logged_in(elsewhere)
    assert _logged_in(other_user)  # another user's sessions are not touched
    assert AuditEvent.objects.filter(action="account.sessions_end").count() == 1
    # Logging in again works as before.
    _login(elsewhere, ip="198.51.100.7")
    assert _logged_in(elsewhere)


def test_sessions_from_before_the_generation_existed_stay_valid(user):
    """Generation 0 keeps Django's own session hash: deploying this logged nobody out."""
    from django.contrib.auth.base_user import AbstractBaseUser

    assert user.session_generation == 0
    assert user.get_session_auth_hash() == AbstractBaseUser._get_session_auth_hash(user)
