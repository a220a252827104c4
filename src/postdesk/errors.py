"""The one family of errors that services raise.

Each error carries a stable `code` (for scripts and the API), a `message` in the user's
language, and the `field` it concerns (None when it concerns the whole request). The web
shows it beside the field, the API returns it as `{code, message, field}`, the CLI prints it
on one line.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import OperationalError
from django.utils.translation import gettext as _


class PostdeskError(Exception):
    status = 400

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(str(message))
        self.code = code
        self.message = message
        self.field = field

    @property
    def errors(self) -> list[PostdeskError]:
        """Every violation this error stands for (several for ValidationFailed)."""
        return [self]

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": str(self.message), "field": self.field}


class InvalidInput(PostdeskError):
    """A value breaks one of the product's rules."""


class AddressTaken(PostdeskError):
    status = 409

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__("address_taken", message, field)


class NotFound(PostdeskError):
    """Also what another client's objects look like: existence is not disclosed."""

    status = 404

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__("not_found", message, field)


class PermissionDenied(PostdeskError):
    status = 403

    def __init__(self, message: str, code: str = "permission_denied") -> None:
        super().__init__(code, message, None)


class ValidationFailed(PostdeskError):
    """Several rule violations found at once, so a form can show all of them."""

    def __init__(self, errors: Iterable[PostdeskError]) -> None:
        self._errors = [inner for error in errors for inner in error.errors]
        if not self._errors:
            raise ValueError("ValidationFailed needs at least one error")
        first = self._errors[0]
        super().__init__(first.code, first.message, first.field)
        # The first error speaks for the whole: its code and its status agree.
        self.status = first.status

    @property
    def errors(self) -> list[PostdeskError]:
        return self._errors


class ErrorCollector:
    """Gathers errors while a service validates every field, then raises them together."""

    def __init__(self) -> None:
        self.errors: list[PostdeskError] = []

    def add(self, error: PostdeskError) -> None:
        self.errors.extend(error.errors)

    def check(self, func, *args, **kwargs):
        """Call a validator; on a PostdeskError keep it and return None."""
        try:
            return func(*args, **kwargs)
        except PostdeskError as error:
            self.add(error)
            return None

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ValidationFailed(self.errors)


class DatabaseBusy(PostdeskError):
    """Another change held the database longer than a request may wait: nothing was changed
    (the request's transaction rolled back), and the same request will do in a moment."""

    status = 503
    retry_after = 5

    def __init__(self) -> None:
        super().__init__(
            "database_busy",
            _("The service is busy right now and nothing was changed. Try again in a few seconds."),
            None,
        )


# PostgreSQL's lock_timeout and statement_timeout (SQLSTATE 55P03, 57014).
_PG_BUSY_STATES = frozenset({"55P03", "57014"})


def database_busy(error: BaseException) -> DatabaseBusy | None:
    """The DatabaseBusy that a database error stands for, when it is a lock wait that ran out
    (SQLite's busy timeout, PostgreSQL's lock_timeout); None for any other error."""
    if not isinstance(error, OperationalError):
        return None
    if getattr(error.__cause__, "sqlstate", None) in _PG_BUSY_STATES:
        return DatabaseBusy()
    if "database is locked" in str(error) or "database table is locked" in str(error):
        return DatabaseBusy()
    return None
