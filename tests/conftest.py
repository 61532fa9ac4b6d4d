"""Shared fixtures: real CalDAV servers (server_fixtures) and the CLI harness (harness)."""

pytest_plugins = ["server_fixtures", "harness"]
