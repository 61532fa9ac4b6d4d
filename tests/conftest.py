"""Shared fixtures: real CalDAV servers (server_fixtures), the CLI harness (harness) and the
Microsoft Graph simulator (graph_sim)."""

pytest_plugins = ["tests.support.server_fixtures", "tests.support.harness",
                  "tests.support.graph_sim"]
