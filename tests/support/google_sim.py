"""Google Calendar without Google: a local OAuth token endpoint and a Google-like CalDAV proxy.

TokenEndpoint verifies a service account's signed JWT grant the way Google's
oauth2.googleapis.com/token does (RS256 signature with the account's key, the audience google-auth
always sends, a short-lived iat/exp, known scopes, domain-wide delegation for the `sub` user) and
issues short-lived opaque bearer tokens.

GoogleProxy sits in front of a real Radicale and behaves as Google's CalDAV guide documents: only
those bearer tokens are accepted (401 otherwise, and for tokens the test expired), MKCALENDAR and
the other unsupported methods are refused, `If-*` headers other than If-Match are dropped before
Radicale sees them, VTODO and custom properties are refused, a forgotten sync token is answered
410 like the Calendar API, and rate limits (403 rateLimitExceeded or 429) come on demand.
Paths look like Google's: /caldav/v2/CALENDAR-ID/events/NAME.ics is Radicale's
/advocate/CALENDAR-ID/NAME.ics.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from demo.embedded_server import DavResponse, dav_request, mkcalendar
from tests.support.servers import CalDAVServer, RadicaleServer

GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"  # what google-auth always sends
SCOPE = "https://www.googleapis.com/auth/calendar"
READ_ONLY_SCOPE = "https://www.googleapis.com/auth/calendar.readonly"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SKEW = 300
PREFIX = "/caldav/v2/"
PHONE_USER = "phone@agency.example"  # the phone's own account, a user of the same domain
ALLOWED = "GET, PUT, HEAD, DELETE, POST, OPTIONS, PROPFIND, PROPPATCH, REPORT"
UNSUPPORTED_METHODS = frozenset({"MKCALENDAR", "MKCOL", "LOCK", "UNLOCK", "COPY", "MOVE"})
DROPPED_HEADERS = frozenset({"if-none-match", "if-modified-since", "if-unmodified-since", "if"})
WRITES = frozenset({"PUT", "DELETE", "PROPPATCH", "POST"})
STANDARD_NAMESPACES = ("DAV:", "urn:ietf:params:xml:ns:caldav", "http://apple.com/ns/ical/",
                       "http://calendarserver.org/ns/")


def rate_limit_body(status: int) -> bytes:
    """Google's documented body for rateLimitExceeded (403 or 429)."""
    return json.dumps({"error": {"errors": [{
        "domain": "usageLimits", "reason": "rateLimitExceeded", "message": "Rate Limit Exceeded"}],
        "code": status, "message": "Rate Limit Exceeded"}}).encode()


AUTH_ERROR = json.dumps({"error": {"errors": [{
    "domain": "global", "reason": "authError", "message": "Invalid Credentials",
    "locationType": "header", "location": "Authorization"}],
    "code": 401, "message": "Invalid Credentials"}}).encode()


SERVICE_DISABLED = json.dumps({"error": {
    "code": 403, "message": "CalDAV API has not been used in project 1 before or it is disabled.",
    "status": "PERMISSION_DENIED", "details": [{"reason": "SERVICE_DISABLED"}]}}).encode()


# ----------------------------------------------------------------------------- service accounts

@dataclass
class ServiceAccount:
    """A service account with one RSA key, as Google's console makes it."""

    client_email: str = "calendar-sanitizer@agency-project.iam.gserviceaccount.com"
    client_id: str = "104829301834829301834"
    key_id: str = field(default_factory=lambda: secrets.token_hex(20))
    private_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def key_json(self, token_uri: str) -> str:
        """The JSON key file an admin downloads, pointing at `token_uri`."""
        pem = self.private_key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode()
        return json.dumps({
            "type": "service_account", "project_id": "agency-project",
            "private_key_id": self.key_id, "private_key": pem,
            "client_email": self.client_email, "client_id": self.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
            "universe_domain": "googleapis.com"})


@dataclass(frozen=True)
class Grant:
    """An issued access token: who it acts for, with which scopes, until when."""

    principal: str
    scopes: frozenset[str]
    expires: float


