"""The simulator's HTTP side: Graph routes, the token endpoint, faults and throttling.

The state and the test-facing API live in graph_sim.py; this module turns requests into answers
shaped like Microsoft's reference examples (see that module's docstring for what is covered).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.support.graph_sim import CLIENT_ID, GRAPH_PREFIX, TENANT, Calendar, Fault, _parse_time

if TYPE_CHECKING:
    from tests.support.graph_sim import GraphSim

def _as_written(fields: dict[str, Any]) -> dict[str, Any]:
    """Written fields as Outlook keeps them: locations filled in, attendees with a status, a
    preview of the body."""
    out = dict(fields)
    if isinstance(out.get("location"), dict):
        name = out["location"].get("displayName", "")
        out["location"] = {"displayName": name, "locationType": "default", "uniqueId": name,
                           "uniqueIdType": "private"}
        out["locations"] = [dict(out["location"])] if name else []
    if isinstance(out.get("attendees"), list):
        out["attendees"] = [{"type": a.get("type", "required"),
                             "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                             "emailAddress": a.get("emailAddress", {})} for a in out["attendees"]]
    if isinstance(out.get("body"), dict):
        out["bodyPreview"] = str(out["body"].get("content", ""))[:255]
    return out


def _addresses(event: dict[str, Any]) -> set[str]:
    """The attendees' addresses: who Exchange mails when the organizer changes the meeting."""
    return {str(a.get("emailAddress", {}).get("address", "")).lower()
            for a in event.get("attendees") or [] if isinstance(a, dict)}


def _overlaps(event: dict[str, Any], start: datetime, end: datetime) -> bool:
    s, e = _parse_time(event["start"]), _parse_time(event["end"])
    return s < end and (e > start or (s == e and s >= start))


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    inner = {"request-id": secrets.token_hex(8), "date": "2026-01-01T00:00:00"}
    return status, {"error": {"code": code, "message": message, "innerError": inner}}


Answer = tuple[int, Any]
# The documented filter on a string extended property: its id, and startswith on its value.
_MARK_FILTER = re.compile(r"singleValueExtendedProperties/any\(ep: ep/id eq '([^']+)' and "
                          r"startswith\(ep/value, '([^']*)'\)\)", re.IGNORECASE)


