"""TOML configuration -> frozen dataclasses.

Every problem is collected and reported at once, one line each, starting with its key path. No
password key exists: secrets come from the keyring (see `credentials.py`).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sanitizer.core.durations import parse_duration
from sanitizer.core.model import Action, Label
from sanitizer.core.policy import Policy, Rule
from sanitizer.errors import ConfigError
from sanitizer.stores.account import NAME as _NAME
from sanitizer.stores.account import (
    Account,
    AccountFields,
    check_url,
    is_loopback_host,
)
from sanitizer.stores.registry import DEFAULT, KINDS, kind_of

DEFAULT_CONFIG_PATH = Path("/etc/calendar-sanitizer/config.toml")
CONFIG_ENV = "CALENDAR_SANITIZER_CONFIG"
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}", re.ASCII)
T = TypeVar("T")


__all__ = ["Account", "Config", "Pair", "Service", "check_url", "is_loopback_host",
           "load_config", "parse_config", "resolve_path"]


@dataclass(frozen=True, kw_only=True)
class Pair(Policy):
    """One advocate: a work calendar read, a phone calendar written, and the logins for each."""

    source_account: Account
    target_account: Account
    phone_user: str | None = None  # the phone's own read-only login, for phone-setup
    phone_url: str | None = None  # the phone calendar's URL as the phone sees it, if different


@dataclass(frozen=True)
class Service:
    """Settings for the whole process."""

    interval: timedelta = timedelta(minutes=5)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    state_dir: Path = Path("/var/lib/calendar-sanitizer")
    full_reconcile: timedelta = timedelta(hours=1)
    timeout: timedelta = timedelta(seconds=30)
    workers: int = 4
    parallel: int = 2  # pairs' cycles in flight at once, each in a worker process
    keyring_backend: str | None = None
    agency_domains: tuple[str, ...] = ()  # sorted, lower-case; empty when not set
    metrics_file: Path | None = None  # Prometheus text file for node_exporter, if wanted
    stale_after: timedelta | None = None  # `status` fails past this age; None: 3 x interval

    @property
    def stale_limit(self) -> timedelta:
        """How old a pair's last good cycle may be before `status` reports it."""
        return self.stale_after or 3 * self.interval


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    service: Service
    accounts: Mapping[str, Account]
    pairs: tuple[Pair, ...]
    path: Path | None = None

    def pair(self, name: str) -> Pair:
        """The pair with that name, or KeyError."""
        for pair in self.pairs:
            if pair.name == name:
                return pair
        raise KeyError(name)

    def scoped(self, *names: str) -> Config:
        """The config as a worker for these pairs needs it: those pairs and their accounts
        only, so that what a worker is handed (and unpickles) does not grow with the number of
        pairs."""
        pairs = tuple(self.pair(name) for name in names)
        accounts = {a.name: a for pair in pairs for a in (pair.source_account,
                                                          pair.target_account)}
        return Config(self.service, accounts, pairs, self.path)


def resolve_path(explicit: str | Path | None) -> Path:
    """--config, else $CALENDAR_SANITIZER_CONFIG, else the system path."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load_config(path: Path) -> Config:
    """Read and validate a config file; raise ConfigError with every problem found."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"], str(path)) from None
    except PermissionError:
        raise ConfigError([f"{path}: not readable by this user"], str(path)) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a file"], str(path)) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror})"], str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: TOML syntax error: {exc}"], str(path)) from None
    config = parse_config(data, source=str(path))
    return Config(config.service, config.accounts, config.pairs, path)


def parse_config(data: Mapping[str, Any], source: str = "config") -> Config:
    """Validate parsed TOML; raise ConfigError with every problem found."""
    reader = _Reader()
    config = reader.config(data)
    if reader.problems or config is None:
        raise ConfigError(reader.problems, source)
    return config


