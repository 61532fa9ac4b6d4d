"""What a kind of account supplies: its config reader, its connection, its `check` probes and
its `discover`. Nothing above `stores/` knows which kinds exist; it asks the registry
(registry.py) for an account's kind and calls these.

To add a kind: a package under `stores/` with an `Account` subclass and an `AccountKind`
subclass, and one line in registry.py (docs/architecture.md, "Adding a kind of account").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol
from urllib.parse import urljoin, urlsplit

from sanitizer.core.policy import Policy
from sanitizer.errors import ExitCode, StoreError
from sanitizer.stores.account import Account, AccountFields, check_url, with_slash
from sanitizer.stores.base import SourceCalendar, TargetCalendar
from sanitizer.stores.retry import Backoff


@dataclass(frozen=True)
class Probe:
    """One neutral result of a `check` probe: a short code, what to do, and how bad it is."""

    result: str  # "ok", "warning", or a short problem code
    detail: str
    code: ExitCode = ExitCode.OK


@dataclass(frozen=True)
class Missing:
    """What a connection can say about a missing phone calendar."""

    beside: list[str] | None  # the calendars beside it (their URLs), None if it cannot list
    advice: str | None  # how to make it on this service, None: `create-target`


class Connection(Protocol):
    """One account's connection; its stores share its connection pool and its secret."""

    def source(self, url: str, *, read_titles: bool,
               until: float | None = None) -> SourceCalendar:
        """The work calendar at `url`, read only; no request past `until` (monotonic)."""
        ...

    def target(self, url: str, *, until: float | None = None) -> TargetCalendar:
        """The phone calendar at `url`; no request past `until` (monotonic)."""
        ...

    def tokens(self) -> Any:
        """The account's token source, handed from worker to worker (handoff.py), or None."""
        ...

    def missing(self, url: str, shown: int) -> Missing:
        """For a missing phone calendar at `url`: up to `shown` calendars beside it, and how
        this service makes one."""
        ...

    def create_calendar(self, url: str) -> bool:
        """Make the phone calendar at `url` if it is missing; False if it was there already."""
        ...

    def close(self) -> None:
        """Close every socket."""
        ...


class AccountProbe(Protocol):
    """An account that answered `check`'s first request: it now checks its pairs' calendars,
    read only, and says what it found as Probes (a StoreError is rendered by `check`)."""

    @property
    def forbidden_advice(self) -> str:
        """What to do about a 403 on this service."""
        ...

    def source(self, pair: Policy, where: str, now: datetime) -> Probe | None:
        """The source can be read (one small read, no event data); a problem, or None."""
        ...

    def target(self, pair: Policy, where: str, account: str) -> Probe:
        """The target is a calendar `account` may write, or what is wrong with it."""
        ...

    def compared_source(self, url: str) -> SourceCalendar | None:
        """A source store whose objects carry the UIDs the service keeps, for `check` to
        compare a target's contents with its source's; None where UIDs are not comparable."""
        ...

    def compared_target(self, url: str) -> TargetCalendar | None:
        """The same for the target."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class AccountKind(ABC):
    """A kind of account. Subclasses set `name` and implement what their service needs."""

    name: ClassVar[str]
    preload: ClassVar[tuple[str, ...]] = ()  # modules a worker of this kind imports
    hands_off_tokens: ClassVar[bool] = False  # one token per lifetime, across workers
    secret_file: ClassVar[bool] = False  # the secret is a key file (JSON), not a password
    secret_document: ClassVar[bool] = False  # `set-password --stdin` reads all of its input

    @abstractmethod
    def read(self, fields: AccountFields) -> Account | None:
        """The account from its table (problems go to `fields`); None if it has any."""
        raise NotImplementedError

    def calendar_url(self, account: Account, text: str) -> str:
        """A pair's `source` or `target` as a URL of this account; ValueError says why not.
        By default a URL or a path on the account's own server."""
        url = with_slash(urljoin(account.url, text))
        if problem := check_url(url):
            raise ValueError(problem)
        if urlsplit(url).netloc != urlsplit(account.url).netloc:
            raise ValueError("must be on the account's server")
        return url

    @abstractmethod
    def connect(self, account: Account, secret: str, *, timeout: float,
                retry: Backoff | None = None, bases: Iterable[str] = (),
                sources: Iterable[str] = ()) -> Connection:
        """The account's connection (nothing is sent yet); SecretError if the secret is
        unusable. Requests go only below the account URL and `bases`; a target is never one
        of `sources` (every pair's source URL)."""
        raise NotImplementedError

    @abstractmethod
    def probe(self, account: Account, secret: str, *, timeout: float, bases: Iterable[str],
              sources: Iterable[str]) -> tuple[Probe, AccountProbe | None]:
        """`check`'s one request for the account (reachability, TLS, the secret); the probe
        for its pairs if they can be checked over it. A StoreError is rendered by `check`."""
        raise NotImplementedError

    @abstractmethod
    def discover(self, account: Account, secret: Callable[[], str], *, timeout: float,
                 user: str | None) -> str:
        """`discover`'s text: the calendars the account sees, as lines to paste. `secret` is
        read once the command line is known to be right (a UsageError comes first)."""
        raise NotImplementedError


def create_if_missing(target: TargetCalendar) -> bool:
    """Make a phone calendar if it is missing; False if it was there already."""
    try:
        target.list()
        return False
    except StoreError as exc:
        if exc.status != 404:
            raise
    target.create_calendar()
    return True
