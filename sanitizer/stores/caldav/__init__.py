"""CalDAV accounts: the bounded transport, the calendar stores, discovery and the ctag probe."""
