"""`calendar-sanitizer check`: is this installation ready to run? Read-only, one request per item.

Every finding is one table row: what was checked, the result, and what to do about it. The exit
code is the most fundamental problem found: 78 (config, permissions, passwords) before 77 (the
server refused us) before 69 (the server could not be reached). Nothing is written anywhere: the
source is read with one calendar-query that asks for ETags only, the target is only PROPFINDed
(it exists and is a calendar; a missing one is a problem naming the calendars that exist and
`create-target`, since no cycle creates one).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from sanitizer.core.model import Action
from sanitizer.errors import ADMIN, ConfigError, ExitCode, SecretError, StoreError
from sanitizer.service import checks_microsoft365 as m365
from sanitizer.service import credentials, rejected, target_checks
from sanitizer.service.config import Account, Config, Pair, load_config
from sanitizer.service.connections import transport_for
from sanitizer.service.runtime import account_urls, require_runnable
from sanitizer.stores.caldav.discovery import list_calendars
from sanitizer.stores.caldav.store import (
    CALDAV,
    DAV,
    XML_HEADERS,
    Backoff,
    Transport,
    multistatus,
)

CREDENTIALS_DIR = "/etc/calendar-sanitizer/credentials"
CHECK_TIMEOUT = 15.0  # seconds; a check should answer quickly even if the service waits longer
SEVERITY = (ExitCode.CONFIG, ExitCode.NOPERM, ExitCode.UNAVAILABLE)
TLS_OFF = "tls-unverified"  # a problem, though the pairs are still checked over that account

_PROPFIND = (b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
             b"<D:resourcetype/><D:current-user-privilege-set/></D:prop></D:propfind>")
_ETAGS_ONLY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{start:%Y%m%dT%H%M%SZ}" end="{end:%Y%m%dT%H%M%SZ}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""
_WRITE = frozenset({DAV + "all", DAV + "write", DAV + "write-content", DAV + "bind"})
_CREATE = frozenset({DAV + "all", DAV + "write", DAV + "bind"})


@dataclass(frozen=True)
class Finding:
    """One row of the table."""

    item: str  # "config", "permissions", "account NAME", "pair NAME"
    result: str  # "ok", "warning", or a short problem code
    detail: str  # what was found and, for a problem, what to do
    code: ExitCode = ExitCode.OK


def exit_code(findings: list[Finding]) -> int:
    """The most fundamental problem's exit code, or 0."""
    codes = {f.code for f in findings}
    return int(next((code for code in SEVERITY if code in codes), ExitCode.OK))


def render(findings: list[Finding]) -> str:
    """A fixed-width table, one finding per line."""
    width = max([len("ITEM"), *(len(f.item) for f in findings)])
    result_width = max([len("RESULT"), *(len(f.result) for f in findings)])
    lines = [f"{'ITEM':<{width}}  {'RESULT':<{result_width}}  WHAT TO DO / DETAIL"]
    lines += [f"{f.item:<{width}}  {f.result:<{result_width}}  {f.detail}" for f in findings]
    return "\n".join(lines)


def run_checks(config_path: Path) -> list[Finding]:
    """Every check, in order; later ones are skipped where an earlier one makes them moot."""
    findings = list(file_permissions(config_path, None))
    try:
        config = load_config(config_path)
        require_runnable(config)
    except ConfigError as exc:
        return findings + [Finding("config", "invalid", f"{problem} (fix it in {config_path})",
                                   ExitCode.CONFIG) for problem in exc.problems]
    findings = [Finding("config", "ok", f"{config_path}: {len(config.pairs)} pair(s), "
                                        f"{len(config.accounts)} account(s)")]
    findings += file_permissions(config_path, config.service.state_dir)
    key = key_check(config, findings)
    findings += keep_title_check(config)
    transports = account_checks(config, findings)
    try:
        for index, pair in enumerate(config.pairs):
            findings += checked_pair(config, index, pair, transports, key)
    finally:
        for transport in transports.values():
            if transport is not None:
                transport.close()
    return findings


def key_check(config: Config, findings: list[Finding]) -> bytes | None:
    """The UID key, read only (a missing one is made by the first sync; a weak one is refused)."""
    try:
        return credentials.existing_uid_key(config.service.state_dir)
    except SecretError as exc:
        findings.append(Finding("uid-key", "unusable", str(exc), ExitCode.CONFIG))
        return None


