"""Google Calendar over CalDAV: service-account tokens (google-auth) and Google's differences.

Google's CalDAV takes OAuth 2.0 bearer tokens only. An agency's service account, granted
domain-wide delegation, signs a JWT naming the Workspace user it acts for (`sub`); the key's
token endpoint answers with a token for about an hour. Tokens are minted on first use, cached
until google-auth thinks them stale (3m45s before expiry), and minted again when the server
refuses one. The key and the tokens never reach a log line, an error message or the disk.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from sanitizer.errors import StoreError
from sanitizer.stores import handoff, wire
from sanitizer.stores.caldav.differences import RFC_FORGOTTEN_TOKEN, ServerDifferences

SCOPE = "https://www.googleapis.com/auth/calendar"
MAX_TOKEN_ANSWER = 64 * 1024  # a token answer is a few hundred bytes
TOKEN_TEXT = re.compile(r"[\x21-\x7e]{1,16384}")
TOKEN_ERRORS = frozenset({"invalid_request", "invalid_client", "invalid_grant",
                          "unauthorized_client", "unsupported_grant_type", "invalid_scope",
                          "access_denied"})  # RFC 6749 5.2, and Google's access_denied

GOOGLE = ServerDifferences(
    makes_calendars=False,  # "Does not support the HTTP method MKCALENDAR"
    honours_if_none_match=False,  # "Does not support ... the If* header (except for If-Match)"
    # Its CalDAV guide names no status for a forgotten sync token; its Calendar API answers
    # 410 Gone (fullSyncRequired), and RFC 6578 servers 403/409/412 with DAV:valid-sync-token.
    forgotten_token_statuses=RFC_FORGOTTEN_TOKEN | {410},
    rate_limit_403=True,  # "rateLimitExceeded errors can return either 403 or 429"
    ctag_probe=False,  # its guide asks for sync-collection after the first sync, not ctag polling
    missing_calendar_advice=(
        "Google cannot create calendars over CalDAV: create the phone calendar in Google "
        "Calendar as the impersonated user (Settings > Add calendar > Create new calendar), "
        "share it with the phone's Google account with 'See all event details', and set "
        "the pair's target to https://apidata.googleusercontent.com/caldav/v2/CALENDAR-ID/"
        "events/ (Calendar ID under Settings and sharing > Integrate calendar)"),
    forbidden_advice=(
        "check that the CalDAV API (caldav.googleapis.com) is enabled in the service account's "
        "Cloud project, and that the impersonated user owns the calendar or it is shared with "
        "them (with 'Make changes to events' for a target)"),
)


@dataclass(frozen=True)
class ServiceAccountKey:
    """A service account's JSON key; `info` holds the private key: never print it."""

    client_email: str
    token_uri: str
    info: Mapping[str, Any] = field(repr=False)

    def __repr__(self) -> str:
        return f"ServiceAccountKey(client_email={self.client_email!r}, <private key hidden>)"


def parse_key(text: str) -> ServiceAccountKey:
    """The key JSON as Google's console downloads it; ValueError names what is wrong, not what
    it holds."""
    try:
        info = json.loads(text)
    except ValueError:
        raise ValueError("is not JSON (store the key file exactly as downloaded)") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ValueError("is not a service account key (expected \"type\": \"service_account\")")
    for name in ("client_email", "token_uri", "private_key"):
        if not isinstance(info.get(name), str) or not info[name]:
            raise ValueError(f"has no {name}")
    return ServiceAccountKey(info["client_email"], info["token_uri"], info)


