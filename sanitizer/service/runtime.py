"""Wiring: config + secrets -> stores per pair (CalDAV or Microsoft 365), and one cycle over them.

One Transport (or Graph connection) per account, shared by every pair that uses it.
A pair whose password is missing or whose server is down fails alone; the others run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sanitizer.core.model import Action
from sanitizer.core.policy import Policy
from sanitizer.engine import sync_state
from sanitizer.engine.reconcile import PairReport, sync_pair
from sanitizer.errors import SecretError
from sanitizer.service import credentials, lock, status
from sanitizer.service.config import Account, Config, Pair
from sanitizer.stores.base import SourceCalendar, TargetCalendar
from sanitizer.stores.caldav import CalDAVSource, CalDAVTarget, Credentials, Transport

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a cycle needs that is read once: transports (with passwords) and the UID key."""

    config: Config
    key: bytes
    transports: dict[str, Transport] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # account -> why it has no password
    graphs: dict[str, Any] = field(default_factory=dict)  # Microsoft 365 account -> GraphAccount

    def transport(self, account: Account) -> Transport | None:
        """The account's transport, or None if its password is missing."""
        return self.transports.get(account.name)

    def source(self, pair: Pair) -> SourceCalendar | None:
        """The pair's source store, or None if its account's secret is missing."""
        account = pair.source_account
        if account.kind == "microsoft365":
            graph = self.graphs.get(account.name)
            if graph is None:
                return None
            from sanitizer.stores.microsoft365.connect import source_for  # noqa: PLC0415

            return source_for(graph, pair.source_url, read_subject=reads_titles(pair))
        transport = self.transport(account)
        return None if transport is None else CalDAVSource(transport, pair.source_url)

    def target(self, pair: Pair) -> TargetCalendar | None:
        """The pair's target store, or None if its account's secret is missing."""
        account = pair.target_account
        if account.kind == "microsoft365":
            graph = self.graphs.get(account.name)
            if graph is None:
                return None
            from sanitizer.stores.microsoft365.connect import target_for  # noqa: PLC0415

            return target_for(graph, pair.target_url)
        transport = self.transport(account)
        return None if transport is None else CalDAVTarget(transport, pair.target_url)

    def close(self) -> None:
        """Close every connection."""
        for transport in self.transports.values():
            transport.close()
        for graph in self.graphs.values():
            graph.close()


def reads_titles(pair: Policy) -> bool:
    """Whether any rule of the pair reads event titles (keep-title, match_summary)."""
    return any(rule.action is Action.KEEP_TITLE or rule.match_summary is not None
               for rule in pair.rules)


def open_graph(account: Account, secret: str, timeout: float) -> Any:
    """A Microsoft 365 account's Graph connection (msal is imported only here)."""
    from sanitizer.stores.microsoft365.auth import AppLogin  # noqa: PLC0415
    from sanitizer.stores.microsoft365.connect import open_account  # noqa: PLC0415

    verify: bool | str = str(account.ca_file) if account.ca_file else account.verify_tls
    login = AppLogin(account.tenant_id, account.client_id, secret, account.authority,
                     timeout, verify)
    return open_account(login, account.url)


def credentials_for(account: Account, password: str, timeout: float) -> Credentials:
    """Client settings for an account; TLS is verified unless the admin turned it off."""
    verify: bool | str = account.verify_tls
    if account.ca_file is not None:
        verify = str(account.ca_file)
    return Credentials(account.url, account.username, password, verify, timeout)


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
            password = credentials.password(backend, account.secret_name)
        except SecretError as exc:
            runtime.missing[name] = str(exc)
            continue
        if account.kind == "microsoft365":
            runtime.graphs[name] = open_graph(account, password, timeout)
            continue
        runtime.transports[name] = Transport(credentials_for(account, password, timeout))
    return runtime


def sync_one(runtime: Runtime, pair: Pair, now: datetime, dry_run: bool = False,
             force_full: bool = False) -> PairReport:
    """One cycle of one pair, isolated from the others; its state is read and saved here."""
    source, target = runtime.source(pair), runtime.target(pair)
    if source is None or target is None:
        account = pair.source_account if source is None else pair.target_account
        report = PairReport(pair.name, dry_run=dry_run)
        report.error = runtime.missing.get(account.name, f"account {account.name}: no password")
        report.error_code = "password-missing"
        return report
    service = runtime.config.service
    report = sync_pair(
        pair, source, target, key=runtime.key, now=now, zone=service.timezone, dry_run=dry_run,
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
        try:
            report = sync_one(runtime, pair, now, dry_run, force_full)
        except Exception as exc:  # noqa: BLE001 - one pair's bug must not stop the others
            report = PairReport(pair.name, dry_run=dry_run)
            report.error = f"internal error ({type(exc).__name__})"
            report.error_code = "internal-error"
        log.info("%s", report.status_line())
        reports.append(report)
    if not dry_run and reports:
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
