"""Wiring: config + secrets -> a connection per account and stores per pair.

One connection per account (see connections.py), shared by every pair that uses it. In the
service a Runtime is made twice: by the supervisor, which reads the key and the secrets and makes
no connection, and in each worker (worker.py) from the secrets its job carries. A pair whose
password is missing or whose server is down fails alone; the others run. Each pair's cycle has a
time budget: no request of it runs past the budget, so a slow server holds up its own pair for a
bounded time only (and the supervisor kills a worker that outlives it). The cycle itself is
cycle.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sanitizer.core.model import Action
from sanitizer.core.policy import Policy
from sanitizer.engine import ledger
from sanitizer.engine.report import PairReport
from sanitizer.errors import SecretError
from sanitizer.service import credentials, metrics, rejected, retirement
from sanitizer.service.config import Account, Config, Pair
from sanitizer.service.connections import Connection, connect, read_secret
from sanitizer.service.state_dir import StateDir
from sanitizer.stores.base import SourceCalendar, TargetCalendar
from sanitizer.stores.urls import within

log = logging.getLogger(__name__)
BUDGET_MIN = 60.0  # seconds: the least a pair's cycle may take before its requests are refused
BUDGET_TIMEOUTS = 10  # ... or this many request timeouts, whichever is longer


def cycle_budget(timeout: float) -> float:
    """Seconds one pair's cycle may spend on requests, from the configured request timeout."""
    return max(BUDGET_MIN, BUDGET_TIMEOUTS * timeout)


@dataclass
class Runtime:
    """Everything a cycle needs that is read once: each account's connection and the UID key."""

    config: Config
    key: bytes
    connections: dict[str, Connection] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # account -> why it has no secret
    throwaway_key: bool = False  # a dry run without a key: UIDs shown are not the real ones
    fingerprints: dict[str, str] = field(default_factory=dict)  # account -> rejected.fingerprint
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # account -> its secret
    sources: tuple[str, ...] | None = None  # every pair's source URL (a worker's config is
    # scoped to its pair: config.scoped); None: the config's own
    _targets: retirement.Targets | None = field(default=None, init=False, repr=False)

    @property
    def state(self) -> StateDir:
        """The state directory, as one object."""
        return StateDir(self.config.service.state_dir)

    @property
    def targets(self) -> retirement.Targets:
        """The config's calendars, normalised once, when first asked for (a worker for one
        pair's cycle never asks: it would cost time in proportion to the number of pairs)."""
        if self._targets is None:
            self._targets = retirement.Targets.of(self.config)
        return self._targets

    def source_urls(self) -> tuple[str, ...]:
        """Every configured pair's source URL: no target may be one of them."""
        if self.sources is None:
            self.sources = tuple(p.source_url for p in self.config.pairs)
        return self.sources

    def connect(self, pairs: Sequence[Pair] | None = None) -> None:
        """A connection per account whose secret was read (nothing is sent yet). Each token
        source is keyed by its account, so a worker can hand its token to the next one. With
        `pairs` (a worker for those pairs), requests are confined to their own calendars and
        their accounts' URLs: no other pair's calendar, and no ledger to read for them."""
        timeout = self.config.service.timeout.total_seconds()
        known = {} if pairs is not None else self.state.ledger()
        sources = self.source_urls()
        for name, secret in sorted(self.secrets.items()):
            account = self.config.accounts[name]
            bases = (account_urls(self.config, account, known) if pairs is None
                     else [url for pair in pairs for url in pair_urls(pair, account)])
            try:
                connection = connect(account, secret, timeout, bases=bases, sources=sources)
            except SecretError as exc:
                self.missing[name] = str(exc)
                continue
            share_tokens(connection, name)
            self.connections[name] = connection

    def source(self, pair: Pair, until: float | None = None) -> SourceCalendar | None:
        """The pair's source store (no request past `until`, monotonic), or None if its
        account's secret is missing."""
        connection = self.connections.get(pair.source_account.name)
        return None if connection is None else connection.source(
            pair.source_url, read_titles=reads_titles(pair), until=until)

    def target(self, pair: Pair, until: float | None = None) -> TargetCalendar | None:
        """The pair's target store, or None if its account's secret is missing."""
        return self.target_at(pair.target_account.name, pair.target_url, until)

    def target_at(self, account: str, url: str,
                  until: float | None = None) -> TargetCalendar | None:
        """A target store on one of the accounts, or None if the account has no connection."""
        connection = self.connections.get(account)
        return None if connection is None else connection.target(url, until=until)

    def connection(self, account: Account) -> Connection | None:
        """The account's connection, or None if it has none (no secret)."""
        return self.connections.get(account.name)

    def close(self) -> None:
        """Close every connection."""
        for connection in self.connections.values():
            connection.close()


def reads_titles(pair: Policy) -> bool:
    """Whether any rule of the pair reads event titles (keep-title, match_summary)."""
    return any(rule.action is Action.KEEP_TITLE or rule.match_summary is not None
               for rule in pair.rules)


def account_urls(config: Config, account: Account,
                 known: ledger.Ledger | None = None) -> list[str]:
    """Every calendar URL the config or the ledger places on this account: requests may go
    there (and below the account URL), nowhere else. `known`: the ledger, when the caller
    has read it already (once for all accounts)."""
    known = StateDir(config.service.state_dir).ledger() if known is None else known
    urls = [p.source_url for p in config.pairs if p.source_account.name == account.name]
    urls += [p.target_url for p in config.pairs if p.target_account.name == account.name]
    return urls + [url for url, record in known.items() if record.account == account.name]


