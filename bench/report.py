"""Rows, the printed table and the JSON file."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PRODUCT = "sanitizer"
VDIR = "vdirsyncer"


@dataclass
class Row:
    """One measured client run: the proxy's view of the server side, and the client's cost."""

    scenario: str
    size: int
    tool: str
    requests: dict[str, int]
    server_s: float
    server_by_method: dict[str, float]
    server_cpu_s: float
    wall_s: float
    rss_mb: float
    code: int
    client_cpu_s: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    connections: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""
    repeats: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


def median_row(rows: list[Row]) -> Row:
    """Median of repeated runs, metric by metric; the run with median server time gives the
    request counts (they are the same from run to run unless the tool is nondeterministic)."""
    if len(rows) == 1:
        return rows[0]
    by_server = sorted(rows, key=lambda r: r.server_s)
    mid = by_server[len(rows) // 2]
    out = Row(**{**asdict(mid), "repeats": []})
    out.server_s = statistics.median(r.server_s for r in rows)
    out.wall_s = statistics.median(r.wall_s for r in rows)
    out.server_cpu_s = statistics.median(r.server_cpu_s for r in rows)
    out.client_cpu_s = statistics.median(r.client_cpu_s for r in rows)
    out.rss_mb = max(r.rss_mb for r in rows)
    out.code = max(rows, key=lambda r: abs(r.code)).code
    out.repeats = [{"server_s": r.server_s, "server_cpu_s": r.server_cpu_s,
                    "wall_s": r.wall_s, "rss_mb": r.rss_mb,
                    "requests": r.requests, "code": r.code} for r in rows]
    return out


def fmt_requests(requests: dict[str, int]) -> str:
    if not requests:
        return "none"
    items = sorted(requests.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{method} {count}" for method, count in items)


def _ratio(theirs: float, ours: float) -> str:
    if ours <= 0:
        return "no req" if theirs > 0 else "-"
    return f"{theirs / ours:.1f}x"


def ratios(rows: list[Row]) -> dict[tuple[str, int], tuple[str, str, str]]:
    """For each (scenario, size) measured with both tools: vdirsyncer / sanitizer for server
    time, server CPU and wall time. Above 1 means the sanitizer needed less."""
    found: dict[tuple[str, int], tuple[str, str, str]] = {}
    index = {(r.scenario, r.size, r.tool): r for r in rows}
    for (scenario, size, tool), row in index.items():
        other = index.get((scenario, size, VDIR))
        if tool == PRODUCT and other is not None:
            found[(scenario, size)] = (_ratio(other.server_s, row.server_s),
                                       _ratio(other.server_cpu_s, row.server_cpu_s),
                                       _ratio(other.wall_s, row.wall_s))
    return found


def table(rows: list[Row]) -> str:
    """A GitHub-flavoured Markdown table (readable as plain text too)."""
    rat = ratios(rows)
    head = ["scenario", "size", "tool", "requests", "server s", "server CPU s", "wall s",
            "client CPU s", "peak RSS MB", "vdir/ours server s", "vdir/ours server CPU",
            "vdir/ours wall", "result"]
    lines = [head]
    for r in rows:
        ratio = rat.get((r.scenario, r.size), ("", "", "")) if r.tool == PRODUCT else ("", "", "")
        result = "ok" if r.code == 0 else f"exit {r.code}"
        if r.note:
            result += f"; {r.note}"
        lines.append([r.scenario, str(r.size), r.tool, fmt_requests(r.requests),
                      f"{r.server_s:.3f}", f"{r.server_cpu_s:.2f}", f"{r.wall_s:.2f}",
                      f"{r.client_cpu_s:.2f}", f"{r.rss_mb:.0f}", *ratio, result])
    return markdown(lines)


def markdown(lines: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                   + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n",
                    encoding="utf-8")
