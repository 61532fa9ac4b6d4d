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
from datetime import UTC, datetime
from pathlib import Path

from sanitizer.core.model import Action
from sanitizer.errors import ConfigError, ExitCode, SecretError, StoreError
from sanitizer.service import credentials, rejected, target_checks
from sanitizer.service.config import Config, Pair, load_config
from sanitizer.service.connections import read_secret
from sanitizer.service.runtime import account_urls, require_runnable
from sanitizer.stores.kind import AccountProbe, Probe
from sanitizer.stores.registry import kind_of

CREDENTIALS_DIR = "/etc/calendar-sanitizer/credentials"
CHECK_TIMEOUT = 15.0  # seconds; a check should answer quickly even if the service waits longer
SEVERITY = (ExitCode.CONFIG, ExitCode.NOPERM, ExitCode.UNAVAILABLE)


@dataclass(frozen=True)
class Finding:
    """One row of the table."""

    item: str  # "config", "permissions", "account NAME", "pair NAME"
    result: str  # "ok", "warning", or a short problem code
    detail: str  # what was found and, for a problem, what to do
    code: ExitCode = ExitCode.OK

    @classmethod
    def of(cls, item: str, probe: Probe) -> Finding:
        """A store's probe result as this item's row."""
        return cls(item, probe.result, probe.detail, probe.code)


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
    probes = account_checks(config, findings)
    try:
        for index, pair in enumerate(config.pairs):
            findings += checked_pair(config, index, pair, probes, key)
    finally:
        for probe in probes.values():
            if probe is not None:
                probe.close()
    return findings


def key_check(config: Config, findings: list[Finding]) -> bytes | None:
    """The UID key, read only (a missing one is made by the first sync; a weak one is refused)."""
    try:
        return credentials.existing_uid_key(config.service.state_dir)
    except SecretError as exc:
        findings.append(Finding("uid-key", "unusable", str(exc), ExitCode.CONFIG))
        return None


def checked_pair(config: Config, index: int, pair: Pair,
                 probes: dict[str, AccountProbe | None], key: bytes | None) -> list[Finding]:
    """The pair's row, then what its calendars hold that shows a mix-up (target = source,
    another installation writing the same calendar)."""
    item = f"pair {pair.name}"
    clash = target_checks.target_is_source(config, index, pair)
    if clash is not None:
        return [Finding(item, *clash)]
    finding = pair_check(index, pair, probes)
    source = probes.get(pair.source_account.name)
    target = probes.get(pair.target_account.name)
    if finding.code is not ExitCode.OK or source is None or target is None:
        return [finding]
    source_store = source.compared_source(pair.source_url)
    target_store = target.compared_target(pair.target_url)
    if source_store is None or target_store is None:
        return [finding]  # only where both sides keep the UIDs the server stores
    try:
        problems = target_checks.contents_problems(pair, index, source_store, target_store, key)
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


def account_checks(config: Config, findings: list[Finding]) -> dict[str, AccountProbe | None]:
    """Secret present, server reachable, TLS verified, secret accepted: one request each, as
    the account's kind makes it. Values: the probe for the account's pairs, or None."""
    probes: dict[str, AccountProbe | None] = {}
    try:
        backend = credentials.select_backend(config.service.keyring_backend)
    except SecretError as exc:
        findings.append(Finding("keyring", "unusable", f"{exc}: check service.keyring_backend",
                                ExitCode.CONFIG))
        return {name: None for name in config.accounts}
    sources = [p.source_url for p in config.pairs]
    timeout = min(config.service.timeout.total_seconds(), CHECK_TIMEOUT)
    for name, account in sorted(config.accounts.items()):
        probes[name] = None
        kind, item = kind_of(account), f"account {name}"
        try:
            found, probe = kind.probe(account, read_secret(account, backend), timeout=timeout,
                                      bases=account_urls(config, account), sources=sources)
        except SecretError as exc:
            fix = password_fix(account.secret_name, kind.secret_file)
            findings.append(Finding(item, "no-key" if kind.secret_file else "no-password",
                                    f"{exc.hint}; {fix}", ExitCode.CONFIG))
            continue
        except StoreError as exc:
            findings.append(store_finding(item, exc, f"accounts.{name}"))
            continue
        findings.append(Finding.of(item, found))
        if probe is not None:
            probes[name] = probe
            _forget_rejection(config, name, findings)
    return probes


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


def pair_check(index: int, pair: Pair, probes: dict[str, AccountProbe | None]) -> Finding:
    """The source can be read; the target is a writable calendar (or says how to make one)."""
    item = f"pair {pair.name}"
    source = probes.get(pair.source_account.name)
    target = probes.get(pair.target_account.name)
    if source is None or target is None:
        account = pair.source_account if source is None else pair.target_account
        return Finding(item, "not-checked", f"account {account.name} has a problem (see above)")
    where = f"pairs[{index}]"
    try:
        problem = source.source(pair, where, datetime.now(UTC))
    except StoreError as exc:
        return store_finding(item, exc, f"accounts.{pair.source_account.name}",
                             source.forbidden_advice)
    if problem is not None:
        return Finding.of(item, problem)
    try:
        found = target.target(pair, where, pair.target_account.name)
    except StoreError as exc:
        return store_finding(item, exc, f"accounts.{pair.target_account.name}",
                             target.forbidden_advice)
    if found.code is not ExitCode.OK:
        return Finding.of(item, found)
    return Finding(item, found.result, f"source readable; {found.detail}")