def checked_pair(config: Config, index: int, pair: Pair,
                 transports: dict[str, Transport | None], key: bytes | None) -> list[Finding]:
    """The pair's row, then what its calendars hold that shows a mix-up (target = source,
    another installation writing the same calendar)."""
    item = f"pair {pair.name}"
    clash = target_checks.target_is_source(config, index, pair)
    if clash is not None:
        return [Finding(item, *clash)]
    finding = pair_check(index, pair, transports)
    source = transports.get(pair.source_account.name)
    target = transports.get(pair.target_account.name)
    caldav = {pair.source_account.kind, pair.target_account.kind} == {"caldav"}
    if finding.code is not ExitCode.OK or source is None or target is None or not caldav:
        return [finding]  # the contents checks compare CalDAV objects' UIDs
    try:
        problems = target_checks.contents_problems(pair, index, source, target, key)
    except StoreError as exc:
        return [finding, store_finding(item, exc, f"accounts.{pair.target_account.name}")]
    return [finding, *(Finding(item, *problem) for problem in problems)]


def keep_title_check(config: Config) -> list[Finding]:
    """A keep-title rule without agency_domains also keeps the titles of outside invitations."""
    if config.service.agency_domains:
        return []
    kept = sorted({rule.where for pair in config.pairs for rule in pair.rules
                   if rule.action is Action.KEEP_TITLE})
    if not kept:
        return []
    return [Finding("config", "warning",
                    f"{', '.join(kept)}: keep-title also keeps the title of an invitation from "
                    "outside the agency; set [service] agency_domains")]


def file_permissions(config_path: Path, state_dir: Path | None) -> list[Finding]:
    """The config and the state (UID key, status) must be private to the service user."""
    problems = []
    paths: list[tuple[Path, str, int]] = [(config_path, "config file", 0o600)]
    if state_dir is not None:
        paths += [(state_dir, "state directory", 0o700),
                  (state_dir / credentials.UID_KEY, "UID key", 0o600)]
    for path, what, mode in paths:
        try:
            actual = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            continue  # a missing config is reported by the loader; the state is made 0700
        except OSError as exc:
            problems.append(Finding("permissions", "unreadable", f"{what} {path}: {exc.strerror}",
                                    ExitCode.CONFIG))
            continue
        if actual & 0o077:
            problems.append(Finding(
                "permissions", "too-open",
                f"{what} {path} is mode {actual:04o} (group/others have access): "
                f"run `chmod {mode:o} {path}`", ExitCode.CONFIG))
    if state_dir is None:
        return problems
    return problems or [Finding("permissions", "ok",
                                "config file and state directory are private to their owner")]


def password_fix(name: str, key_file: bool = False) -> str:
    """How to give an account its password (or a service account its key), for the way this
    process gets secrets."""
    if os.environ.get(credentials.CREDENTIALS_ENV):
        cred = f"{CREDENTIALS_DIR}/{name}.cred"
        source = "KEY.json" if key_file else "-"
        return (f"create it with `systemd-creds encrypt --name={name} {source} {cred}` and add "
                f"`LoadCredentialEncrypted={name}:{cred}` to the unit")
    if key_file:
        return f"run `jq -c . KEY.json | calendar-sanitizer set-password --stdin {name}`"
    return "see docs/keyring.md"  # the hint itself names both ways


def account_checks(config: Config, findings: list[Finding]) -> dict[str, Any]:
    """Password present, server reachable, TLS verified, password accepted: one PROPFIND each
    (for Microsoft 365, one token request). Values: a Transport, a GraphAccount, or None."""
    transports: dict[str, Any] = {}
    try:
        backend = credentials.select_backend(config.service.keyring_backend)
    except SecretError as exc:
        findings.append(Finding("keyring", "unusable", f"{exc}: check service.keyring_backend",
                                ExitCode.CONFIG))
        return {name: None for name in config.accounts}
    timeout = min(config.service.timeout.total_seconds(), CHECK_TIMEOUT)
    for name, account in sorted(config.accounts.items()):
        transports[name] = None
        try:
            if account.kind == "microsoft365":
                password = credentials.password(backend, account.secret_name)
            else:
                transport = transport_for(account, backend, timeout, Backoff(attempts=1),
                                          account_urls(config, account))
        except SecretError as exc:
            google = account.kind == "google"
            findings.append(Finding(f"account {name}", "no-key" if google else "no-password",
                                    f"{exc.hint}; {password_fix(account.secret_name, google)}",
                                    ExitCode.CONFIG))
            continue
        if account.kind == "microsoft365":
            fields, transports[name] = m365.account_check(
                account, password, timeout, [p.source_url for p in config.pairs])
            findings.append(Finding(*fields))
            continue
        finding = (token_finding(f"account {name}", account, transport)
                   if transport.credentials.bearer is not None
                   else probe_account(account, transport))
        findings.append(finding)
        if finding.code is ExitCode.OK or finding.result == TLS_OFF:
            transports[name] = transport
            _forget_rejection(config, name, findings)
        else:
            transport.close()
    return transports


