"""A fourth kind of account that exists only in the tests: calendars are folders of .ics files.

It proves that a kind is one package and one registry line: nothing outside this package knows it,
yet `check`, `sync` and `status` use it as they use CalDAV, Google and Microsoft 365.
"""
