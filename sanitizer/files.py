"""Small files in state_dir, written so that a crash never leaves half of one."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # the config's rule for pair names


def named(directory: Path, name: str, suffix: str = "") -> Path:
    """A file named after a pair in `directory`; a name that is no valid pair name (`..`, a
    slash, an absolute path) raises ValueError, so no argument can reach another file."""
    if not SAFE_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError("not a valid pair name")
    return directory / (name + suffix)


def write_json(path: Path, data: Any, *, compact: bool = False,
               if_changed: bool = False) -> None:
    """Write a 0600 JSON file by rename, creating its 0700 directory if needed. `compact` is
    for files rewritten often: no indentation, so the C encoder writes it in one pass.
    `if_changed` (compact only): a file that already holds exactly this is left alone, so a
    quiet cycle costs a read instead of a write and a sync to disk."""
    text = json.dumps(data, sort_keys=True) if compact else None
    if if_changed and text is not None:
        try:
            if path.read_text(encoding="utf-8") == text:
                return
        except (OSError, UnicodeDecodeError):
            pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if text is not None:
                handle.write(text)
            else:
                json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