class _Graph:
    """Request handling, one instance per request (the state lives in GraphSim)."""

    def __init__(self, sim: GraphSim, method: str, path: str, query: dict[str, list[str]],
                 headers: Any, body: Any) -> None:
        self.sim, self.method, self.path, self.query = sim, method, path, query
        self.headers, self.body = headers, body
        self.extra_headers: dict[str, str] = {}

    def q(self, name: str) -> str | None:
        for key, values in self.query.items():
            if key.lower() == name.lower():
                return values[0]
        return None

    def route(self) -> Answer:
        parts = [unquote(p) for p in self.path[len(GRAPH_PREFIX):].split("/") if p]
        by_id = {oid: user for user, oid in self.sim.object_ids.items()}
        user = by_id.get(parts[1].lower(), parts[1].lower()) if len(parts) > 1 else ""
        if len(parts) < 2 or parts[0] != "users" or user not in self.sim.mailboxes:
            return _error(404, "ErrorInvalidUser", "The requested user is invalid.")
        rest = parts[2:]
        if not rest:
            if self.method != "GET":
                return _error(400, "BadRequest", "Unsupported request.")
            return 200, {"@odata.context": f"{self.sim.graph_url}$metadata#users/$entity",
                         "id": self.sim.object_ids[user], "mail": user,
                         "userPrincipalName": user}
        table: dict[tuple[str, int, str], Callable[[str, list[str]], Answer]] = {
            ("GET", 1, "calendars"): self.list_calendars,
            ("POST", 1, "calendars"): self.create_calendar,
            ("GET", 4, "calendars"): self.delta,
            ("GET", 3, "calendars"): self.list_events,
            ("POST", 3, "calendars"): self.create_event,
            ("GET", 2, "events"): self.get_event,
            ("PATCH", 2, "events"): self.patch_event,
            ("DELETE", 2, "events"): self.delete_event,
        }
        handler = table.get((self.method, len(rest), rest[0]))
        if handler is None:
            return _error(400, "BadRequest", "Unsupported request.")
        return handler(user, rest)

    def calendar(self, user: str, ident: str) -> Calendar | None:
        cal = self.sim.calendars.get(ident)
        return cal if cal is not None and cal.owner == user else None

    def list_calendars(self, user: str, rest: list[str]) -> Answer:
        top = min(int(self.q("$top") or 10), self.sim.calendar_page_size)
        skip = int(self.q("$skip") or 0)
        idents = self.sim.mailboxes[user]
        answer: dict[str, Any] = {
            "@odata.context": f"{self.sim.graph_url}$metadata#users('{user}')/calendars",
            "value": [self.calendar_entity(user, c) for c in idents[skip:skip + top]]}
        if skip + top < len(idents):
            answer["@odata.nextLink"] = (f"{self.sim.graph_url}users/{quote(user, safe='@')}/"
                                         f"calendars?$top={top}&$skip={skip + top}")
        return 200, answer

    def calendar_entity(self, user: str, ident: str) -> dict[str, Any]:
        cal = self.sim.calendars[ident]
        return {
            "@odata.id": f"{self.sim.graph_url}users('{user}')/calendars('{ident}')", "id": ident,
            "name": cal.name, "color": "auto", "hexColor": "",
            "changeKey": "nfZyf7VcrEKLNoU37KWlkQAAA0x0+w==", "canShare": True,
            "canViewPrivateItems": True, "canEdit": cal.can_edit, "isDefaultCalendar": False,
            "allowedOnlineMeetingProviders": ["teamsForBusiness"],
            "defaultOnlineMeetingProvider": "teamsForBusiness", "isTallyingResponses": True,
            "isRemovable": True, "owner": {"name": user, "address": user},
        }

    def create_calendar(self, user: str, rest: list[str]) -> Answer:
        name = self.body.get("name") if isinstance(self.body, dict) else None
        if not isinstance(name, str) or not name:
            return _error(400, "ErrorInvalidRequest", "A name is required.")
        if any(self.sim.calendars[c].name.lower() == name.lower()
               for c in self.sim.mailboxes[user]):
            return _error(409, "ErrorFolderExists", "A folder with the specified name already "
                          "exists.")
        ident = self.sim.add_calendar(user, name)
        return 201, {"@odata.context": f"{self.sim.graph_url}$metadata#users('{user}')/"
                     "calendars/$entity", **self.calendar_entity(user, ident)}

    # calendarView delta ----------------------------------------------------------------------

    def delta(self, user: str, rest: list[str]) -> Answer:
        if rest[2:] != ["calendarView", "delta"]:
            return _error(400, "BadRequest", "Unsupported request.")
        for option in ("$select", "$expand", "$filter", "$orderby", "$search"):
            if self.q(option) is not None:
                return _error(400, "ErrorInvalidUrlQuery", f"{option} is not supported.")
        if (skip := self.q("$skiptoken")) is not None:
            return self.delta_page(skip)
        if (token := self.q("$deltatoken")) is not None:
            known = self.sim.delta_tokens.get(token)
            if known is None or known[0] != rest[1]:
                return _error(410, "SyncStateNotFound", "The sync state generation is not "
                              "found; generation=149;[highest=157][157][155][156].")
            return self.delta_round(*known)
        start, end = self.q("startDateTime"), self.q("endDateTime")
        if start is None or end is None:
            return _error(400, "ErrorInvalidParameter", "This request requires a time window "
                          "specified by the query string parameters StartDateTime and "
                          "EndDateTime.")
        if self.calendar(user, rest[1]) is None:
            return _error(404, "ErrorItemNotFound", "The specified object was not found in "
                          "the store.")
        window = (datetime.fromisoformat(start.replace("Z", "+00:00")),
                  datetime.fromisoformat(end.replace("Z", "+00:00")))
        return self.delta_round(rest[1], *window, None)

    def delta_round(self, cal_id: str, start: datetime, end: datetime,
                    since: int | None) -> Answer:
        cal = self.sim.calendars[cal_id]
        items: list[dict[str, Any]] = []
        ids = sorted(cal.events) if since is None else sorted(
            e for e, seq in cal.changed.items() if seq > since)
        for ident in ids:
            event = cal.events.get(ident)
            if event is not None and event.get("type") != "seriesMaster" and _overlaps(
                    event, start, end):
                shown = {k: v for k, v in event.items() if k != "singleValueExtendedProperties"}
                items.append({"@odata.type": "#microsoft.graph.event", **shown})
            elif since is not None:  # deleted, or changed outside the window
                items.append({"@odata.type": "#microsoft.graph.event", "id": ident,
                              "@removed": {"reason": "deleted"}})
        token = secrets.token_urlsafe(12)
        self.sim.delta_tokens[token] = (cal_id, start, end, cal.seq)
        return self.page(items, token)

    def page(self, items: list[dict[str, Any]], delta_token: str) -> Answer:
        size = self.sim.page_size
        prefer = ",".join(self.headers.get_all("Prefer") or [])
        for part in prefer.split(","):
            name, _, value = part.strip().partition("=")
            if name.lower() == "odata.maxpagesize" and value.isdigit():
                size = min(size, int(value))
        link = f"{self.sim.graph_url}{self.path[len(GRAPH_PREFIX):]}"
        answer: dict[str, Any] = {"@odata.context":
                                  f"{self.sim.graph_url}$metadata#Collection(event)"}
        if len(items) > size:
            skip = secrets.token_urlsafe(12)
            self.sim.skip_tokens[skip] = (items[size:], delta_token)
            answer["@odata.nextLink"] = f"{link}?$skiptoken={skip}"
        else:
            answer["@odata.deltaLink"] = f"{link}?$deltatoken={delta_token}"
        if self.sim.cut_rounds:
            answer.pop("@odata.nextLink", None)
            answer.pop("@odata.deltaLink", None)
        answer["value"] = items[:size]
        self.extra_headers["Preference-Applied"] = "odata.track-changes"
        return 200, answer

    def delta_page(self, skip: str) -> Answer:
        known = self.sim.skip_tokens.get(skip)  # a page may be asked for again (a retry)
        if known is None:
            return _error(410, "SyncStateNotFound", "The sync state generation is not found.")
        return self.page(*known)

    # events ----------------------------------------------------------------------------------

    def shown_event(self, event: dict[str, Any]) -> dict[str, Any]:
        select = self.q("$select")
        shown = {k: v for k, v in event.items() if k != "singleValueExtendedProperties"}
        if select:
            keep = set(select.split(",")) | {"id", "@odata.etag"}
            shown = {k: v for k, v in shown.items() if k in keep}
        expand = self.q("$expand") or ""
        if expand.startswith("singleValueExtendedProperties($filter=id eq '"):
            wanted = expand.split("'")[1].lower()
            shown["singleValueExtendedProperties"] = [
                p for p in event.get("singleValueExtendedProperties", [])
                if p["id"].lower() == wanted]
        return shown

    def list_events(self, user: str, rest: list[str]) -> Answer:
        cal = self.calendar(user, rest[1])
        if cal is not None and rest[2] == "calendarView":
            start, end = self.q("startDateTime"), self.q("endDateTime")
            if start is None or end is None:
                return _error(400, "ErrorInvalidParameter", "This request requires a time "
                              "window specified by the query string parameters StartDateTime "
                              "and EndDateTime.")
            window = (datetime.fromisoformat(start.replace("Z", "+00:00")),
                      datetime.fromisoformat(end.replace("Z", "+00:00")))
            return 200, {"value": [self.shown_event(e) for e in cal.events.values()
                                   if _overlaps(e, *window)][:int(self.q("$top") or 10)]}
        if cal is None or rest[2] != "events":
            return _error(404, "ErrorItemNotFound", "The specified object was not found in "
                          "the store.")
        top = int(self.q("$top") or 10)
        skip = int(self.q("$skip") or 0)
        events = sorted(cal.events.values(), key=lambda e: str(e["id"]))
        if (wanted := self.q("$filter")) is not None:
            match = _MARK_FILTER.fullmatch(wanted)
            if match is None:
                return _error(400, "ErrorInvalidUrlQueryFilter", "Unsupported filter.")
            events = [e for e in events if any(
                p.get("id") == match.group(1)
                and str(p.get("value", "")).lower().startswith(match.group(2).lower())
                for p in e.get("singleValueExtendedProperties", []))]
        answer: dict[str, Any] = {
            "@odata.context": f"{self.sim.graph_url}$metadata#users('{user}')/calendars"
                              f"('{cal.id}')/events",
            "value": [self.shown_event(e) for e in events[skip:skip + top]]}
        if skip + top < len(events):
            query = "&".join(f"{k}={quote(v[0], safe='(),$=')}" for k, v in self.query.items()
                             if k != "$skip")
            answer["@odata.nextLink"] = (f"{self.sim.graph_url}{self.path[len(GRAPH_PREFIX):]}"
                                         f"?{query}&$skip={skip + top}")
        return 200, answer

    def create_event(self, user: str, rest: list[str]) -> Answer:
        cal = self.calendar(user, rest[1])
        if cal is None or rest[2] != "events" or not isinstance(self.body, dict):
            return _error(404, "ErrorItemNotFound", "The specified object was not found in "
                          "the store.")
        try:
            start, end = _parse_time(self.body["start"]), _parse_time(self.body["end"])
        except (KeyError, TypeError, ValueError):
            return _error(400, "ErrorInvalidRequest", "Bad start or end.")
        txid = self.body.get("transactionId")
        digest = hashlib.sha256(json.dumps(self.body, sort_keys=True).encode()).hexdigest()
        if isinstance(txid, str) and (user, txid) in self.sim.transactions:
            known_digest, ident = self.sim.transactions[(user, txid)]
            if known_digest != digest:
                return _error(400, "ErrorDuplicateTransactionId", "Your request can't be "
                              "completed. The TransactionId specified in the request has "
                              "already been used to create a different event.")
            if ident in cal.events:
                return 201, self.entity(user, cal, cal.events[ident])
        fields = _as_written({k: v for k, v in self.body.items() if k not in ("start", "end")})
        ident = self.sim.add_event(cal.id, start, end, **fields)
        if isinstance(txid, str):
            self.sim.transactions[(user, txid)] = (digest, ident)
        return 201, self.entity(user, cal, cal.events[ident])

    def entity(self, user: str, cal: Calendar, event: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in event.items() if k != "singleValueExtendedProperties"}
        return {"@odata.context": f"{self.sim.graph_url}$metadata#users('{user}')/calendars"
                                  f"('{cal.id}')/events/$entity", **shown}

    def owned_event(self, user: str, ident: str) -> tuple[Calendar, dict[str, Any]] | None:
        cal = self.sim._calendar_of(ident)
        if cal is None or cal.owner != user:
            return None
        return cal, cal.events[ident]

    def precondition(self, event: dict[str, Any]) -> Answer | None:
        wanted = self.headers.get("If-Match")
        if wanted is None or wanted.strip() == "*":
            return None
        if wanted.removeprefix("W/") != event["@odata.etag"].removeprefix("W/"):
            return _error(412, "ErrorIrresolvableConflict", "The send or update operation "
                          "could not be performed because the change key passed in the request "
                          "does not match the current change key for the item.")
        return None

    def get_event(self, user: str, rest: list[str]) -> Answer:
        found = self.owned_event(user, rest[1])
        if found is None:
            return _error(404, "ErrorItemNotFound", "The specified object was not found in "
                          "the store.")
        return 200, self.shown_event(found[1])

    def patch_event(self, user: str, rest: list[str]) -> Answer:
        found = self.owned_event(user, rest[1])
        if found is None or not isinstance(self.body, dict):
            return _error(404, "ErrorItemNotFound", "The specified object was not found in "
                          "the store.")
        cal, event = found
        if (failed := self.precondition(event)) is not None:
            return failed
        updated = {**event, **_as_written(self.body)}
        before, after = _addresses(event), _addresses(updated)
        if set(self.body) == {"attendees"}:  # only the changed attendees hear of it
            self.sim.mailed += [("update", a) for a in sorted(before ^ after)]
        else:  # every attendee gets the update; removed ones a cancellation
            self.sim.mailed += [("update", a) for a in sorted(before | after)]
        self.sim._store(cal, updated)
        return 200, self.entity(user, cal, updated)

    def delete_event(self, user: str, rest: list[str]) -> Answer:
        found = self.owned_event(user, rest[1])
        if found is None:
            return _error(404, "ErrorItemNotFound", "The specified object was not found in "
                          "the store.")
        if (failed := self.precondition(found[1])) is not None:
            return failed
        self.sim.mailed += [("cancel", a) for a in sorted(_addresses(found[1]))]
        self.sim.delete_event(rest[1])
        return 204, None


