"""Failure limits: whoever keeps failing (a wrong API token, a wrong mailbox password at the
gate) is refused for a while, whatever they send next, so guessing stays bounded.

Counted in Django's cache, not in a table, so a request that is not refused costs no query:
it reads one cache key. Fixed window: from the first failure, `limit` failures within
`window` seconds block the key for `window` seconds more. The default cache is per process
(LocMemCache): with several web processes each counts on its own, so the bound is `limit`
times the processes; configure a shared cache (Redis, Memcached or Django's database cache)
in CACHES to count once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class FailureLimit:
    """`limit` failures of one key within `window` seconds block that key (`name` keeps the
    keys of two limits apart)."""

    name: str
    limit: int
    window: int

    def _keys(self, who: str) -> tuple[str, str]:
        return f"postdesk:{self.name}:failures:{who}", f"postdesk:{self.name}:blocked:{who}"

    def blocked_for(self, who: str) -> int:
        """Seconds the key stays blocked (0: not blocked)."""
        until = cache.get(self._keys(who)[1])
        if until is None:
            return 0
        return max(0, math.ceil(until - time.time()))

    def record_failure(self, who: str) -> None:
        """Count a failure of the key; block it once the limit is reached."""
        count_key, block_key = self._keys(who)
        cache.add(count_key, 0, timeout=self.window)
        try:
            count = cache.incr(count_key)
        except ValueError:  # expired between add and incr
            cache.set(count_key, 1, timeout=self.window)
            count = 1
        if count >= self.limit:
            cache.set(block_key, time.time() + self.window, timeout=self.window)
            cache.delete(count_key)
