"""Template helpers of the client area: formatting only."""

from __future__ import annotations

import hashlib
from urllib.parse import quote, urlencode

from django import template
from django.core.cache import caches
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, gettext_lazy, ngettext

from postdesk.mail.choices import AddressKind, AddressListSort
from postdesk.mail.selectors import NEAR_LIMIT_PERCENT, AddressRow
from postdesk.web.fragments import Fragment, render_fragment

register = template.Library()

# What `reverse` leaves unquoted in a path (RFC 3986's sub-delimiters, "~", ":" and "@").
_PATH_SAFE = "!$&'()*+,;=~:@"


@register.simple_tag(takes_context=True)
def address_edit_url(context, domain, row) -> str:
    """The edit page of a row of the address list. Reversed once a render for each kind,
    then the row's name put in its place (quoted as `reverse` quotes it): a `{% url %}` a
    row was 50 URL resolutions a page, a tenth of the list's rendering."""
    name = "web:mailbox_edit" if row.type == AddressKind.MAILBOX else "web:forward_edit"
    prefixes = context.render_context.setdefault("address_edit_url", {})
    if name not in prefixes:
        placeholder = reverse(name, args=[domain.name, "-"])
        prefixes[name] = placeholder.removesuffix("-/")
    return f"{prefixes[name]}{quote(row.local_part, safe=_PATH_SAFE)}/"


# Between two rows rendered together (web/_address_rows.html): text no row can hold, since
# every value in a row is escaped.
_ROW_SEPARATOR = "<!--/row-->"


@register.simple_tag
def address_rows(domain, rows: list[AddressRow], can_write: bool) -> SafeString:
    """The address list's rows as HTML, each rendered once for what it shows.

    A page is 50 rows of some 30 values each, 8 ms of Django's template engine, most of a
    list's time, and it renders the same rows again at every visit. So each row's HTML is
    kept in the `rows` cache under a digest of everything it is made of: its values, the
    domain, the language, whether the user may change it (its action links). A row that
    changed has another key, so the cache never answers an old row; the rows not found are
    rendered together, in one template render, and kept (Rails' collection caching). The
    cache is each process's own memory (settings.CACHES): a new release starts empty, so
    the template's own changes need no key.
    """
    language = get_language()
    keys = [_row_key(language, domain.name, can_write, row) for row in rows]
    # The same rows in the same order: the page kept whole (`row_pages`), one cache read.
    page_key = "address-row-page:" + hashlib.blake2b("".join(keys).encode()).hexdigest()
    page = caches["row_pages"].get(page_key)
    if page is None:
        page = _rows_html(domain, rows, can_write, keys)
        caches["row_pages"].set(page_key, page)
    return mark_safe(page)  # noqa: S308 - rendered escaped


def _rows_html(domain, rows: list[AddressRow], can_write: bool, keys: list[str]) -> str:
    """The rows' HTML, each row read from the `rows` cache under its key, or rendered."""
    cache = caches["rows"]
    found = cache.get_many(keys)
    missing = [(key, row) for key, row in zip(keys, rows, strict=True) if key not in found]
    if missing:
        html = render_to_string(
            "web/_address_rows.html",
            {
                "domain": domain,
                "rows": [row for _key, row in missing],
                "can_write": can_write,
                "near_limit_percent": NEAR_LIMIT_PERCENT,
                "separator": mark_safe(_ROW_SEPARATOR),  # noqa: S308 - our constant
            },
        )
        rendered = dict(
            zip([key for key, _row in missing], html.split(_ROW_SEPARATOR), strict=False)
        )
        cache.set_many(rendered)
        found.update(rendered)
    return "".join(found[key] for key in keys)


def _row_key(language: str, domain_name: str, can_write: bool, row: AddressRow) -> str:
    made_of = repr((language, domain_name, can_write, row)).encode()
    return "address-row:" + hashlib.blake2b(made_of, digest_size=16).hexdigest()


@register.simple_tag(takes_context=True)
def fragment(context, part: Fragment) -> SafeString:
    """A part of the page rendered once for what it shows (web.fragments)."""
    return render_fragment(context.request, part)


