"""When a change happened: the one rule for the times that services are given.

Mail changes, usage samples, plan changes and estimates can all be dated (`--at`, the API's
`at`), so a history can be replayed. This module says which times are accepted; it knows
no app.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.translation import gettext as _

from postdesk.errors import InvalidInput

# How far ahead of this server's clock a dated change may be: the clocks of the machines that
# write (a usage collector, a script) may run a little ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)


def resolve_at(at: datetime | None, field: str = "at", *, allow_future: bool = False) -> datetime:
    """`at`, or now; a time without a zone is refused (which instant it means is unknown).

    A change dates what has happened: a time later than now plus `CLOCK_SKEW` is refused,
    unless `allow_future` (a plan scheduled ahead, an estimate as of a later time).
    """
    now = timezone.now()
    if at is None:
        return now
    if timezone.is_naive(at):
        raise InvalidInput(
            "time_without_zone",
            _("Give the time with its time zone, for example 2024-05-01T00:00:00Z."),
            field,
        )
    if not allow_future and at > now + CLOCK_SKEW:
        raise InvalidInput(
            "time_in_future",
            _(
                "%(time)s is in the future: a change can only be dated now or in the past "
                "(up to %(minutes)d minutes ahead, for clocks that run fast)."
            )
            % {"time": at.isoformat(), "minutes": int(CLOCK_SKEW.total_seconds() // 60)},
            field,
        )
    return at
