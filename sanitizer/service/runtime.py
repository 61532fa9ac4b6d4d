"""Wiring: config + secrets -> CalDAV stores per pair, and one cycle over the pairs.

One Transport per account, shared by every pair that uses it (one connection pool per server).
A pair whose password is missing or whose server is down fails alone; the others run. Each pair's
cycle has a time budget: no request of it runs past the budget, so a slow server holds up its own
pair for a bounded time only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sanitizer.engine import sync_state
from sanitizer.engine.reconcile import PairReport, sync_pair
from sanitizer.errors import SecretError
from sanitizer.service import credentials, lock, status
from sanitizer.service.config import Account, Config, Pair
from sanitizer.stores.caldav import CalDAVSource, CalDAVTarget, Credentials, Transport

log = logging.getLogger(__name__)
BUDGET_MIN = 60.0  # seconds: the least a pair's cycle may take before its requests are refused
BUDGET_TIMEOUTS = 10  # ... or this many request timeouts, whichever is longer
_STATUS_LOCK = threading.Lock()  # pairs may run at once; status.json is read, merged, written


def cycle_budget(timeout: float) -> float:
    """Seconds one pair's cycle may spend on requests, from the configured request timeout."""
    return max(BUDGET_MIN, BUDGET_TIMEOUTS * timeout)


@dataclass
class Runtime:
    """Everything a cycle needs that is read once: transports (with passwords) and the UID key."""

    config: Config
    key: bytes
    transports: dict[str, Transport] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # account -> why it has no password

    def transport(self, account: Account) -> Transport | None:
        """The account's transport, or None if its password is missing."""
        return self.transports.get(account.name)

    def close(self) -> None:
        """Close every connection."""
        for transport in self.transports.values():
            transport.close()


def credentials_for(account: Account, password: str, timeout: float,
                    bases: Iterable[str] = ()) -> Credentials:
    """Client settings for an account; TLS is verified unless the admin turned it off.

    Requests may go below the account URL and below `bases` (its calendars' URLs), nowhere else.
    """
    verify: bool | str = account.verify_tls
    if account.ca_file is not None:
        verify = str(account.ca_file)
    return Credentials(account.url, account.username, password, verify, timeout,
                       tuple(sorted(set(bases))))


def calendar_urls(config: Config, account: Account) -> list[str]:
    """The URLs of every calendar the config places on this account."""
    urls = [p.source_url for p in config.pairs if p.source_account.name == account.name]
    return urls + [p.target_url for p in config.pairs if p.target_account.name == account.name]


def warn_unverified(pair: Pair) -> None:
    """verify_tls = false is loud: a warning per cycle, naming the account (never a secret)."""
    for account in {a.name: a for a in (pair.source_account, pair.target_account)}.values():
        if not account.verify_tls and account.ca_file is None:
            log.warning("account %s: TLS certificate verification is OFF (verify_tls = false): "
                        "anyone on the path to %s can read its password and calendars; set "
                        "ca_file instead", account.name, account.url)


def open_runtime(config: Config, pairs: Iterable[Pair] | None = None) -> Runtime:
    """Read the UID key and the passwords of the accounts the chosen pairs use."""
    key = credentials.uid_key(config.service.state_dir)
    runtime = Runtime(config, key)
    backend = credentials.select_backend(config.service.keyring_backend)
    accounts = {a.name: a for p in (pairs or config.pairs)
                for a in (p.source_account, p.target_account)}
    timeout = config.service.timeout.total_seconds()
    for name, account in sorted(accounts.items()):
        try:
            password = credentials.password(backend, name)
        except SecretError as exc:
            runtime.missing[name] = str(exc)
            continue
        runtime.transports[name] = Transport(credentials_for(
            account, password, timeout, calendar_urls(config, account)))
    return runtime


def sync_one(runtime: Runtime, pair: Pair, now: datetime, dry_run: bool = False,
             force_full: bool = False) -> PairReport:
    """One cycle of one pair, isolated from the others; its state is read and saved here."""
    source_transport = runtime.transport(pair.source_account)
    target_transport = runtime.transport(pair.target_account)
    if source_transport is None or target_transport is None:
        account = pair.source_account if source_transport is None else pair.target_account
        report = PairReport(pair.name, dry_run=dry_run)
        report.error = runtime.missing.get(account.name, f"account {account.name}: no password")
        report.error_code = "password-missing"
        return report
    service = runtime.config.service
    until = time.monotonic() + cycle_budget(service.timeout.total_seconds())
    report = sync_pair(
        pair, CalDAVSource(source_transport.within_budget(until), pair.source_url),
        CalDAVTarget(target_transport.within_budget(until), pair.target_url),
        key=runtime.key, now=now, zone=service.timezone, dry_run=dry_run,
        workers=service.workers, state=sync_state.load(service.state_dir, pair.name),
        full_every=service.full_reconcile, force_full=force_full,
    )
    if report.state is not None:
        sync_state.save(service.state_dir, pair.name, report.state)
    elif not dry_run:
        sync_state.forget(service.state_dir, pair.name)
    return report


def run_cycle(runtime: Runtime, pairs: Iterable[Pair], now: datetime,
              dry_run: bool = False, force_full: bool = False) -> list[PairReport]:
    """One cycle over the given pairs; every pair runs whatever happens to the others."""
    reports = []
    state_dir = runtime.config.service.state_dir
    for pair in pairs:
        if status.is_paused(state_dir, pair.name):
            log.info("pair %s: paused (run `calendar-sanitizer resume %s`)", pair.name, pair.name)
            continue
        warn_unverified(pair)
        try:
            report = sync_one(runtime, pair, now, dry_run, force_full)
        except Exception as exc:  # noqa: BLE001 - one pair's bug must not stop the others
            report = PairReport(pair.name, dry_run=dry_run)
            report.error = f"internal error ({type(exc).__name__})"
            report.error_code = "internal-error"
        log.info("%s", report.status_line())
        reports.append(report)
    if not dry_run and reports:
        with _STATUS_LOCK:
            status.record(state_dir, reports, now)
    return reports


def run_locked(runtime: Runtime, pairs: Iterable[Pair], now: datetime,
               force_full: bool = False, wait: float = 30.0) -> list[PairReport]:
    """One cycle per pair, each under the pair's lock, so a `wipe` never interleaves with it."""
    reports: list[PairReport] = []
    state_dir = runtime.config.service.state_dir
    for pair in pairs:
        try:
            with lock.pair_lock(state_dir, pair.name, timeout=wait):
                reports.extend(run_cycle(runtime, [pair], now, force_full=force_full))
        except lock.PairBusy as exc:
            report = PairReport(pair.name)
            report.error, report.error_code = str(exc), "pair-busy"
            reports.append(report)
    return reports
