"""Domain errors raised by services; the API and HTML layers map them to status codes."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400
    default_code = "error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code


class InvalidInput(DomainError):
    """400: the input is wrong; ``field`` names which part."""

    status_code = 400
    default_code = "invalid"

    def __init__(self, field: str, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.field = field


class NotAllowed(DomainError):
    """403: the caller is known but may not do this."""

    status_code = 403
    default_code = "permission_denied"


class NotFound(DomainError):
    status_code = 404
    default_code = "not_found"


class Conflict(DomainError):
    """409: the action does not fit the object's current state."""

    status_code = 409
    default_code = "conflict"


class Unavailable(DomainError):
    """503: a dependency the action needs (e.g. a root-key provider) cannot be reached right now."""

    status_code = 503
    default_code = "unavailable"
