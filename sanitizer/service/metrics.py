"""An optional metrics file in the Prometheus text format, for node_exporter's textfile collector.

Per pair: when its last cycle succeeded, how many entries its phone calendar holds, the
appointments in the window that are not on the phone (by reason code, as the last cycle that got
through saw them), failures by reason code (counted across restarts, in `metrics.json` in the
state directory) and how long its last cycle took. Written with prometheus_client, atomically,
after every cycle that wrote status.
Pair names and reason codes only, like every other file here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sanitizer.engine.report import PairReport
from sanitizer.errors import ConfigError
from sanitizer.files import write_json

log = logging.getLogger(__name__)
METRICS_STATE = "metrics.json"
PREFIX = "calendar_sanitizer"


def require_library(metrics_file: Path | None) -> None:
    """A configured metrics file needs prometheus_client: say so once, as a config error."""
    if metrics_file is None:
        return
    try:
        import prometheus_client  # noqa: F401, PLC0415 - an optional extra
    except ImportError:
        raise ConfigError(["service.metrics_file: needs the prometheus_client library; install "
                           "it with `pip install 'calendar-sanitizer[metrics]'` or remove the "
                           "key"], "metrics") from None


def record(metrics_file: Path | None, state_dir: Path, reports: Sequence[PairReport],
           durations: Mapping[str, float], now: datetime) -> None:
    """Fold this cycle into the kept numbers and rewrite the metrics file; never fails a cycle."""
    record_each(metrics_file, state_dir, [(reports, durations, now)])


def record_each(metrics_file: Path | None, state_dir: Path,
                cycles: Sequence[tuple[Sequence[PairReport], Mapping[str, float], datetime]],
                ) -> None:
    """Fold several cycles (reports, durations, when) into the kept numbers with one read and
    one write of each file, whatever their number; never fails a cycle."""
    if metrics_file is None or not cycles:
        return
    try:
        kept = _read(state_dir)
        for reports, durations, now in cycles:
            kept = update(kept, reports, durations, now)
        write_json(state_dir / METRICS_STATE, kept, compact=True)
        write_textfile(metrics_file, kept)
    except (OSError, ImportError) as exc:
        log.warning("cannot write the metrics file %s (%s)", metrics_file,
                    getattr(exc, "strerror", None) or type(exc).__name__)


def _read(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / METRICS_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def update(kept: dict[str, Any], reports: Sequence[PairReport], durations: Mapping[str, float],
           now: datetime) -> dict[str, Any]:
    """The numbers per pair after this cycle (pure: no I/O)."""
    result = {name: dict(entry) for name, entry in kept.items() if isinstance(entry, dict)}
    for report in reports:
        entry = result.setdefault(report.pair, {})
        failures = entry.get("failures")
        failures = dict(failures) if isinstance(failures, dict) else {}
        entry["duration"] = float(durations.get(report.pair, 0.0))
        if report.error is None or "missing" not in entry:
            entry["missing"] = dict(report.missing)
        if report.ok:
            entry["last_success"] = now.timestamp()
            entry["entries"] = report.created + report.updated + report.unchanged
        else:
            reason = report.error_code or ("held-back" if report.held_back else "write-errors")
            failures[reason] = int(failures.get(reason, 0)) + 1
        entry["failures"] = failures
    return result


def write_textfile(path: Path, kept: Mapping[str, Any]) -> None:
    """Render the numbers with prometheus_client and write them by rename."""
    from prometheus_client import (  # noqa: PLC0415 - an optional extra
        CollectorRegistry,
        Counter,
        Gauge,
        disable_created_metrics,
        write_to_textfile,
    )

    disable_created_metrics()  # type: ignore[no-untyped-call] # no _created series: noise
    registry = CollectorRegistry()
    last = Gauge(f"{PREFIX}_last_success_timestamp_seconds",
                 "Unix time of the pair's last successful cycle", ["pair"], registry=registry)
    entries = Gauge(f"{PREFIX}_phone_entries",
                    "Entries on the pair's phone calendar after its last successful cycle",
                    ["pair"], registry=registry)
    duration = Gauge(f"{PREFIX}_cycle_duration_seconds", "How long the pair's last cycle took",
                     ["pair"], registry=registry)
    missing = Gauge(f"{PREFIX}_missing_appointments",
                    "Appointments in the window that are not on the pair's phone",
                    ["pair"], registry=registry)
    missing_by = Gauge(f"{PREFIX}_missing_appointments_by_reason",
                       "Appointments in the window that are not on the pair's phone, by reason",
                       ["pair", "reason"], registry=registry)
    failures = Counter(f"{PREFIX}_failures", "Failed cycles of the pair, by reason code",
                       ["pair", "reason"], registry=registry)
    for pair, entry in sorted(kept.items()):
        if "last_success" in entry:
            last.labels(pair).set(float(entry["last_success"]))
            entries.labels(pair).set(int(entry.get("entries", 0)))
        duration.labels(pair).set(float(entry.get("duration", 0.0)))
        found = {str(k): int(v) for k, v in dict(entry.get("missing") or {}).items()}
        missing.labels(pair).set(sum(found.values()))
        for reason, count in sorted(found.items()):
            missing_by.labels(pair, reason).set(count)
        for reason, count in sorted(dict(entry.get("failures") or {}).items()):
            failures.labels(pair, reason).inc(int(count))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
