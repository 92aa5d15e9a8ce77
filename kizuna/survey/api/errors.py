"""The Survey API's error: answered as {"error": {"code", "message", "fields"}} with a status."""

from __future__ import annotations

from django.utils.functional import Promise


class APIError(Exception):
    """An error answered as {"error": {"code", "message", "fields"}} with `status`."""

    def __init__(
        self,
        code: str,
        message: str | Promise,
        *,
        status: int = 400,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(str(message))
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields
