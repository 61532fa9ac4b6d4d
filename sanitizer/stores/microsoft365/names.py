"""How a pair names a Microsoft 365 calendar: `USER/CALENDAR`, and the URL that stands for it.

Pure and free of msal, so the config loader can validate names without the extra installed.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

GRAPH_URL = "https://graph.microsoft.com/v1.0/"
AUTHORITY = "https://login.microsoftonline.com/"
SCOPE = "https://graph.microsoft.com/.default"
MAX_CALENDAR_NAME = 255
MARK_GUID = "{0c9d7f35-5bd4-4a8e-9a27-3f4e2b8c6d11}"
MARK_NAME = "calendar-sanitizer-uid"
MARK_ID = f"String {MARK_GUID} Name {MARK_NAME}"  # the owner mark: an extended property
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_USER = re.compile(r"^(?:[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+"
                   r"|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$")
TENANT = re.compile(r"^(?:[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}"
                    r"|[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+)$")
CLIENT_ID = re.compile(r"^[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")


def split_calendar(text: str) -> tuple[str, str]:
    """`maria@agency.org/Calendar` -> (user, calendar name); ValueError saying what is wrong."""
    user, slash, name = text.partition("/")
    if not slash or not _USER.fullmatch(user):
        raise ValueError("expected USER/CALENDAR, USER a mailbox address or object id")
    if not name.strip() or len(name) > MAX_CALENDAR_NAME or _CONTROL.search(name):
        raise ValueError("the calendar name must be 1-255 characters with no control characters")
    return user.lower(), name


def mailbox(text: str) -> str:
    """A mailbox address or object id as pairs write it (lower case); ValueError if it is not
    one, so a typo never becomes part of a Graph URL."""
    if not _USER.fullmatch(text):
        raise ValueError("expected a mailbox address or object id")
    return text.lower()


def calendar_url(graph_url: str, user: str, name: str) -> str:
    """The URL a pair's source or target stands for (an identity: Graph finds calendars by id)."""
    return f"{graph_url}users/{quote(user, safe='@')}/calendars/{quote(name, safe='')}/"


def parse_calendar_url(graph_url: str, url: str) -> tuple[str, str]:
    """The inverse of `calendar_url`."""
    rest = url.removeprefix(graph_url).strip("/").split("/")
    if not url.startswith(graph_url) or len(rest) != 4 or rest[0] != "users":
        raise ValueError("not a Microsoft 365 calendar URL")
    return unquote(rest[1]), unquote(rest[3])


def same_origin_prefix(base: str, url: str) -> bool:
    """True if `url` lies under `base`: same scheme, host, port and a path below base's. Dot
    segments are looked for after percent-decoding (`%2e%2e` is `..` to a server), and a
    backslash (a slash to some servers) is refused."""
    b, u = urlsplit(base), urlsplit(url)
    decoded = unquote(u.path)
    return ((b.scheme, b.netloc.lower()) == (u.scheme, u.netloc.lower())
            and not u.username and not u.fragment
            and not {".", ".."} & set(decoded.split("/")) and "\\" not in decoded
            and u.path.startswith(b.path))
