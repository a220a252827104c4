"""Template helpers of the client area: formatting only."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from postdesk.mail.choices import AddressListSort

register = template.Library()


@register.simple_tag
def list_url(domain, page_data, **overrides) -> str:
    """The dashboard URL of the address list with its current parameters, some replaced."""
    params = {
        "q": page_data.search,
        "type": page_data.type,
        "sort": page_data.sort,
        "page": page_data.page,
        **overrides,
    }
    defaults = {"q": "", "type": "all", "sort": "address", "page": 1}
    query = {k: v for k, v in params.items() if str(v) != str(defaults[k])}
    url = reverse("web:dashboard", args=[domain.name])
    return f"{url}?{urlencode(query)}" if query else url


@register.filter
def megabytes(value) -> str:
    """A quota in MB as a readable size ("5.0 GB")."""
    return filesizeformat(int(value or 0) * 1024 * 1024)


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
        return f"+{filesizeformat(value)}"
    if value < 0:
        return "\u2212" + filesizeformat(-value)
    return filesizeformat(0)


@register.simple_tag
def address_sort_choices() -> list[tuple[str, str]]:
    """The orders the address list offers, for its "Sort by" control."""
    return AddressListSort.choices