class TokenRefused(Exception):
    """An RFC 6749 error answer."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(error)
        self.error, self.description, self.status = error, description, status


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenEndpoint:
    """POST /token on 127.0.0.1: the JWT bearer grant of Google's service accounts."""

    def __init__(self, account: ServiceAccount, users: set[str], *,
                 delegated: frozenset[str] = frozenset({SCOPE, READ_ONLY_SCOPE}),
                 expires_in: int = 3599) -> None:
        self.account = account
        self.users = users
        self.delegated = delegated  # scopes the Workspace admin granted to the client ID
        self.expires_in = expires_in
        self.grants: dict[str, Grant] = {}
        self.minted: Counter[str] = Counter()  # principal -> tokens issued
        self.refusals: Counter[str] = Counter()
        self.refuse_next: str | None = None  # an error code to answer the next grant with
        self.lock = threading.Lock()
        self.server = _serve(self._handle)

    @property
    def url(self) -> str:
        """The token_uri to put in the key."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def issue(self, principal: str, scopes: frozenset[str] = frozenset({SCOPE})) -> str:
        """A token without a grant, for the test's own requests (Google's web UI, so to say)."""
        token = "ya29." + secrets.token_urlsafe(32)
        with self.lock:
            self.grants[token] = Grant(principal, scopes, time.time() + self.expires_in)
        return token

    def grant_for(self, token: str) -> Grant | None:
        """The live grant behind a token, or None (unknown or expired)."""
        with self.lock:
            grant = self.grants.get(token)
        return grant if grant is not None and grant.expires > time.time() else None

    def expire_all(self) -> None:
        """Every token issued so far stops working now (their holders still think them valid)."""
        with self.lock:
            self.grants = {t: Grant(g.principal, g.scopes, 0.0) for t, g in self.grants.items()}

    def _handle(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        length = int(handler.headers.get("Content-Length") or 0)
        form = parse_qs(handler.rfile.read(length).decode("utf-8", "replace"))
        try:
            if handler.command != "POST" or urlsplit(handler.path).path != "/token":
                raise TokenRefused("invalid_request", "POST /token only", 404)
            grant = self._verify(form)
        except TokenRefused as refused:
            with self.lock:
                self.refusals[refused.error] += 1
            body = {"error": refused.error, "error_description": refused.description}
            return refused.status, _JSON, json.dumps(body).encode()
        token = self.issue(grant.principal, grant.scopes)
        with self.lock:
            self.minted[grant.principal] += 1
        answer = {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        return 200, _JSON, json.dumps(answer).encode()

    def _verify(self, form: dict[str, list[str]]) -> Grant:
        if form.get("grant_type") != [JWT_GRANT]:
            raise TokenRefused("unsupported_grant_type", "Invalid grant_type.")
        assertion = (form.get("assertion") or [""])[0]
        if assertion.count(".") != 2:
            raise TokenRefused("invalid_request", "Missing required parameter: assertion")
        with self.lock:
            forced, self.refuse_next = self.refuse_next, None
        if forced is not None:
            raise TokenRefused(forced, "Refused on request of the test.")
        header_part, claims_part, signature = assertion.split(".")
        header, claims = json.loads(_b64(header_part)), json.loads(_b64(claims_part))
        self._check_signature(header, claims, f"{header_part}.{claims_part}", _b64(signature))
        if claims.get("aud") not in (GOOGLE_AUDIENCE, self.url):
            raise TokenRefused("invalid_grant", "Invalid JWT: Failed audience check.")
        now, iat, exp = time.time(), claims.get("iat", 0), claims.get("exp", 0)
        if not (iat <= now + SKEW and exp > now - SKEW and 0 < exp - iat <= 3600):
            raise TokenRefused("invalid_grant", "Invalid JWT: Token must be a short-lived token "
                               "(60 minutes) and in a reasonable timeframe.")
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes or not scopes <= {SCOPE, READ_ONLY_SCOPE}:
            raise TokenRefused("invalid_scope", "Invalid OAuth scope or ID token audience "
                               "provided.")
        subject = claims.get("sub")
        if subject is None:
            return Grant(self.account.client_email, scopes, 0.0)
        if subject not in self.users:
            raise TokenRefused("invalid_grant", "Not a valid email.")
        if not scopes <= self.delegated:
            raise TokenRefused("unauthorized_client", "Client is unauthorized to retrieve access "
                               "tokens using this method, or client not authorized for any of "
                               "the scopes requested.", 401)
        return Grant(subject, scopes, 0.0)

    def _check_signature(self, header: dict[str, Any], claims: dict[str, Any], signed: str,
                         signature: bytes) -> None:
        if header.get("alg") != "RS256" or claims.get("iss") != self.account.client_email:
            raise TokenRefused("invalid_grant", "Invalid grant: account not found")
        if header.get("kid") not in (None, self.account.key_id):
            raise TokenRefused("invalid_grant", "Invalid JWT Signature.")
        try:
            self.account.private_key.public_key().verify(signature, signed.encode(),
                                                         padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise TokenRefused("invalid_grant", "Invalid JWT Signature.") from None


# ----------------------------------------------------------------------------- the CalDAV proxy

class GoogleProxy:
    """Google's CalDAV documented behaviour, in front of a Radicale whose user owns every calendar.

    Calendar IDs are Radicale calendar names. Every calendar belongs to `owner`; another user sees
    only calendars shared with it ("read" or "write"), as Google Calendar's sharing settings do.
    A read-only scope may not write.
    """

    def __init__(self, radicale: RadicaleServer, tokens: TokenEndpoint, owner: str) -> None:
        self.radicale = radicale
        self.tokens = tokens
        self.owner = owner
        self.shares: dict[str, dict[str, str]] = {}  # calendar ID -> user -> "read" | "write"
        self.requests: Counter[str] = Counter()  # method -> count, after authentication
        self.refused: Counter[str] = Counter()  # reason -> count
        self.rate_limits: list[int] = []  # statuses to answer the next requests with
        self.forgotten_token_status = 410
        self.at_in_hrefs = False  # answer hrefs with "@" where the request had "%40"
        self.caldav_api_enabled = True  # in the service account's Cloud project
        self.refuse_tokens = False  # answer 401 to every token, fresh ones too
        self.lock = threading.Lock()
        self.server = _serve(self._handle)

    @property
    def url(self) -> str:
        """Google's CalDAV base URL, here."""
        return f"{self.root}{PREFIX[1:]}"

    @property
    def root(self) -> str:
        """The server's root URL, where a FaultProxy or a test may start its paths."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        """Zero the counters and drop pending faults."""
        with self.lock:
            self.requests.clear()
            self.refused.clear()
            self.rate_limits.clear()
            self.refuse_tokens = False

    def limit_next(self, *statuses: int) -> None:
        """Answer the next requests with these rate-limit statuses (403 or 429), in order."""
        with self.lock:
            self.rate_limits.extend(statuses)

    def _refuse(self, reason: str, status: int, body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.refused[reason] += 1
        return status, {**_JSON, **(headers or {})}, body

    def _handle(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        method = handler.command
        auth = handler.headers.get("Authorization", "")
        grant = self.tokens.grant_for(auth[7:]) if auth.startswith("Bearer ") else None
        if grant is None or self.refuse_tokens:
            return self._refuse("unauthenticated", 401, AUTH_ERROR,
                                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        if not self.caldav_api_enabled:
            return self._refuse("service-disabled", 403, SERVICE_DISABLED)
        with self.lock:
            self.requests[method] += 1
            limited = self.rate_limits.pop(0) if self.rate_limits else None
        if limited is not None:
            return self._refuse("rate-limited", limited, rate_limit_body(limited))
        if method in UNSUPPORTED_METHODS:
            return self._refuse("unsupported-method", 405, b"", {"Allow": ALLOWED})
        if method in WRITES and SCOPE not in grant.scopes:
            return self._refuse("read-only-scope", 403, b"")
        if refused := self._unsupported_content(method, body):
            return self._refuse(refused, 403, b"")
        path = _to_radicale(urlsplit(handler.path).path, self.radicale.username)
        access = self._access(grant.principal, urlsplit(handler.path).path)
        if path is None or access is None:
            return self._refuse("not-found", 404, b"")
        if method in WRITES and access != "write":
            return self._refuse("not-shared-for-writing", 403, b"")
        return self._forward(method, path, body, handler)

    def _access(self, principal: str, path: str) -> str | None:
        """"write" for the owner, the share for anyone else, None for a calendar not shared."""
        if principal == self.owner:
            return "write"
        calendar = path.removeprefix(PREFIX).split("/", 1)[0]
        return self.shares.get(calendar, {}).get(principal)

    def share(self, calendar_url: str, user: str, access: str = "read") -> None:
        """Google Calendar's "Share with specific people" for one calendar."""
        calendar = urlsplit(calendar_url).path.removeprefix(PREFIX).split("/", 1)[0]
        self.shares.setdefault(calendar, {})[user] = access

    def _unsupported_content(self, method: str, body: bytes) -> str | None:
        if method == "PUT" and re.search(rb"BEGIN:(VTODO|VJOURNAL)", body):
            return "vtodo"
        if method == "REPORT" and b"free-busy-query" in body:
            return "free-busy"
        if method == "PROPPATCH":
            names = set(re.findall(rb'xmlns(?::\w+)?="([^"]*)"', body))
            if any(n.decode() not in STANDARD_NAMESPACES for n in names):
                return "custom-property"
        return None

    def _forward(self, method: str, path: str, body: bytes,
                 handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in handler.headers.items()
                   if k.lower() not in DROPPED_HEADERS | _HOP_BY_HOP}
        user = self.radicale.username
        body = re.sub(rb"/caldav/v2/([^/<\s]+)/events/", b"/" + user.encode() + rb"/\1/", body)
        answer = dav_request(method, self.radicale.url.rstrip("/") + path, body=body or None,
                             headers=headers, auth=(user, self.radicale.password), timeout=30)
        return self._google_answer(answer)

    def _google_answer(self, answer: DavResponse) -> tuple[int, dict[str, str], bytes]:
        user = re.escape(self.radicale.username.encode())
        body = re.sub(rb"(<[^>]*href>\s*)/" + user + rb"/([^/<\s]+)/",
                      rb"\1/caldav/v2/\2/events/", answer.body)
        if self.at_in_hrefs:  # Google's own answers mix the two spellings
            body = re.sub(rb"<([^>]*)href>([^<]*)</", lambda m: m.group(0).replace(b"%40", b"@"),
                          body)
        if answer.status in (403, 409) and b"valid-sync-token" in body:
            return self._refuse("forgotten-sync-token", self.forgotten_token_status, json.dumps(
                {"error": {"code": 410, "message": "Sync token is no longer valid, a full sync "
                           "is required.", "errors": [{"reason": "fullSyncRequired"}]}}).encode())
        keep = {k: v for k, v in answer.headers.items()
                if k in ("content-type", "etag", "dav", "allow", "retry-after")}
        keep["Set-Cookie"] = "COMPASS=caldav=1; Path=/caldav; HttpOnly"  # Google sets cookies
        return answer.status, keep, body


