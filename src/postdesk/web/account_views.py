"""Login (password, then a TOTP code for users who turned two-factor on), and the account
pages: two-factor set-up and the panel password.

The login is two steps, and a session is logged in only after both: until the code is given,
the session holds nothing but who passed the password step, and when. Failed passwords and
failed codes both count towards the lockout (django-axes: per username and IP address).
"""

from __future__ import annotations

import time
from base64 import b32encode

import qrcode
import qrcode.image.svg
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_lockout_response
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login

from postdesk.errors import PostdeskError
from postdesk.tenancy.models import TotpDevice
from postdesk.tenancy.selectors import login_user, totp_enabled, totp_pending_device
from postdesk.tenancy.services import (
    account_end_other_sessions,
    account_password_change,
    totp_disable,
    totp_login_check,
    totp_setup_confirm,
    totp_setup_start,
)

from .errors import client_area_view, show_on_form
from .forms import AccountPasswordForm, CodeForm

# The session key of a login waiting for its code: {"user", "backend", "at", "next"}.
PENDING_LOGIN = "postdesk_pending_login"


def _qr_svg(device: TotpDevice) -> str:
    """The device's otpauth:// URL as an SVG QR code, drawn here (no external service)."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return image.to_string(encoding="unicode")


def _secret_text(device: TotpDevice) -> str:
    """The secret in base32, in groups of four, for typing into an app by hand."""
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(settings.LOGIN_REDIRECT_URL)


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    next_url = _next_url(request)
    if request.user.is_authenticated:
        return redirect(next_url)
    form = AuthenticationForm(request, data=request.POST if request.method == "POST" else None)
    # is_valid() authenticates: django-axes counts the failures and refuses a locked pair.
    if request.method == "POST" and form.is_valid():
        user = form.get_user()
        if totp_enabled(user):
            # A fresh session key: the pending state never rides on a key set before login.
            request.session.cycle_key()
            request.session[PENDING_LOGIN] = {
                "user": user.pk,
                "backend": user.backend,
                "at": time.time(),
                "next": next_url,
            }
            return redirect("web:login_code")
        auth_login(request, user)
        return redirect(next_url)
    return render(request, "web/login.html", {"form": form, "next": next_url})


def _pending(request: HttpRequest):
    pending = request.session.get(PENDING_LOGIN)
    if not pending:
        return None, None
    if time.time() - pending["at"] > settings.POSTDESK_LOGIN_TOTP_SECONDS:
        del request.session[PENDING_LOGIN]
        return None, None
    return pending, login_user(pending["user"])


@sensitive_post_parameters("token")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_code(request: HttpRequest) -> HttpResponse:
    pending, user = _pending(request)
    if user is None:
        messages.error(request, _("Your login has expired. Log in again."))
        return redirect("web:login")
    credentials = {"username": user.get_username()}
    if AxesProxyHandler.is_locked(request, credentials):
        return get_lockout_response(request, None, credentials)
    form = CodeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            device = totp_login_check(user=user, token=form.cleaned_data["token"])
        except PostdeskError as error:
            show_on_form(form, error)
            # Wrong codes count towards the same lockout as wrong passwords.
            user_login_failed.send(sender=__name__, credentials=credentials, request=request)
            if getattr(request, "axes_locked_out", False):
                return get_lockout_response(request, None, credentials)
        else:
            del request.session[PENDING_LOGIN]
            auth_login(request, user, backend=pending["backend"])
            otp_login(request, device)
            return redirect(pending["next"])
    status = 400 if form.errors else 200
    return render(request, "web/login_code.html", {"form": form}, status=status)


# --- Account pages ------------------------------------------------------------------------------


@require_http_methods(["GET"])
@client_area_view
def account_home(request: HttpRequest, actor) -> HttpResponse:
    return render(
        request,
        "web/account.html",
        {"totp_enabled": totp_enabled(request.user)},
    )


@sensitive_post_parameters("token")
@never_cache
@require_http_methods(["GET", "POST"])
@client_area_view
def two_factor(request: HttpRequest, actor) -> HttpResponse:
    user = request.user
    form = CodeForm()
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        form = CodeForm(request.POST)
        form.is_valid()
        token = form.cleaned_data.get("token", "")
        try:
            if action == "start":
                totp_setup_start(actor=actor, user=user)
                return redirect("web:two_factor")
            if action == "confirm":
                device = totp_setup_confirm(actor=actor, user=user, token=token)
                # This session stays (and is now verified); the user's others are ended.
                update_session_auth_hash(request, user)
                otp_login(request, device)
                messages.success(
                    request,
                    _(
                        "Two-factor authentication is on: each login will ask for a code. "
                        "Your other sessions have been logged out."
                    ),
                )
                return redirect("web:account")
            if action == "disable":
                totp_disable(actor=actor, user=user, token=token)
                update_session_auth_hash(request, user)
                messages.success(
                    request,
                    _(
                        "Two-factor authentication is off. "
                        "Your other sessions have been logged out."
                    ),
                )
                return redirect("web:account")
        except PostdeskError as error:
            show_on_form(form, error)
            status = 400
    enabled = totp_enabled(user)
    device = None if enabled else totp_pending_device(user)
    context = {
        "form": form,
        "enabled": enabled,
        "device": device,
        "qr_svg": _qr_svg(device) if device else "",
        "secret": _secret_text(device) if device else "",
    }
    return render(request, "web/two_factor.html", context, status=status)


@require_POST
@client_area_view
def sessions_end(request: HttpRequest, actor) -> HttpResponse:
    account_end_other_sessions(actor=actor, user=request.user)
    update_session_auth_hash(request, request.user)
    messages.success(request, _("Your other sessions have been logged out."))
    return redirect("web:account")


@sensitive_post_parameters("old_password", "new_password", "new_password_confirmation")
@never_cache
@require_http_methods(["GET", "POST"])
@client_area_view
def password_change(request: HttpRequest, actor) -> HttpResponse:
    form = AccountPasswordForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            account_password_change(actor=actor, user=request.user, **form.cleaned_data)
        except PostdeskError as error:
            show_on_form(form, error)
        else:
            # This session stays; every other session of the user is no longer valid.
            update_session_auth_hash(request, request.user)
            messages.success(
                request,
                _("Your password has been changed. Your other sessions have been logged out."),
            )
            return redirect("web:account")
    status = 400 if form.errors else 200
    return render(request, "web/password_change.html", {"form": form}, status=status)
