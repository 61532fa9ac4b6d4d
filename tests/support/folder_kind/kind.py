"""The folder kind: `[accounts.NAME] kind = "folder"`, `root = "/abs/path"`; a pair's `source`
and `target` are folder names under the root. Its secret must match the root's `.secret` file,
so that `check` has something to accept or refuse.

Importing this module registers the kind (its one registry line): in every worker that
unpickles one of its accounts, too. The tests that use it take it out of the registry again
(test_fourth_kind.py), so that other tests see the three real kinds only.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from sanitizer.core.policy import Policy
from sanitizer.errors import ExitCode
from sanitizer.stores.account import Account, AccountFields
from sanitizer.stores.base import SourceCalendar, TargetCalendar
from sanitizer.stores.kind import AccountKind, AccountProbe, Missing, Probe
from sanitizer.stores.registry import register
from sanitizer.stores.retry import Backoff
from tests.support.folder_kind.store import FolderCalendar, folder_of

SECRET_FILE = ".secret"


@dataclass(frozen=True, kw_only=True)
class FolderAccount(Account):
    """A root folder whose subfolders are calendars."""

    root: Path
    kind: ClassVar[str] = "folder"


@dataclass
class FolderConnection:
    """The root folder; every calendar's change feed is kept in its `.sync/`."""

    account: FolderAccount

    def source(self, url: str, *, read_titles: bool,
               until: float | None = None) -> SourceCalendar:
        """A folder read as a work calendar."""
        return FolderCalendar(url, self.account.root / ".sync")

    def target(self, url: str, *, until: float | None = None) -> TargetCalendar:
        """A folder written as a phone calendar."""
        return FolderCalendar(url, self.account.root / ".sync")

    def tokens(self) -> Any:
        """No tokens: the secret is compared, not exchanged."""
        return None

    def missing(self, url: str, shown: int) -> Missing:
        """The folders beside a missing one."""
        return Missing(calendars(self.account)[:shown], None)

    def create_calendar(self, url: str) -> bool:
        """Make the folder if it is missing."""
        path = folder_of(url)
        if path.is_dir():
            return False
        path.mkdir(parents=True)
        return True

    def close(self) -> None:
        """Nothing is open."""


@dataclass
class FolderProbe:
    """`check` of a pair's folders."""

    account: FolderAccount

    @property
    def forbidden_advice(self) -> str:
        """Folders answer no 403."""
        return "check the folder's permissions"

    def source(self, pair: Policy, where: str, now: datetime) -> Probe | None:
        """The source folder exists."""
        if folder_of(pair.source_url).is_dir():
            return None
        return Probe("source-missing", f"no folder {pair.source_url}: check {where}.source",
                     ExitCode.CONFIG)

    def target(self, pair: Policy, where: str, account: str) -> Probe:
        """The target folder exists (no cycle makes one)."""
        if folder_of(pair.target_url).is_dir():
            return Probe("ok", "target is a writable calendar")
        return Probe("target-missing", f"no folder {pair.target_url}: run create-target",
                     ExitCode.CONFIG)

    def compared_source(self, url: str) -> SourceCalendar | None:
        """Files keep their UIDs."""
        return FolderCalendar(url, self.account.root / ".sync")

    def compared_target(self, url: str) -> TargetCalendar | None:
        """Files keep their UIDs."""
        return FolderCalendar(url, self.account.root / ".sync")

    def close(self) -> None:
        """Nothing is open."""


class FolderKind(AccountKind):
    """Calendars as folders of .ics files."""

    name = "folder"

    def read(self, fields: AccountFields) -> Account | None:
        """`root`: an absolute folder."""
        fields.known({"root"})
        root = fields.absolute_path("root")
        if root is None:
            fields.problem("root", "missing")
            return None
        return FolderAccount(fields.name, f"folder://{quote(str(root))}/", root=root)

    def calendar_url(self, account: Account, text: str) -> str:
        """A folder name under the root."""
        if not text or "/" in text.strip("/") or text.startswith("."):
            raise ValueError("expected a folder name under the account's root")
        return f"{account.url}{quote(text.strip('/'))}/"

    def connect(self, account: Account, secret: str, *, timeout: float,
                retry: Backoff | None = None, bases: Iterable[str] = (),
                sources: Iterable[str] = ()) -> FolderConnection:
        """Nothing to open."""
        assert isinstance(account, FolderAccount)
        return FolderConnection(account)

    def probe(self, account: Account, secret: str, *, timeout: float, bases: Iterable[str],
              sources: Iterable[str]) -> tuple[Probe, AccountProbe | None]:
        """The root exists and the secret matches its `.secret`."""
        assert isinstance(account, FolderAccount)
        try:
            expected = (account.root / SECRET_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            return Probe("not-found", f"no folder {account.root}", ExitCode.CONFIG), None
        if not hmac.compare_digest(expected, secret.strip()):
            return Probe("auth-rejected", "the secret does not match", ExitCode.NOPERM), None
        return Probe("ok", f"secret accepted by {account.root}"), FolderProbe(account)

    def discover(self, account: Account, secret: Callable[[], str], *, timeout: float,
                 user: str | None) -> str:
        """The folders under the root."""
        assert isinstance(account, FolderAccount)
        return "\n".join(f'source = "{url[len(account.url):]}"' for url in calendars(account))


def calendars(account: FolderAccount) -> list[str]:
    """The URLs of the folders under the root."""
    return [f"{account.url}{quote(p.name)}/" for p in sorted(account.root.iterdir())
            if p.is_dir() and not p.name.startswith(".")]


KIND = FolderKind()
register(KIND)
