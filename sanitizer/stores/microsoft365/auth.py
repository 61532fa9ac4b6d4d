"""App-only tokens for Graph: the client-credentials grant through msal, Microsoft's library.

The credential (a client secret, or a PEM holding the certificate's private key and the
certificate) comes from the keyring or systemd credentials under the account's
`client_credential` name. msal talks to the authority through the small client below: no
redirects, no environment proxies or CA bundles, bounded answers, and only the configured
authority's host and port (a token endpoint that its discovery document places elsewhere is
refused, `url-outside-authority`). msal refuses non-https
authorities, so a loopback `http://` authority (a local test server, the only plain HTTP the
config allows) is given to msal as https and sent as http by this client, for that host only.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from sanitizer.errors import StoreError
from sanitizer.stores import handoff, wire
from sanitizer.stores.microsoft365.names import SCOPE

MAX_TOKEN_ANSWER = 256 * 1024
# A verdict on the credential (RFC 6749 5.2 and Entra's AADSTS codes): invalid or expired secret
# (7000215, 7000222), a certificate assertion that does not verify (700027), no such app in the
# tenant (700016), a disabled app (7000112).
CREDENTIAL_ERRORS = frozenset({"invalid_client", "unauthorized_client"})
CREDENTIAL_CODES = frozenset({7000215, 7000222, 700027, 700016, 7000112})
TOKEN_TEXT = re.compile(r"[\x21-\x7e]{1,16384}")


@dataclass(frozen=True)
class AppLogin:
    """One app registration; the credential never leaves this object except to msal."""

    tenant_id: str
    client_id: str
    credential: str
    authority: str  # base URL, e.g. https://login.microsoftonline.com/
    timeout: float = 30.0
    verify: bool | str = True

    def __repr__(self) -> str:
        return f"AppLogin(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, <hidden>)"


def msal_credential(text: str) -> str | dict[str, str]:
    """A secret as it is; a PEM bundle as msal's certificate form (key + certificate)."""
    if "-----BEGIN" not in text:
        return text.strip()
    key = _pem_block(text, "PRIVATE KEY")
    cert = _pem_block(text, "CERTIFICATE")
    if key is None or cert is None:
        raise ValueError("a PEM credential needs a private key and a certificate")
    return {"private_key": key, "public_certificate": cert}


def _pem_block(text: str, kind: str) -> str | None:
    for block in text.split("-----END ")[:-1]:
        start = block.rfind("-----BEGIN ")
        if start >= 0 and block[start:].split("-----")[1].endswith(kind):
            label = block[start:].split("-----")[1].removeprefix("BEGIN ")
            return block[start:] + f"-----END {label}-----\n"
    return None


class _Answer:
    """What msal reads of an HTTP answer."""

    def __init__(self, status: int, text: str, headers: dict[str, str]) -> None:
        self.status_code = status
        self.text = text
        self.headers = headers

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise AuthorityError(f"HTTP Error: {self.status_code}")


class AuthorityError(Exception):
    """What msal sees of a request that failed: no server text, only this project's words."""


def origin(url: str) -> tuple[str, int] | None:
    """(host, port) of an https URL without user info, or None if it has some or no host."""
    parts = urlsplit(url)
    try:
        port = parts.port or 443
    except ValueError:
        return None
    if parts.username is not None or not parts.hostname:
        return None
    return parts.hostname.lower().rstrip("."), port


class AuthorityHttp:
    """msal's http_client: bounded, no redirects, plain http only for a loopback authority.

    Every request goes to the configured authority's host and port, whatever its discovery
    document names: a token endpoint elsewhere never sees the client secret or assertion."""

    def __init__(self, login: AppLogin) -> None:
        self.login = login
        self.requests = 0
        self.failure: str | None = None  # why the last request failed, when known
        parts = urlsplit(login.authority)
        self._plain_netloc = parts.netloc.lower() if parts.scheme == "http" else None
        self._origin = origin(login.authority.replace("http://", "https://", 1))
        self._session = wire.session()  # the one HTTP client: nothing from the environment

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> _Answer:
        """A discovery GET."""
        return self._send("GET", url, params=params, headers=headers)

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None,
             **_: Any) -> _Answer:
        """A token POST."""
        return self._send("POST", url, params=params, data=data, headers=headers)

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()

    def _send(self, method: str, url: str, *, params: Any = None, data: Any = None,
              headers: Any = None) -> _Answer:
        if params:
            url = f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(params)}"
        parts = urlsplit(url)
        if parts.scheme != "https" or self._origin is None or origin(url) != self._origin:
            self.failure = "url-outside-authority"  # msal asks https; http is ours to send
            raise AuthorityError("not the configured authority")
        if self._plain_netloc is not None and parts.netloc.lower() == self._plain_netloc:
            url = urlunsplit(("http", *parts[1:]))
        self.requests += 1
        deadline = time.monotonic() + self.login.timeout
        try:
            answer = wire.fetch(self._session, method, url, deadline=deadline,
                                verify=self.login.verify, cap=MAX_TOKEN_ANSWER, data=data,
                                headers=headers)
        except wire.TooLarge:
            return _Answer(502, "{}", {})
        except wire.TooSlow:
            raise AuthorityError("the authority's answer did not arrive in time") from None
        except Exception as exc:  # noqa: BLE001 - transport errors may quote the server's reply
            name = type(exc).__name__.lower()
            if "ssl" in name or "certificate" in name:
                self.failure = "tls-verification-failed"  # what msal's error would hide
            raise AuthorityError("the authority could not be reached") from None
        return _Answer(answer.status, bytes(answer.body).decode("utf-8", "replace"),
                       answer.headers)


