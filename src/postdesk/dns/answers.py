"""What the DNS checks read, as plain data, so the checks are pure functions.

A check receives a `fetch_txt(name) -> list[str]` callable: each TXT record of the name as one
string (a record split into several character-strings is joined), `[]` when the name has no
TXT record or does not exist, and `TemporaryDnsFailure` when the answer could not be had
(timeout, SERVFAIL, network): that is never "not configured", only "unknown, retry".
"""

from __future__ import annotations

from collections.abc import Callable


class TemporaryDnsFailure(Exception):
    """The DNS could not answer now; the check must be retried, not concluded."""


FetchTxt = Callable[[str], list[str]]
