"""Single change-detection requests, timed straight against a server (no proxy).

Two parts: on the size runs' largest Radicale calendar, a menu of requests a tool might use to
notice a change; and per server (Radicale, Xandikos), the two probes the sanitizer chooses between
for a quiet cycle, a depth-0 PROPFIND of the collection's `getctag` and a sync-collection REPORT
with a valid token, plus whether the ctag is reliable there (unchanged when nothing changed,
changed after an edit and after a delete).
"""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

from bench import calgen, dav
from bench.base import LOOKAHEAD, RETENTION, Bench, log
from tests.support.servers import XandikosServer

_PROBES: dict[str, tuple[str, str, str]] = {
    # name: (method, Depth, body); {token} and {range} are filled in per calendar
    "PROPFIND depth 0 displayname (floor)": (
        "PROPFIND", "0", '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname/></D:prop>'
        "</D:propfind>"),
    "PROPFIND depth 0 getctag": (
        "PROPFIND", "0", '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
        "<D:prop><CS:getctag/></D:prop></D:propfind>"),
    "sync-collection, valid token, no change": (
        "REPORT", "1", '<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
        "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"),
    "calendar-query ETags in window (vdirsyncer)": (
        "REPORT", "1", '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
        '<C:comp-filter name="VEVENT">{range}</C:comp-filter></C:comp-filter></C:filter>'
        "</C:calendar-query>"),
    "calendar-query data in window": (
        "REPORT", "1", '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter>"
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">{range}</C:comp-filter>'
        "</C:comp-filter></C:filter></C:calendar-query>"),
    "PROPFIND depth 1 getetag": (
        "PROPFIND", "1", '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'),
}


def probe_requests(bench: Bench, slug: str, repeats: int = 5) -> dict[str, float]:
    """Server time of single change-detection requests on one calendar, sent directly (median
    of `repeats`, in ms): the floor under any tool's quiet cycle on this server."""
    url = bench.direct_url(slug)
    status, _, body = bench.direct.request("REPORT", url, dav.SYNC_ALL, {"Depth": "1", **dav.XML})
    found = re.search(rb"<(?:\w+:)?sync-token>([^<]+)<", body)
    token = found.group(1).decode() if status == 207 and found else ""
    start, end = bench.now - RETENTION, bench.now + LOOKAHEAD
    window = f'<C:time-range start="{start:%Y%m%dT%H%M%SZ}" end="{end:%Y%m%dT%H%M%SZ}"/>'
    out = {}
    for name, (method, depth, template) in _PROBES.items():
        xml = ('<?xml version="1.0" encoding="utf-8"?>'
               + template.replace("{token}", token).replace("{range}", window)).encode()
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            code, _, _ = bench.direct.request(method, url, xml, {"Depth": depth, **dav.XML})
            times.append(time.perf_counter() - began)
            if code != 207:
                break
        out[name] = round(statistics.median(times) * 1000, 1) if code == 207 else -code
    return out


GETCTAG = _PROBES["PROPFIND depth 0 getctag"][2]
SYNC = _PROBES["sync-collection, valid token, no change"][2]


def _timed(client: dav.Dav, method: str, url: str, depth: str, body: bytes,
           repeats: int) -> tuple[float, bytes]:
    """Median ms of `repeats` identical requests, and the last answer (negative status if not
    207)."""
    times, data = [], b""
    for _ in range(repeats):
        began = time.perf_counter()
        code, _, data = client.request(method, url, body, {"Depth": depth, **dav.XML})
        times.append(time.perf_counter() - began)
        if code != 207:
            return -float(code), data
    return round(statistics.median(times) * 1000, 2), data


def _ctag(client: dav.Dav, url: str) -> str | None:
    body = ('<?xml version="1.0" encoding="utf-8"?>' + GETCTAG).encode()
    _, _, data = client.request("PROPFIND", url, body, {"Depth": "0", **dav.XML})
    found = re.search(rb"<(?:\w+:)?getctag[^>]*>([^<]+)<", data)
    return found.group(1).decode() if found else None


def probe_pair(client: dav.Dav, url: str, objects: dict[str, bytes],
               repeats: int) -> dict[str, Any]:
    """getctag vs sync-collection on one loaded calendar, and the ctag's reliability."""
    _, _, body = client.request("REPORT", url, dav.SYNC_ALL, {"Depth": "1", **dav.XML})
    found = re.search(rb"<(?:\w+:)?sync-token>([^<]+)<", body)
    token = found.group(1).decode() if found else ""
    ctag_ms, _ = _timed(client, "PROPFIND", url, "0",
                        ('<?xml version="1.0" encoding="utf-8"?>' + GETCTAG).encode(), repeats)
    sync_ms, _ = _timed(client, "REPORT", url, "1", (
        '<?xml version="1.0" encoding="utf-8"?>' + SYNC.replace("{token}", token)).encode(),
        repeats)
    first, again = _ctag(client, url), _ctag(client, url)
    href, data = next(iter(objects.items()))
    client.put(url + href, data.replace(b"SEQUENCE:", b"SEQUENCE:9"))
    client.put(url + "probe-extra.ics", data.replace(href.removesuffix(".ics").encode(),
                                                     b"probe-extra"))
    edited = _ctag(client, url)
    client.request("DELETE", url + "probe-extra.ics")
    deleted = _ctag(client, url)
    reliable = (first is not None and first == again and edited not in (None, first)
                and deleted not in (None, edited))
    return {"objects": len(objects), "getctag_ms": ctag_ms, "sync_collection_ms": sync_ms,
            "ctag_reliable": reliable}


def compare_servers(bench: Bench, sizes: list[int], repeats: int = 5) -> dict[str, Any]:
    """The quiet-cycle probes on Radicale (the bench's) and on a Xandikos started here."""
    out: dict[str, Any] = {}
    for size in sizes:
        cal = calgen.windowed_calendar(size, bench.now, seed=20_000 + size,
                                       lookahead=LOOKAHEAD, prefix=f"probe{size}")
        objects = cal.render_all(bench.now)
        slug = f"probe-{size}"
        bench.load_source(slug, objects)
        out.setdefault("radicale", {})[size] = probe_pair(bench.direct, bench.direct_url(slug),
                                                          objects, repeats)
        log(f"probes, radicale, {size} objects: {out['radicale'][size]}")
    with XandikosServer() as server:
        client = dav.Dav(server.url, server.username, server.password)
        try:
            for size in sizes:
                cal = calgen.windowed_calendar(size, bench.now, seed=20_000 + size,
                                               lookahead=LOOKAHEAD, prefix=f"probe{size}")
                objects = cal.render_all(bench.now)
                url = server.create_calendar(f"probe-{size}", f"probe-{size}")
                client.put_all(url, objects)
                out.setdefault("xandikos", {})[size] = probe_pair(client, url, objects, repeats)
                log(f"probes, xandikos, {size} objects: {out['xandikos'][size]}")
        finally:
            client.close()
    return out