HANDOFF_LIFETIME_MAX = 24 * 3600  # seconds: a longer (or absurd) expires_in is not handed on


class GraphAuth:
    """Tokens for Graph, cached by msal until five minutes before they expire."""

    def __init__(self, login: AppLogin) -> None:
        self.login = login
        self.http = AuthorityHttp(login)
        self._lock = threading.Lock()
        self._app: Any = None
        self.handoff_key: str | None = None  # set by the service: share tokens across workers

    def _application(self) -> Any:
        """msal's app, made on first use: its constructor already asks the authority."""
        if self._app is not None:
            return self._app
        import msal  # noqa: PLC0415 - the microsoft365 extra; checked when the config loads

        parts = urlsplit(self.login.authority)
        base = urlunsplit(("https", parts.netloc, parts.path.rstrip("/"), "", ""))
        try:
            credential = msal_credential(self.login.credential)
        except ValueError:
            raise self._error("credential-unusable", None) from None
        try:
            self._app = msal.ConfidentialClientApplication(
                self.login.client_id, client_credential=credential,
                authority=f"{base}/{self.login.tenant_id}", http_client=self.http,
                instance_discovery=False, azure_region=False)
        except ValueError:
            raise self._error("credential-unusable", None) from None
        except Exception:  # noqa: BLE001 - msal's errors may quote the server's answer
            raise self._unreachable() from None
        return self._app

    def _unreachable(self) -> StoreError:
        """The authority could not be asked: a certificate that did not verify (never retried),
        or an outage."""
        failure, self.http.failure = self.http.failure, None
        if failure is not None:
            return self._error(failure, None)
        return self._error("authority-unreachable", None, transient=True)

    def _error(self, reason: str, status: int | None, transient: bool = False) -> StoreError:
        return StoreError(operation="TOKEN", url=self.login.authority + self.login.tenant_id,
                          reason=reason, status=status, transient=transient)

    def token(self, refresh: bool = False) -> str:
        """A bearer token for Graph; after a 401, `refresh` drops the cached one first."""
        with self._lock:
            handed = None if refresh else handoff.take(self.handoff_key)
            if handed is not None:
                return handed
            handoff.drop(self.handoff_key)
            app = self._application()
            if refresh:
                app.remove_tokens_for_client()
            try:
                result = app.acquire_token_for_client(scopes=[SCOPE])
            except Exception:  # noqa: BLE001 - msal raises for 5xx and network errors
                raise self._unreachable() from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if not isinstance(token, str) or not token:
            raise self._refusal(result)
        if not TOKEN_TEXT.fullmatch(token):  # it goes into a header: printable ASCII only
            with self._lock:
                self._app.remove_tokens_for_client()
            raise self._error("authority-bad-answer", None, transient=True)
        lifetime = result.get("expires_in")
        if isinstance(lifetime, int | float) and 0 < lifetime <= HANDOFF_LIFETIME_MAX:
            handoff.keep(self.handoff_key, token, time.time() + float(lifetime))
        return token

    def _refusal(self, result: object) -> StoreError:
        """Why no token came: `auth-rejected` only for a verdict on the credential itself
        (which holds the account back until it changes); throttling, an outage or any other
        answer never does (the next cycle asks again)."""
        answer = result if isinstance(result, dict) else {}
        error = answer.get("error")
        codes = answer.get("error_codes")
        numbers = {c for c in codes if isinstance(c, int)} if isinstance(codes, list) else set()
        if error in CREDENTIAL_ERRORS or numbers & CREDENTIAL_CODES:
            return self._error("auth-rejected", 401)
        if error in (None, "temporarily_unavailable") or not isinstance(error, str):
            return self._error("authority-unreachable", None, transient=True)
        return self._error("token-request-refused", None)

    def close(self) -> None:
        """Close the authority's connection pool."""
        self.http.close()