class ServiceAccountTokens:
    """Bearer tokens for one impersonated user, minted with google-auth at the key's token_uri.

    ValueError if the key's private key does not load.
    """

    def __init__(self, key: ServiceAccountKey, subject: str, *, scopes: tuple[str, ...] = (SCOPE,),
                 verify: bool | str = True, timeout: float = 30.0) -> None:
        from google.oauth2 import service_account  # noqa: PLC0415 - optional extra

        try:
            self._credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                dict(key.info), scopes=list(scopes), subject=subject)
        except (ValueError, TypeError, IndexError):
            raise ValueError("has a private key that does not load "
                             "(store the key file exactly as downloaded)") from None
        self.token_uri = key.token_uri
        self._request = TokenRequest(key.token_uri, verify, timeout)
        self._lock = threading.Lock()
        self.minted = 0  # tokens minted so far (for status and tests)
        self.handoff_key: str | None = None  # set by the service: share tokens across workers

    def __repr__(self) -> str:
        return f"ServiceAccountTokens(token_uri={self.token_uri!r}, minted={self.minted})"

    def authorization(self) -> str:
        """`Bearer <token>`, minting a token when there is none or it is about to expire."""
        with self._lock:
            if not self._credentials.valid:
                handed = handoff.take(self.handoff_key)
                if handed is not None:
                    return f"Bearer {handed}"
                self._mint()
                expiry = self._credentials.expiry  # naive UTC, as google-auth keeps it
                handoff.keep(self.handoff_key, self._credentials.token,
                             expiry.replace(tzinfo=UTC).timestamp() if expiry else 0.0)
            return f"Bearer {self._credentials.token}"

    def invalidate(self) -> None:
        """Forget the token the server refused; the next request mints a new one."""
        with self._lock:
            self._credentials.token = None
            handoff.drop(self.handoff_key)

    def _mint(self) -> None:
        from google.auth import exceptions  # noqa: PLC0415

        try:
            self._credentials.refresh(self._request)
        except exceptions.RefreshError as exc:
            raise StoreError(operation="TOKEN", url=self.token_uri, reason=_refusal(exc),
                             status=401) from None
        except exceptions.TransportError:
            raise StoreError(operation="TOKEN", url=self.token_uri, reason="connection-failed",
                             transient=True) from None
        except (ValueError, TypeError):  # a key whose private key does not load
            raise StoreError(operation="TOKEN", url=self.token_uri,
                             reason="bad-service-account-key") from None
        except ArithmeticError:  # an answer google-auth cannot compute with (expires_in 1e12)
            raise StoreError(operation="TOKEN", url=self.token_uri,
                             reason="token-bad-answer", transient=True) from None
        if not TOKEN_TEXT.fullmatch(str(self._credentials.token or "")):
            self._credentials.token = None  # it goes into a header: printable ASCII only
            raise StoreError(operation="TOKEN", url=self.token_uri,
                             reason="token-bad-answer", transient=True)
        self.minted += 1


def _refusal(exc: Exception) -> str:
    """A reason code for the token endpoint's `error` field (RFC 6749 5.2), from a fixed set:
    never the endpoint's own words."""
    answer = exc.args[1] if len(exc.args) > 1 else None
    error = answer.get("error") if isinstance(answer, dict) else None
    if error in TOKEN_ERRORS:
        return f"token-{str(error).replace('_', '-')}"
    return "token-refused"


@dataclass(frozen=True)
class TokenAnswer:
    """What google-auth reads from a token endpoint: status, headers and body."""

    status: int
    headers: Mapping[str, str]
    data: bytes


class TokenRequest:
    """google-auth's transport, on the one HTTP client (stores/wire.py): only the key's
    token_uri, no redirects, nothing from the environment (no proxy, no SSL_CERT_FILE or
    SSL_CERT_DIR), TLS verified as configured, a bounded answer within a deadline."""

    def __init__(self, token_uri: str, verify: bool | str, timeout: float) -> None:
        self.token_uri = token_uri
        self.timeout = timeout
        self.verify = verify
        self._session: Any = None

    def __call__(self, url: str, method: str = "GET", body: bytes | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **_: Any) -> TokenAnswer:
        """POST to the token endpoint; non-2xx answers are returned, network failures raised."""
        from google.auth import exceptions  # noqa: PLC0415

        if url != self.token_uri:
            raise exceptions.TransportError(  # type: ignore[no-untyped-call]
                "refusing a URL other than the key's token_uri")
        seconds = min(timeout or self.timeout, self.timeout)
        deadline = time.monotonic() + seconds
        if self._session is None:
            self._session = wire.session()
        try:
            answer = wire.fetch(self._session, method, url, deadline=deadline,
                                verify=self.verify, cap=MAX_TOKEN_ANSWER, data=body,
                                headers=headers)
            if 300 <= answer.status < 400:  # answered as it answered: an error, not followed
                return TokenAnswer(answer.status, {}, b"")
            return TokenAnswer(answer.status, answer.headers, bytes(answer.body))
        except Exception:  # noqa: BLE001 - transport errors may quote the server's reply
            raise exceptions.TransportError(  # type: ignore[no-untyped-call]
                "token endpoint unreachable") from None
