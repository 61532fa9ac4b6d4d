"""Benchmark: calendar-sanitizer against vdirsyncer on a local Radicale (`make bench`)."""
