"""Login hardening of the client area: lockout after repeated failures, TOTP two-factor (codes
computed here as an authenticator app does), session expiry, the password change that logs
out the user's other sessions, and the security headers."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import time
from base64 import b32encode
from binascii import hexlify
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.apps import apps as django_apps
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client as Browser
from django.urls import reverse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device
from django_otp.oath import TOTP

from postdesk import crypto
from postdesk.audit.models import AuditEvent
from postdesk.tenancy.models import TotpDevice, User

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


def _code(device: TotpDevice, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows now (or `steps_ahead` 30 s steps later)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def _wait_out_throttling(device: TotpDevice) -> None:
    """After a wrong code the device refuses any code for 1 s (2 s, 4 s... after more): move
    the failure back in time rather than sleep."""
    TotpDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(seconds=10)
    )


def _logged_in(browser: Browser) -> bool:
    # A user with one domain is sent on to its dashboard; anyone else to the login page.
    response = browser.get(reverse("web:domains"))
    return response.status_code == 200 or (
        response.status_code == 302 and not response["Location"].startswith(reverse("web:login"))
    )


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


def test_the_email_login_ignores_case_and_spaces(user):
    browser = Browser()
    answer = browser.post(
        reverse("web:login"), {"username": "  OWNER@Example.ORG ", "password": PASSWORD}
    )
    assert answer.status_code == 302 and _logged_in(browser)


def test_the_lockout_counts_a_login_in_any_case_as_one(user, settings):
    browser = Browser()
    spellings = ["owner@example.org", "OWNER@EXAMPLE.ORG", "Owner@Example.org"]
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        browser.post(
            reverse("web:login"),
            {"username": spellings[n % 3], "password": "wrong"},
            REMOTE_ADDR="192.0.2.10",
        )
    assert _login(browser, "wrong").status_code == 429
    assert _login(browser).status_code == 429  # every spelling is the same locked login


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


def _enrol(browser: Browser) -> TotpDevice:
    url = reverse("web:two_factor")
    assert "Set up two-factor authentication" in _text(browser.get(url))
    browser.post(url, {"action": "start"})
    page = _text(browser.get(url))
    assert "<svg" in page and "<path" in page  # the QR code, drawn by us
    device = TotpDevice.objects.get(user__email="owner@example.org", confirmed=False)
    secret = page.split('id="totp-secret">')[1].split("<")[0].replace(" ", "")
    assert secret and secret in device.config_url
    wrong = browser.post(url, {"action": "confirm", "token": "000000"})
    assert wrong.status_code == 400
    assert "This code is not valid." in _text(wrong).split('id="id_token-errors"')[1][:200]
    _wait_out_throttling(device)
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
    _wait_out_throttling(device)
    # The app's next code (the one used to enrol cannot be replayed).
    done = browser.post(reverse("web:login_code"), {"token": _code(device, steps_ahead=1)})
    assert done.status_code == 302 and done["Location"] == "/domains/example.com/"
    assert _logged_in(browser)


def test_the_code_step_expires_and_cannot_be_reached_without_the_password(user, settings):
    device = TotpDevice.objects.create(user=user, name="app", confirmed=True)
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
    TotpDevice.objects.create(user=user, name="app", confirmed=True)
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
    assert TotpDevice.objects.filter(confirmed=True).exists()
    _wait_out_throttling(device)
    browser.post(url, {"action": "disable", "token": _code(device, steps_ahead=1)})
    assert not TotpDevice.objects.exists()
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


# --- TOTP secrets at rest -----------------------------------------------------------------------


def _secret_forms(secret: bytes) -> list[str]:
    """The ways a secret could be written out in a column: hex and base32, either case."""
    forms = [hexlify(secret).decode(), b32encode(secret).decode().rstrip("=")]
    return forms + [f.lower() for f in forms] + [f.upper() for f in forms]


def _raw_row(pk: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenancy_totpdevice WHERE id = %s", [pk])
        return [str(value) for value in cursor.fetchone()]


def test_the_secret_is_encrypted_in_the_database(user):
    browser = Browser()
    _login(browser)
    device = _enrol(browser)
    secret = device.bin_key
    assert len(secret) == 20
    row = " ".join(_raw_row(device.pk))
    for form in _secret_forms(secret):
        assert form not in row
    # What the column holds is a token that the configured key opens, and nothing else does.
    assert crypto.decrypt(device.encrypted_key) == secret
    assert device.encrypted_key in row


def test_a_device_still_verifies_after_the_encryption_key_is_rotated(user, monkeypatch):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("POSTDESK_ENCRYPTION_KEYS", old)
    device = TotpDevice.objects.create(user=user, name="app", confirmed=True)
    code = _code(device)
    # A new key first (encrypts), the old one kept to decrypt what it wrote.
    monkeypatch.setenv("POSTDESK_ENCRYPTION_KEYS", f"{new},{old}")
    browser = Browser()
    _login(browser)
    assert browser.post(reverse("web:login_code"), {"token": code}).status_code == 302
    assert _logged_in(browser)
    # The old key really is what opens it: without it, the secret is unreadable.
    monkeypatch.setenv("POSTDESK_ENCRYPTION_KEYS", new)
    with pytest.raises(crypto.DecryptionFailed):
        _code(TotpDevice.objects.get(pk=device.pk))
    # A device set up after the rotation is written with the new key.
    fresh = TotpDevice.objects.create(user=user, name="app2", confirmed=False)
    assert len(fresh.bin_key) == 20


def test_a_code_cannot_be_used_twice(user):
    device = TotpDevice.objects.create(user=user, name="app", confirmed=True)
    code = _code(device)
    first = Browser()
    _login(first)
    assert first.post(reverse("web:login_code"), {"token": code}).status_code == 302
    # django-otp records the device in the session by our model's label, and finds it again.
    assert Device.from_persistent_id(first.session[DEVICE_ID_SESSION_KEY]) == device
    # The same code, seen over a shoulder or replayed from a proxy, logs nobody else in.
    second = Browser()
    _login(second, ip="198.51.100.7")
    replay = second.post(reverse("web:login_code"), {"token": code}, REMOTE_ADDR="198.51.100.7")
    assert replay.status_code == 400
    assert "This code is not valid." in _text(replay)
    assert not _logged_in(second)


def test_wrong_codes_slow_down_the_device(user):
    device = TotpDevice.objects.create(user=user, name="app", confirmed=True)
    browser = Browser()
    _login(browser)
    assert browser.post(reverse("web:login_code"), {"token": "000000"}).status_code == 400
    # Right after a wrong code, even the right one waits (django-otp's throttling, 1 s here).
    throttled = browser.post(reverse("web:login_code"), {"token": _code(device)})
    assert throttled.status_code == 400
    assert "Wait 1 second, then enter the newest code" in _text(throttled)
    # Once the delay has passed, the code is accepted.
    _wait_out_throttling(device)
    assert browser.post(reverse("web:login_code"), {"token": _code(device)}).status_code == 302
    assert _logged_in(browser)


def test_the_wait_shown_doubles_with_each_wrong_code_in_a_row(user):
    device = TotpDevice.objects.create(user=user, name="app", confirmed=True)
    browser = Browser()
    _login(browser)
    for _ in range(3):
        _wait_out_throttling(device)
        assert browser.post(reverse("web:login_code"), {"token": "000000"}).status_code == 400
    # Three in a row: 4 s (1, 2, 4), said as such, with nothing rolled back.
    throttled = browser.post(reverse("web:login_code"), {"token": _code(device)})
    assert "Wait 4 seconds, then enter the newest code" in _text(throttled)
    assert TotpDevice.objects.get(pk=device.pk).throttling_failure_count == 3
    assert not _logged_in(browser)


def _migration():
    return importlib.import_module("postdesk.tenancy.migrations.0004_move_totp_devices_encrypted")


def test_the_migration_moves_plain_devices_and_encrypts_them(user):
    from django_otp.plugins.otp_totp.models import TOTPDevice as PlainTOTPDevice

    secret = bytes(range(20))
    plain = PlainTOTPDevice.objects.create(
        user=user, name="Authenticator app", confirmed=True, key=hexlify(secret).decode()
    )
    PlainTOTPDevice.objects.filter(pk=plain.pk).update(created_at=timezone.now() - timedelta(30))
    # The migration's own function, over the project's models (the same tables).
    _migration().encrypt_devices(django_apps, None)

    assert not PlainTOTPDevice.objects.exists()
    device = TotpDevice.objects.get(user=user)
    assert device.bin_key == secret
    assert device.confirmed and device.name == "Authenticator app"
    assert device.created_at < timezone.now() - timedelta(days=29)
    row = " ".join(_raw_row(device.pk))
    for form in _secret_forms(secret):
        assert form not in row
    # The user logs in with the app they already had.
    browser = Browser()
    _login(browser)
    assert browser.post(reverse("web:login_code"), {"token": _code(device)}).status_code == 302

    # Backwards: the plain device comes back with its secret and its last used step.
    _migration().decrypt_devices(django_apps, None)
    assert not TotpDevice.objects.exists()
    back = PlainTOTPDevice.objects.get(user=user)
    assert back.bin_key == secret
    assert back.last_t > 0


def test_support_sees_and_can_delete_a_device_but_never_its_secret(user):
    device = TotpDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    staff = Browser()
    staff.force_login(User.objects.create_superuser("root@example.org", "Unused-passw0rd!"))
    listing = staff.get(reverse("admin:tenancy_totpdevice_changelist"))
    assert listing.status_code == 200
    assert "owner@example.org" in _text(listing)
    detail = _text(staff.get(reverse("admin:tenancy_totpdevice_change", args=[device.pk])))
    for form in [device.encrypted_key, *_secret_forms(device.bin_key)]:
        assert form not in _text(listing) and form not in detail
    assert staff.get(reverse("admin:tenancy_totpdevice_add")).status_code == 403
    # django-otp's own device admin (plain secrets the login ignores) is not offered.
    assert "otp_totp" not in _text(staff.get(reverse("admin:index")))
    staff.post(reverse("admin:tenancy_totpdevice_delete", args=[device.pk]), {"post": "yes"})
    assert not TotpDevice.objects.exists()
    # The user logs in with the password alone again.
    browser = Browser()
    assert _login(browser).status_code == 302 and _logged_in(browser)
