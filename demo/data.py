"""Fake but realistic work-calendar data for the demo: exactly what must never reach a phone.

Every name, number and address here is invented (555-01xx numbers, example.org addresses).
Events are placed in the week that contains `today`, in the agency's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta


@dataclass(frozen=True)
class SampleEvent:
    """One object for the work calendar: its file name and iCalendar text."""

    name: str
    ics: str


def _stamp(value: datetime) -> str:
    return value.strftime("%Y%m%dT%H%M%S")


def _calendar(body: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Agency Exchange//EN\r\n"
            "X-WR-CALNAME:Casework - M. Alvarez\r\n" + body + "END:VCALENDAR\r\n")


def _timed(uid: str, start: datetime, minutes: int, zone_name: str, extra: str) -> str:
    end = start + timedelta(minutes=minutes)
    return (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T120000Z\r\n"
            f"DTSTART;TZID={zone_name}:{_stamp(start)}\r\nDTEND;TZID={zone_name}:{_stamp(end)}\r\n"
            f"{extra}END:VEVENT\r\n")


def _survivor(name: str, phone: str, address: str, note: str) -> str:
    email = name.lower().replace(" ", ".") + "@example.org"
    return (f"SUMMARY:{name} - {note}\r\n"
            f"DESCRIPTION:Call {name} at {phone}. Safe to leave a message: NO.\\n"
            f"Notes: {note}\\, partner works nights.\r\n"
            f"LOCATION:{address}\r\n"
            f"ATTENDEE;CN={name};ROLE=REQ-PARTICIPANT:mailto:{email}\r\n"
            f"ORGANIZER;CN=Advocate M. Alvarez:mailto:m.alvarez@agency.example.org\r\n"
            f"CATEGORIES:Survivor\r\nCLASS:CONFIDENTIAL\r\n"
            f"X-MS-OLK-SENDER:mailto:{email}\r\n")


def sample_events(first_day: date, zone_name: str, *, intake_moved: bool = False,
                  ) -> list[SampleEvent]:
    """Six days of casework from `first_day`: appointments, a daily series with a moved and a
    cancelled instance, an all-day court date, staff events and a personal one."""
    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(first_day + timedelta(days=day), time(hour, minute))

    intake_hour = 10 if intake_moved else 9

    events = [
        SampleEvent("intake-rosa.ics", _calendar(_timed(
            "rosa.delgado.intake@agency.example.org", at(0, intake_hour, 30), 60, zone_name,
            _survivor("Rosa Delgado", "555-0142", "14 Birch Lane, Apt 3", "intake")))),
        SampleEvent("court-prep-jane.ics", _calendar(_timed(
            "jane.k.courtprep@agency.example.org", at(1, 13), 90, zone_name,
            _survivor("Jane Kowalski", "555-0187", "County Courthouse, Room 210",
                      "protective order hearing prep")
            + "URL:https://meet.example.org/j/8812345?pwd=casefile\r\n"))),
        SampleEvent("shelter-visit.ics", _calendar(_timed(
            "shelter.visit.tran@agency.example.org", at(3, 15), 45, zone_name,
            _survivor("Linh Tran", "555-0119", "Safe House 2 (do not disclose)",
                      "check-in after move")
            + "X-APPLE-TRAVEL-START;ROUTING=CAR:Home\r\nGEO:40.7128;-74.0060\r\n"
            + "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Linh Tran - bring bus pass\r\n"
            + "TRIGGER:-PT30M\r\nEND:VALARM\r\n"))),
    ]
    series_uid = "support-group.amara@agency.example.org"
    master = _timed(series_uid, at(0, 17), 60, zone_name,
                    _survivor("Amara Okafor", "555-0163", "Community Room B",
                              "weekly support session")
                    + "RRULE:FREQ=DAILY;COUNT=5\r\n")
    moved = _timed(series_uid, at(2, 18, 30), 60, zone_name,
                   _survivor("Amara Okafor", "555-0163", "Library annex",
                             "moved: weekly support session")
                   + f"RECURRENCE-ID;TZID={zone_name}:{_stamp(at(2, 17))}\r\n")
    cancelled = _timed(series_uid, at(3, 17), 60, zone_name,
                       f"RECURRENCE-ID;TZID={zone_name}:{_stamp(at(3, 17))}\r\n"
                       "STATUS:CANCELLED\r\nSUMMARY:Amara Okafor - cancelled (safety)\r\n")
    events.append(SampleEvent("support-series.ics", _calendar(master + moved + cancelled)))
    court = first_day + timedelta(days=4)
    events.append(SampleEvent("court-date.ics", _calendar(
        f"BEGIN:VEVENT\r\nUID:court.kowalski@agency.example.org\r\nDTSTAMP:20240101T120000Z\r\n"
        f"DTSTART;VALUE=DATE:{court:%Y%m%d}\r\n"
        f"DTEND;VALUE=DATE:{court + timedelta(days=1):%Y%m%d}\r\n"
        + _survivor("Jane Kowalski", "555-0187", "County Courthouse", "court date, all day")
        + "TRANSP:TRANSPARENT\r\nEND:VEVENT\r\n")))
    events.append(SampleEvent("staff-meeting.ics", _calendar(_timed(
        "staff.weekly@agency.example.org", at(1, 9), 60, zone_name,
        "SUMMARY:Staff meeting\r\nCATEGORIES:Staff\r\nLOCATION:Conference room\r\n"
        "DESCRIPTION:Case review: Delgado\\, Kowalski\\, Tran\r\n"))))
    events.append(SampleEvent("training.ics", _calendar(_timed(
        "training.hotline@agency.example.org", at(4, 10), 120, zone_name,
        "SUMMARY:Hotline training\r\nCATEGORIES:Staff\r\n"))))
    events.append(SampleEvent("personal.ics", _calendar(_timed(
        "dentist@agency.example.org", at(2, 8), 30, zone_name,
        "SUMMARY:Dentist (personal)\r\nCATEGORIES:Personal\r\n"))))
    return events


def demo_config(url: str, username: str, state_dir: str, zone_name: str) -> str:
    """A config for the demo's Radicale, in the same form an agency writes."""
    return f"""# Written by `calendar-sanitizer demo`; see config.example.toml for every key.
[service]
interval = "5m"
timezone = "{zone_name}"
state_dir = "{state_dir}"

[accounts.demo]
url = "{url}"
username = "{username}"

[[pairs]]
name = "advocate"
account = "demo"
source = "{username}/casework/"
target = "{username}/phone/"
title = "Appointment"
lookahead = "14d"
retention = "24h"

[[pairs.rules]]
match_categories = ["Staff"]
action = "keep-title"

[[pairs.rules]]
match_categories = ["Personal"]
action = "skip"
"""