def pair_urls(pair: Pair, account: Account) -> list[str]:
    """The pair's calendars that are on this account: all that its cycle may reach."""
    return [url for url, owner in ((pair.source_url, pair.source_account),
                                   (pair.target_url, pair.target_account))
            if owner.name == account.name]


def warn_unverified(pair: Pair) -> None:
    """verify_tls = false is loud: a warning per cycle, naming the account (never a secret)."""
    for account in {a.name: a for a in (pair.source_account, pair.target_account)}.values():
        if not account.verify_tls and account.ca_file is None:
            log.warning("account %s: TLS certificate verification is OFF (verify_tls = false): "
                        "anyone on the path to %s can read its password and calendars; set "
                        "ca_file instead", account.name, account.url)


def share_tokens(connection: Connection, account: str) -> None:
    """Name the connection's token source (if it has one) after its account, for handoff.py."""
    tokens: Any = connection.tokens()
    if tokens is not None:
        tokens.handoff_key = account


def require_runnable(config: Config) -> None:
    """What a valid config file still needs before anything can run (ConfigError, exit 78):
    one place, which `check` calls too, so it refuses whatever `run` and `sync` refuse."""
    metrics.require_library(config.service.metrics_file)


def open_runtime(config: Config, pairs: Iterable[Pair] | None = None,
                 dry_run: bool = False, connect: bool = True) -> Runtime:
    """Read the UID key and the secrets of the accounts the chosen pairs use; with `connect`,
    a connection per account (the supervisor only hands the secrets to its workers).

    A dry run makes nothing: without a key it uses a throwaway one (`runtime.throwaway_key`).
    """
    require_runnable(config)
    state = StateDir(config.service.state_dir)
    found = state.uid_key(dry_run=dry_run)
    runtime = Runtime(config, found or credentials.throwaway_uid_key(), throwaway_key=not found)
    backend = credentials.select_backend(config.service.keyring_backend)
    accounts = {a.name: a for p in (pairs or config.pairs)
                for a in (p.source_account, p.target_account)}
    if not dry_run:  # the accounts of retired targets, so that their clean-up can run
        for record in state.ledger().values():
            if record.account in config.accounts:
                accounts.setdefault(record.account, config.accounts[record.account])
    for name, account in sorted(accounts.items()):
        try:
            secret = read_secret(account, backend)
        except SecretError as exc:
            runtime.missing[name] = str(exc)
            continue
        runtime.secrets[name] = secret
        runtime.fingerprints[name] = rejected.fingerprint(runtime.key, account, secret)
    if connect:
        runtime.connect()
    return runtime


def target_clash(runtime: Runtime, pair: Pair) -> PairReport | None:
    """A failed report if the pair's target is some pair's source under another name (one
    lookup in the sources normalised once, whatever the number of pairs)."""
    clashes = set(runtime.targets.sources.matching(pair.target_url))
    for other in runtime.config.pairs if clashes else ():
        if other.source_url in clashes:
            return PairReport.failed(
                pair.name, "target-is-a-source",
                f"the target {pair.target_url} is the same calendar as the source of pair "
                f"{other.name} ({other.source_url}); refusing to write")
    return None


def retire_abandoned(runtime: Runtime, now: datetime) -> list[retirement.Retirement]:
    """Clean the targets no configured pair wants any more; a failure never stops the pairs."""
    try:
        return retirement.retire_abandoned(runtime.config, runtime.key, runtime.target_at, now,
                                           runtime.targets)
    except Exception as exc:  # noqa: BLE001 - the pairs' results stand whatever happens here
        log.error("retired targets: internal error (%s)", type(exc).__name__)
        return []


def refused(runtime: Runtime, pair: Pair, dry_run: bool) -> PairReport | None:
    """A failed report if an account of the pair has a password the server rejected before
    (nothing is sent with it until it changes), else None."""
    for account in {pair.source_account.name, pair.target_account.name}:
        fingerprint = runtime.fingerprints.get(account)
        if fingerprint and runtime.state.is_rejected(account, fingerprint):
            return PairReport.failed(pair.name, rejected.REASON, rejected.message(account),
                                     dry_run=dry_run)
    return None


def note_rejection(runtime: Runtime, pair: Pair, report: PairReport, now: datetime) -> None:
    """Remember a password the server rejected, so that it is not sent again."""
    if report.error_code != "auth-rejected" or report.dry_run:
        return
    for account in _rejected_accounts(pair, report.failed_url):
        fingerprint = runtime.fingerprints.get(account)
        if fingerprint:
            runtime.state.remember_rejection(account, fingerprint, now)


def _rejected_accounts(pair: Pair, url: str | None) -> set[str]:
    """The account whose request got the 401: the one whose calendar (else whose server
    address) holds the URL of the failed request, as the error carries it; both when that
    says nothing (the secret is asked for again either way)."""
    source, target = pair.source_account, pair.target_account
    if source.name == target.name:
        return {source.name}
    if url is not None:
        for bases in ((pair.source_url, pair.target_url), (source.url, target.url)):
            found = {account.name for account, base in zip((source, target), bases, strict=True)
                     if within(url, base)}
            if len(found) == 1:
                return found
    return {source.name, target.name}
