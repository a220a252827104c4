"""The client area's pages. Each view parses the request, calls one service (a change) or the
selectors its page shows (a read), and renders; errors are shown through web/errors.py."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from postdesk.audit.choices import (
    DATETIME_FIELDS,
    FIELD_LABELS,
    MONEY_FIELDS,
    RECORDS_BEFORE_AFTER,
    SOURCE_LABELS,
    VALUE_LABELS,
    action_label,
)
from postdesk.billing.estimate import price_text
from postdesk.billing.selectors import (
    billing_estimate,
    billing_history,
    billing_protocol_prices,
    billing_statement,
)
from postdesk.dns import services as dns_services
from postdesk.dns.dkim import DkimState
from postdesk.dns.selectors import DnsState, deliverability_report, domain_overview
from postdesk.errors import InvalidInput, NotFound, PermissionDenied, PostdeskError
from postdesk.mail import services as mail_services
from postdesk.mail.choices import AddressKind, AddressListSort, AddressListType, MtaStsMode
from postdesk.mail.models import Domain
from postdesk.mail.passwords import (
    CHECK_LABELS,
    MAX_LENGTH,
    MIN_LENGTH,
    SPECIAL_CHARACTERS,
    generate_password,
)
from postdesk.mail.selectors import (
    NEAR_LIMIT_PERCENT,
    AddressPage,
    MailboxDetail,
    address_detail,
    destinations_missing,
    domain_get,
    domain_list,
    domain_with_address_list,
    forward_get,
    mailbox_changes_pending,
    mailbox_detail,
    mailbox_detail_of,
    mailbox_get,
)
from postdesk.tenancy.access import Actor, may_write, require_client_access
from postdesk.tenancy.selectors import audit_list

from .errors import client_area_view, show_on_form, show_on_messages
from .forms import ForwardForm, MailboxCreateForm, MailboxSettingsForm, PasswordForm
from .fragments import Fragment

ADDRESS_LIST_TARGET = "address-list"
BILLING_CARD_TARGET = "billing-card"
DELIVERABILITY_CARD_TARGET = "deliverability"


def _can_write(actor: Actor, domain: Domain) -> bool:
    # The role was read (and cached on the actor) by the selector that found the domain.
    return may_write(actor, domain.client_id)


def _warn_missing_destinations(
    request: HttpRequest, actor: Actor, domain: Domain, destinations: list[str] | None
) -> None:
    """A destination in the customer's own domains that does not exist yet is saved (they may
    be about to create it), with a warning: mail to it bounces until then."""
    for address in destinations_missing(
        actor=actor, domain=domain, destinations=destinations or []
    ):
        messages.warning(
            request,
            _(
                "%(address)s does not exist in your domains yet: mail forwarded to it will "
                "bounce until you create it."
            )
            % {"address": address},
        )


def _password_context(domain: Domain) -> dict:
    """What the password dialog's live checks mirror from postdesk.mail.passwords."""
    return {
        "password_checks": [(key, label) for key, label in CHECK_LABELS.items()],
        "password_min_length": MIN_LENGTH,
        "password_max_length": MAX_LENGTH,
        "password_special": SPECIAL_CHARACTERS,
        "reuse_delay_minutes": int(settings.POSTDESK_ALIAS_REUSE_DELAY.total_seconds() // 60),
    }


# --- Domains and the dashboard -------------------------------------------------------------------


@require_GET
@client_area_view
def domains(request: HttpRequest, actor: Actor) -> HttpResponse:
    found = list(domain_list(actor=actor))
    if len(found) == 1:
        # One domain: the list would be one link. Land on its dashboard, as the guide says
        # (login sends everyone here first).
        return redirect("web:dashboard", found[0].name)
    return render(request, "web/domains.html", {"domains": found})


@require_GET
@client_area_view
def ping(request: HttpRequest, actor: Actor) -> HttpResponse:
    """Answers "ok" to a logged-in user, reading nothing else: whether a session is alive, and the
    floor `bench/floor.py` measures the pages against (the same middleware, session and user
    lookup, no work of its own)."""
    return HttpResponse("ok", content_type="text/plain; charset=utf-8")


def _dns_cards_context(domain: Domain, can_write: bool, dns: DnsState, now: datetime) -> dict:
    stored = dns.report(now)
    # Before the first check there is no report to read the DKIM record from.
    records = dns.dkim_records() if stored.report is None else []
    return {
        "domain": domain,
        "can_write": can_write,
        "spf": stored.report.spf if stored.report else None,
        "spf_mechanism": stored.spf_mechanism,
        "spf_new_record": stored.spf_new_record,
        "dmarc_suggested": stored.dmarc_record,
        "dmarc_suggested_host": stored.dmarc_host,
        "mx_suggested": stored.mx_records,
        "dkim": _dkim_card(stored.report, records),
        "dmarc": stored.report.dmarc if stored.report else None,
        "mx": stored.report.mx if stored.report else None,
        "mta_sts": stored.report.mta_sts if stored.report else None,
        "mta_sts_suggested": stored.mta_sts_records,
        "mta_sts_modes": MtaStsMode.choices,
        "tls_rpt": stored.report.tls_rpt if stored.report else None,
        "tls_rpt_suggested": stored.tls_rpt_records,
    }


@dataclass(frozen=True)
class DkimCard:
    state: str  # a DkimState, or "unchecked" before the first DNS check
    host: str
    value: str
    message: str
    warning: str = ""


def _dkim_card(report, records) -> DkimCard:
    if report is not None:
        dkim = report.dkim
        return DkimCard(dkim.state, dkim.host, dkim.value, dkim.message, dkim.warning)
    signing = [r for r in records if r.status == "signing"]
    if not signing:
        return DkimCard(DkimState.DISABLED, "", "", "")
    return DkimCard("unchecked", signing[0].host, signing[0].value, "")


@dataclass(frozen=True)
class BillingLine:
    item: str
    quantity: object  # Decimal
    unit_price: object  # Decimal
    amount: object  # Decimal
    accrued: object
    projected: object

    @property
    def count(self) -> int:
        """A protocol line's quantity: whole mailboxes."""
        return int(self.quantity)


@dataclass(frozen=True)
class BillingView:
    """An estimate as the pages show it: its lines by name, and what the combined rate saves
    (the guide promises that discount is visible; the estimate says how much)."""

    estimate: object  # billing.estimate.Estimate
    storage: BillingLine
    eas: BillingLine
    mapi: BillingLine
    eas_mapi: BillingLine
    combined_saving: object  # Decimal, for all the mailboxes billed the combined rate
    combined_saving_each: object  # Decimal, per mailbox

    @classmethod
    def of(cls, estimate) -> BillingView:
        lines = {
            line.item: BillingLine(
                line.item,
                line.quantity,
                price_text(line.unit_price, estimate.currency),
                line.amount,
                line.accrued,
                line.projected,
            )
            for line in estimate.lines
        }
        # The saving is a money rule: estimate.py computes it, for the API and CLI too.
        saving = estimate.combined_saving
        return cls(
            estimate,
            lines["storage"],
            lines["eas"],
            lines["mapi"],
            lines["eas_mapi"],
            saving.total,
            price_text(saving.each, estimate.currency),
        )


@dataclass(frozen=True)
class ChargedLine:
    """A protocol line of the billing page and the mailboxes it charges for."""

    item: str
    title: str
    mailboxes: object  # billing.estimate.ChargedMailboxes


def _charged_lines() -> list[tuple[str, str]]:
    # The line items' names, as the table of line items says them.
    return [
        ("eas", _("ActiveSync (EAS)")),
        ("mapi", _("MAPI/Exchange")),
        ("eas_mapi", _("EAS + MAPI (combined rate)")),
    ]


def _list_params(query) -> dict:
    """The address list's parameters from the URL; anything unknown falls back to the default."""
    type_ = query.get("type", AddressListType.ALL)
    sort = query.get("sort", AddressListSort.ADDRESS)
    try:
        page = max(1, int(query.get("page", 1)))
    except (TypeError, ValueError):
        page = 1
    return {
        "search": query.get("q", "")[:254],
        "type": type_ if type_ in AddressListType.values else AddressListType.ALL,
        "sort": sort if sort in AddressListSort.values else AddressListSort.ADDRESS,
        "page": page,
        # The Previous and Next links' cursors; a page number is a link made before them.
        "cursor": query.get("cursor", "")[:1000] or None,
    }


def _address_table(
    domain: Domain, addresses: AddressPage, can_write: bool, list_alone: bool
) -> Fragment:
    """The address list's count, sort control and table (its rows, web.address_rows),
    rendered once for what they show: the page links' cursors, signed at each request,
    stay outside."""
    return Fragment(
        "web/_address_table.html",
        made_of=(
            list_alone,
            can_write,
            domain.name,
            addresses.search,
            addresses.type,
            addresses.sort,
            addresses.total,
            tuple(addresses.rows),
        ),
        context=lambda: {
            "domain": domain,
            "addresses": addresses,
            "can_write": can_write,
            "full_page": not list_alone,
            "near_limit_percent": NEAR_LIMIT_PERCENT,
        },
    )


@require_GET
@client_area_view
def dashboard(request: HttpRequest, actor: Actor, domain: str) -> HttpResponse:
    found, addresses = domain_with_address_list(
        actor=actor, name=domain, **_list_params(request.GET)
    )
    context = {
        "domain": found,
        "can_write": _can_write(actor, found),
        "addresses": addresses,
        "type_choices": AddressListType.choices,
        "near_limit_percent": NEAR_LIMIT_PERCENT,
    }
    htmx = getattr(request, "htmx", None)
    list_alone = bool(
        htmx and htmx.target == ADDRESS_LIST_TARGET and not htmx.history_restore_request
    )
    context["address_table"] = _address_table(found, addresses, context["can_write"], list_alone)
    if list_alone:
        response = render(request, "web/_address_list.html", context)
    else:
        can_write = context["can_write"]
        overview = domain_overview(actor=actor, domain=found)
        dns = overview.dns
        now = timezone.now()
        context.update(
            summary=overview.summary,
            # The parts that change a few times a day, rendered once for what they show
            # (web.fragments): the figures without their measure's age, the DNS cards for
            # the check and keys they are made of, the groupware card for the domain's
            # setting. The context of each is built only when it must be rendered.
            usage_stats=Fragment(
                "web/_usage_stats.html",
                made_of=(replace(overview.summary, used_measured_at=None),),
                context=lambda: {"summary": overview.summary},
            ),
            dns_cards=Fragment(
                "web/_dns_cards.html",
                made_of=(can_write, found.name, found.mta_sts_mode, dns.report_inputs(now)),
                context=lambda: _dns_cards_context(found, can_write, dns, now),
            ),
            groupware_card=Fragment(
                "web/_groupware_card.html",
                made_of=(can_write, found.name, found.dav_enabled),
                context=lambda: {"domain": found, "can_write": can_write},
            ),
            address_filters=Fragment(
                "web/_address_filters.html",
                made_of=(
                    can_write,
                    found.name,
                    addresses.search,
                    addresses.type,
                    addresses.sort,
                    addresses.total,
                ),
                context=lambda: {
                    "domain": found,
                    "can_write": can_write,
                    "addresses": addresses,
                    "type_choices": AddressListType.choices,
                },
            ),
            checked_at=dns.checked_at,
            # The estimate itself loads in its own request (the billing view): it is the
            # page's most expensive read, and a dashboard must show at once.
            has_plan=overview.has_plan,
        )
        response = render(request, "web/dashboard.html", context)
    # The same URL answers a full page or the list alone: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@require_GET
@client_area_view
def billing(request: HttpRequest, actor: Actor, domain: str) -> HttpResponse:
    """The estimate of the current period and the closed ones; the dashboard's billing card
    when htmx asks for that card alone."""
    found = domain_get(actor=actor, name=domain)
    htmx = getattr(request, "htmx", None)
    card = bool(htmx and htmx.target == BILLING_CARD_TARGET)
    charged = None
    try:
        if card:
            estimate = billing_estimate(actor=actor, domain=found)
        else:
            # The page also names the mailboxes each protocol line charges for.
            statement = billing_statement(actor=actor, domain=found)
            estimate, charged = statement.estimate, statement.charged
    except InvalidInput as error:
        if error.code != "no_plan":
            raise
        estimate = None
    context = {"domain": found, "estimate": estimate and BillingView.of(estimate)}
    if card:
        # No plan: the card goes away rather than show nothing useful.
        response = render(request, "web/_billing_card.html", context)
    else:
        context["charged"] = charged and [
            ChargedLine(item, title, charged[item]) for item, title in _charged_lines()
        ]
        context["history"] = [
            BillingView.of(past) for past in billing_history(actor=actor, domain=found)
        ]
        response = render(request, "web/billing.html", context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@require_POST
@client_area_view
def dns_check(request: HttpRequest, actor: Actor, domain: str) -> HttpResponse:
    found = domain_get(actor=actor, name=domain)
    dns_services.dns_request_check(actor=actor, domain=found)
    messages.success(
        request,
        _("A DNS check has been requested. Reload this page in a minute to see its result."),
    )
    return redirect(reverse("web:dashboard", args=[found.name]) + "#dns")


@require_GET
@client_area_view
def deliverability(request: HttpRequest, actor: Actor, domain: str) -> HttpResponse:
    """The last deliverability self-test: the dashboard's card when htmx asks for it (it asks
    again every few seconds while a test runs), or a page of its own."""
    found = domain_get(actor=actor, name=domain)
    context = {
        "domain": found,
        "can_write": _can_write(actor, found),
        "selftest": deliverability_report(actor=actor, domain=found),
        "selftest_available": bool(settings.POSTDESK_PROBE_ADDRESS),
    }
    htmx = getattr(request, "htmx", None)
    card = bool(htmx and htmx.target == DELIVERABILITY_CARD_TARGET)
    response = render(
        request, "web/_deliverability_card.html" if card else "web/deliverability.html", context
    )
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@require_POST
@client_area_view
def deliverability_test(request: HttpRequest, actor: Actor, domain: str) -> HttpResponse:
    found = domain_get(actor=actor, name=domain)
    try:
        dns_services.deliverability_test_request(actor=actor, domain=found)
    except InvalidInput as error:
        show_on_messages(request, error)
    else:
        messages.success(
            request,
            _("A test message is on its way. Its result shows below in a minute or less."),
        )
    return redirect(reverse("web:dashboard", args=[found.name]) + "#deliverability")


@require_POST
@client_area_view
def dkim_enable(request: HttpRequest, actor: Actor, domain: str) -> HttpResponse:
    found = domain_get(actor=actor, name=domain)
    dns_services.dkim_enable(actor=actor, domain=found)
    messages.success(
        request,
        _(
            "DKIM is enabled. Click “View DNS record” and publish that TXT record at your "
            "registrar."
        ),
    )
    return redirect(reverse("web:dashboard", args=[found.name]) + "#dkim")


@require_POST
@client_area_view
def dkim_disable(request: HttpRequest, actor: Actor, domain: str) -> HttpResponse:
    found = domain_get(actor=actor, name=domain)
    try:
        dns_services.dkim_disable(
            actor=actor, domain=found, confirmed=request.POST.get("confirm") == "yes"
        )
    except PostdeskError as error:
        show_on_messages(request, error)
    else:
        messages.success(request, _("DKIM is disabled: your messages are no longer signed."))
    return redirect(reverse("web:dashboard", args=[found.name]) + "#dkim")


@require_POST
@client_area_view
def mta_sts_mode(request: HttpRequest, actor: Actor, domain: str) -> HttpResponse:
    found = domain_get(actor=actor, name=domain)
    try:
        dns_services.mta_sts_mode_set(actor=actor, domain=found, mode=request.POST.get("mode", ""))
    except InvalidInput as error:
        show_on_messages(request, error)
    else:
        messages.success(
            request,
            _(
                "The MTA-STS mode is now “%(mode)s”. Publish the new _mta-sts record under "
                "“View records” so that senders apply it."
            )
            % {"mode": found.get_mta_sts_mode_display()},
        )
    return redirect(reverse("web:dashboard", args=[found.name]) + "#mta-sts")


@require_POST
@client_area_view
def domain_dav(request: HttpRequest, actor: Actor, domain: str) -> HttpResponse:
    found = domain_get(actor=actor, name=domain)
    enabled = request.POST.get("dav") == "on"
    mail_services.domain_dav_set(actor=actor, domain=found, enabled=enabled)
    if enabled:
        done = _("Calendar and contact apps can now connect to the mailboxes of this domain.")
    else:
        done = _(
            "Calendar and contact apps can no longer connect to the mailboxes of this domain. "
            "Webmail and ActiveSync are not affected."
        )
    messages.success(request, done)
    return redirect(reverse("web:dashboard", args=[found.name]) + "#groupware")


@require_GET
@never_cache
@client_area_view
def password_generate(request: HttpRequest, actor: Actor, domain: str) -> HttpResponse:
    """A password that passes every check for this mailbox (postdesk.mail.passwords)."""
    found = domain_get(actor=actor, name=domain)
    username = request.GET.get("username", "")[:64].strip().lower()
    return JsonResponse({"password": generate_password(username=username, domain=found.name)})


# Tags typed in a form: a few hundred characters each, at most a few dozen of them.
_TAG_MAX_LENGTH = 320
_TAGS_MAX = 100


@require_GET
@never_cache
@client_area_view
def tag_check(request: HttpRequest, actor: Actor, domain: str) -> HttpResponse:
    """An alias or destination tag of the mailbox and forward forms, checked as it is added by
    the rules of the save (mail.services): {"ok": true, "value": what will be saved} or
    {"ok": false, "message": the error the save would give}. Another client's domain or
    mailbox is not found, as on every page."""
    found = domain_get(actor=actor, name=domain)
    query = request.GET
    value = query.get("value", "")[:_TAG_MAX_LENGTH]
    listed = [v[:_TAG_MAX_LENGTH] for v in query.getlist("listed")[:_TAGS_MAX]]
    own = [v[:_TAG_MAX_LENGTH] for v in query.getlist("own")[:_TAGS_MAX]]
    kind = query.get("list")
    try:
        if kind == "aliases":
            editing = query.get("mailbox", "")[:64]
            clean = mail_services.alias_name_clean(
                actor=actor,
                domain=found,
                name=value,
                listed=listed,
                mailbox_name=own[0] if own else "",
                mailbox=mailbox_get(actor=actor, address=f"{editing}@{found.name}")
                if editing
                else None,
            )
        elif kind == "destinations":
            clean = mail_services.destination_clean(
                actor=actor, domain=found, value=value, listed=listed, own=own
            )
        else:
            return JsonResponse({"ok": False, "message": ""}, status=400)
    except (NotFound, PermissionDenied):
        raise
    except PostdeskError as error:
        return JsonResponse({"ok": False, "message": str(error.errors[0].message)})
    return JsonResponse({"ok": True, "value": clean})


# --- Mailboxes -----------------------------------------------------------------------------------


# The dialogs a link from the address list's row actions opens on arrival (?open=...).
_ROW_DIALOGS = {"password", "delete"}


def _dialog_to_open(request: HttpRequest, can_write: bool) -> str:
    """The dialog the address list's row action asked for, if the user may use it."""
    wanted = request.GET.get("open", "")
    return wanted if can_write and request.method == "GET" and wanted in _ROW_DIALOGS else ""


def _mailbox_page(
    request,
    actor,
    domain,
    form,
    *,
    row=None,
    mailbox=None,
    can_write=True,
    password_form=None,
    status=200,
):
    # A refused new mailbox keeps the password set in its dialog (the create form's own
    # fields): rendered back into the page, never kept on the server.
    kept_password = not row and bool(
        form.data.get("password") or form.data.get("password_confirmation")
    )
    context = {
        "domain": domain,
        "form": form,
        "row": row,
        "used_measured_at": mailbox.used_measured_at if mailbox else None,
        # A password change whose disconnection the mail servers have not applied yet.
        "changes_pending": mailbox is not None and mailbox_changes_pending(mailbox),
        "can_write": can_write,
        "read_only": not can_write,
        "existing_aliases": [a.split("@", 1)[0] for a in row.aliases] if row else [],
        "password_form": password_form or PasswordForm(),
        "password_dialog_open": (password_form is not None and bool(password_form.errors))
        or (row is not None and _dialog_to_open(request, can_write) == "password"),
        "delete_dialog_open": row is not None and _dialog_to_open(request, can_write) == "delete",
        "keep_password": kept_password,
        # What the EAS and MAPI switches cost, shown before they are turned on (no plan: None).
        "protocol_prices": billing_protocol_prices(actor=actor, domain=domain),
        **_password_context(domain),
    }
    response = render(request, "web/mailbox_form.html", context, status=status)
    if kept_password:
        # The page holds a password: no cache, shared or the browser's, may store it.
        add_never_cache_headers(response)
    return response


@sensitive_post_parameters("password", "password_confirmation")
@require_http_methods(["GET", "POST"])
@client_area_view
def mailbox_create(request: HttpRequest, actor: Actor, domain: str) -> HttpResponse:
    found = domain_get(actor=actor, name=domain)
    require_client_access(actor, found.client_id, write=True)
    if request.method == "GET":
        return _mailbox_page(request, actor, found, MailboxCreateForm(initial={"quota_mb": 0}))
    form = MailboxCreateForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            mailbox = mail_services.mailbox_create(
                actor=actor,
                domain=found,
                username=data["username"],
                password=data["password"],
                password_confirmation=data["password_confirmation"],
                **form.settings(),
            )
        except PostdeskError as error:
            show_on_form(form, error)
        else:
            messages.success(
                request, _("Mailbox %(address)s created.") % {"address": mailbox.address.email}
            )
            _warn_missing_destinations(request, actor, found, form.settings()["destinations"])
            return redirect("web:dashboard", found.name)
    return _mailbox_page(request, actor, found, form, status=400)


def _mailbox_initial(detail: MailboxDetail) -> dict:
    """The settings form's initial values: the mailbox's row, as the address list shows it."""
    row = detail.row
    return {
        "aliases": [a.split("@", 1)[0] for a in row.aliases],
        "destinations": row.destinations,
        "delete_after_forwarding": row.delete_after_forwarding,
        "keep_original_sender": row.keep_original_sender,
        "quota_mb": row.quota_mb,
        "eas_enabled": row.eas_enabled,
        "mapi_enabled": row.mapi_enabled,
    }


def _note_reserved_aliases(request: HttpRequest, row, kept: list[str]) -> None:
    """Tell, after a save, which removed aliases now stay reserved (mail.services._release)."""
    kept_names = {name.strip().lower() for name in kept}
    removed = [a for a in row.aliases if a.split("@", 1)[0].lower() not in kept_names]
    if not removed:
        return
    minutes = int(settings.POSTDESK_ALIAS_REUSE_DELAY.total_seconds() // 60)
    # Two numbers, two plurals: the delay is worded on its own, then put in the sentence.
    delay = ngettext("%(minutes)s minute", "%(minutes)s minutes", minutes) % {"minutes": minutes}
    messages.info(
        request,
        ngettext(
            "%(aliases)s stays reserved for %(delay)s: no address can use it until then.",
            "%(aliases)s stay reserved for %(delay)s: no address can use them until then.",
            len(removed),
        )
        % {"aliases": ", ".join(removed), "delay": delay},
    )


def _mailbox_edit_page(
    request: HttpRequest,
    actor: Actor,
    detail: MailboxDetail,
    *,
    form: MailboxSettingsForm | None = None,
    password_form: PasswordForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The mailbox's edit page: as stored, or again after a refused change with the refused
    form (settings as typed, or the password dialog open on its errors)."""
    return _mailbox_page(
        request,
        actor,
        detail.domain,
        form if form is not None else MailboxSettingsForm(initial=_mailbox_initial(detail)),
        row=detail.row,
        mailbox=detail.mailbox,
        can_write=_can_write(actor, detail.domain),
        password_form=password_form,
        status=status,
    )


@require_http_methods(["GET", "POST"])
@client_area_view
def mailbox_edit(request: HttpRequest, actor: Actor, domain: str, local_part: str) -> HttpResponse:
    detail = mailbox_detail(actor=actor, address=f"{local_part}@{domain}")
    if request.method == "GET":
        return _mailbox_edit_page(request, actor, detail)
    form = MailboxSettingsForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            mail_services.mailbox_update(
                actor=actor,
                mailbox=detail.mailbox,
                **form.settings(),
            )
        except PostdeskError as error:
            show_on_form(form, error)
        else:
            messages.success(request, _("Changes saved."))
            _note_reserved_aliases(request, detail.row, data["aliases"])
            _warn_missing_destinations(
                request, actor, detail.domain, form.settings().get("destinations")
            )
            return redirect("web:mailbox_edit", detail.domain.name, detail.row.local_part)
    return _mailbox_edit_page(request, actor, detail, form=form, status=400)


@sensitive_post_parameters("password", "password_confirmation")
@require_POST
@client_area_view
def mailbox_password(
    request: HttpRequest, actor: Actor, domain: str, local_part: str
) -> HttpResponse:
    email = f"{local_part}@{domain}"
    mailbox = mailbox_get(actor=actor, address=email)
    password_form = PasswordForm(request.POST)
    if password_form.is_valid():
        try:
            mail_services.mailbox_set_password(
                actor=actor,
                mailbox=mailbox,
                password=password_form.cleaned_data["password"],
                password_confirmation=password_form.cleaned_data["password_confirmation"],
            )
        except PostdeskError as error:
            show_on_form(password_form, error)
        else:
            messages.success(
                request,
                _(
                    "The password of %(address)s has been changed. Its sessions are being "
                    "disconnected."
                )
                % {"address": email},
            )
            return redirect("web:mailbox_edit", domain, local_part)
    # The password was refused: the edit page again, its dialog open on the errors. The
    # mailbox in hand is rendered as is (a success needs no row: its aliases are read here).
    detail = mailbox_detail_of(actor=actor, mailbox=mailbox)
    return _mailbox_edit_page(request, actor, detail, password_form=password_form, status=400)


@require_POST
@client_area_view
def mailbox_delete(
    request: HttpRequest, actor: Actor, domain: str, local_part: str
) -> HttpResponse:
    email = f"{local_part}@{domain}"
    mailbox = mailbox_get(actor=actor, address=email)
    mail_services.mailbox_delete(actor=actor, mailbox=mailbox)
    messages.success(request, _("Mailbox %(address)s deleted.") % {"address": email})
    return redirect("web:dashboard", mailbox.address.domain.name)


# --- Forwards ------------------------------------------------------------------------------------


def _forward_page(request, domain, form, *, row=None, can_write=True, status=200):
    context = {
        "domain": domain,
        "form": form,
        "row": row,
        "can_write": can_write,
        "read_only": not can_write,
        "delete_dialog_open": row is not None and _dialog_to_open(request, can_write) == "delete",
    }
    return render(request, "web/forward_form.html", context, status=status)


@require_http_methods(["GET", "POST"])
@client_area_view
def forward_create(request: HttpRequest, actor: Actor, domain: str) -> HttpResponse:
    found = domain_get(actor=actor, name=domain)
    require_client_access(actor, found.client_id, write=True)
    if request.method == "GET":
        return _forward_page(request, found, ForwardForm())
    form = ForwardForm(request.POST)
    if form.is_valid():
        try:
            forward = mail_services.forward_create(
                actor=actor,
                domain=found,
                name=form.cleaned_data["name"],
                destinations=form.cleaned_data["destinations"],
            )
        except PostdeskError as error:
            show_on_form(form, error)
        else:
            messages.success(
                request, _("Forward %(address)s created.") % {"address": forward.address.email}
            )
            _warn_missing_destinations(request, actor, found, form.cleaned_data["destinations"])
            return redirect("web:dashboard", found.name)
    return _forward_page(request, found, form, status=400)


@require_http_methods(["GET", "POST"])
@client_area_view
def forward_edit(request: HttpRequest, actor: Actor, domain: str, local_part: str) -> HttpResponse:
    email = f"{local_part}@{domain}"
    row = address_detail(actor=actor, address=email, type=AddressKind.FORWARD)
    found = domain_get(actor=actor, name=domain)
    can_write = _can_write(actor, found)
    if request.method == "GET":
        form = ForwardForm(initial={"destinations": row.destinations})
        return _forward_page(request, found, form, row=row, can_write=can_write)
    form = ForwardForm(request.POST)
    if form.is_valid():
        try:
            mail_services.forward_update(
                actor=actor,
                forward=forward_get(actor=actor, address=email),
                destinations=form.cleaned_data["destinations"],
            )
        except PostdeskError as error:
            show_on_form(form, error)
        else:
            messages.success(request, _("Changes saved."))
            _warn_missing_destinations(request, actor, found, form.cleaned_data["destinations"])
            return redirect("web:forward_edit", found.name, row.local_part)
    return _forward_page(request, found, form, row=row, can_write=can_write, status=400)


@require_POST
@client_area_view
def forward_delete(
    request: HttpRequest, actor: Actor, domain: str, local_part: str
) -> HttpResponse:
    email = f"{local_part}@{domain}"
    forward = forward_get(actor=actor, address=email)
    mail_services.forward_delete(actor=actor, forward=forward)
    messages.success(request, _("Forward %(address)s deleted.") % {"address": email})
    return redirect("web:dashboard", forward.address.domain.name)


# --- Audit log -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditValue:
    text: str
    moment: str = ""  # ISO 8601 when the value is a date and time, for <time datetime>

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class AuditChange:
    field: str
    before: AuditValue | None  # None when the event records a value, not a change
    after: AuditValue
    is_change: bool


@dataclass(frozen=True)
class AuditRow:
    at: object
    who: str
    source: str
    ip: str
    action: str
    target: str
    domain: str
    changes: list[AuditChange]


def _audit_moment(value) -> AuditValue | None:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    # The page's times are in the reader's format and the site's zone, like its "When" column.
    local = timezone.localtime(moment)
    return AuditValue(formats.date_format(local, "SHORT_DATETIME_FORMAT"), local.isoformat())


def _audit_value(key: str, value) -> AuditValue:
    """A recorded value in the reader's words and formats: never a key or an ISO string."""
    if isinstance(value, bool):
        return AuditValue(_("on") if value else _("off"))
    if isinstance(value, list):
        return AuditValue(", ".join(_audit_value(key, v).text for v in value) or "—")
    if value in (None, ""):
        return AuditValue("—")
    if key in DATETIME_FIELDS and (moment := _audit_moment(value)) is not None:
        return moment
    if key in MONEY_FIELDS:
        try:
            return AuditValue(formats.number_format(Decimal(str(value)), decimal_pos=2))
        except InvalidOperation:
            pass
    if isinstance(value, int | float | Decimal):
        return AuditValue(formats.number_format(value))
    label = VALUE_LABELS.get(key, {}).get(value) if isinstance(value, str) else None
    return AuditValue(str(label if label is not None else value))


def _audit_row(event) -> AuditRow:
    changes = []
    before_after = event.action in RECORDS_BEFORE_AFTER
    for key, value in (event.changes or {}).items():
        label = str(FIELD_LABELS.get(key, key))
        if before_after and isinstance(value, list) and len(value) == 2:
            before, after = _audit_value(key, value[0]), _audit_value(key, value[1])
            changes.append(AuditChange(label, before, after, True))
        else:
            changes.append(AuditChange(label, None, _audit_value(key, value), False))
    return AuditRow(
        at=event.at,
        who=event.actor_label if not event.actor_label.startswith("operator:") else _("Provider"),
        source=str(SOURCE_LABELS.get(event.source, event.source)),
        ip=event.ip or "",
        action=action_label(event.action),
        target=event.target,
        domain=event.domain_name,
        changes=changes,
    )


@require_GET
@client_area_view
def audit(request: HttpRequest, actor: Actor) -> HttpResponse:
    """What changed in the user's accounts, by whom, from where and when; by domain."""
    name = request.GET.get("domain", "")[:253].strip()
    domain = domain_get(actor=actor, name=name) if name else None
    try:
        page = max(1, int(request.GET.get("page", 1)))
    except (TypeError, ValueError):
        page = 1
    events = audit_list(actor=actor, domain=domain, page=page)
    context = {
        "events": events,
        "rows": [_audit_row(event) for event in events.rows],
        "domain": domain,
        "domains": list(domain_list(actor=actor)),
    }
    return render(request, "web/audit.html", context)
