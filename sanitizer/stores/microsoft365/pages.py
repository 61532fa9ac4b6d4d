"""A Graph collection page read element by element: memory stays at the page's bytes.

`json.loads` of a 16 MiB page of small events builds every event's dict at once, several times
the page's size; two pairs doing so together passed the unit's memory limit. Here the top-level
object is walked with the C scanner's `raw_decode`: each element of `value` is decoded, handed
on and dropped before the next, and the other members (the links) are kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"


class PageError(ValueError):
    """The page is not a JSON object with a `value` array."""


class TooManyElements(PageError):
    """The page's `value` holds more elements than allowed."""


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _SPACE:
        at += 1
    return at


def _expect(text: str, at: int, chars: str) -> tuple[str, int]:
    at = _skip(text, at)
    if at >= len(text) or text[at] not in chars:
        raise PageError("not a collection page")
    return text[at], at + 1


def read_page(raw: bytes, each: Callable[[object, int], None],
              most: int) -> dict[str, Any]:
    """Hand every element of the page's `value` to `each(element, number)`; the page's other
    members. PageError if the page is malformed or holds more than `most` elements."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PageError("not UTF-8") from None
    del raw  # the caller holds no other reference: the page is now held once, as text
    members: dict[str, Any] = {}
    _, at = _expect(text, 0, "{")
    if _skip(text, at) < len(text) and text[_skip(text, at)] == "}":
        raise PageError("no value")
    while True:
        key, at = _decode(text, _skip(text, at))
        if not isinstance(key, str):
            raise PageError("not a collection page")
        _, at = _expect(text, at, ":")
        at = _skip(text, at)
        if key == "value" and text.startswith("[", at):
            if "value" in members:
                raise PageError("two values")
            at = _elements(text, at + 1, each, most)
            members["value"] = True
        else:
            members[key], at = _decode(text, at)
        mark, at = _expect(text, at, ",}")
        if mark == "}":
            break
    if _skip(text, at) != len(text) or "value" not in members:
        raise PageError("not a collection page")
    return members


def _elements(text: str, at: int, each: Callable[[object, int], None], most: int) -> int:
    """Decode the array's elements one at a time; the index after its `]`."""
    at = _skip(text, at)
    if text.startswith("]", at):
        return at + 1
    number = 0
    while True:
        if number >= most:
            raise TooManyElements("too many elements")
        element, at = _decode(text, _skip(text, at))
        each(element, number)
        number += 1
        mark, at = _expect(text, at, ",]")
        if mark == "]":
            return at


def _decode(text: str, at: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, at)
    except (ValueError, RecursionError):
        raise PageError("not JSON") from None