class _Reader:
    """Walks the TOML tree, building dataclasses and collecting problems with their key paths."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.invalid_accounts: set[str] = set()  # reported already; pairs stay quiet about them

    def problem(self, where: str, message: str) -> None:
        line = f"{where}: {message}"
        if line not in self.problems:
            self.problems.append(line)

    def get(self, table: Mapping[str, Any], where: str, key: str, kind: type[T],
            default: T | None = None, *, required: bool = False) -> T | None:
        if key not in table:
            if required:
                self.problem(f"{where}.{key}" if where else key, "missing")
            return default
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problem(f"{where}.{key}" if where else key,
                         f"expected {_kind_name(kind)}, got {_kind_name(type(value))}")
            return default
        return value

    def convert(self, table: Mapping[str, Any], where: str, key: str,
                parse: Callable[[str], T], default: T) -> T:
        text = self.get(table, where, key, str)
        if text is None:
            return default
        try:
            return parse(text)
        except (ValueError, KeyError) as exc:
            self.problem(f"{where}.{key}", str(exc))
            return default

    def known_keys(self, table: Mapping[str, Any], where: str, keys: set[str]) -> None:
        for key in table:
            if key not in keys:
                self.problem(f"{where}.{key}" if where else str(key), "unknown key")

    def table(self, parent: Mapping[str, Any], where: str, key: str) -> Mapping[str, Any]:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            self.problem(f"{where}.{key}" if where else key, "expected a table")
            return {}
        return value

    def array_of_tables(self, parent: Mapping[str, Any], where: str, key: str) -> list[Any]:
        value = parent.get(key, [])
        path = f"{where}.{key}" if where else key
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problem(path, f"expected an array of tables ([[{path}]])")
            return []
        return value

    def config(self, data: Mapping[str, Any]) -> Config | None:
        self.known_keys(data, "", {"service", "accounts", "pairs", "rules"})
        service = self.service(self.table(data, "", "service"))
        accounts = {
            name: account for name, table in self.table(data, "", "accounts").items()
            if (account := self.account(name, table)) is not None
        }
        global_rules = tuple(
            rule for i, table in enumerate(self.array_of_tables(data, "", "rules"))
            if (rule := self.rule(table, f"rules[{i}]")) is not None
        )
        pairs = tuple(
            pair for i, table in enumerate(self.array_of_tables(data, "", "pairs"))
            if (pair := self.pair(table, f"pairs[{i}]", accounts, global_rules)) is not None
        )
        if not pairs and "pairs" not in data:
            self.problem("pairs", "no [[pairs]] defined")
        self.cross_checks(pairs)
        pairs = tuple(replace(pair, agency_domains=service.agency_domains) for pair in pairs)
        return None if self.problems else Config(service, accounts, pairs)

    def service(self, table: Mapping[str, Any]) -> Service:
        where = "service"
        self.known_keys(table, where, {"interval", "timezone", "state_dir", "full_reconcile",
                                       "timeout", "workers", "parallel", "keyring_backend",
                                       "agency_domains", "metrics_file", "stale_after"})
        default = Service()
        interval = self.convert(table, where, "interval", parse_duration, default.interval)
        if interval < timedelta(seconds=5):
            self.problem(f"{where}.interval", "must be at least 5s")
        zone = self.convert(table, where, "timezone", _zone, default.timezone)
        state_dir = Path(self.get(table, where, "state_dir", str, str(default.state_dir)) or "")
        if not state_dir.is_absolute():
            self.problem(f"{where}.state_dir", "must be an absolute path")
        workers = self.get(table, where, "workers", int, default.workers)
        workers = default.workers if workers is None else workers
        if not 1 <= workers <= 32:
            self.problem(f"{where}.workers", "must be between 1 and 32")
        parallel = self.get(table, where, "parallel", int, default.parallel)
        parallel = default.parallel if parallel is None else parallel
        if not 1 <= parallel <= 16:
            self.problem(f"{where}.parallel", "must be between 1 and 16")
        backend = self.get(table, where, "keyring_backend", str)
        timeout = self.convert(table, where, "timeout", parse_duration, default.timeout)
        if timeout < timedelta(seconds=1):
            self.problem(f"{where}.timeout", "must be at least 1s")
        metrics_file = self.get(table, where, "metrics_file", str)
        if metrics_file is not None and not Path(metrics_file).is_absolute():
            self.problem(f"{where}.metrics_file", "must be an absolute path")
        return Service(
            interval=interval, timezone=zone, state_dir=state_dir,
            metrics_file=Path(metrics_file) if metrics_file else None,
            stale_after=self.convert(table, where, "stale_after", parse_duration, None),
            full_reconcile=self.convert(table, where, "full_reconcile", parse_duration,
                                        default.full_reconcile),
            timeout=timeout, workers=workers, parallel=parallel, keyring_backend=backend,
            agency_domains=self.domains(table, where, "agency_domains"),
        )

    def domains(self, table: Mapping[str, Any], where: str, key: str) -> tuple[str, ...]:
        if key not in table:
            return ()
        names = self.string_list(table, where, key)
        if table[key] == []:
            self.problem(f"{where}.{key}", "list at least one domain, or leave the key out")
        found = set()
        for name in names:
            domain = name.strip().rstrip(".").lower()
            if not _DOMAIN.fullmatch(domain) or len(domain) > 253:
                self.problem(f"{where}.{key}", f"{name!r} is not a domain name "
                             "(expected one like agency.example.org)")
            found.add(domain)
        return tuple(sorted(found))

    def account(self, name: str, table: Any) -> Account | None:
        where = f"accounts.{_bare_or_quoted(name)}"
        self.invalid_accounts.add(name)  # until it turns out valid
        if not isinstance(table, dict):
            self.problem(where, "expected a table")
            return None
        count = len(self.problems)
        if not _NAME.match(name):
            self.problem(where, "account names use letters, digits, '_', '.', '-' (max 64)")
        if "password" in table:
            self.problem(f"{where}.password", "passwords do not belong in the config file; "
                         f"store it with: calendar-sanitizer set-password {name}")
            table = {k: v for k, v in table.items() if k != "password"}
        kind_name = self.get(table, where, "kind", str, DEFAULT) or DEFAULT
        kind = KINDS.get(kind_name)
        if kind is None:
            self.problem(f"{where}.kind", "expected one of " + ", ".join(sorted(KINDS)))
            return None
        account = kind.read(AccountFields(self, table, where, name))
        if len(self.problems) > count or account is None:
            return None
        self.invalid_accounts.discard(name)
        return account

    def pair(self, table: Mapping[str, Any], where: str, accounts: Mapping[str, Account],
             global_rules: tuple[Rule, ...]) -> Pair | None:
        count = len(self.problems)
        self.known_keys(table, where, {
            "name", "account", "source_account", "target_account", "source", "target",
            "lookahead", "retention", "title", "location", "alarm", "rules",
            "phone_user", "phone_url"})
        name = self.get(table, where, "name", str, required=True) or ""
        if name and not _NAME.match(name):
            self.problem(f"{where}.name", "pair names use letters, digits, '_', '.', '-' (max 64)")
        source_account = self.pick_account(table, where, "source_account", accounts)
        target_account = self.pick_account(table, where, "target_account", accounts)
        source = self.calendar_url(table, where, "source", source_account)
        target = self.calendar_url(table, where, "target", target_account)
        title = self.label(table, where, "title") or Label("Appointment")
        location = self.label(table, where, "location")
        alarm: timedelta | None = self.convert(table, where, "alarm", parse_duration, None)
        rules = tuple(
            rule for i, rule_table in enumerate(self.array_of_tables(table, where, "rules"))
            if (rule := self.rule(rule_table, f"{where}.rules[{i}]")) is not None
        )
        pair = Pair(
            name=name, source_account=source_account or _NO_ACCOUNT,
            target_account=target_account or _NO_ACCOUNT, source_url=source, target_url=target,
            lookahead=self.convert(table, where, "lookahead", parse_duration, timedelta(days=14)),
            retention=self.convert(table, where, "retention", parse_duration, timedelta(hours=24)),
            title=title, location=location, alarm=alarm, rules=rules + global_rules,
            phone_user=self.get(table, where, "phone_user", str),
            phone_url=self.phone_url(table, where),
        )
        if pair.lookahead > timedelta(days=366):
            self.problem(f"{where}.lookahead", "must be at most 366d")
        if pair.retention > timedelta(days=366):
            self.problem(f"{where}.retention", "must be at most 366d")
        if len(self.problems) > count or source_account is None or target_account is None:
            return None
        return pair

    def pick_account(self, table: Mapping[str, Any], where: str, key: str,
                     accounts: Mapping[str, Account]) -> Account | None:
        name = self.get(table, where, key, str) or self.get(table, where, "account", str)
        if name is None:
            if key == "source_account":  # report a missing account once per pair
                self.problem(f"{where}.account", "missing (or source_account and target_account)")
            return None
        if name not in accounts:
            used = key if key in table else "account"
            if name not in self.invalid_accounts:  # an invalid one was reported where it is
                self.problem(f"{where}.{used}", f"no [accounts.{_bare_or_quoted(name)}] defined")
            return None
        return accounts[name]

    def calendar_url(self, table: Mapping[str, Any], where: str, key: str,
                     account: Account | None) -> str:
        text = self.get(table, where, key, str, required=True)
        if not text or account is None:
            return ""
        try:
            return kind_of(account).calendar_url(account, text)
        except ValueError as exc:
            self.problem(f"{where}.{key}", str(exc))
            return ""

    def phone_url(self, table: Mapping[str, Any], where: str) -> str | None:
        url = self.get(table, where, "phone_url", str)
        if url is not None and (problem := check_url(url)):
            self.problem(f"{where}.phone_url", problem)
        return url

    def label(self, table: Mapping[str, Any], where: str, key: str) -> Label | None:
        text = self.get(table, where, key, str)
        if text is None:
            return None
        try:
            return Label(text)
        except ValueError as exc:
            self.problem(f"{where}.{key}", str(exc))
            return None

    def rule(self, table: Mapping[str, Any], where: str) -> Rule | None:
        count = len(self.problems)
        self.known_keys(table, where, {"match_categories", "match_class", "match_summary",
                                       "action", "title", "location"})
        action_text = self.get(table, where, "action", str, "sanitize") or "sanitize"
        try:
            action = Action(action_text)
        except ValueError:
            self.problem(f"{where}.action", "expected one of sanitize, keep-title, skip")
            action = Action.SANITIZE
        categories = self.string_list(table, where, "match_categories")
        classes = self.string_list(table, where, "match_class")
        pattern = self.get(table, where, "match_summary", str)
        compiled = None
        if pattern is not None:
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                self.problem(f"{where}.match_summary", f"invalid regular expression ({exc.msg})")
        title = self.label(table, where, "title")
        location = self.label(table, where, "location")
        if action is not Action.SANITIZE and title is not None:
            self.problem(f"{where}.title", f"only a sanitize rule takes a title, not {action_text}")
        if len(self.problems) > count:
            return None
        return Rule(where=where, action=action,
                    match_categories=frozenset(c.casefold() for c in categories),
                    match_class=frozenset(c.upper() for c in classes),
                    match_summary=compiled, title=title, location=location)

    def string_list(self, table: Mapping[str, Any], where: str, key: str) -> list[str]:
        value = self.get(table, where, key, list, [])
        if value is None or not all(isinstance(item, str) for item in value):
            self.problem(f"{where}.{key}", "expected a list of strings")
            return []
        return value

    def cross_checks(self, pairs: tuple[Pair, ...]) -> None:
        """Names unique; no target shared or used as a source (the source must never be written)."""
        seen_names: dict[str, int] = {}
        sources = {pair.source_url for pair in pairs}
        targets: dict[str, str] = {}
        for i, pair in enumerate(pairs):
            if pair.name in seen_names:
                self.problem(f"pairs[{i}].name", f"duplicate pair name {pair.name!r}")
            seen_names.setdefault(pair.name, i)
            if pair.target_url in sources:
                self.problem(f"pairs[{i}].target", "is also a source calendar; refusing to write")
            if pair.target_url in targets:
                self.problem(f"pairs[{i}].target",
                             f"is already the target of pair {targets[pair.target_url]!r}")
            targets.setdefault(pair.target_url, pair.name)


_NO_ACCOUNT = Account("", "")


def _bare_or_quoted(key: str) -> str:
    """A key as TOML writes it in a path: bare if it can be, quoted otherwise."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else '"' + key.replace('"', '\\"') + '"'


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone (expected an IANA name like Europe/Berlin)") from None


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "an integer", bool: "true or false", list: "a list",
            dict: "a table", float: "a number"}.get(kind, kind.__name__)
