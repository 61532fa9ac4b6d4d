"""Exceptions with named fields, and the exit codes the CLI turns them into.

Messages are built here from fixed words, key paths, pair names and reason codes: never from event
text, so an error can be printed or logged as it is.
"""

from __future__ import annotations

import enum

ADMIN = "calendar-sanitizer-admin"
"""The command an admin runs on a documented install (docs/install.md step 6): the program as the
service's user, with its credentials. Messages name it for every command that writes state."""


class ExitCode(enum.IntEnum):
    """Process exit codes, after sysexits(3); documented in the README."""

    OK = 0
    FAILED = 1  # at least one pair failed; the others ran
    MISSING = 3  # status: every pair ran, but appointments in the window are not on a phone
    USAGE = 64
    UNAVAILABLE = 69
    TEMPFAIL = 75
    NOPERM = 77
    CONFIG = 78


class SanitizerError(Exception):
    """Base of every error the program reports itself."""

    exit_code: ExitCode = ExitCode.FAILED


class ConfigError(SanitizerError):
    """The configuration has problems; each is one line that starts with its key path."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: {len(self.problems)} problem(s)")


class SecretError(SanitizerError):
    """A password or key is missing or unreadable."""

    exit_code = ExitCode.CONFIG

    def __init__(self, what: str, hint: str) -> None:
        self.what = what
        self.hint = hint
        super().__init__(f"{what}: {hint}")


EXPLAINED = {
    "auth-rejected": "wrong user name or password",
    "forbidden": "forbidden: the account may not use this URL (check the path and the sharing)",
}


class StoreError(SanitizerError):
    """A CalDAV request failed. `reason` is a short code, `status` the HTTP status if any,
    `hint` a fixed sentence saying what to do (never text from the server)."""

    def __init__(
        self, *, operation: str, url: str, reason: str, status: int | None = None,
        transient: bool = False, retry_after: float | None = None, hint: str | None = None,
    ) -> None:
        self.operation = operation
        self.url = url
        self.reason = reason
        self.status = status
        self.transient = transient
        self.retry_after = retry_after
        self.hint = hint
        where = f"HTTP {status}" if status is not None else reason
        if reason in EXPLAINED:
            where = f"{reason}, {where}"
        text = EXPLAINED.get(reason, reason)
        message = (f"{operation} {url}: {where}" if where == reason else
                   f"{operation} {url}: {text} ({where})")
        super().__init__(f"{message}: {hint}" if hint else message)

    @property
    def exit_code(self) -> ExitCode:  # type: ignore[override]
        """Auth problems must not be retried by a supervisor; outages may be. A server that
        cannot be reached, times out or answers 5xx is unavailable (69), as the README's table
        says; 75 is kept for this installation's own locks."""
        if self.status in (401, 403):
            return ExitCode.NOPERM
        return ExitCode.UNAVAILABLE


class PreconditionFailed(StoreError):
    """A conditional write lost a race (HTTP 412): re-read on the next cycle, never loop."""


class TokenRejected(StoreError):
    """The server no longer knows our sync token (403 or 412 with DAV:valid-sync-token)."""


class UsageError(SanitizerError):
    """Bad command-line usage: an unknown name, a bad option value, no confirmation (exit 64)."""

    exit_code = ExitCode.USAGE


class AlreadyRunning(SanitizerError):
    """Another instance holds the lock in the state directory."""

    exit_code = ExitCode.TEMPFAIL
