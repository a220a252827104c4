"""The id of the request being served, for every log line it causes (and the X-Request-ID
answer header), so one request's lines can be found together in JSON logs."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

current: ContextVar[str] = ContextVar("postdesk_request_id", default="")

# An id a proxy already gave the request is kept when it looks like one (no log injection).
_ACCEPTED = re.compile(r"[A-Za-z0-9._-]{8,128}")


def request_id_for(given: str | None) -> str:
    """The proxy's id when it is a sane one, else a new one."""
    if given and _ACCEPTED.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Puts `request_id` on every record ("" outside a request: a command, the worker)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current.get()
        return True