def _forget_rejection(config: Config, name: str, findings: list[Finding]) -> None:
    """The password works now: cycles may send it again (see rejected.py)."""
    try:
        if rejected.forget(config.service.state_dir, name):
            findings.append(Finding(f"account {name}", "ok", "the password was rejected "
                                    "before; cycles use it again from now on"))
    except OSError as exc:
        findings.append(Finding(f"account {name}", "warning", "cannot clear the earlier "
                                f"rejection in {config.service.state_dir} ({exc.strerror}); "
                                "run check as the service's user"))


def probe_account(account: Account, transport: Transport) -> Finding:
    """PROPFIND the account URL: reachability, TLS and the password in one request."""
    item = f"account {account.name}"
    try:
        status, _ = propfind(transport, account.url)
    except StoreError as exc:
        return store_finding(item, exc, f"accounts.{account.name}")
    if status == 404:
        return Finding(item, "not-found", f"no such collection {account.url}: check "
                       f"accounts.{account.name}.url", ExitCode.CONFIG)
    if status != 207:
        return Finding(item, "unavailable", f"PROPFIND {account.url} answered HTTP {status}",
                       ExitCode.UNAVAILABLE)
    scheme = urlsplit(account.url).scheme
    if scheme == "http":
        return Finding(item, "ok", f"password accepted by {account.url} (plain http, loopback)")
    if not account.verify_tls and account.ca_file is None:
        return Finding(item, TLS_OFF, f"password accepted by {account.url}, but TLS "
                       "verification is OFF, so anyone on the path can read the password and "
                       f"calendars: set accounts.{account.name}.ca_file to the server's CA and "
                       "remove verify_tls = false", ExitCode.CONFIG)
    return Finding(item, "ok", f"password accepted by {account.url}; TLS certificate verified")


def token_finding(item: str, account: Account, transport: Transport) -> Finding:
    """An OAuth account has no page of its own to PROPFIND: mint a token, which proves the key,
    the delegation and the scopes; the pairs then show what the user may read and write."""
    assert transport.credentials.bearer is not None
    try:
        transport.credentials.bearer.authorization()
    except StoreError as exc:
        if exc.status == 401:
            return Finding(item, "token-refused", f"{exc}: check that the service account's "
                           "client ID has domain-wide delegation for the calendar scope and "
                           f"that accounts.{account.name}.impersonate is a user of the domain",
                           ExitCode.NOPERM)
        return store_finding(item, exc, f"accounts.{account.name}")
    return Finding(item, "ok", f"token issued for {account.impersonate}")


def store_finding(item: str, exc: StoreError, where: str, advice: str = "") -> Finding:
    """A failed request as a finding with a fix (and the service's own advice for a 403)."""
    if exc.status == 401:
        return Finding(item, "auth-rejected", f"{exc.operation} {exc.url}: the server rejected "
                       f"the user name or password: check {where}.username and the stored "
                       "password", ExitCode.NOPERM)
    if exc.status == 403 or exc.reason == "auth-rejected":
        fix = advice or "ask the server's admin, or check the URL"
        return Finding(item, "forbidden", f"{exc.operation} {exc.url}: the account has no access "
                       f"to it: {fix}", ExitCode.NOPERM)
    if exc.reason == "tls-verification-failed":
        return Finding(item, "tls-failed", f"{exc.url}: the TLS certificate did not verify: set "
                       f"{where}.ca_file to the CA that signed it, or fix the server's "
                       "certificate", ExitCode.UNAVAILABLE)
    if exc.reason in ("connection-failed", "timeout"):
        return Finding(item, "unreachable", f"{exc.url}: {exc.reason}: check {where}.url and "
                       "that the server is up and reachable from this host",
                       ExitCode.UNAVAILABLE)
    return Finding(item, "unavailable", f"{exc}", ExitCode.UNAVAILABLE)


def propfind(transport: Transport, url: str) -> tuple[int, Any]:
    """(status, prop element) of a Depth 0 PROPFIND; a 207 that holds a 404 is a 404."""
    reply = transport.request("PROPFIND", url, _PROPFIND, {"Depth": "0", **XML_HEADERS})
    if reply.status != 207:
        return reply.status, None
    own = urlsplit(url).path.rstrip("/")
    entries = list(multistatus(reply, url, "PROPFIND"))
    for href, status, prop in entries:
        if urlsplit(href).path.rstrip("/") == own:
            return (207 if status == 200 else status), prop
    if entries:
        _, status, prop = entries[0]
        return (207 if status == 200 else status), prop
    return 404, None


def _resource_types(prop: Any) -> set[str]:
    node = prop.find(DAV + "resourcetype") if prop is not None else None
    return {child.tag for child in node} if node is not None else set()


def _privileges(prop: Any) -> set[str] | None:
    """The privileges the server says we have, or None if it does not say."""
    node = prop.find(DAV + "current-user-privilege-set") if prop is not None else None
    if node is None:
        return None
    return {child.tag for privilege in node.iter(DAV + "privilege") for child in privilege}


