"""Accounts whose password the server rejected: not tried again until something changes.

A wrong password retried every few minutes can lock the account on the server. After a 401 the
account is written to `rejected.json` in the state directory with a keyed hash of (password,
account settings), never the password. Until that hash changes (a new password, a new URL or user
name) or `check` sees the password accepted, no cycle sends that account's password again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime
from pathlib import Path

from sanitizer.errors import ADMIN
from sanitizer.files import write_json
from sanitizer.service.config import Account

log = logging.getLogger(__name__)
REJECTED_FILE = "rejected.json"
REASON = "password-rejected"
VERDICT = "credential"  # only a definite verdict on the credential is remembered (see runtime)


def fingerprint(key: bytes, account: Account, password: str) -> str:
    """A keyed hash of what a retry would send: the password and the account's settings."""
    material = json.dumps([account.url, account.login, account.verify_tls,
                           str(account.ca_file or ""), password]).encode("utf-8")
    return hmac.new(key, b"rejected-password\0" + material, hashlib.sha256).hexdigest()


def _read(state_dir: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads((state_dir / REJECTED_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        log.warning("%s is unreadable; treating no account as rejected", REJECTED_FILE)
        return {}
    if not isinstance(data, dict):
        return {}
    return {name: entry for name, entry in data.items() if isinstance(entry, dict)}


def is_rejected(state_dir: Path, account: str, print_: str) -> bool:
    """True if this very password and these settings were rejected before, by a verdict on the
    credential. An entry without one was written when throttling or an outage could hold an
    account back too: it is tried again, once, and kept only if the server says no again."""
    entry = _read(state_dir).get(account)
    return (entry is not None and entry.get("verdict") == VERDICT
            and hmac.compare_digest(str(entry.get("fingerprint", "")), print_))


def since(state_dir: Path, account: str) -> str | None:
    """When the account's password was rejected, or None if it is not held back."""
    entry = _read(state_dir).get(account)
    return None if entry is None else str(entry.get("since", "?"))


def remember(state_dir: Path, account: str, print_: str, now: datetime) -> None:
    """Hold the account back until its password or settings change, or `check` passes."""
    data = _read(state_dir)
    data[account] = {"fingerprint": print_, "since": now.isoformat(timespec="seconds"),
                     "verdict": VERDICT}
    write_json(state_dir / REJECTED_FILE, data)


def forget(state_dir: Path, account: str) -> bool:
    """The password was accepted (by `check`): try the account again. False if not held."""
    data = _read(state_dir)
    if data.pop(account, None) is None:
        return False
    write_json(state_dir / REJECTED_FILE, data)
    return True


def message(account: str) -> str:
    """Why a pair was not tried, and what to do: one line."""
    return (f"account {account}: its password was rejected before and is not sent again "
            "(to avoid locking the account); store the right one with `calendar-sanitizer "
            f"set-password {account}` or a new credential, or run `{ADMIN} check`")
