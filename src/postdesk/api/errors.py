"""The API's own member of the domain error family."""

from postdesk.errors import PostdeskError


class Unauthenticated(PostdeskError):
    """No token, or one that is unknown, expired or revoked (HTTP 401)."""

    status = 401