@register.simple_tag(takes_context=True)
def site_header(context) -> SafeString:
    """Every page's header (its links, the user, the log-out and language forms), rendered
    once for what it shows (web.fragments): the user, the domain the audit link opens, the
    page the language switch comes back to, and the language."""
    request = getattr(context, "request", None)
    user = context.get("user")
    authenticated = bool(user is not None and user.is_authenticated)
    domain_name = getattr(context.get("domain"), "name", "") or ""
    next_path = request.get_full_path() if request is not None else ""
    values = {
        "user": user,
        "authenticated": authenticated,
        "domain_name": domain_name,
        "next_path": next_path,
    }
    if request is None:
        # A page rendered without its request (Django's 500 page): nothing to key or to sign.
        return mark_safe(render_to_string("web/_site_header.html", values))  # noqa: S308
    part = Fragment(
        "web/_site_header.html",
        made_of=(authenticated, user.email if authenticated else "", domain_name, next_path),
        context=lambda: values,
    )
    return render_fragment(request, part)


@register.simple_tag
def list_url(domain, page_data, **overrides) -> str:
    """The dashboard URL of the address list with its current parameters, some replaced."""
    params = {
        "q": page_data.search,
        "type": page_data.type,
        "sort": page_data.sort,
        "cursor": "",
        **overrides,
    }
    defaults = {"q": "", "type": "all", "sort": "address", "cursor": ""}
    query = {k: v for k, v in params.items() if str(v) != str(defaults[k])}
    url = reverse("web:dashboard", args=[domain.name])
    return f"{url}?{urlencode(query)}" if query else url


# One unit system everywhere: binary values (1 GB = 1024 MB, 1 MB = 1024 KB) under the
# names the guide uses ("10240 for 10 GB"), as quotas are set (quota_mb) and storage is
# billed (per 1024³ bytes). Not Django's filesizeformat, whose French says "Gio" where the
# English says "GB".
_BINARY_UNITS = (
    (1024**5, gettext_lazy("%s PB")),
    (1024**4, gettext_lazy("%s TB")),
    (1024**3, gettext_lazy("%s GB")),
    (1024**2, gettext_lazy("%s MB")),
    (1024, gettext_lazy("%s KB")),
)


@register.filter
def size(value) -> str:
    """Bytes as a readable size in binary units, one decimal: "6.7 GB" ("6,7 Go")."""
    value = int(value or 0)
    for unit, text in _BINARY_UNITS:
        if abs(value) >= unit:
            return text % formats.number_format(round(value / unit, 1), 1)
    return ngettext("%(size)d byte", "%(size)d bytes", value) % {"size": value}


@register.filter
def megabytes(value) -> str:
    """A quota in MB (what quota_mb holds) as a readable size ("5.0 GB")."""
    return size(int(value or 0) * 1024 * 1024)


@register.filter
def address_breaks(value) -> SafeString:
    """An address (or any long name) escaped, with a line-break opportunity (`<wbr>`) after
    its "@" and before each dot: a narrow screen wraps it there rather than mid-word."""
    text = escape(str(value if value is not None else ""))
    text = text.replace("@", "@<wbr>").replace(".", "<wbr>.")
    return mark_safe(text)  # noqa: S308 - escaped above; only <wbr> added


@register.filter
def minutes(value) -> int:
    """A timedelta in whole minutes, rounded up (a wait is never shorter than said)."""
    seconds = int(value.total_seconds())
    return max(1, -(-seconds // 60))


@register.filter
def signed_size(value) -> str:
    """A change in bytes as a readable size with its sign ("+1.2 MB", "\u2212300 bytes")."""
    value = int(value or 0)
    if value > 0:
        return f"+{size(value)}"
    if value < 0:
        return "\u2212" + size(-value)
    return size(0)


@register.simple_tag
def address_sort_choices() -> list[tuple[str, str]]:
    """The orders the address list offers, for its "Sort by" control."""
    return AddressListSort.choices
