"""Failed-token rate limiting: an address that keeps presenting invalid API tokens is refused
(HTTP 429) for a while, whatever token it sends next.

Counted in Django's cache, not in a table, so a normal request costs no query: it only reads
one cache key. Fixed window: from an address's first failure, POSTDESK_API_AUTH_FAILURE_LIMIT
invalid tokens within POSTDESK_API_AUTH_FAILURE_WINDOW seconds block it for that many seconds
more. Only presented tokens count (unknown, revoked, expired, disabled account): a request
without a token guesses nothing. The default cache is per process (LocMemCache): with several
web processes, configure a shared cache (Redis, Memcached or Django's database cache) in
CACHES, or each process counts on its own.
"""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext as _

from postdesk.errors import PostdeskError

DEFAULT_LIMIT = 20
DEFAULT_WINDOW_SECONDS = 600


class TooManyFailures(PostdeskError):
    status = 429

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(
            "too_many_failures",
            _(
                "Too many requests with an invalid API token came from your address. Try again "
                "in %(minutes)d minute(s)."
            )
            % {"minutes": minutes},
            None,
        )
        self.retry_after = retry_after


def _limit() -> int:
    return int(getattr(settings, "POSTDESK_API_AUTH_FAILURE_LIMIT", DEFAULT_LIMIT))


def _window() -> int:
    return int(getattr(settings, "POSTDESK_API_AUTH_FAILURE_WINDOW", DEFAULT_WINDOW_SECONDS))


def _keys(ip: str | None) -> tuple[str, str]:
    who = ip or "unknown"
    return f"postdesk:api-auth:failures:{who}", f"postdesk:api-auth:blocked:{who}"


def check(ip: str | None) -> None:
    """Raise TooManyFailures while the address is blocked."""
    _count_key, block_key = _keys(ip)
    until = cache.get(block_key)
    if until is not None:
        remaining = until - time.time()
        if remaining > 0:
            raise TooManyFailures(math.ceil(remaining))


def record_failure(ip: str | None) -> None:
    """Count an invalid token from the address; block it once the limit is reached."""
    count_key, block_key = _keys(ip)
    window = _window()
    cache.add(count_key, 0, timeout=window)
    try:
        count = cache.incr(count_key)
    except ValueError:  # expired between add and incr
        cache.set(count_key, 1, timeout=window)
        count = 1
    if count >= _limit():
        cache.set(block_key, time.time() + window, timeout=window)
        cache.delete(count_key)
