"""Shared fixtures: real CalDAV servers (server_fixtures) and the CLI harness (harness)."""

pytest_plugins = ["tests.support.server_fixtures", "tests.support.harness"]
