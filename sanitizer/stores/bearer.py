"""OAuth 2.0 bearer tokens for the CalDAV transport: set per request by http.py, never logged."""

from __future__ import annotations

from typing import Protocol


class BearerTokens(Protocol):
    """OAuth 2.0 access tokens for one account, minted lazily and cached until they expire."""

    def authorization(self) -> str:
        """The Authorization header value; raises StoreError when no token can be had."""
        ...

    def invalidate(self) -> None:
        """Forget the cached token (the server refused it)."""
        ...
