"""OAuth 2.0 bearer tokens for the CalDAV transport, kept out of anything that is logged."""

from __future__ import annotations

from typing import Any, Protocol


class BearerTokens(Protocol):
    """OAuth 2.0 access tokens for one account, minted lazily and cached until they expire."""

    def authorization(self) -> str:
        """The Authorization header value; raises StoreError when no token can be had."""
        ...

    def invalidate(self) -> None:
        """Forget the cached token (the server refused it)."""
        ...


class BearerAuth:
    """Sets the Authorization header as the HTTP session sends the request: caldav logs the
    headers it is given at DEBUG, never those the session adds."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "BearerAuth(<hidden>)"

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = self.value
        return request