def _to_radicale(path: str, user: str) -> str | None:
    """/caldav/v2/ID/events/REST -> /USER/ID/REST; anything else is not Google's."""
    match = re.fullmatch(r"/caldav/v2/([^/]+)/events(/.*)?", path)
    if match is None:
        return None
    return f"/{user}/{match.group(1)}{match.group(2) or '/'}"


# ----------------------------------------------------------------------------- HTTP plumbing

_JSON = {"Content-Type": "application/json; charset=UTF-8"}
_HOP_BY_HOP = frozenset({"authorization", "host", "content-length", "connection",
                         "accept-encoding", "keep-alive", "te", "transfer-encoding"})


def _serve(handle: Any) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            status, headers, body = handle(self)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = _any
        do_PROPFIND = do_PROPPATCH = do_REPORT = do_MKCALENDAR = do_MKCOL = _any
        do_LOCK = do_UNLOCK = do_COPY = do_MOVE = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server


# ----------------------------------------------------------------------------- server kind

class GoogleServer(CalDAVServer):
    """The "google" server kind: Radicale behind GoogleProxy, with a token endpoint.

    Google cannot create calendars over CalDAV, so creating a calendar here is what an admin does
    in Google Calendar's web page; a calendar named work-* gets its phone-* twin at once, since
    the tests' phone calendars are named after their work calendar and must exist beforehand.
    The "password" is the service account's key JSON, stored as the account's key credential.
    """

    def __init__(self, user: str = "advocate@agency.example") -> None:
        """Remember settings; nothing runs until start()."""
        self.user = user
        self.radicale = RadicaleServer()
        self.account = ServiceAccount()
        self.tokens: TokenEndpoint | None = None
        self.proxy: GoogleProxy | None = None
        self._own_token: str | None = None

    name = "google"  # type: ignore[assignment]
    enforces_auth = True  # type: ignore[assignment]

    @property
    def url(self) -> str:
        """The proxy's root, as other servers' `url` (Google's base URL is calendar_home_url)."""
        assert self.proxy is not None, "google server not started"
        return self.proxy.root

    @property
    def username(self) -> str:
        """The Workspace user the service account impersonates."""
        return self.user

    @property
    def password(self) -> str:
        """The service account key (what goes into the keyring or a systemd credential)."""
        assert self.tokens is not None, "google server not started"
        return self.account.key_json(self.tokens.url)

    @property
    def principal_url(self) -> str:
        """Google's principal URL for the user's primary calendar."""
        return f"{self.calendar_home_url}{self.user}/user"

    @property
    def calendar_home_url(self) -> str:
        """Google's CalDAV base URL: calendars are CALENDAR-ID/events/ below it."""
        assert self.proxy is not None, "google server not started"
        return self.proxy.url

    def account_toml(self, url: str | None = None, key: str = "main") -> str:
        """The [accounts.X] body of a google account on this server (or on a proxy's `url`)."""
        return (f'kind = "google"\nurl = "{url or self.url}"\nservice_account_key = "{key}"\n'
                f'impersonate = "{self.user}"\n')

    def start(self) -> None:
        """Start Radicale, the token endpoint and the proxy."""
        self.radicale.start()
        self.tokens = TokenEndpoint(self.account, {self.user, PHONE_USER})
        self.proxy = GoogleProxy(self.radicale, self.tokens, self.user)

    def stop(self) -> None:
        """Stop all three."""
        for part in (self.proxy, self.tokens):
            if part is not None:
                part.stop()
        self.proxy = self.tokens = None
        self.radicale.stop()

    def create_calendar(self, slug: str, displayname: str) -> str:
        """Made in "Google Calendar's web page" (straight in Radicale); its CalDAV URL."""
        for name in (slug, *([slug.replace("work", "phone", 1)] if slug.startswith("work")
                             else [])):
            mkcalendar(f"{self.radicale.calendar_home_url}{name}/", displayname,
                       auth=self.radicale.auth)
        return f"{self.calendar_home_url}{slug}/events/"

    def request(self, method: str, url: str, *, body: bytes | str | None = None,
                headers: Any = None, auth: tuple[str, str] | None = None) -> DavResponse:
        """A request through the proxy with a token of the impersonated user's own."""
        assert self.tokens is not None
        token = self._own_token
        if token is None or self.tokens.grant_for(token) is None:
            token = self._own_token = self.tokens.issue(self.user)
        return dav_request(method, url, body=body,
                           headers={**(headers or {}), "Authorization": f"Bearer {token}"})

