"""Parts of a page rendered once for what they show, then served from memory.

The dashboard's DNS cards, usage figures and groupware card are some 170 translated strings
and six cards of conditions: a few milliseconds of Django's template engine at every visit,
for HTML that changes when a DNS check, a key, a setting of the domain or its counts change,
a few times a day. A `Fragment` names its template and everything its HTML is made of; the
HTML is kept in the `fragments` cache under a digest of that and the language, so a change
makes another key and the cache never answers an old part (as web.address_rows keeps the
address list's rows). The context, often the costly part (the DNS report is evaluated from
the stored answers), is built only when the part is not kept.

What differs between two requests for the same part stays outside it or is put in at each
request: the times said relative to now ("checked 3 minutes ago") are rendered by the page
around the part, and the forms' CSRF token, each user's own, is rendered as a stand-in that
every request replaces with its own token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

# What `{% csrf_token %}` renders a token as, with the kept HTML's stand-in for it: markup no
# value shown in a part can produce, since every value is escaped.
_CSRF_INPUT = '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
_CSRF_STAND_IN = "csrf-token-of-the-request"


@dataclass(frozen=True)
class Fragment:
    """A part of a page: its template, everything its HTML is made of beside the language
    (the cache's key), and how to build the template's context when it is not kept."""

    template_name: str
    made_of: tuple
    context: Callable[[], dict[str, Any]]


def render_fragment(request: HttpRequest, fragment: Fragment) -> SafeString:
    """The fragment's HTML for this request: kept, or rendered and kept, with the request's
    own CSRF token in its forms."""
    made_of = repr((fragment.template_name, get_language(), fragment.made_of)).encode()
    key = "fragment:" + hashlib.blake2b(made_of, digest_size=16).hexdigest()
    cache = caches["fragments"]
    html = cache.get(key)
    if html is None:
        html = render_to_string(
            fragment.template_name, {**fragment.context(), "csrf_token": _CSRF_STAND_IN}
        )
        cache.set(key, html)
    stand_in = format_html(_CSRF_INPUT, _CSRF_STAND_IN)
    if stand_in in html:
        html = html.replace(stand_in, format_html(_CSRF_INPUT, get_token(request)))
    return mark_safe(html)  # noqa: S308 - rendered escaped, the token put in escaped
