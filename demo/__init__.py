"""The demo: calendar-sanitizer on a local Radicale with fake casework (`make demo`)."""
