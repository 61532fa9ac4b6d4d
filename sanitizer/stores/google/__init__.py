"""Google Workspace accounts: CalDAV with tokens minted from a service account key."""