def pair_check(index: int, pair: Pair, transports: dict[str, Any]) -> Finding:
    """The source can be queried; the target is a writable calendar or can be created."""
    item = f"pair {pair.name}"
    source = transports.get(pair.source_account.name)
    target = transports.get(pair.target_account.name)
    if source is None or target is None:
        account = pair.source_account if source is None else pair.target_account
        return Finding(item, "not-checked", f"account {account.name} has a problem (see above)")
    where = f"pairs[{index}]"
    try:
        problem = (m365.source_problem(source, pair, where)
                   if pair.source_account.kind == "microsoft365"
                   else source_problem(source, pair, where))
    except StoreError as exc:
        return store_finding(item, exc, f"accounts.{pair.source_account.name}",
                             forbidden_advice(source))
    if problem is not None:
        return Finding(item, *problem)
    try:
        result, detail, code = (m365.target_result(target, pair, where)
                                if pair.target_account.kind == "microsoft365"
                                else target_result(target, pair, where))
    except StoreError as exc:
        return store_finding(item, exc, f"accounts.{pair.target_account.name}",
                             forbidden_advice(target))
    if code is not ExitCode.OK:
        return Finding(item, result, detail, code)
    return Finding(item, result, f"source readable; {detail}")


def forbidden_advice(connection: Any) -> str:
    """What to do about a 403: the server's own advice (a Transport's), or for Microsoft 365
    the app's mailbox scope."""
    differences = getattr(connection, "differences", None)
    if differences is not None:
        return str(differences.forbidden_advice)
    return m365.FORBIDDEN_ADVICE


def source_problem(transport: Transport, pair: Pair,
                   where: str) -> tuple[str, str, ExitCode] | None:
    """One calendar-query over a one-minute window, ETags only: no event data is fetched."""
    start = datetime.now(UTC).replace(microsecond=0)
    body = _ETAGS_ONLY.format(start=start, end=start + timedelta(minutes=1)).encode()
    reply = transport.request("REPORT", pair.source_url, body, {"Depth": "1", **XML_HEADERS})
    if reply.status == 404:
        return ("source-missing", f"no calendar at {pair.source_url}: check {where}.source",
                ExitCode.CONFIG)
    if reply.status != 207:
        return ("source-unreadable", f"REPORT {pair.source_url} answered HTTP {reply.status}: "
                f"check that {where}.source is a calendar", ExitCode.CONFIG)
    return None


def target_result(transport: Transport, pair: Pair, where: str) -> tuple[str, str, ExitCode]:
    """The target is a calendar we may write, or its parent is a collection we may create in."""
    status, prop = propfind(transport, pair.target_url)
    if status == 207:
        if CALDAV + "calendar" not in _resource_types(prop):
            return ("target-not-calendar", f"{pair.target_url} exists but is not a calendar: "
                    f"point {where}.target at a calendar or a new name", ExitCode.CONFIG)
        privileges = _privileges(prop)
        if privileges is not None and not privileges & _WRITE:
            return ("target-read-only", f"account {pair.target_account.name} may not write "
                    f"{pair.target_url}: grant write access on the server", ExitCode.NOPERM)
        return "ok", "target is a writable calendar", ExitCode.OK
    if status != 404:
        return ("target-unavailable", f"PROPFIND {pair.target_url} answered HTTP {status}",
                ExitCode.UNAVAILABLE)
    if not transport.differences.makes_calendars:
        return ("target-missing", f"no calendar at {pair.target_url} ({where}.target): "
                f"{transport.differences.missing_calendar_advice}", ExitCode.CONFIG)
    return parent_result(transport, pair, where)


def parent_result(transport: Transport, pair: Pair, where: str) -> tuple[str, str, ExitCode]:
    """A missing target: MKCALENDAR needs its parent to be a collection we may create in."""
    parent = urljoin(pair.target_url, "..")
    parent_status, parent_prop = propfind(transport, parent)
    if parent_status != 207 or DAV + "collection" not in _resource_types(parent_prop):
        return ("target-missing", f"neither {pair.target_url} nor its parent {parent} exists: "
                f"check {where}.target", ExitCode.CONFIG)
    privileges = _privileges(parent_prop)
    if privileges is not None and not privileges & _CREATE:
        return ("cannot-create", f"{pair.target_url} does not exist and account "
                f"{pair.target_account.name} may not create it in {parent}: create the "
                "calendar on the server or grant access", ExitCode.NOPERM)
    existing = ", ".join(c.url[len(parent):] for c in list_calendars(transport, parent)[:10])
    return ("target-missing", f"{pair.target_url} does not exist, and no cycle creates it. "
            f"Calendars in {parent}: {existing or 'none'}. If {where}.target has a typo, fix "
            f"it; if the name is right, run `{ADMIN} create-target {pair.name}`",
            ExitCode.CONFIG)
