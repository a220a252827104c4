"""Failed-token rate limiting: an address that keeps presenting invalid API tokens is refused
(HTTP 429) for a while, whatever token it sends next (postdesk.throttle: a cache read per
request, no query).

POSTDESK_API_AUTH_FAILURE_LIMIT invalid tokens within POSTDESK_API_AUTH_FAILURE_WINDOW
seconds block the address for that many seconds more. Only presented tokens count (unknown,
revoked, expired, disabled account): a request without a token guesses nothing.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.utils.translation import gettext as _

from postdesk.errors import PostdeskError
from postdesk.throttle import FailureLimit

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


def _limit() -> FailureLimit:
    return FailureLimit(
        "api-auth",
        limit=int(getattr(settings, "POSTDESK_API_AUTH_FAILURE_LIMIT", DEFAULT_LIMIT)),
        window=int(getattr(settings, "POSTDESK_API_AUTH_FAILURE_WINDOW", DEFAULT_WINDOW_SECONDS)),
    )


def check(ip: str | None) -> None:
    """Raise TooManyFailures while the address is blocked."""
    remaining = _limit().blocked_for(ip or "unknown")
    if remaining:
        raise TooManyFailures(remaining)


def record_failure(ip: str | None) -> None:
    """Count an invalid token from the address; block it once the limit is reached."""
    _limit().record_failure(ip or "unknown")
