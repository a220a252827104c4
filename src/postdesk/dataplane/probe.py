"""The deliverability self-test's two ends on the mail servers: submit the probe message
through the submission port, as a mail program does, and find it in the probe mailbox.

Called by the self-test's run (dns/probe.py), never by a request.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from email.message import EmailMessage

from .provisioner import NothingMatched, ProvisionerUnavailable, _doveadm

PROBE_HEADER = "X-Postdesk-Probe"


class SubmissionRefused(Exception):
    """The submission port answered with an error: the message was not sent."""


def _host_port(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {target!r}")
    return host.strip("[]"), int(port)


def submit(message: EmailMessage, *, target: str, login: str, password: str) -> None:
    """Send `message` through the submission port at `target` ("host:port"): STARTTLS with the
    certificate checked for that host, then AUTH as `login`. Raises SubmissionRefused with
    the server's answer, or ProvisionerUnavailable when the server cannot be reached."""
    host, port = _host_port(target)
    try:
        with smtplib.SMTP(host, port, timeout=30) as smtp:
            smtp.starttls(context=ssl.create_default_context())
            smtp.login(login, password)
            smtp.send_message(message)
    except smtplib.SMTPResponseException as error:
        answer = error.smtp_error.decode(errors="replace") if error.smtp_error else ""
        raise SubmissionRefused(f"{error.smtp_code} {answer}".strip()) from None
    except smtplib.SMTPRecipientsRefused as error:
        raise SubmissionRefused(str(error.recipients)) from None
    except (OSError, smtplib.SMTPException) as error:
        # ssl.SSLError (a certificate that does not verify) is an OSError too.
        raise ProvisionerUnavailable(f"submission at {target}: {error}") from None


def _query(token: str) -> list[str]:
    return ["mailbox", "INBOX", "header", PROBE_HEADER, token]


def fetch(address: str, token: str) -> bytes | None:
    """The probe message carrying `token`, as delivered to the mailbox `address`, or None
    while it has not arrived (doveadm's HTTP API, `fetch text`)."""
    try:
        rows = _doveadm("fetch", {"user": address, "field": ["text"], "query": _query(token)})
    except NothingMatched:
        return None
    for row in rows:
        text = row.get("text")
        if text:
            return text.encode("utf-8", errors="surrogateescape")
    return None


def remove(address: str, token: str) -> None:
    """Expunge the probe message once read: the probe mailbox keeps nothing."""
    with contextlib.suppress(NothingMatched):  # already gone: nothing to remove
        _doveadm("expunge", {"user": address, "query": _query(token)})
