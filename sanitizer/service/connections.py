"""An account and its secret -> a connection that hands out stores.

Which kinds of account exist, and how each connects, is the registry's business
(stores/registry.py); this module only reads the secret and asks the account's kind.
"""

from __future__ import annotations

from collections.abc import Iterable

from keyring.backend import KeyringBackend

from sanitizer.errors import SecretError
from sanitizer.service import credentials
from sanitizer.stores.account import Account
from sanitizer.stores.kind import Connection
from sanitizer.stores.registry import kind_of
from sanitizer.stores.retry import Backoff

__all__ = ["Connection", "connect", "open_connection", "read_secret"]


def read_secret(account: Account, backend: KeyringBackend) -> str:
    """The account's secret (password, service account key or app credential); SecretError
    that names it as the account's kind does."""
    try:
        return credentials.password(backend, account.secret_name)
    except SecretError as exc:
        if exc.what == account.secret_label:
            raise
        raise SecretError(account.secret_label, exc.hint) from None


def connect(account: Account, secret: str, timeout: float, retry: Backoff | None = None,
            bases: Iterable[str] = (), sources: Iterable[str] = ()) -> Connection:
    """The account's connection (nothing is sent yet); SecretError if the secret is unusable.
    Requests go only below the account URL and below `bases` (its calendars' URLs); a target is
    never one of `sources` (every pair's source URL)."""
    return kind_of(account).connect(account, secret, timeout=timeout, retry=retry, bases=bases,
                                    sources=sources)


def open_connection(account: Account, backend: KeyringBackend, timeout: float,
                    retry: Backoff | None = None, bases: Iterable[str] = ()) -> Connection:
    """The account's connection, its secret read from the keyring now."""
    return connect(account, read_secret(account, backend), timeout, retry, bases)
