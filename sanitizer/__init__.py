"""calendar-sanitizer: a non-identifying, phone-synced copy of an advocate's work calendar."""

__version__ = "0.1.0"