def handler(sim: GraphSim) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            self.handle_any("GET")

        def do_POST(self) -> None:
            self.handle_any("POST")

        def do_PATCH(self) -> None:
            self.handle_any("PATCH")

        def do_DELETE(self) -> None:
            self.handle_any("DELETE")

        def handle_any(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            with sim.lock:
                sim.bodies.append(raw)
            if parts.path.startswith(GRAPH_PREFIX):
                self.graph(method, parts.path, parse_qs(parts.query), raw)
            else:
                self.authority(method, parts.path, raw)

        def send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def drip(self, pause: float) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(pause)
            except OSError:
                return

        def authority(self, method: str, path: str, raw: bytes) -> None:
            public = "https://" + self.headers.get("Host", "")
            if method == "GET" and path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
                with sim.lock:
                    sim.requests["openid-configuration"] += 1
                self.send(200, {
                    "token_endpoint": f"{public}/{TENANT}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{public}/{TENANT}/oauth2/v2.0/authorize",
                    "issuer": f"{public}/{TENANT}/v2.0"})
                return
            if method == "POST" and path == f"/{TENANT}/oauth2/v2.0/token":
                with sim.lock:
                    sim.requests["token"] += 1
                    fault = sim.token_faults.pop(0) if sim.token_faults else None
                if fault is not None:
                    self.send(*fault)
                    return
                status, body = _token(sim, parse_qs(raw.decode()), public)
                self.send(status, body)
                return
            self.send(404, {"error": "not_found"})

        def graph(self, method: str, path: str, query: dict[str, list[str]],
                  raw: bytes) -> None:
            auth = self.headers.get("Authorization", "")
            with sim.lock:
                sim.requests[f"{method} {_kind(path)}"] += 1
                if auth.removeprefix("Bearer ") not in sim.access_tokens:
                    self.send(*_error(401, "InvalidAuthenticationToken",
                                      "Access token is empty."))
                    return
                fault = _take_fault(sim, method, path)
            if fault is not None and fault.drip:
                self.drip(fault.drip)
                return
            if fault is not None:
                time.sleep(fault.hang)
                if fault.after:
                    with sim.lock:
                        _Graph(sim, method, path, query, self.headers,
                               json.loads(raw) if raw else None).route()
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                self.send(*_error(fault.status, "TooManyRequests" if fault.status == 429
                                  else "serviceNotAvailable", "Please retry again later."),
                          headers)
                return
            mailbox = unquote(path[len(GRAPH_PREFIX):].split("/")[1]).lower() if \
                path.count("/") > 3 else ""
            with sim.lock:
                sim.in_flight[mailbox] += 1
                if method != "GET":
                    sim.writes[mailbox] += 1
                sim.peak[mailbox] = max(sim.peak[mailbox], sim.in_flight[mailbox])
                over = sim.in_flight[mailbox] > sim.concurrency_limit
                sim.throttled += over
            try:
                if over:
                    self.send(*_error(429, "ApplicationThrottled", "Application is over its "
                                      "MailboxConcurrency limit."),
                              {"Retry-After": sim.retry_after})
                    return
                time.sleep(sim.delay)
                body = json.loads(raw) if raw else None
                request = _Graph(sim, method, path, query, self.headers, body)
                with sim.lock:
                    status, answer = request.route()
                self.send(status, answer, request.extra_headers)
            finally:
                with sim.lock:
                    sim.in_flight[mailbox] -= 1

    return Handler


def _kind(path: str) -> str:
    """A request's kind for the counters: its last fixed path word."""
    words = [w for w in path[len(GRAPH_PREFIX):].split("/") if w]
    fixed = [w for w in words if w in ("calendars", "events", "delta")]
    return fixed[-1] if fixed else "other"


def _take_fault(sim: GraphSim, method: str, path: str) -> Fault | None:
    for fault in sim.faults:
        if fault.times > 0 and fault.match in path and fault.method in (None, method):
            fault.times -= 1
            return fault
    return None


def _token(sim: GraphSim, form: dict[str, list[str]], public: str) -> tuple[int, Any]:
    def field(name: str) -> str:
        return form.get(name, [""])[0]

    bad = {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client "
           "secret provided.", "error_codes": [7000215]}
    if field("grant_type") != "client_credentials" or field("client_id") != CLIENT_ID:
        return 400, {"error": "unauthorized_client", "error_codes": [700016]}
    if field("scope") != "https://graph.microsoft.com/.default":
        return 400, {"error": "invalid_scope", "error_codes": [70011]}
    if field("client_secret"):
        if field("client_secret") != sim.secret:
            return 401, bad
    elif not _assertion_ok(sim, field("client_assertion"),
                           f"{public}/{TENANT}/oauth2/v2.0/token"):
        return 401, bad
    token = secrets.token_urlsafe(24)
    with sim.lock:
        sim.access_tokens.add(token)
    return 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                 "access_token": token}


def _assertion_ok(sim: GraphSim, assertion: str, audience: str) -> bool:
    """A client assertion signed by one of the registered certificates' keys."""
    import jwt  # noqa: PLC0415 - PyJWT comes with msal

    for cert in sim.certificates:
        try:
            claims = jwt.decode(assertion, cert.public_key(), algorithms=["RS256", "PS256"],
                                audience=audience)
        except jwt.PyJWTError:
            continue
        if claims.get("iss") == claims.get("sub") == CLIENT_ID:
            return True
    return False
